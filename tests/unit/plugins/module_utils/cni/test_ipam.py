# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The CNI plugin's IPAM: pool arithmetic, file state, the lock."""
from __future__ import annotations

import ipaddress
import itertools
import json
import multiprocessing
import os
import stat

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
    ("fd00::/127", None, None, None, "IPv6 subnet of at least 4 addresses"),
    ("fd00::/64", "10.0.0.1", None, None, "is not inside"),
    ("fd00::/64", None, "10.0.0.5", None, "range start 10.0.0.5 is not a host address"),
    ("fd00::/64", None, "fd00::", None, "range start fd00:: is not a host address"),
    ("fd00::/120", None, None, "fd00::1:0", "range end fd00::1:0 is not a host address"),
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
        got = [store.reserve(pool, "c%d" % i, "eth0", "/run/netns/p%d" % i) for i in range(3)]
    assert [(str(r.address), r.new, r.legacy) for r in got] == [
        ("10.1.0.2", True, False), ("10.1.0.3", True, False), ("10.1.0.4", True, False)]
    with open(os.path.join(str(tmp_path), "net1", "10.1.0.3")) as handle:
        assert json.load(handle) == {"containerID": "c1", "ifname": "eth0", "netns": "/run/netns/p1"}
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
    assert first == (ipaddress.ip_address("10.1.0.2"), True, False)
    assert second == (ipaddress.ip_address("10.1.0.2"), False, False)
    assert str(other.address) == "10.1.0.3"


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


# ------------------------------------------------------------- ownership
NS1, NS2 = "/run/netns/pntu-pod1", "/run/netns/pntu-pod2"


def snapshot(path):
    """Every entry of a directory: name -> (kind and mode, content or link target)."""
    found = {}
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        info = os.lstat(full)
        if stat.S_ISREG(info.st_mode):
            with open(full, "rb") as handle:
                found[name] = (info.st_mode, handle.read())
        elif stat.S_ISLNK(info.st_mode):
            found[name] = (info.st_mode, os.readlink(full))
        else:
            found[name] = (info.st_mode, None)
    return found


def write(path, data):
    with open(path, "wb") as handle:
        handle.write(data if isinstance(data, bytes) else data.encode())


def test_repeat_reserve_in_another_namespace_is_refused_and_changes_nothing(store):
    pool = ipam.Pool("10.1.0.0/24")
    with store.locked():
        first = store.reserve(pool, "c1", "eth0", NS1)
        before = snapshot(store.dir)
        with pytest.raises(ipam.DuplicateAttachment,
                           match="container c1 already has interface eth0 with address 10.1.0.2 in the network "
                                 "namespace /run/netns/pntu-pod1; an ADD of the same attachment in "
                                 "/run/netns/pntu-pod2 is refused"):
            store.reserve(pool, "c1", "eth0", NS2)
        assert snapshot(store.dir) == before
        # The same namespace (or none named) gets the attachment's address again.
        assert store.reserve(pool, "c1", "eth0", NS1) == (first.address, False, False)
        assert store.reserve(pool, "c1", "eth0") == (first.address, False, False)
        assert snapshot(store.dir) == before


def test_namespaces_are_the_same_path_or_the_same_inode(tmp_path, store):
    target = tmp_path / "ns"
    target.write_text("")
    alias = tmp_path / "alias"
    alias.symlink_to(target)
    assert ipam.same_netns(str(target), str(alias))
    assert ipam.same_netns("/gone/ns", "/gone/ns")
    assert not ipam.same_netns(str(target), str(tmp_path / "missing"))
    assert not ipam.same_netns(str(target), None)
    pool = ipam.Pool("10.1.0.0/24")
    with store.locked():
        first = store.reserve(pool, "c1", "eth0", str(target))
        assert store.reserve(pool, "c1", "eth0", str(alias)) == (first.address, False, False)


