"""Each mode is a wing of its own: only `ovsvx/kernel/` knows kernel mode, only `ovsvx/ovs/` ovs mode.

Everything else reaches a mode through the registry (`deploy/backends.py`) and the Backend interface,
so a third mode, or a new datapath, is one new wing and one line of the registry.  This test reads the
source: outside a wing, no module names the wing's mode, and none branches on OVS's datapath.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ovsvx"
WINGS = {"KERNEL": "kernel", "OVS": "ovs"}
REGISTRY = PACKAGE / "deploy" / "backends.py"  # the one place that names every mode, by design
#: What only ovs mode decides and reads: its datapath and how that datapath reads the devices.
OVS_ONLY_ATTRIBUTES = {"datapath", "userspace", "af_xdp", "port_type", "datapath_asked", "port_type_asked"}
OVS_ONLY_WORDS = {"system", "netdev", "afxdp", "afxdp-nonpmd"}


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p != REGISTRY)


def wing_of(path: Path) -> str | None:
    part = path.relative_to(PACKAGE).parts[0]
    return part if part in WINGS.values() else None


def mode_names(tree: ast.AST) -> list[tuple[int, str]]:
    """Each `Mode.X` in the module, with its line."""
    return [
        (node.lineno, node.attr)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Mode"
    ]


def datapath_branches(tree: ast.AST) -> list[int]:
    """Lines that compare OVS's datapath or port type (by attribute or by its words), or read its flags."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in {"userspace", "af_xdp"}:
            found.append(node.lineno)
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            for side in sides:
                if isinstance(side, ast.Attribute) and side.attr in OVS_ONLY_ATTRIBUTES:
                    found.append(node.lineno)
                if isinstance(side, ast.Constant) and side.value in OVS_ONLY_WORDS:
                    found.append(node.lineno)
    return sorted(set(found))


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_outside_a_wing_names_its_mode(path: Path) -> None:
    tree = ast.parse(path.read_text())
    home = wing_of(path)
    strangers = [f"line {line}: Mode.{name}" for line, name in mode_names(tree) if WINGS.get(name) != home]
    if home != "ovs":
        strangers += [f"line {line}: branches on OVS's datapath" for line in datapath_branches(tree)]
    assert not strangers, f"{path.relative_to(PACKAGE)} knows a mode that is not its own: {'; '.join(strangers)}"


def test_the_check_sees_a_branch() -> None:
    """The reader above finds what it looks for (a check that cannot fail proves nothing)."""
    tree = ast.parse(
        "if mode == Mode.OVS:\n    pass\nif settings.userspace:\n    pass\nif s.port_type == 'afxdp':\n    pass"
    )
    assert mode_names(tree) == [(1, "OVS")]
    assert datapath_branches(tree) == [3, 5]


def test_the_code_map_names_every_package_and_module() -> None:
    """The code map (docs/design/layers.md) is what an engineer reads first: it must not miss a module,
    nor name one that is gone."""
    layers = (PACKAGE.parent / "docs" / "design" / "layers.md").read_text()
    tree = layers.split("# Layout of the code", 1)[1].split("```", 2)[1]
    named = set(re.findall(r"(?:^ +|; )([a-z_]+(?:\.py|/))", tree, re.MULTILINE))  # each line's, and "; x.py:"
    wanted = {f"{p.name}/" for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    wanted |= {p.name for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}
    assert sorted(wanted - named) == [] and sorted(named - wanted - {"ovsvx/"}) == []
