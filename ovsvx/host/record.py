"""The deployment record: what ovsvx built, kept under /run/ovsvx.

A record is written *before* the first change, so that `destroy` can find
everything even after a crash, and it is the proof of ownership for what
cannot carry a mark of its own (network namespaces, the original values of
sysctls).  It also keeps the topology a deployment was made from, so status,
verify, exec and destroy need no `-t` again.

There is one record per lab (by prefix) and one for this machine as a real
host.  A lab is volatile through and through (namespaces, its own OVS's
database on /run), so its record lives on /run and goes with it at reboot.
A real host's is kept on disk (/var/lib/ovsvx): what it made in the system's
OVSDB (bridges, ports, settings) outlives a reboot, and so must the proof
that ovsvx made it, or `status` and `destroy` would no longer find it and
the next deploy could not adopt it.  The host's running files (controller
pid and log, FRR's sockets) stay on /run.

A lock per record keeps two deploys, or a deploy and a destroy, from
interleaving.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from ovsvx import waits
from ovsvx.errors import NotDeployedError, PreconditionError, UsageError
from ovsvx.files import replace_file
from ovsvx.model import reader, writer
from ovsvx.model import topology as topo
from ovsvx.model.site import Site

STATE_DIR = Path(os.environ.get("OVSVX_STATE_DIR", "/run/ovsvx"))
HOST_RECORD_DIR = Path(os.environ.get("OVSVX_HOST_RECORD_DIR", "/var/lib/ovsvx"))
PREFIX_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,11}")  # matched whole: a trailing newline is no prefix
LOCK_WAIT_S = 60.0


def check_prefix(prefix: str) -> str:
    if prefix and not PREFIX_RE.fullmatch(prefix):
        raise UsageError(
            f"--prefix {topo.shown(prefix)} is not allowed: "
            "up to 12 characters from a-z 0-9 -, starting with a letter or digit"
        )
    return prefix


class Kind(StrEnum):
    """What a deployment is: a lab on this machine, or this machine as one host of the topology."""

    LAB = "lab"
    HOST = "host"


@dataclass
class Deployment:
    """What one `ovsvx deploy` made: a lab (kind 'lab') or this machine as one host (kind 'host')."""

    kind: Kind
    prefix: str
    topology: topo.Topology
    modes: dict[str, topo.Mode] = field(default_factory=dict)  # host name -> mode deployed
    netns: list[str] = field(default_factory=list)  # namespaces ovsvx created, real names
    sysctls: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # host -> key -> [before, set]
    # host -> what its mode decided there (its own words: only the mode reads them; ovs mode's datapath)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    firewall: bool = True  # the VXLAN port admits only the peer VTEPs (False: --no-firewall)
    unfinished_links: dict[str, list[str]] = field(default_factory=dict)  # host -> links made, not yet marked
    xdp_devices: dict[str, list[str]] = field(default_factory=dict)  # host -> where its OVS may attach XDP
    leaving: dict[str, list[topo.Mode]] = field(default_factory=dict)  # host -> modes a switch takes down
    # hosts are deployed in parallel threads, each noting what it made: one writer at a time
    _writing: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False, compare=False)

    @property
    def path(self) -> Path:
        return record_path(self.kind, self.prefix)

    @property
    def is_lab(self) -> bool:
        return self.kind == Kind.LAB

    def sites(self) -> list[Site]:
        """Where each deployed host lives: in a lab, every host in its namespace; on a real host, this
        machine (its peers are on other machines)."""
        if self.is_lab:
            return [Site(h, self.prefix + h.name, self.prefix) for h in self.topology.hosts]
        return [Site(self.topology.host(name), None) for name in self.modes]

    def site_of(self, host: str) -> Site:
        """Where `host` lives in this deployment."""
        for site in self.sites():
            if site.host.name == host:
                return site
        raise UsageError(f"{host} is not deployed on this machine: run the command on {host}")

    @property
    def folder(self) -> Path:
        """ovsvx's own running files for this deployment (a lab host's OVS, controller pid and log): on
        /run, whichever kind it is."""
        return STATE_DIR / self.path.stem

    def own_netns(self, name: str) -> None:
        with self._writing:
            if name not in self.netns:
                self.netns.append(name)
                self.save()

    def disown_netns(self, name: str) -> None:
        with self._writing:
            if name in self.netns:
                self.netns.remove(name)
                self.save()

    def forget_host(self, host: str) -> None:
        """Drop every entry of a host that has left the deployment (EVPN lets one leave alone)."""
        with self._writing:
            for per_host in (self.modes, self.sysctls, self.settings, self.unfinished_links, self.xdp_devices):
                per_host.pop(host, None)
            self.leaving.pop(host, None)
            self.save()

    def making_link(self, host: str, name: str, making: bool) -> None:
        """Claim a link from just before it is created until it carries ovsvx's alias."""
        with self._writing:
            names = self.unfinished_links.setdefault(host, [])
            if making and name not in names:
                names.append(name)
            elif not making and name in names:
                names.remove(name)
            self.save()

    def remember_sysctl(self, host: str, key: str, before: str, value: str) -> None:
        """Keep what a sysctl held before ovsvx first set it, and what ovsvx set, to restore on destroy."""
        with self._writing:
            per_host = self.sysctls.setdefault(host, {})
            per_host[key] = [per_host.get(key, [before])[0], value]
            self.save()

    def note_xdp(self, host: str, devices: list[str]) -> None:
        """Remember, before OVS starts, the devices where its AF_XDP ports will attach XDP programs (or
        forget them, with no devices): what a killed ovs-vswitchd leaves behind is found there."""
        self._keep(self.xdp_devices, host, devices)

    def note_leaving(self, host: str, modes: list[topo.Mode]) -> None:
        """Remember the modes a switch takes down on `host`, from before the first is touched until the
        last is gone (no modes): a switch cut short is then finished by the next deploy, or destroy."""
        self._keep(self.leaving, host, modes)

    def set_settings(self, host: str, settings: dict[str, Any] | None) -> None:
        """Keep what a host's mode decided (datapath, flows source, OVS settings before ovsvx); None
        forgets it."""
        self._keep(self.settings, host, settings)

    def _keep(self, per_host: dict[str, Any], host: str, value: Any) -> None:
        """Set `host`'s entry of one of the record's per-host tables, or drop it for an empty value or
        None, and save."""
        with self._writing:
            if value:
                per_host[host] = value
            else:
                per_host.pop(host, None)
            self.save()

    def save(self) -> None:
        with self._writing:
            data: dict[str, Any] = {
                "kind": self.kind,
                "prefix": self.prefix,
                "topology": writer.to_data(self.topology),
                "modes": self.modes,
                "netns": self.netns,
                "sysctls": self.sysctls,
                "settings": self.settings,
                "firewall": self.firewall,
                "unfinished_links": self.unfinished_links,
                "xdp_devices": self.xdp_devices,
                "leaving": self.leaving,
            }
            self.path.parent.mkdir(parents=True, exist_ok=True)
            replace_file(self.path, json.dumps(data) + "\n", 0o600)

    def forget(self) -> None:
        """Drop the record and the deployment's folder: everything they describe is gone."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.path.unlink(missing_ok=True)


def record_path(kind: Kind, prefix: str) -> Path:
    if kind == Kind.LAB:
        return STATE_DIR / f"lab-{prefix or 'default'}.json"
    return HOST_RECORD_DIR / "host.json"


def load(kind: Kind, prefix: str) -> Deployment | None:
    path = record_path(kind, prefix)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise NotDeployedError(f"{path}: unreadable deployment record ({err}); remove it by hand") from None
    return Deployment(
        kind=Kind(data["kind"]),
        prefix=data["prefix"],
        topology=reader.parse(data["topology"]),
        modes={host: topo.Mode(mode) for host, mode in data.get("modes", {}).items()},
        netns=data.get("netns", []),
        sysctls=data.get("sysctls", {}),
        settings=data.get("settings", {}),
        firewall=data.get("firewall", True),
        unfinished_links=data.get("unfinished_links", {}),
        xdp_devices=data.get("xdp_devices", {}),
        leaving={host: [topo.Mode(m) for m in modes] for host, modes in data.get("leaving", {}).items()},
    )


def require(kind: Kind, prefix: str) -> Deployment:
    found = load(kind, prefix)
    if found is None:
        where = f"lab (prefix {prefix!r})" if kind == Kind.LAB and prefix else str(kind)
        raise NotDeployedError(f"nothing is deployed in this {where}: run `ovsvx deploy` first")
    return found


@contextmanager
def locked(kind: Kind, prefix: str, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold the deployment's lock; wait up to `wait_s` for another ovsvx to finish, then refuse."""
    path = record_path(kind, prefix).with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        deadline = time.monotonic() + waits.scaled(wait_s)
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise PreconditionError(
                        f"another ovsvx is deploying or destroying this {kind} (lock {path}); try again when it ends"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
