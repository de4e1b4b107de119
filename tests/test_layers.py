"""The layers, read from the imports: model -> host -> {kernel, ovs} -> deploy -> observe -> cli.

A module imports only from its own layer or those below it, wherever the import stands (an import
inside a function is an import: one that reaches up is a cycle dodged, not avoided); the wings do not
import each other; and the modules' top-level imports make no circle.  (Which modules may name a
mode is `test_wings.py`'s.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ovsvx"
RANKS = {"model": 1, "host": 2, "kernel": 3, "ovs": 3, "deploy": 4, "observe": 5, "cli": 6}
WINGS = ("kernel", "ovs")


def name_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str | None:
    """The layer a module of ovsvx belongs to; None for the base (errors, waits, files, __main__)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in RANKS) else None


def imports(path: Path, top_level_only: bool = False) -> list[tuple[int, str]]:
    """(line, ovsvx module) of each import in the module; `from ovsvx.x import y` counts y when it is a
    module itself."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("ovsvx")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ovsvx"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                is_module = (PACKAGE.parent / Path(*sub.split("."))).with_suffix(".py").exists()
                found.append((node.lineno, sub if is_module else node.module))
    return found


def wrong_way(module: str, target: str) -> str | None:
    """Why `module` may not import `target`, or None."""
    mine, theirs = layer_of(module), layer_of(target)
    if theirs is None:
        return None
    if mine is None:
        return None if module == "ovsvx.__main__" and theirs == "cli" else f"the base imports {theirs}"
    if RANKS[theirs] > RANKS[mine]:
        return f"{mine} imports {theirs}, a layer above it"
    if theirs in WINGS and mine in WINGS and mine != theirs:
        return f"the {mine} wing imports the {theirs} wing"
    return None


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_imports_only_its_own_layer_and_those_below(path: Path) -> None:
    module = name_of(path)
    wrong = [f"line {line}: {target}: {why}" for line, target in imports(path) if (why := wrong_way(module, target))]
    assert not wrong, f"{path.relative_to(PACKAGE)}: " + "; ".join(wrong)


def test_top_level_imports_make_no_circle() -> None:
    graph = {name_of(p): {t for _, t in imports(p, top_level_only=True)} for p in MODULES}
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done

    def walk(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt]
            if state.get(nxt) is None and (circle := walk(nxt, [*path, nxt])):
                return circle
        state[node] = 2
        return None

    for start in sorted(graph):
        if state.get(start) is None and (circle := walk(start, [start])):
            raise AssertionError(" -> ".join(circle))


def test_the_reader_sees_an_import_that_reaches_up() -> None:
    assert wrong_way("ovsvx.host.listeners", "ovsvx.ovs.daemons") is not None
    assert wrong_way("ovsvx.deploy.agent", "ovsvx.observe.metrics") is not None
    assert wrong_way("ovsvx.ovs.evpnspeaker", "ovsvx.kernel.backend") is not None
    assert wrong_way("ovsvx.deploy.backends", "ovsvx.kernel.backend") is None
    assert wrong_way("ovsvx.ovs.flows", "ovsvx.model.topology") is None
