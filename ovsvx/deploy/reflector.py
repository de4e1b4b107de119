"""A BGP EVPN route reflector on a real machine: what the lab's reflector namespaces are, on one's own.

An EVPN overlay of real machines needs one (or more) of the topology's
`bgp.route_reflectors` to run somewhere: on a host of the overlay, under an
address of its own beside the VTEP, or on any machine of the underlay.
`ovsvx reflector --address ADDR` keeps FRR's bgpd running there, with the
configuration `frrconf.reflector_config` computes (every VTEP of the underlay
welcome as a client), listening on ADDR only; `ovsvx enable --reflector ADDR`
makes it a unit of its own (`ovsvx-reflector@ADDR.service`), back at every
boot.  The keeper is the agent's loop (`agent.Agent`), so a bgpd that died is
started again within the full check, and an address that went missing is
said until it is back.

bgpd runs with ovsvx's other running files, in a folder of its own named for
the address; under its unit it is a service of its own
(`ovsvx-rr-ADDR-bgpd`), which the keeper's restart leaves running.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path

from ovsvx.deploy.agent import Agent, Converged, Work, check_period, keep, stored_topology
from ovsvx.errors import PreconditionError, UsageError
from ovsvx.host import frr, frrconf, gtsm, netstack, record, secretfile
from ovsvx.model.topology import Topology


def home(address: IPv4Address) -> frr.FrrHome:
    return frr.reflector_home(record.STATE_DIR / "reflectors", str(address), None)


def check(topology: Topology, address: IPv4Address) -> None:
    """The address must be one of the topology's reflectors."""
    if topology.bgp is None:
        raise UsageError('--reflector: the topology has no route reflectors: it needs control = "evpn" and [bgp]')
    if address not in topology.bgp.route_reflectors:
        known = ", ".join(str(a) for a in topology.bgp.route_reflectors)
        raise UsageError(f"--reflector {address} is not one of the topology's bgp.route_reflectors ({known})")


def require_local(address: IPv4Address) -> None:
    """bgpd listens on the reflector's address only: this machine must hold it."""
    if address not in netstack.local_addresses(None):
        raise PreconditionError(
            f"--reflector {address} is not an address of this machine: add it to the underlay NIC first"
            " (systemd-networkd: Address= in the NIC's .network file)"
        )


def converge(topology: Topology, address: IPv4Address) -> Converged:
    """The reflector's bgpd running on its configuration: started, restarted on a new one, or left be."""
    require_local(address)
    started = gtsm.apply(None, address)
    started += frr.start(
        home(address), frrconf.reflector_config(topology, str(address), secretfile.bgp_password(topology))
    )
    return Converged([f"reflector {address}: {line}" for line in started], [])


def stop(address: IPv4Address) -> list[str]:
    """Stop the reflector's bgpd and remove its folder (and the reflectors' one, once empty)."""
    where = home(address)
    stopped = [f"reflector {address}: {line}" for line in frr.stop(where) + gtsm.remove(None, address)]
    shutil.rmtree(where.rundir, ignore_errors=True)
    with contextlib.suppress(OSError):
        where.rundir.parent.rmdir()
    return stopped


class ReflectorWork(Work):
    """The reflector keeper's pass (`converge`), and its reload: the topology file read again (a new
    password, a host's subnet more in the range) and its bgpd's configuration with it."""

    def __init__(self, topology: Topology, address: IPv4Address, topology_file: Path | None):
        self.topology, self.address, self.topology_file = topology, address, topology_file

    def __call__(self) -> Converged:
        done = converge(self.topology, self.address)
        return replace(done, daemons=frr.live(home(self.address), f"reflector {self.address}"))

    def reload(self) -> str:
        if self.topology_file is None:
            raise UsageError("the reflector was started without -t: there is no file to read again")
        new = stored_topology(self.topology_file)
        check(new, self.address)
        same, self.topology = new == self.topology, new
        return f"read {self.topology_file} again: " + ("no change" if same else "applying it")


def run(topology: Topology, address: IPv4Address, full_check_s: float, topology_file: Path | None = None) -> None:
    """`ovsvx reflector`: keep the reflector running, in the foreground, until SIGTERM or Ctrl-C (which
    leave bgpd running: its clients keep their routes while the keeper is away); SIGHUP reads
    `topology_file` again."""
    frr.require_installed()
    check(topology, address)
    work = ReflectorWork(topology, address, topology_file)
    keep(Agent(f"reflector {address}", work, full_check_s=check_period(full_check_s), watch_feed=False))