def test_only_the_owner_releases(store):
    pool = ipam.Pool("10.1.0.0/24")
    with store.locked():
        first = store.reserve(pool, "c1", "eth0", NS1)
        assert store.release("c1", "eth0", NS2) == []          # a DEL naming another namespace
        assert store.release("c2", "eth0", NS1) == []          # another container
        assert store.release("c1", "net1") == []               # another interface
        assert store.release_ip(first.address, ("c1", "net1")) is False
        assert store.owned_by("c1", "eth0", NS2) == []
        assert store.owned_by("c1", "eth0", NS1) == ["10.1.0.2"]
        assert store.release("c1", "eth0", NS1) == ["10.1.0.2"]
        second = store.reserve(pool, "c2", "eth0", NS2)
        assert store.release("c2", "eth0") == [str(second.address)]   # a DEL without CNI_NETNS
        third = store.reserve(pool, "c3", "eth0", NS2)
        assert store.release_ip(third.address, ("c3", "eth0")) is True
    assert store.reservations() == {}


def test_files_without_a_namespace_keep_working_and_record_one_when_adopted(store):
    pool = ipam.Pool("10.1.0.0/24")
    os.makedirs(store.dir, 0o700)
    write(os.path.join(store.dir, "10.1.0.5"), '{"containerID": "old", "ifname": "eth0"}\n')
    write(os.path.join(store.dir, "10.1.0.6"), '{"containerID": "older", "ifname": "eth0"}\n')
    assert store.reservations()["10.1.0.5"] == {"containerID": "old", "ifname": "eth0", "netns": None}
    assert store.owned_by("old", "eth0", NS1) == ["10.1.0.5"]
    with store.locked():
        got = store.reserve(pool, "old", "eth0", NS2)
        assert got == (ipaddress.ip_address("10.1.0.5"), False, True)
        assert store.adopt(got.address, "old", "eth0", NS2) is True
        assert store.reservations()["10.1.0.5"] == {"containerID": "old", "ifname": "eth0", "netns": NS2}
        assert store.adopt(got.address, "old", "eth0", NS1) is False   # it names one now
        with pytest.raises(ipam.DuplicateAttachment):
            store.reserve(pool, "old", "eth0", NS1)
        # A DEL naming any namespace is the owner's for a file that names none.
        assert store.release("older", "eth0", NS1) == ["10.1.0.6"]


# ------------------------------------------------------ the state's safety
@pytest.mark.parametrize("umask", [0o000, 0o077])
def test_modes_are_fixed_whatever_the_umask(tmp_path, umask):
    store = ipam.Store(str(tmp_path / "var" / "lib" / "podnet"), "net1")
    previous = os.umask(umask)
    try:
        with store.locked():
            store.reserve(ipam.Pool("10.1.0.0/24"), "c1", "eth0", NS1)
    finally:
        os.umask(previous)

    def mode(*parts):
        return stat.S_IMODE(os.lstat(os.path.join(str(tmp_path), *parts)).st_mode)

    assert (mode("var"), mode("var", "lib")) == (0o755, 0o755)
    assert (mode("var", "lib", "podnet"), mode("var", "lib", "podnet", "net1")) == (0o700, 0o700)
    files = os.listdir(store.dir)
    assert sorted(files) == ["10.1.0.2", "last_reserved", "lock"]
    assert dict((name, mode("var", "lib", "podnet", "net1", name)) for name in files) == dict.fromkeys(files, 0o600)


def _refusal_case(tmp_path, case):
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    if case == "data directory is a link":
        data.symlink_to(elsewhere)
        return data, "is a symbolic link"
    if case == "data directory is a file":
        data.write_text("")
        return data, "is a regular file, not a directory"
    data.mkdir(mode=0o700)
    net = data / "net1"
    if case == "network directory is a link":
        net.symlink_to(elsewhere)
        return net, "is a symbolic link"
    if case == "network directory writable by its group":
        net.mkdir()
        os.chmod(str(net), 0o770)
        return net, "is writable by its group (mode 0770"
    if case == "data directory writable by others":
        os.chmod(str(data), 0o1777)
        return data, "is writable by its group and others (mode 1777"
    if case == "data directory of another user":
        if os.geteuid() != 0:
            pytest.skip("needs root to give a directory away")
        os.chown(str(data), 65534, 65534)
        return data, "is owned by uid 65534, not by uid 0 that runs the plugin"
    raise AssertionError(case)


