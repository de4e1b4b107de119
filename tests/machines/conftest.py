"""The two-machine suite: ovsvx on two machines that boot with systemd, run by `scripts/vm/machines` on host1.

Elsewhere these tests skip, saying how to run them.
"""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("OVSVX_MACHINE") == "host1":
        return
    reason = "needs the two machines: scripts/vm/machines .venv/bin/python -m pytest tests/machines"
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "tests/machines/" in item.nodeid:
            item.add_marker(skip)
