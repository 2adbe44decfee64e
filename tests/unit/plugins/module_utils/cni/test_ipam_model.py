# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The IPAM store against a model, with Hypothesis: random interleavings of ADD, DEL and GC.

Several attachments (container ID, interface, namespace) ADD (also again, and
in another namespace), fail after their ADD reserved (the plugin's rollback),
DEL (naming their namespace, another one or none) and are collected by GC,
through two Store objects on one directory (two plugin processes), while
entries of unexpected shape and files of an older version appear. After every
step the state on disk must be exactly the model's: no address held twice,
releases only by the owner, GC keeping exactly the valid attachments and every
entry it cannot read. The budget is fixed and derandomized, so the unit suite
stays fast and repeatable.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile

from hypothesis import given, settings, strategies as st

from ansible_collections.podnet.mesh.plugins.module_utils.cni import ipam

POOL = ipam.Pool("10.9.0.0/29")  # .2-.6: five addresses, so the pool runs out
CONTAINERS = ("a", "b", "c")
IFNAMES = ("eth0", "net1")
NAMESPACES = ("/run/netns/pntm-1", "/run/netns/pntm-2")  # never exist: compared as paths
JUNK = ("garbage", "list", "directory", "pipe", "link")

KEYS = [(cid, ifname) for cid in CONTAINERS for ifname in IFNAMES]
# What a step does; "repeat add" and "del" pick an attachment that holds an address, when there is one.
KINDS = ["add", "add", "repeat add", "failed add", "del", "del", "del any", "gc", "junk", "old file"]


CHOICES = st.tuples(st.sampled_from(KINDS), st.integers(0, 1), st.integers(0, 63), st.integers(0, 2),
                    st.integers(0, 63))


def draw_step(data, model):
    """One step, drawn knowing the model: (kind, store index, arguments...)."""
    kind, store, pick, namespace, extra = data.draw(CHOICES)
    held = sorted(model.held)
    keys = held if held and kind in ("repeat add", "del") else KEYS
    key = keys[pick % len(keys)]
    if kind in ("add", "repeat add", "failed add"):
        return ("failed add" if kind == "failed add" else "add", store) + key + (NAMESPACES[namespace % 2],)
    if kind in ("del", "del any"):
        return ("del", store) + key + ((NAMESPACES + (None,))[namespace],)
    if kind == "gc":  # extra: which attachments are valid, one bit each
        return ("gc", store, frozenset(k for bit, k in enumerate(KEYS) if extra >> bit & 1))
    if kind == "junk":
        return ("junk", store, JUNK[pick % len(JUNK)], extra)
    return ("old file", store) + key + (extra,)


class Model:
    """What the state must be: attachments with their namespace and address, and unreadable entries."""

    def __init__(self):
        self.held = {}    # (containerID, ifname) -> [netns or None, address]
        self.junk = set()

    def taken(self):
        return set(ip for _ns, ip in self.held.values()) | self.junk

    def free(self):
        return [str(ip) for ip in POOL.candidates() if str(ip) not in self.taken()]

    def expected(self):
        want = dict((ip, {"containerID": None, "ifname": None, "netns": None}) for ip in self.junk)
        for (cid, ifname), (netns, ip) in self.held.items():
            assert ip not in want, "the model holds %s twice" % ip
            want[ip] = {"containerID": cid, "ifname": ifname, "netns": netns}
        return want


def plant(directory, ip, kind):
    path = os.path.join(directory, ip)
    if kind == "garbage":
        with open(path, "w") as handle:
            handle.write("{not json")
    elif kind == "list":
        with open(path, "w") as handle:
            handle.write('["%s"]' % ip)
    elif kind == "directory":
        os.mkdir(path)
    elif kind == "pipe":
        os.mkfifo(path)
    else:
        os.symlink("/nonexistent/owner-record", path)


def add(store, model, cid, ifname, netns, fails):
    """ADD as the plugin does it: reserve, adopt a file without namespace, release a new one on failure."""
    key = (cid, ifname)
    before = model.held.get(key)
    free = model.free()
    with store.locked():
        try:
            got = store.reserve(POOL, cid, ifname, netns)
        except ipam.DuplicateAttachment:
            assert before is not None and before[0] not in (None, netns)
            return
        except ipam.PoolExhausted:
            assert before is None and not free
            return
        if before is not None:
            assert before[0] in (None, netns), "ADD in %s took over the attachment of %s" % (netns, before[0])
            assert (str(got.address), got.new, got.legacy) == (before[1], False, before[0] is None)
            if got.legacy:
                assert store.adopt(got.address, cid, ifname, netns)
                before[0] = netns
        else:
            assert got.new and str(got.address) in free, "%s handed out, free were %s" % (got.address, free)
            model.held[key] = [netns, str(got.address)]
        if fails and got.new:
            assert store.release_ip(got.address, key)
            del model.held[key]


def step(store, model, action):
    kind = action[0]
    if kind in ("add", "failed add"):
        add(store, model, *action[2:], fails=kind == "failed add")
    elif kind == "del":
        cid, ifname, netns = action[2:]
        held = model.held.get((cid, ifname))
        owner = held is not None and (netns is None or held[0] in (None, netns))
        with store.locked():
            assert store.release(cid, ifname, netns) == ([held[1]] if owner else [])
        if owner:
            del model.held[(cid, ifname)]
    elif kind == "gc":
        valid = action[2]
        with store.locked():
            stale = store.stale(valid)
            assert set(stale) == set(ip for key, (_ns, ip) in model.held.items() if key not in valid)
            for ip, owner in stale.items():
                assert store.release_ip(ip, (owner["containerID"], owner["ifname"]))
        model.held = dict((key, value) for key, value in model.held.items() if key in valid)
    elif kind == "junk":
        free = model.free()
        if free:
            ip = free[action[3] % len(free)]
            plant(store.dir, ip, action[2])
            model.junk.add(ip)
    else:  # a file of a version that recorded no namespace
        cid, ifname, index = action[2:]
        free = model.free()
        if free and (cid, ifname) not in model.held:
            ip = free[index % len(free)]
            with open(os.path.join(store.dir, ip), "w") as handle:
                handle.write(json.dumps({"containerID": cid, "ifname": ifname}) + "\n")
            model.held[(cid, ifname)] = [None, ip]


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.data())
def test_the_store_is_the_model_under_any_interleaving(data):
    top = tempfile.mkdtemp(prefix="pntm")
    try:
        stores = [ipam.Store(top, "net"), ipam.Store(top, "net")]
        with stores[0].locked():
            pass
        model = Model()
        for _index in range(data.draw(st.integers(5, 25))):
            action = draw_step(data, model)
            step(stores[action[1]], model, action)
            owners = stores[0].reservations()
            problems = dict((ip, owner.pop("problem", None)) for ip, owner in owners.items())
            assert owners == model.expected()
            assert set(ip for ip, problem in problems.items() if problem) == model.junk
            assert stores[1].free_count(POOL) == POOL.size - len(model.taken())
    finally:
        shutil.rmtree(top)


