"""Bring a host's Open vSwitch database to the switch plan (`switch.py`), through ovsdbapp.

One connection per use, over the OVSDB unix socket of the host's OVS (a lab
host's own ovsdb-server, or the system's).  Each bridge is changed in one
transaction whose result is checked, and afterwards every interface must have
an OpenFlow port: one that gets none is an error naming OVS's own reason.
A bridge that exists without ``external_ids:ovsvx`` is not ours and is refused.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

from ovsdbapp.backend.ovs_idl import connection, idlutils
from ovsdbapp.schema.open_vswitch import impl_idl

from ovsvx import waits
from ovsvx.errors import ApplyError, ConflictError, PreconditionError
from ovsvx.model.findings import DIFFERS, FOREIGN, MISSING, OK, Finding
from ovsvx.model.traffic import Traffic
from ovsvx.ovs.switch import OWNER_KEY, OvsBridge, Port

TIMEOUT_S = 10  # one OVSDB transaction
CONTROLLER_MAX_BACKOFF_MS = 1000
#: Packet-ins a second OVS sends the controller, and how many it queues beyond: the controller only asks an
#: unanswered peer for its MAC (`ofapp`), which a few packets a second do as well as a flood.
PACKET_IN_RATE, PACKET_IN_BURST = 100, 25
CONTROLLER_SETTINGS = (
    ("max_backoff", CONTROLLER_MAX_BACKOFF_MS),
    ("controller_rate_limit", PACKET_IN_RATE),
    ("controller_burst_limit", PACKET_IN_BURST),
)
OFPORT_WAIT_S = 10.0

logging.getLogger("ovsdbapp").setLevel(logging.CRITICAL)  # its errors reach us as exceptions


SCHEMA = "Open_vSwitch"
_schema_json: dict[str, Any] | None = None
_schema_lock = threading.Lock()


def _schema(db: str) -> dict[str, Any]:
    """The Open_vSwitch schema as JSON, asked of the first OVSDB reached.

    Every OVSDB ovsvx talks to runs this machine's OVS, so one copy serves all:
    reading it (in the ovs bindings' pure-Python JSON parser) costs a quarter
    of a second of CPU, which a 32-host lab would otherwise pay 32 times.
    """
    global _schema_json
    with _schema_lock:
        if _schema_json is None:
            _schema_json = idlutils.fetch_schema_json(db, SCHEMA)
        return _schema_json


@contextmanager
def connect(db: str) -> Iterator[Any]:
    """An ovsdbapp API bound to the OVSDB at `db` (e.g. unix:/run/openvswitch/db.sock)."""
    try:
        idl = connection.OvsdbIdl.from_server(db, SCHEMA, helper=idlutils.create_schema_helper(_schema(db)))
    except Exception as err:  # the ovs bindings raise plain Exceptions for an absent server
        raise PreconditionError(f"cannot reach OVSDB at {db}: {err}") from None
    conn = connection.Connection(idl=idl, timeout=waits.scaled(TIMEOUT_S))
    # ovsdbapp keeps one connection per API class; a lab talks to one OVSDB per host, so each gets its own.
    api = type("HostOvsdb", (impl_idl.OvsdbIdl,), {"_ovsdb_connection": None})(conn)
    try:
        yield api
    finally:
        conn.stop()


def traffic(api: Any, names: Collection[str]) -> dict[str, Traffic]:
    """What each of these interfaces has sent and received, as OVS last read it (every 5 s)."""
    counted = {}
    for name in names:
        row = _row(api, "Interface", name)
        if row is not None:
            counted[name] = Traffic.from_counters(dict(row.statistics))
    return counted


def packet_ins(api: Any, bridge: str) -> tuple[int, int] | None:
    """(sent to the controller, dropped by the rate limit) of the packet-ins the bridge's flows asked for,
    as OVS's limiter counted them (written to the Controller row every few seconds: none yet is 0, 0);
    None when the bridge has no controller with a limit, which is when OVS counts nothing."""
    row = _row(api, "Bridge", bridge)
    for controller in row.controller if row is not None else ():
        if _one(controller.controller_rate_limit) is None:
            continue
        counted = {k: int(v) for k, v in controller.status.items() if k.startswith("packet-in-action-")}
        dropped = counted.get("packet-in-action-dropped", 0)
        passed = counted.get("packet-in-action-bypassed", 0) + counted.get("packet-in-action-queued", 0)
        return passed - dropped - counted.get("packet-in-action-backlog", 0), dropped
    return None


def _row(api: Any, table: str, name: str) -> Any | None:
    return idlutils.row_by_value(api.idl, table, "name", name, None)


def _one(value: Any) -> Any:
    """OVSDB optional columns come back as [] or [value]."""
    return value[0] if isinstance(value, list) and value else (None if value == [] else value)


def _interface_want(port: Port) -> dict[str, Any]:
    return {"type": port.type or "", "options": dict(port.options), "ofport_request": port.ofport}


def inspect(api: Any, bridge: OvsBridge) -> list[Finding]:
    what = f"ovs bridge {bridge.name} ({bridge.datapath_type})"
    row = _row(api, "Bridge", bridge.name)
    if row is None:
        return [Finding(what, MISSING, resource=bridge, piece=bridge.name)]
    if OWNER_KEY not in row.external_ids:
        return [
            Finding(
                what,
                FOREIGN,
                f"ovs bridge {bridge.name} exists and was not made by ovsvx "
                f"(no external_ids:{OWNER_KEY}); remove it or rename the bridge in the "
                "topology",
                bridge,
                piece=bridge.name,
            )
        ]
    wrong = []
    if row.datapath_type != bridge.datapath_type:
        wrong.append(f"datapath_type {row.datapath_type}")
    if _one(row.fail_mode) != bridge.fail_mode:
        wrong.append(f"fail_mode {_one(row.fail_mode)}")
    wrong += [f"other_config:{key}" for key, value in bridge.other_config.items() if row.other_config.get(key) != value]
    targets = sorted(c.target for c in row.controller)
    if targets != ([bridge.controller] if bridge.controller else []):
        wrong.append(f"controller {', '.join(targets) or 'none'}")
    wrong += _controller_differs(row)
    findings = [Finding(what, DIFFERS if wrong else OK, ", ".join(wrong), bridge, piece=bridge.name)]
    present = {p.name for p in row.ports} - {bridge.name}
    for port in bridge.ports:
        findings.append(_inspect_port(api, bridge, port, present))
    findings += [
        Finding(f"ovs port {name} on {bridge.name}", DIFFERS, "not in the plan: remove", bridge, piece=name)
        for name in sorted(present - {p.name for p in bridge.ports})
    ]
    return findings


def _inspect_port(api: Any, bridge: OvsBridge, port: Port, present: set[str]) -> Finding:
    what = f"ovs port {port.name} on {bridge.name}" + (f" ({port.type})" if port.type else "")
    if port.name not in present:
        return Finding(what, MISSING, resource=bridge, piece=port.name)
    iface = _row(api, "Interface", port.name)
    if iface is None:  # a port whose interface row is gone
        return Finding(what, MISSING, resource=bridge, piece=port.name)
    want = _interface_want(port)
    have = {"type": iface.type, "options": dict(iface.options), "ofport_request": _one(iface.ofport_request)}
    wrong = [f"{k} {have[k]}" for k in want if have[k] != want[k]]
    ofport = _one(iface.ofport)
    if not ofport or ofport < 0:
        wrong.append(f"no OpenFlow port ({_one(iface.error) or 'no reason given'})")
    return Finding(what, DIFFERS if wrong else OK, ", ".join(wrong), bridge, piece=port.name)


def apply(api: Any, bridge: OvsBridge, reopen: Collection[str] = frozenset()) -> list[str]:
    """Make `bridge` as planned in one transaction; returns what changed.

    `reopen` names kernel devices that were deleted and made again: the
    userspace datapath keeps reading a vanished device's old packet socket, so
    such a port is taken out first (its own transaction, which returns once
    ovs-vswitchd has acted on it) and then added back like a new one.
    """
    stale = [port.name for port in bridge.ports if port.name in reopen and _row(api, "Port", port.name) is not None]
    if stale:
        with api.transaction(check_error=True) as txn:
            for name in stale:
                txn.add(api.del_port(name, bridge=bridge.name))
    findings = inspect(api, bridge)
    for f in findings:
        if f.state == FOREIGN:
            raise ConflictError(f.detail)
    changed = [f for f in findings if f.state != OK]
    if not changed:
        return []
    row = _row(api, "Bridge", bridge.name)
    present = {p.name for p in row.ports} - {bridge.name} if row is not None else set()
    try:
        with api.transaction(check_error=True) as txn:
            txn.add(api.add_br(bridge.name, may_exist=True, datapath_type=bridge.datapath_type))
            txn.add(
                api.db_set(
                    "Bridge",
                    bridge.name,
                    ("datapath_type", bridge.datapath_type),
                    ("external_ids", {OWNER_KEY: "true"}),
                    ("other_config", bridge.other_config),
                )
            )
            if bridge.fail_mode:
                txn.add(api.set_fail_mode(bridge.name, bridge.fail_mode))
            elif row is not None and row.fail_mode:
                txn.add(api.db_clear("Bridge", bridge.name, "fail_mode"))
            if bridge.controller:
                txn.add(api.set_controller(bridge.name, [bridge.controller]))
            elif row is not None and row.controller:
                txn.add(api.del_controller(bridge.name))
            for name in present - {p.name for p in bridge.ports}:
                txn.add(api.del_port(name, bridge=bridge.name))
            for port in bridge.ports:
                txn.add(api.add_port(bridge.name, port.name, may_exist=True))
                iface = _row(api, "Interface", port.name)
                unwanted = sorted(set(iface.options) - set(dict(port.options))) if iface is not None else []
                if unwanted:  # setting a map column adds keys: one the plan dropped (csum, say) is removed
                    txn.add(api.db_remove("Interface", port.name, "options", *unwanted))
                txn.add(api.db_set("Interface", port.name, *_interface_want(port).items()))
            if bridge.mtu:
                txn.add(api.db_set("Interface", bridge.name, ("mtu_request", bridge.mtu)))
    except Exception as err:  # ovsdbapp raises its own and RuntimeError for a failed transaction
        raise ApplyError(f"OVSDB refused the change to {bridge.name}: {err}") from None
    _controller_settings(api, bridge)
    _wait_for_ofports(api, bridge)
    return [f.text if f.state == DIFFERS else f"+ {f.what}" for f in changed]


def _controller_settings(api: Any, bridge: OvsBridge) -> None:
    """How OVS treats its controller connection (`CONTROLLER_SETTINGS`): back off 1 s at most between tries
    (a restarted controller gets its switch back that much sooner), and packet-ins rate-limited: a flood to
    an unanswered peer sends the controller a few asks a second, not every packet."""
    row = _row(api, "Bridge", bridge.name)
    for controller in row.controller if row is not None else ():
        if wrong := _settings_off(controller):
            api.db_set("Controller", controller.uuid, *wrong).execute(check_error=True)


def _controller_differs(row: Any) -> list[str]:
    """The controller settings a bridge's controllers do not hold, as inspect names them."""
    return [f"controller {column} {_one(getattr(c, column))}" for c in row.controller for column, _ in _settings_off(c)]


def _settings_off(controller: Any) -> list[tuple[str, int]]:
    """The CONTROLLER_SETTINGS a Controller row does not hold, each with the value it should."""
    return [(column, value) for column, value in CONTROLLER_SETTINGS if _one(getattr(controller, column)) != value]


def _wait_for_ofports(api: Any, bridge: OvsBridge) -> None:
    """Every interface must get an OpenFlow port; one that does not is an error, with OVS's reason."""

    def pending() -> dict[str, str | None]:
        found = {}
        for name in [bridge.name, *(p.name for p in bridge.ports)]:
            iface = _row(api, "Interface", name)
            ofport = _one(iface.ofport) if iface is not None else None
            if not ofport or ofport < 0:
                found[name] = _one(iface.error) if iface is not None else None
        return found

    if not waits.until(lambda: not pending(), OFPORT_WAIT_S, interval=0.1):
        name, error = next(iter(pending().items()))
        raise ApplyError(f"OVS gave {name} on {bridge.name} no OpenFlow port: {error or 'no reason given'}")


def remove(api: Any, names: list[str]) -> list[str]:
    """Delete those of the named bridges that ovsvx made; gone ones are fine."""
    removed = []
    for name in names:
        row = _row(api, "Bridge", name)
        if row is not None and OWNER_KEY in row.external_ids:
            try:
                api.del_br(name).execute(check_error=True)
            except Exception as err:  # ovsdbapp's timeout and transaction errors
                raise ApplyError(f"OVSDB did not delete bridge {name}: {err}") from None
            removed.append(f"- ovs bridge {name}")
    return removed


# --- Open vSwitch's own settings (other_config of the Open_vSwitch row) ----------------------------


def other_config(api: Any) -> dict[str, str]:
    return dict(api.db_get("Open_vSwitch", ".", "other_config").execute(check_error=True))


def inspect_config(api: Any, wanted: dict[str, str]) -> list[Finding]:
    have = other_config(api)
    return [
        Finding(
            f"ovs other_config:{key}={value}",
            OK if have.get(key) == value else DIFFERS,
            "" if have.get(key) == value else f"is {have.get(key, 'unset')}",
        )
        for key, value in sorted(wanted.items())
    ]


def apply_config(api: Any, wanted: dict[str, str]) -> list[str]:
    """Set `wanted` in OVS's other_config (waiting for ovs-vswitchd to take it); returns what changed."""
    have = other_config(api)
    changed = {k: v for k, v in wanted.items() if have.get(k) != v}
    if changed:
        try:
            api.db_set("Open_vSwitch", ".", ("other_config", changed)).execute(check_error=True)
        except Exception as err:  # ovsdbapp's timeout and transaction errors
            raise ApplyError(f"OVSDB refused other_config {changed}: {err}") from None
    return [f"ovs other_config:{k}={v}" for k, v in sorted(changed.items())]


def restore_config(api: Any, before: dict[str, str | None]) -> list[str]:
    """Put back the other_config keys ovsvx set (None: the key was unset before)."""
    restored = []
    for key, value in sorted(before.items()):
        if value is None:
            api.db_remove("Open_vSwitch", ".", "other_config", key).execute(check_error=True)
        else:
            api.db_set("Open_vSwitch", ".", ("other_config", {key: value})).execute(check_error=True)
        restored.append(f"ovs other_config:{key} " + (f"restored to {value}" if value is not None else "unset"))
    return restored


def sync_config(
    api: Any, wanted: dict[str, str], recorded: dict[str, str | None]
) -> tuple[list[str], dict[str, str | None]]:
    """Set the wanted other_config keys, and put back those a previous deploy set but this one does not
    want; returns what changed, and what each wanted key held before ovsvx first set it (the record keeps
    that, for destroy too: a real host's OVS outlives the deployment)."""
    before = dict(recorded)
    have = other_config(api)
    before.update({k: have.get(k) for k in wanted if k not in before})
    changes = restore_config(api, {k: v for k, v in before.items() if k not in wanted})
    kept = {k: v for k, v in before.items() if k in wanted}
    return changes + apply_config(api, wanted), kept
