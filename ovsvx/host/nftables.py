"""ovsvx's own nftables tables, judged by what they do: their verdicts and matches as `nft -j` lists them.

A table counted by its shape (so many rules, so many counters) passes
inspection after someone turns its drops into accepts.  So a table is judged
by its listing, against the listing of the table ovsvx means: its script
loaded into a scratch network namespace (empty, nameless, gone after the
call) and listed there by the same `nft`.  That listing is nft's own
rendering of the script, so the comparison needs no parser of ovsvx's and
does not depend on how one nft version prints a match.  Before comparing,
what changes by itself is left out: rule handles and the counters' values.
The counters are read from the same listing, so one `nft -j` call tells both
whether a table is as meant and what it counted.

`MONITOR` is the command that hears every change (`nft monitor`); a line of
it names the table it touches, so the agent wakes only for ovsvx's own
(`touches_ours`), a `flush ruleset` included, which deletes them.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ovsvx import waits
from ovsvx.errors import ApplyError
from ovsvx.host import netstack

TABLE_PREFIX = "ovsvx"  # every table of ovsvx's: inet ovsvx, inet ovsvx-gtsm-ADDRESS
MONITOR = ("nft", "monitor")
LIST_TIMEOUT_S = 10.0


def listed(netns: str | None, family: str, table: str) -> list[dict[str, Any]] | None:
    """A table's objects from `nft -j` (its metainfo left out), or None when there is no such table."""
    done = netstack.run(netns, ["nft", "-j", "list", "table", family, table])
    if done.returncode != 0:
        return None
    return [item for item in json.loads(done.stdout).get("nftables", []) if "metainfo" not in item]


@lru_cache(maxsize=32)
def _reference(script: str, family: str, table: str) -> tuple[str, ...]:
    """What `script` does once loaded, as `behaviour` gives it: the script loaded and listed in a scratch
    namespace.  Cached: an agent judges the same script on every pass."""

    def load_and_list() -> subprocess.CompletedProcess[str]:
        timeout = waits.scaled(LIST_TIMEOUT_S)
        loaded = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True, timeout=timeout)
        if loaded.returncode != 0:
            return loaded
        argv = ["nft", "-j", "list", "table", family, table]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)

    done = netstack.call_in(None, load_and_list, scratch=True)
    if done.returncode != 0:
        raise ApplyError(f"nft: the table {family} {table} does not load: {done.stderr.strip() or done.returncode}")
    items = [item for item in json.loads(done.stdout).get("nftables", []) if "metainfo" not in item]
    return behaviour(items)


def _without_state(value: Any) -> Any:
    """`value` with what changes by itself left out: handles, counters' values; set elements sorted (a
    hash set lists them in no fixed order)."""
    if isinstance(value, dict):
        kept = {key: _without_state(item) for key, item in value.items() if key != "handle"}
        if "counter" in kept and isinstance(kept["counter"], dict):
            kept["counter"] = {}
        if "elem" in kept and isinstance(kept["elem"], list):
            kept["elem"] = sorted(kept["elem"], key=lambda e: json.dumps(e, sort_keys=True))
        return kept
    if isinstance(value, list):
        return [_without_state(item) for item in value]
    return value


def behaviour(items: list[dict[str, Any]]) -> tuple[str, ...]:
    """What a listed table does, one object a line, in the order nft lists them (rule order matters)."""
    return tuple(json.dumps(_without_state(item), sort_keys=True) for item in items)


def counted(items: list[dict[str, Any]]) -> dict[str, list[int]]:
    """The packets each counter of a listed table counted, by chain, in rule order."""
    counts: dict[str, list[int]] = {}
    for item in items:
        if "rule" in item:
            rule = item["rule"]
            counts.setdefault(rule["chain"], []).extend(
                int(e["counter"]["packets"]) for e in rule["expr"] if "counter" in e
            )
    return counts


@dataclass(frozen=True)
class Reading:
    """A table as found: whether it does what its script says, and what its counters counted (by chain)."""

    as_meant: bool
    counts: dict[str, list[int]]


def read(netns: str | None, family: str, table: str, script: str) -> Reading | None:
    """Table `family table` in `netns` judged against `script`; None when there is no such table."""
    items = listed(netns, family, table)
    if items is None:
        return None
    return Reading(behaviour(items) == _reference(script, family, table), counted(items))


def touches_ours(line: str) -> bool:
    """Whether a line of `nft monitor` is about one of ovsvx's tables (an add, a delete, a flush)."""
    words = line.split()
    return any(word.startswith(TABLE_PREFIX) for word in words[2:4])