# ------------------------------------------------------------ dual-stack
# One pool per address family, the IPv6 one smaller, so that it runs out while IPv4 still has room:
# reserve_all must then hand back the IPv4 address it took.
POOLS = [ipam.Pool("10.9.0.0/29"), ipam.Pool("fd00:9::/120", None, "fd00:9::2", "fd00:9::4")]
DUAL_KINDS = ["add", "add", "failed add", "del", "gc"]


class DualModel:
    """Attachments holding one address of each pool, or none: never one family alone."""

    def __init__(self):
        self.held = {}   # (containerID, ifname) -> (netns, [IPv4 address, IPv6 address])

    def free(self, pool):
        taken = set(ip for _ns, ips in self.held.values() for ip in ips)
        return [str(ip) for ip in pool.candidates() if str(ip) not in taken]

    def expected(self):
        want = {}
        for (cid, ifname), (netns, ips) in self.held.items():
            for ip in ips:
                assert ip not in want, "the model holds %s twice" % ip
                want[ip] = {"containerID": cid, "ifname": ifname, "netns": netns}
        return want


def dual_step(store, model, kind, key, netns, valid):
    if kind in ("add", "failed add"):
        before = model.held.get(key)
        free = [model.free(pool) for pool in POOLS]
        with store.locked():
            try:
                got = store.reserve_all(POOLS, key[0], key[1], netns)
            except ipam.DuplicateAttachment:
                assert before is not None and before[0] != netns
                return
            except ipam.PoolExhausted:
                assert before is None and not all(free)
                return
            addresses = [str(r.address) for r in got]
            if before is not None:
                assert before == (netns, addresses) and not any(r.new for r in got)
                return
            assert all(r.new for r in got) and all(ip in f for ip, f in zip(addresses, free))
            model.held[key] = (netns, addresses)
            if kind == "failed add":
                for reservation in got:
                    assert store.release_ip(reservation.address, key)
                del model.held[key]
    elif kind == "del":
        held = model.held.pop(key, None)
        with store.locked():
            assert store.release(key[0], key[1]) == (held[1] if held else [])
    else:
        with store.locked():
            stale = store.stale(valid)
            assert set(stale) == set(ip for k, (_ns, ips) in model.held.items() if k not in valid for ip in ips)
            for ip, owner in stale.items():
                assert store.release_ip(ip, (owner["containerID"], owner["ifname"]))
        model.held = dict((k, value) for k, value in model.held.items() if k in valid)


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(st.lists(st.tuples(st.sampled_from(DUAL_KINDS), st.integers(0, 1), st.sampled_from(KEYS),
                          st.sampled_from(NAMESPACES), st.frozensets(st.sampled_from(KEYS))),
                min_size=5, max_size=25))
def test_dual_stack_reservations_are_all_or_none_under_any_interleaving(steps):
    top = tempfile.mkdtemp(prefix="pntm")
    try:
        stores = [ipam.Store(top, "net"), ipam.Store(top, "net")]
        model = DualModel()
        for kind, store, key, netns, valid in steps:
            dual_step(stores[store], model, kind, key, netns, valid)
            assert stores[0].reservations() == model.expected()
            for pool in POOLS:
                assert stores[1].free_count(pool) == len(model.free(pool))
    finally:
        shutil.rmtree(top)
