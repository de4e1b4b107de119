"""How ovs mode's userspace datapath reads the devices: what `auto` picks, and why it says so."""

from __future__ import annotations

import pytest

from ovsvx.errors import UsageError
from ovsvx.ovs.choices import AFXDP_MAX_HOSTS_HERE, AUTO_PORT_TYPE, choose_port_type


def test_auto_takes_af_xdp_on_the_userspace_datapath_of_a_small_lab_or_a_real_host() -> None:
    assert choose_port_type("auto", "netdev", "", 1500)[0] == AUTO_PORT_TYPE
    assert choose_port_type("auto", "netdev", "", 1500, hosts_here=AFXDP_MAX_HOSTS_HERE)[0] == AUTO_PORT_TYPE


def test_auto_keeps_packet_sockets_where_af_xdp_does_not_fit() -> None:
    assert choose_port_type("auto", "system", "", 1500)[0] == "system"
    port_type, why = choose_port_type("auto", "netdev", "", 9000)
    assert (port_type, "9000" in why) == ("system", True)
    port_type, why = choose_port_type("auto", "netdev", "", 1500, hosts_here=32)
    assert port_type == "system"
    assert why.startswith("32 lab hosts on this machine") and "4.0 GiB" in why


def test_asked_for_wins_over_the_lab_size_and_misfits_are_refused() -> None:
    assert choose_port_type("afxdp-nonpmd", "netdev", "", 1500, hosts_here=32) == (
        "afxdp-nonpmd",
        "asked for (--port-type afxdp-nonpmd)",
    )
    with pytest.raises(UsageError, match="--port-type 'xdp' is not allowed"):
        choose_port_type("xdp", "netdev", "", 1500)
    with pytest.raises(UsageError, match="underlay_mtu up to 1500"):
        choose_port_type("afxdp", "netdev", "", 9000)
