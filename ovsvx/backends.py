"""The modes ovsvx can deploy a host in, by name.

Each backend deploys one host of the topology at a `Site` and offers the same
verbs: `inspect()` (findings, no change), `apply()` (changes made), and
`destroy()` (what it removed).  The CLI's `--mode` choices come from here.
"""

from __future__ import annotations

from typing import Protocol

from ovsvx.errors import UsageError
from ovsvx.kernel import KernelBackend
from ovsvx.findings import Finding
from ovsvx.record import Deployment
from ovsvx.site import Site


class Backend(Protocol):
    name: str

    def __init__(self, site: Site, deployment: Deployment) -> None: ...
    def inspect(self) -> list[Finding]: ...
    def apply(self) -> list[str]: ...
    def destroy(self) -> list[str]: ...


BACKENDS: dict[str, type[Backend]] = {
    KernelBackend.name: KernelBackend,
}
DEFAULT_MODE = "kernel"


def check_mode(mode: str) -> str:
    if mode not in BACKENDS:
        raise UsageError(f"mode {mode!r} is not allowed: one of {', '.join(BACKENDS)}")
    return mode


def backend(mode: str, site: Site, deployment: Deployment) -> Backend:
    return BACKENDS[check_mode(mode)](site, deployment)
