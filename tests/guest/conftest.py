"""The guest suite: what only OVS's kernel datapath does, run where that datapath exists.

These tests need the openvswitch kernel module, which the kernel of our build
machines lacks; `scripts/test` runs them through `scripts/vm/guest`, in a QEMU
guest that boots Debian's stock kernel.  Run by hand on a machine without the
module they skip, saying so; inside the guest a missing module is a failure.
"""

from __future__ import annotations

import os

import pytest

from ovsvx.ovs.choices import choose_datapath


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    datapath, why = choose_datapath()
    if datapath == "system":
        return
    if os.environ.get("OVSVX_IN_GUEST"):
        raise pytest.UsageError(f"the guest has no kernel datapath: {why}")
    skip = pytest.mark.skip(reason=f"needs OVS's kernel datapath ({why}): run it with scripts/vm/guest")
    for item in items:
        if "tests/guest/" in item.nodeid:
            item.add_marker(skip)
