"""A first deploy that fails at a random step, for any reason, undoes itself and says so in one line.

Each kind of failure the issue found escaping as a traceback is injected at
the k-th call of the part that raises it, k drawn at random from the calls a
whole deploy makes (seed printed on failure; OVSVX_FAULT_SEED replays it):
an external command that times out or is not installed, the kernel refusing a
netlink request, a lookup that found nothing, an OVSDB transaction failing.
Afterwards the error is one OvsvxError line that says the deploy was undone,
and the machine holds nothing of the lab: no namespace, process or record.
"""

from __future__ import annotations

import errno
import os
import random
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from ovsdbapp import exceptions as ovsdbapp_errors
from ovsdbapp.backend.ovs_idl import transaction
from pyroute2.netlink.exceptions import NetlinkError

from ovsvx.deploy.deploy import UNDONE, Scope, deploy, destroy
from ovsvx.errors import OvsvxError
from ovsvx.host import netstack
from ovsvx.host.record import record_path
from ovsvx.model import reader
from ovsvx.model.options import DeployOptions
from tests.conftest import STATE_DIR, TEST_PREFIX, leftover_netns, need_lab
from tests.lab.helpers import processes_of

TOPO = reader.default()


class _Netlink:
    """A pyroute2 handle whose method `name` goes through `cut` (pyroute2 0.9 makes its methods on the fly,
    so they are cut where ovsvx opens its handles: netstack.stack)."""

    def __init__(self, handle: Any, name: str, cut: Callable[..., Any]):
        self.handle, self.name, self.cut = handle, name, cut

    def __getattr__(self, attr: str) -> Any:
        found = getattr(self.handle, attr)
        return (lambda *args, **kwargs: self.cut(found, *args, **kwargs)) if attr == self.name else found


# kind -> (what is cut: "subprocess", "ovsdb" or "netlink:<method>", what it raises)
KINDS: dict[str, tuple[str, Callable[[], BaseException]]] = {
    "command times out": ("subprocess", lambda: subprocess.TimeoutExpired(["injected"], 30)),
    "tool not installed": ("subprocess", lambda: FileNotFoundError(errno.ENOENT, "No such file", "injected")),
    "netlink refuses": ("netlink:link", lambda: NetlinkError(errno.EBUSY, "Device or resource busy")),
    "lookup finds nothing": ("netlink:link_lookup", lambda: IndexError("list index out of range")),
    "ovsdb transaction fails": (
        "ovsdb",
        lambda: ovsdbapp_errors.TimeoutException(commands=["injected"], timeout=10, cause="injected"),
    ),
}


class Cut:
    """Counts the calls to one part and, if `at` is set, makes the at-th one raise instead."""

    def __init__(self, kind: str, at: int | None, prefix: str):
        self.target, self.error = KINDS[kind]
        self.at, self.calls, self.fired = at, 0, False
        self.recorded = record_path("lab", prefix)
        self.changing = False  # whether the deploy had begun changing things when the cut struck
        self.lock = threading.Lock()

    def __call__(self, original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            self.calls += 1
            fire = self.calls == self.at
            self.fired |= fire
        if fire:
            self.changing = self.recorded.exists()  # the record is written just before the first change
            raise self.error()
        return original(*args, **kwargs)

    @contextmanager
    def installed(self) -> Iterator[Cut]:
        if self.target.startswith("netlink:"):
            owner, name = netstack, "stack"
            opened = netstack.stack

            @contextmanager
            def replacement(netns: str | None) -> Iterator[Any]:
                with opened(netns) as handle:
                    yield _Netlink(handle, self.target.split(":")[1], self)
        else:
            owner, name = {"subprocess": (subprocess, "run"), "ovsdb": (transaction.Transaction, "commit")}[self.target]
            original = getattr(owner, name)

            def replacement(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
                return self(original, *args, **kwargs)

        saved = getattr(owner, name)
        setattr(owner, name, replacement)
        try:
            yield self
        finally:
            setattr(owner, name, saved)


def _deploy(prefix: str, mode: str) -> None:
    deploy(Scope.lab(prefix), TOPO, {"*": mode}, DeployOptions())


def _nothing_left(prefix: str) -> list[str]:
    left = [n for n in leftover_netns() if n.startswith(prefix)] + processes_of(prefix)
    return left + [str(p) for p in STATE_DIR.glob(f"lab-{prefix}*") if p.suffix != ".lock"]


@pytest.mark.parametrize("mode", ["kernel", "ovs"])
def test_a_first_deploy_failing_at_a_random_step_undoes_itself_whatever_the_error(mode: str) -> None:
    need_lab()
    prefix = f"{TEST_PREFIX}j{mode[0]}-"
    seed = int(os.environ.get("OVSVX_FAULT_SEED", time.time_ns()))
    draw = random.Random(seed)
    kinds = [k for k in KINDS if mode == "ovs" or k != "ovsdb transaction fails"]
    tried = []
    try:
        for kind in kinds:
            with Cut(kind, None, prefix).installed() as counter:  # how many calls a whole deploy makes
                _deploy(prefix, mode)
            destroy(Scope.lab(prefix))
            at = draw.randint(1, counter.calls)
            where = f"(seed {seed}: {kind} at call {at} of {counter.calls}; tried before: {tried})"
            with Cut(kind, at, prefix).installed() as cut, pytest.raises(OvsvxError) as failed:
                _deploy(prefix, mode)
            message = str(failed.value)
            assert cut.fired, where
            assert "\n" not in message, f"{where}: {message}"
            assert message.endswith(UNDONE) == cut.changing, f"{where}: {message}"  # before the first change: as is
            assert not _nothing_left(prefix), f"{where}: {message}: left {_nothing_left(prefix)}"
            tried.append(f"{kind} at {at}/{counter.calls}: {message}")
        print("\n".join(tried))  # with -s: what each injection made of the deploy
    finally:
        destroy(Scope.lab(prefix))
