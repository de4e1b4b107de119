"""A tiny Open vSwitch database: enough of ovsdbapp's API for ovsvx/ovs/ovsdb.py, to test it without OVS.

Rows live in four tables (Bridge, Port, Interface, Controller) as ovsdbapp's
IDL shows them: attributes, with optional columns as lists and maps as
dicts.  A command is a function run when its transaction commits (or at
`execute`); an added interface gets an OpenFlow port at once, as
ovs-vswitchd would give it one.  The lab tests run the same code on OVS.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

TABLES = ("Bridge", "Port", "Interface", "Controller")


class _Rows(dict[uuid.UUID, SimpleNamespace]):
    indexes: dict[str, Any] = {}  # none: ovsdbapp then looks rows up by scanning


class Command:
    def __init__(self, run: Callable[[], Any]):
        self.run = run

    def execute(self, check_error: bool = False) -> Any:
        return self.run()


class Transaction:
    def __init__(self) -> None:
        self.commands: list[Command] = []

    def add(self, command: Command) -> None:
        self.commands.append(command)


class FakeOvsdb:
    def __init__(self) -> None:
        self.idl = SimpleNamespace(tables={name: SimpleNamespace(rows=_Rows()) for name in TABLES})
        self.committed = 0  # transactions that changed something
        self._ofports = iter(range(1, 1000))

    # --- what the tests look at ---------------------------------------------------------------

    def find(self, table: str, name: str) -> SimpleNamespace | None:
        return next((r for r in self.idl.tables[table].rows.values() if getattr(r, "name", None) == name), None)

    def insert(self, table: str, **columns: Any) -> SimpleNamespace:
        row = SimpleNamespace(uuid=uuid.uuid4(), **columns)
        self.idl.tables[table].rows[row.uuid] = row
        return row

    def _delete(self, table: str, row: SimpleNamespace) -> None:
        del self.idl.tables[table].rows[row.uuid]

    # --- ovsdbapp's API, as ovsdb.py calls it -----------------------------------------------

    @contextmanager
    def transaction(self, check_error: bool = False) -> Iterator[Transaction]:
        txn = Transaction()
        yield txn
        for command in txn.commands:
            command.run()
        self.committed += bool(txn.commands)

    def add_br(self, name: str, may_exist: bool = False, datapath_type: str = "") -> Command:
        def run() -> None:
            if self.find("Bridge", name) is None:
                port = self._new_port(name, "internal")
                self.insert(
                    "Bridge",
                    name=name,
                    ports=[port],
                    external_ids={},
                    datapath_type=datapath_type,
                    fail_mode=[],
                    controller=[],
                    other_config={},
                )

        return Command(run)

    def del_br(self, name: str) -> Command:
        def run() -> None:
            bridge = self.find("Bridge", name)
            for port in list(bridge.ports):
                self._remove_port(bridge, port)
            self._delete("Bridge", bridge)

        return Command(run)

    def add_port(self, bridge: str, name: str, may_exist: bool = False) -> Command:
        def run() -> None:
            if self.find("Port", name) is None:
                self.find("Bridge", bridge).ports.append(self._new_port(name, ""))

        return Command(run)

    def del_port(self, name: str, bridge: str) -> Command:
        return Command(lambda: self._remove_port(self.find("Bridge", bridge), self.find("Port", name)))

    def db_set(self, table: str, record: Any, *columns: tuple[str, Any]) -> Command:
        def run() -> None:
            row = self.idl.tables[table].rows[record] if isinstance(record, uuid.UUID) else self.find(table, record)
            for column, value in columns:
                if isinstance(value, dict):  # a map: ovsdbapp sets the keys given
                    getattr(row, column).update(value)
                else:
                    setattr(row, column, value)

        return Command(run)

    def db_clear(self, table: str, record: str, column: str) -> Command:
        return Command(lambda: setattr(self.find(table, record), column, []))

    def set_fail_mode(self, bridge: str, mode: str) -> Command:
        return Command(lambda: setattr(self.find("Bridge", bridge), "fail_mode", [mode]))

    def set_controller(self, bridge: str, targets: list[str]) -> Command:
        def run() -> None:
            self.find("Bridge", bridge).controller = [
                self.insert("Controller", target=t, max_backoff=[], controller_rate_limit=[], controller_burst_limit=[])
                for t in targets
            ]

        return Command(run)

    def del_controller(self, bridge: str) -> Command:
        return Command(lambda: setattr(self.find("Bridge", bridge), "controller", []))

    # --- helpers ------------------------------------------------------------------------------

    def _new_port(self, name: str, kind: str) -> SimpleNamespace:
        iface = self.insert(
            "Interface",
            name=name,
            type=kind,
            options={},
            ofport_request=[],
            ofport=[next(self._ofports)],
            error=[],
            mtu_request=[],
        )
        return self.insert("Port", name=name, interfaces=[iface])

    def _remove_port(self, bridge: SimpleNamespace, port: SimpleNamespace) -> None:
        bridge.ports.remove(port)
        for iface in port.interfaces:
            self._delete("Interface", iface)
        self._delete("Port", port)
