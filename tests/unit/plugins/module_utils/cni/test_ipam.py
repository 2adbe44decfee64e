# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The CNI plugin's IPAM: pool arithmetic, file state, the lock."""
from __future__ import annotations

import ipaddress
import json
import multiprocessing
import os

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.cni import ipam


def ips(values):
    return [str(x) for x in values]


@pytest.mark.parametrize("subnet, gateway, size, first, last", [
    ("10.244.1.0/24", None, 253, "10.244.1.2", "10.244.1.254"),
    ("10.244.1.0/24", "10.244.1.254", 253, "10.244.1.1", "10.244.1.253"),
    ("10.244.0.0/16", None, 65533, "10.244.0.2", "10.244.255.254"),
    ("192.168.7.0/30", None, 1, "192.168.7.2", "192.168.7.2"),
    ("192.168.7.0/29", "192.168.7.3", 5, "192.168.7.1", "192.168.7.6"),
])
def test_pool_excludes_network_gateway_and_broadcast(subnet, gateway, size, first, last):
    pool = ipam.Pool(subnet, gateway)
    order = list(pool.candidates())
    assert pool.size == size == len(order) == len(set(order))
    assert (str(order[0]), str(order[-1])) == (first, last)
    net = ipaddress.ip_network(subnet)
    for excluded in (net.network_address, net.broadcast_address, pool.gateway):
        assert excluded not in order
        assert excluded not in pool


