"""How the machine compares with what ovsvx wants: a piece's finding (`status`), a precondition's diagnosis
(`doctor`).

Every backend inspects its desired state into a list of findings; `status`
prints them, and `apply` fixes whatever is not ``ok``.  Doctor's diagnoses say
whether a deploy, or traffic, would work, each with its fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class State(StrEnum):
    """A desired piece, against the machine."""

    OK = "ok"
    MISSING = "missing"
    DIFFERS = "differs"  # ours, not as wanted
    FOREIGN = "foreign"  # in the way, not ours


class Remedy(StrEnum):
    """How a piece that differs is put right, where its kind of repair matters to the fixer: a link that
    is only down is set up; a vxlan device whose only difference is its remote (a static overlay grown
    from two hosts to more) is given the new one in place; a veth whose only difference is its checksum
    offload (turned back on) has it turned off, traffic unbroken; one whose kind or other attributes
    differ is deleted and made again."""

    NONE = ""
    SET_UP = "set up"
    RETARGET = "set its remote"
    OFFLOAD_OFF = "turn its tx checksum offload off"
    RECREATE = "recreate"


OK, MISSING, DIFFERS, FOREIGN = State
SET_UP, RECREATE = Remedy.SET_UP, Remedy.RECREATE


@dataclass(frozen=True)
class Finding:
    what: str  # e.g. "vxlan vxlan1 (id 100, ...)" or "ovs bridge br1"
    state: State
    detail: str = ""
    resource: Any = None  # the desired value, for the backend that fixes it
    remedy: Remedy = Remedy.NONE  # for DIFFERS where it matters
    piece: str = ""  # the device (or "netns NAME") it is about, where a picture colours it; "": host-wide

    @property
    def text(self) -> str:
        return self.what + (f": {self.detail}" if self.detail else "")


class Verdict(StrEnum):
    """A precondition, as doctor finds it."""

    OK = "ok"
    WARN = "warn"  # works, but mind it
    FAIL = "fail"  # deploy or traffic will not work


@dataclass(frozen=True)
class Diagnosis:
    state: Verdict
    what: str
    fix: str = ""

    @property
    def text(self) -> str:
        return self.what + (f"; fix: {self.fix}" if self.fix else "")
