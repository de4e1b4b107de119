"""How one desired piece of a deployment compares with the machine.

Every backend inspects its desired state into a list of findings; `status`
prints them, and `apply` fixes whatever is not ``ok``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OK, MISSING, DIFFERS, FOREIGN = "ok", "missing", "differs", "foreign"
# How a piece that differs is put right, where its kind of repair matters to the fixer: a link that is
# only down is set up; one whose kind or attributes differ is deleted and made again.
SET_UP, RECREATE = "set up", "recreate"


@dataclass(frozen=True)
class Finding:
    what: str  # e.g. "vxlan vxlan1 (id 100, ...)" or "ovs bridge br1"
    state: str  # ok | missing | differs (ours, not as wanted) | foreign (in the way, not ours)
    detail: str = ""
    resource: Any = None  # the desired value, for the backend that fixes it
    remedy: str = ""  # for DIFFERS where it matters: SET_UP or RECREATE
    piece: str = ""  # the device (or "netns NAME") it is about, where a picture colours it; "": host-wide

    @property
    def text(self) -> str:
        return self.what + (f": {self.detail}" if self.detail else "")