@pytest.mark.parametrize("case", [
    "data directory is a link", "data directory is a file", "network directory is a link",
    "network directory writable by its group", "data directory writable by others",
    "data directory of another user",
])
def test_a_state_directory_that_is_not_the_plugins_alone_is_refused(tmp_path, case):
    path, why = _refusal_case(tmp_path, case)
    store = ipam.Store(str(tmp_path / "data"), "net1")
    before = [(root, sorted(dirs), sorted(files)) for root, dirs, files in os.walk(str(tmp_path))]
    message = "the IPAM state directory %s %s" % (path, why)
    with pytest.raises(ipam.StateError) as err:
        with store.locked():
            store.reserve(ipam.Pool("10.1.0.0/24"), "c1", "eth0", NS1)
    assert message in str(err.value) and "refusing to use it" in str(err.value)
    for read in (store.reservations, store.check, store.exists):
        with pytest.raises(ipam.StateError) as err:
            read()
        assert message in str(err.value)
    assert [(root, sorted(dirs), sorted(files)) for root, dirs, files in os.walk(str(tmp_path))] == before


def test_a_link_planted_for_the_lock_is_never_followed(store, tmp_path):
    victim = tmp_path / "victim"
    os.makedirs(store.dir, 0o700)
    os.symlink(str(victim), os.path.join(store.dir, "lock"))
    with pytest.raises(ipam.StateError, match="the IPAM lock %s/lock is a symbolic link" % store.dir):
        with store.locked():
            pass
    assert not os.path.lexists(str(victim))


@pytest.mark.parametrize("name", [".10.1.0.2.tmp", ".last_reserved.tmp", "last_reserved"])
def test_links_planted_for_state_files_are_neither_read_nor_written_through(store, tmp_path, name):
    victim = tmp_path / "victim"
    victim.write_text("10.1.0.100\n")
    os.makedirs(store.dir, 0o700)
    os.symlink(str(victim), os.path.join(store.dir, name))
    with store.locked():
        got = store.reserve(ipam.Pool("10.1.0.0/24"), "c1", "eth0", NS1)
    assert str(got.address) == "10.1.0.2"   # not after the victim's address
    assert victim.read_text() == "10.1.0.100\n"
    after = snapshot(store.dir)
    assert sorted(after) == ["10.1.0.2", "last_reserved", "lock"]
    assert all(stat.S_ISREG(mode) for mode, _data in after.values())
    assert after["last_reserved"][1] == b"10.1.0.2\n"


def _fifo(path):
    os.mkfifo(path, 0o600)


def _directory(path):
    os.mkdir(path, 0o700)


def _link(path):
    target = path + ".target"
    write(target, '{"containerID": "c9", "ifname": "eth0"}')
    os.symlink(os.path.basename(target), path)


SHAPES = [
    ("not JSON", "garbage", "not JSON"),
    ("empty", "", "empty"),
    ("not UTF-8", b"\xff\xfe{}", "not JSON"),
    ("a JSON array", "[1, 2]", "a JSON array, not an owner record"),
    ("a JSON string", '"10.1.0.3"', "a JSON string, not an owner record"),
    ("JSON null", "null", "JSON null, not an owner record"),
    ("a JSON number", "7", "a JSON number, not an owner record"),
    ("owner fields of the wrong type", '{"containerID": ["c9"], "ifname": "eth0"}',
     "an owner record without containerID and ifname (strings)"),
    ("no ifname", '{"containerID": "c9"}', "an owner record without containerID and ifname (strings)"),
    ("netns not a string", '{"containerID": "c9", "ifname": "eth0", "netns": 7}',
     "an owner record whose netns is not a string"),
    ("too large", '{"containerID": "%s", "ifname": "eth0"}' % ("c" * 5000), "larger than 4096 bytes"),
    ("a directory", _directory, "a directory"),
    ("a named pipe", _fifo, "a named pipe"),
    ("a symbolic link", _link, "a symbolic link"),
]


