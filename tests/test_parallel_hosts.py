"""Hosts deploy in parallel; what comes back is as if they had gone one after another."""

from __future__ import annotations

import threading
import time

import pytest

from ovsvx.deploy.deploy import PARALLEL_HOSTS, each_site
from ovsvx.deploy.lab import neighbour_entries
from ovsvx.errors import ApplyError
from ovsvx.model import generated, reader
from ovsvx.model.site import Site

TOPO = generated.generate(12)
SITES = [Site(host, f"t-{host.name}", "t-") for host in TOPO.hosts]


def test_lines_come_back_in_site_order_whatever_order_the_hosts_finish_in() -> None:
    def work(site: Site) -> list[str]:
        time.sleep(0.01 * (len(SITES) - SITES.index(site)))  # the first site finishes last
        return [f"{site.host.name}: a", f"{site.host.name}: b"]

    assert each_site(SITES, work) == [f"{s.host.name}: {x}" for s in SITES for x in "ab"]


def test_at_most_the_bound_run_at_once() -> None:
    running, most = 0, 0
    lock = threading.Lock()

    def work(site: Site) -> list[str]:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return []

    each_site(SITES, work)
    assert 1 < most <= PARALLEL_HOSTS


def test_the_first_failing_site_in_order_is_reported_after_every_started_site_ended() -> None:
    ended: list[str] = []

    def work(site: Site) -> list[str]:
        if site.host.name in ("host2", "host3"):
            time.sleep(0.05 if site.host.name == "host2" else 0)
            raise ApplyError(f"{site.host.name} broke")
        time.sleep(0.1)
        ended.append(site.host.name)
        return []

    with pytest.raises(ApplyError, match="host2 broke"):
        each_site(SITES, work)
    assert {"host1", "host4"} <= set(ended)  # started alongside the failures, and let finish


def test_a_lab_makes_room_for_its_arp_entries_only_when_it_is_big() -> None:
    assert neighbour_entries(reader.default()) == 12  # far below the kernel's default gc_thresh2 of 512
    assert neighbour_entries(generated.generate(32)) == 2112  # above its hard limit, gc_thresh3 = 1024
