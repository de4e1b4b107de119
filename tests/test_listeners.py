"""Reading /proc's socket tables (pure: from text)."""

from __future__ import annotations

from ovsvx.host.listeners import Listener, decode_address, parse_table

TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:19FD 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0
   1: 0100007F:19FD 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000     0        0 4243 1 0 20 4 30 10 -1
"""
UDP = """   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
 3: 00000000:12B5 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 0 2 0 0
"""
TCP6 = """  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1 0 100 0 0 10 0
"""


def test_addresses_decode_from_host_order_words() -> None:
    assert decode_address("0100007F:19FD") == ("127.0.0.1", 6653)
    assert decode_address("00000000000000000000000001000000:0016") == ("::1", 22)


def test_only_listening_tcp_and_unconnected_udp_sockets_count() -> None:
    assert parse_table("tcp", TCP) == [("tcp", "127.0.0.1", 6653, 4242)]  # the established one is not listening
    assert parse_table("udp", UDP) == [("udp", "0.0.0.0", 4789, 0)]  # inode 0: the kernel's own socket
    assert parse_table("tcp", TCP6) == [("tcp", "::1", 22, 77)]


def test_loopback_listeners_are_local_only() -> None:
    assert Listener("tcp", "127.0.0.1", 6653, "x").local_only
    assert not Listener("udp", "0.0.0.0", 4789, "kernel").local_only
    assert Listener("tcp", "::1", 22, "sshd (pid 1)").text == "tcp [::1]:22 sshd (pid 1)"