@pytest.mark.parametrize("plant, problem", [s[1:] for s in SHAPES], ids=[s[0] for s in SHAPES])
def test_an_entry_of_unexpected_shape_still_reserves_its_address(store, deadline, plant, problem):
    pool = ipam.Pool("10.1.0.0/29")  # .2-.6
    with store.locked():
        store.reserve(pool, "keep", "eth0", NS1)
    path = os.path.join(store.dir, "10.1.0.3")
    if callable(plant):
        plant(path)
    else:
        write(path, plant)
    with deadline(5):
        owners = store.reservations()
        assert owners["10.1.0.3"] == {"containerID": None, "ifname": None, "netns": None, "problem": problem}
        assert store.damaged() == {"10.1.0.3": problem}
        assert store.free_count(pool) == 3
        # GC keeps it: nothing proves it free.
        assert sorted(store.stale(set())) == ["10.1.0.2"]
        with store.locked():
            assert str(store.reserve(pool, "new", "eth0", NS1).address) == "10.1.0.4"
            assert store.release_ip("10.1.0.3", ("c9", "eth0")) is False
            assert store.release("c9", "eth0") == []
    assert os.path.lexists(path)


@pytest.mark.parametrize("name", ["notes.txt", "10.1.0.3.bak", ".10.1.0.3", "FD00::3", "fd00:0::3", "fd00::03",
                                  "300.1.0.3", "10.1.0.03", "010.1.0.3", "fd00::3%eth0", "last_reserved.1"])
def test_names_that_are_no_canonical_address_are_not_reservations(store, name):
    pool = ipam.Pool("10.1.0.0/29")
    os.makedirs(store.dir, 0o700)
    write(os.path.join(store.dir, name), '{"containerID": "c9", "ifname": "eth0"}')
    assert store.reservations() == {} and store.free_count(pool) == pool.size
    assert store.stale(set()) == {}
    with store.locked():
        assert str(store.reserve(pool, "c1", "eth0", NS1).address) == "10.1.0.2"
    assert os.path.exists(os.path.join(store.dir, name))


