"""Which changes of a deployed topology a deploy takes in place, and why the others are refused.

A deploy compares every piece it wants with the machine and makes what is
missing, but it removes only what its record says it made: a topology that
*adds* is applied piece by piece, with nothing that stays being touched (no
workload loses a packet), while one that *changes* or *takes away* a piece
would leave the old one behind.  So a deployed topology takes, in place:

- hosts added after the ones it has (a static peer's flood entry, route,
  firewall admission and tunnel port are added on every host; the hosts' order
  is kept, since a host's tunnel port number follows its place);
- namespaces added after a host's own (their OpenFlow ports follow theirs);
- under EVPN, hosts removed too: their peers forget them by BGP, and the host
  itself is taken down by the deploy that retires it.

Everything else (a VNI, a subnet, a NIC, a namespace's address, a host taken
out of a static overlay, the order) is refused with what changed, and changes
nothing: `ovsvx destroy` (or `ovsvx enable --rebuild`) builds it anew.
"""

from __future__ import annotations

from dataclasses import fields, replace

from ovsvx.model.topology import Host, Topology


def refusal(old: Topology, new: Topology) -> str | None:
    """Why `new` cannot be deployed over `old` in place, in a few words; None when it can (or is `old`)."""
    if old == new:
        return None
    if (changed := _changed_fields(replace(old, hosts=()), replace(new, hosts=()))) is not None:
        return f"the topology's {changed} changed"
    kept = {h.name: h for h in new.hosts}
    gone = [h.name for h in old.hosts if h.name not in kept]
    if gone and not new.evpn:
        return f"{', '.join(gone)} left a static overlay (only EVPN's peers forget a host by themselves)"
    staying = [h.name for h in old.hosts if h.name in kept]
    if [h.name for h in new.hosts][: len(staying)] != staying:
        return "the hosts' order changed (new hosts go after the others)"
    for before in old.hosts:
        if before.name in kept and (why := _host_refusal(before, kept[before.name])) is not None:
            return why
    return None


def _host_refusal(old: Host, new: Host) -> str | None:
    if (changed := _changed_fields(replace(old, namespaces=()), replace(new, namespaces=()))) is not None:
        return f"{old.name}'s {changed} changed"
    if new.namespaces[: len(old.namespaces)] != old.namespaces:
        return f"{old.name}'s namespaces changed (new ones go after the others; none is changed or removed)"
    return None


def _changed_fields(old: object, new: object) -> str | None:
    """The first field of two dataclass values that differs, by name; None when they are equal."""
    for field in fields(old):  # type: ignore[arg-type]
        if getattr(old, field.name) != getattr(new, field.name):
            return field.name
    return None