def test_pool_candidates_start_after_the_last_and_wrap():
    pool = ipam.Pool("10.0.0.0/29")  # hosts .1-.6, gateway .1
    assert ips(pool.candidates("10.0.0.4")) == ["10.0.0.5", "10.0.0.6", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
    assert ips(pool.candidates("10.0.0.6")) == ips(pool.candidates())
    # A last address outside the pool (subnet changed) starts from the beginning.
    assert ips(pool.candidates("10.9.9.9")) == ips(pool.candidates())


def test_pool_narrowed_to_a_range():
    pool = ipam.Pool("10.0.0.0/24", None, "10.0.0.128", "10.0.0.130")
    assert ips(pool.candidates()) == ["10.0.0.128", "10.0.0.129", "10.0.0.130"]
    assert pool.size == 3 and "10.0.0.127" not in pool and "10.0.0.131" not in pool
    assert pool.describe() == "10.0.0.0/24 (10.0.0.128-10.0.0.130)"
    assert ipam.Pool("10.0.0.0/24").describe() == "10.0.0.0/24"
    # The gateway inside the range is still skipped.
    assert ips(ipam.Pool("10.0.0.0/24", None, None, "10.0.0.3").candidates()) == ["10.0.0.2", "10.0.0.3"]


@pytest.mark.parametrize("subnet, gateway, start, end, message", [
    ("fd00::/64", None, None, None, "IPv4 subnet"),
    ("10.0.0.0/31", None, None, None, "at least 4 addresses"),
    ("10.0.0.0/24", "10.0.1.1", None, None, "is not inside"),
    ("10.0.0.0/24", None, "10.0.0.0", None, "range start 10.0.0.0 is not a host address"),
    ("10.0.0.0/24", None, None, "10.0.1.5", "range end 10.0.1.5 is not a host address"),
    ("10.0.0.0/24", None, "10.0.0.9", "10.0.0.8", "is after range end"),
    ("10.0.0.0/24", None, "10.0.0.1", "10.0.0.1", "holds no address but the gateway"),
])
def test_pool_refuses_what_it_cannot_serve(subnet, gateway, start, end, message):
    with pytest.raises(ValueError, match=message):
        ipam.Pool(subnet, gateway, start, end)


@pytest.fixture
def store(tmp_path):
    return ipam.Store(str(tmp_path), "net1")


def test_reserve_hands_out_in_order_and_persists(store, tmp_path):
    pool = ipam.Pool("10.1.0.0/24")
    with store.locked():
        got = [store.reserve(pool, "c%d" % i, "eth0") for i in range(3)]
    assert [(str(ip), new) for ip, new in got] == [("10.1.0.2", True), ("10.1.0.3", True), ("10.1.0.4", True)]
    with open(os.path.join(str(tmp_path), "net1", "10.1.0.3")) as handle:
        assert json.load(handle) == {"containerID": "c1", "ifname": "eth0"}
    # A new Store (a new plugin process) sees the same state.
    again = ipam.Store(str(tmp_path), "net1")
    assert again.owned_by("c2", "eth0") == ["10.1.0.4"]
    assert again.free_count(pool) == 250


def test_same_attachment_gets_its_address_again(store):
    pool = ipam.Pool("10.1.0.0/24")
    with store.locked():
        first = store.reserve(pool, "c1", "eth0")
        second = store.reserve(pool, "c1", "eth0")
        other = store.reserve(pool, "c1", "net1")
    assert first == (ipaddress.ip_address("10.1.0.2"), True)
    assert second == (ipaddress.ip_address("10.1.0.2"), False)
    assert str(other[0]) == "10.1.0.3"


def test_released_address_is_not_reused_at_once(store):
    pool = ipam.Pool("10.1.0.0/29")  # .2-.6
    with store.locked():
        store.reserve(pool, "a", "eth0")
        assert store.release("a", "eth0") == ["10.1.0.2"]
        assert str(store.reserve(pool, "b", "eth0")[0]) == "10.1.0.3"
        assert store.release("a", "eth0") == []
        assert store.release_ip("10.1.0.2") is False


def test_exhausted_pool_raises_and_changes_nothing(store):
    pool = ipam.Pool("10.1.0.0/30")  # one address: .2
    with store.locked():
        store.reserve(pool, "a", "eth0")
        before = store.reservations()
        with pytest.raises(ipam.PoolExhausted, match="no free address in 10.1.0.0/30: all 1 addresses"):
            store.reserve(pool, "b", "eth0")
        assert store.reservations() == before
    assert store.free_count(pool) == 0


def test_changes_need_the_lock(store):
    pool = ipam.Pool("10.1.0.0/24")
    for call in (lambda: store.reserve(pool, "a", "eth0"), lambda: store.release("a", "eth0"),
                 lambda: store.release_ip("10.1.0.2")):
        with pytest.raises(RuntimeError, match="without holding the lock"):
            call()


def test_unreadable_reservation_still_reserves_and_stale_lists_it(store):
    pool = ipam.Pool("10.1.0.0/29")
    with store.locked():
        store.reserve(pool, "keep", "eth0")
        store.reserve(pool, "gone", "eth0")
    with open(os.path.join(store.dir, "10.1.0.4"), "w") as handle:
        handle.write("garbage")
    with open(os.path.join(store.dir, "notes.txt"), "w") as handle:
        handle.write("not an address")
    assert store.reservations()["10.1.0.4"] == {"containerID": None, "ifname": None}
    assert sorted(store.stale({("keep", "eth0")})) == ["10.1.0.3", "10.1.0.4"]
    with store.locked():
        assert str(store.reserve(pool, "new", "eth0")[0]) == "10.1.0.5"


def test_reservations_of_a_new_network_are_empty(store):
    assert store.reservations() == {}
    assert not os.path.exists(store.dir)


def test_relative_data_dir_is_refused():
    with pytest.raises(ValueError, match="absolute"):
        ipam.Store("var/lib/cni", "net1")


def test_lock_timeout(store):
    other = ipam.Store(os.path.dirname(store.dir), "net1")
    with store.locked():
        with pytest.raises(ipam.LockTimeout, match="held by another process"):
            with other.locked(timeout=0.05):
                pass
    with other.locked(timeout=0.05):
        pass


def _reserve_many(args):
    data_dir, worker, count = args
    store = ipam.Store(data_dir, "net1")
    pool = ipam.Pool("10.2.0.0/24")
    got = []
    for i in range(count):
        with store.locked():
            got.append(str(store.reserve(pool, "w%d-%d" % (worker, i), "eth0")[0]))
    return got


def test_parallel_processes_never_share_an_address(tmp_path):
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(8) as workers:
        results = workers.map(_reserve_many, [(str(tmp_path), w, 15) for w in range(8)])
    handed = [ip for chunk in results for ip in chunk]
    assert len(handed) == 120 == len(set(handed))
    assert len(ipam.Store(str(tmp_path), "net1").reservations()) == 120