def test_temporary_files_of_a_killed_process_are_removed_under_the_lock(store, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    os.makedirs(store.dir, 0o700)
    write(os.path.join(store.dir, ".10.1.0.2.tmp"), '{"containerID": "c9", "ifname": "eth0"}')
    write(os.path.join(store.dir, ".last_reserved.tmp"), "10.1.0.5")
    os.symlink(str(victim), os.path.join(store.dir, ".10.1.0.4.tmp"))
    assert store.reservations() == {}
    assert len(os.listdir(store.dir)) == 3   # reads without the lock leave them
    with store.locked():
        assert store.release("c9", "eth0") == []
    assert os.listdir(store.dir) == ["lock"] and victim.read_text() == "precious"


def test_a_named_pipe_for_last_reserved_does_not_block(store, deadline):
    os.makedirs(store.dir, 0o700)
    os.mkfifo(os.path.join(store.dir, "last_reserved"))
    with deadline(5):
        with store.locked():
            assert str(store.reserve(ipam.Pool("10.1.0.0/29"), "c1", "eth0", NS1).address) == "10.1.0.2"


def test_exhausted_pool_names_the_entries_that_hold_addresses_without_an_owner(store):
    pool = ipam.Pool("10.1.0.0/29")  # .2-.6
    os.makedirs(store.dir, 0o700)
    os.mkfifo(os.path.join(store.dir, "10.1.0.4"))
    write(os.path.join(store.dir, "10.1.0.5"), "garbage")
    with store.locked():
        for cid in ("a", "b", "c"):
            store.reserve(pool, cid, "eth0", NS1)
        with pytest.raises(ipam.PoolExhausted) as err:
            store.reserve(pool, "d", "eth0", NS1)
    assert str(err.value) == (
        "no free address in 10.1.0.0/29: all 5 addresses are reserved (2 of them by state entries that are no "
        "reservation records: 10.1.0.4 (a named pipe), 10.1.0.5 (not JSON); remove those by hand once no "
        "container uses their addresses)")


@pytest.mark.parametrize("network", ["", ".", "..", "a/b"])
def test_a_network_name_that_names_a_path_is_refused(tmp_path, network):
    with pytest.raises(ValueError, match="a network name cannot name a path"):
        ipam.Store(str(tmp_path), network)


# ------------------------------------------------------------ dual-stack
def test_ipv6_pool_counts_its_addresses_without_enumerating_them():
    pool = ipam.Pool("fd00:10:244:1::/64")
    # The subnet-router anycast address (the network address) and the gateway are never handed out;
    # unlike IPv4, the last address is a host address.
    assert pool.size == 2 ** 64 - 2
    assert str(pool.gateway) == "fd00:10:244:1::1"
    assert "fd00:10:244:1::" not in pool and "fd00:10:244:1::1" not in pool
    assert "fd00:10:244:1:ffff:ffff:ffff:ffff" in pool and "10.244.1.2" not in pool
    assert ips(itertools.islice(pool.candidates(), 3)) == ["fd00:10:244:1::2", "fd00:10:244:1::3", "fd00:10:244:1::4"]
    assert ips(itertools.islice(pool.candidates("fd00:10:244:1:ffff:ffff:ffff:ffff"), 2)) == [
        "fd00:10:244:1::2", "fd00:10:244:1::3"]
    # An address of the other family as the last one handed out: the search starts at the beginning.
    assert next(pool.candidates("10.244.1.9")) == ipaddress.ip_address("fd00:10:244:1::2")
    assert pool.describe() == "fd00:10:244:1::/64"
    narrowed = ipam.Pool("fd00::/64", None, "fd00::a", "fd00::c")
    assert narrowed.size == 3 and narrowed.describe() == "fd00::/64 (fd00::a-fd00::c)"
    assert pool.exhausted({}).startswith("no free address in fd00:10:244:1::/64: all %d" % (2 ** 64 - 2))


def test_a_full_ipv6_pool_is_found_without_a_walk(store):
    # 2^64 addresses, one left free by reservations: the store counts them instead of walking the pool.
    pool = ipam.Pool("fd00::/120", None, "fd00::2", "fd00::3")
    with store.locked():
        assert str(store.reserve(pool, "a", "eth0").address) == "fd00::2"
        assert str(store.reserve(pool, "b", "eth0").address) == "fd00::3"
        with pytest.raises(ipam.PoolExhausted, match=r"no free address in fd00::/120 \(fd00::2-fd00::3\)"):
            store.reserve(pool, "c", "eth0")
    assert store.free_count(pool) == 0
    big = ipam.Pool("fd00:1::/64")
    assert store.free_count(big) == 2 ** 64 - 2


def test_reserve_all_takes_one_address_per_family_in_one_directory(store):
    pools = [ipam.Pool("10.1.0.0/24"), ipam.Pool("fd00:10:244:1::/64")]
    with store.locked():
        got = store.reserve_all(pools, "c1", "eth0", NS1)
        assert [(str(r.address), r.new) for r in got] == [("10.1.0.2", True), ("fd00:10:244:1::2", True)]
        # Again for the same attachment: the same addresses, nothing new.
        assert [(str(r.address), r.new) for r in store.reserve_all(pools, "c1", "eth0", NS1)] == [
            ("10.1.0.2", False), ("fd00:10:244:1::2", False)]
        second = store.reserve_all(pools, "c2", "eth0", NS2)
        assert [str(r.address) for r in second] == ["10.1.0.3", "fd00:10:244:1::3"]
    names = sorted(os.listdir(store.dir))
    assert names == ["10.1.0.2", "10.1.0.3", "fd00:10:244:1::2", "fd00:10:244:1::3", "last_reserved",
                     "last_reserved.1", "lock"]
    with open(os.path.join(store.dir, "last_reserved")) as handle:
        assert handle.read() == "10.1.0.3\n"
    with open(os.path.join(store.dir, "last_reserved.1")) as handle:
        assert handle.read() == "fd00:10:244:1::3\n"
    assert store.owned_by("c1", "eth0") == ["10.1.0.2", "fd00:10:244:1::2"]
    with store.locked():
        assert store.release("c1", "eth0", NS1) == ["10.1.0.2", "fd00:10:244:1::2"]
        # The next search of each family starts after its own last address.
        assert [str(r.address) for r in store.reserve_all(pools, "c3", "eth0")] == ["10.1.0.4", "fd00:10:244:1::4"]


def test_reserve_all_releases_the_first_family_when_the_second_is_exhausted(store):
    pools = [ipam.Pool("10.1.0.0/24"), ipam.Pool("fd00::/120", None, "fd00::2", "fd00::2")]
    with store.locked():
        store.reserve_all(pools, "a", "eth0")
        before = snapshot(store.dir)
        with pytest.raises(ipam.PoolExhausted, match="no free address in fd00::/120"):
            store.reserve_all(pools, "b", "eth0")
    after = snapshot(store.dir)
    # The IPv4 address b took is released again; only the IPv4 pointer moved on (a hint).
    assert "10.1.0.3" not in after and store.owned_by("b", "eth0") == []
    assert dict((k, v) for k, v in after.items() if k != "last_reserved") == \
        dict((k, v) for k, v in before.items() if k != "last_reserved")


def test_reserve_all_keeps_an_earlier_reservation_of_the_attachment_on_failure(store):
    # a holds an IPv4 address from an IPv4-only configuration; the IPv6 pool is full: a's IPv4 address stays.
    with store.locked():
        store.reserve(ipam.Pool("10.1.0.0/24"), "a", "eth0")
        store.reserve(ipam.Pool("fd00::/120", None, "fd00::2", "fd00::2"), "z", "eth0")
        with pytest.raises(ipam.PoolExhausted):
            store.reserve_all([ipam.Pool("10.1.0.0/24"), ipam.Pool("fd00::/120", None, "fd00::2", "fd00::2")],
                              "a", "eth0")
    assert store.owned_by("a", "eth0") == ["10.1.0.2"]


def test_an_existing_last_reserved_keeps_pointing_for_the_first_range_set(store):
    os.makedirs(store.dir, 0o700)
    write(os.path.join(store.dir, "last_reserved"), "10.1.0.7\n")
    pools = [ipam.Pool("10.1.0.0/24"), ipam.Pool("fd00::/64")]
    with store.locked():
        assert [str(r.address) for r in store.reserve_all(pools, "a", "eth0")] == ["10.1.0.8", "fd00::2"]


@pytest.mark.parametrize("name", ["::1", "fd00::", "fd00:10:244:1::2", "2001:db8::ffff:0:1"])
def test_ipv6_reservations_are_files_named_in_compressed_form(store, name):
    os.makedirs(store.dir, 0o700)
    write(os.path.join(store.dir, name), '{"containerID": "c9", "ifname": "eth0"}')
    assert store.reservations() == {name: {"containerID": "c9", "ifname": "eth0", "netns": None}}
    with store.locked():
        assert store.release("c9", "eth0") == [name]
    assert not os.path.lexists(os.path.join(store.dir, name))


def _reserve_dual(args):
    data_dir, worker, count = args
    store = ipam.Store(data_dir, "net1")
    pools = [ipam.Pool("10.2.0.0/24"), ipam.Pool("fd00:2::/64")]
    got = []
    for i in range(count):
        with store.locked():
            got.extend(str(r.address) for r in store.reserve_all(pools, "w%d-%d" % (worker, i), "eth0"))
    return got


def test_parallel_processes_never_share_an_address_of_either_family(tmp_path):
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(8) as workers:
        results = workers.map(_reserve_dual, [(str(tmp_path), w, 15) for w in range(8)])
    handed = [ip for chunk in results for ip in chunk]
    assert len(handed) == 240 == len(set(handed))
    assert sum(1 for ip in handed if ":" in ip) == 120
    assert len(ipam.Store(str(tmp_path), "net1").reservations()) == 240
