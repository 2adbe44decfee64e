# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Ownership against the real kernel: what the modules delete is provably theirs, route checks
see every route type, and creating what is missing tolerates a concurrent creator.

Modules run in this process (their main(), as Ansible would run them); the concurrent runs are
forked processes that read and plan first, wait for each other, then apply at the same moment.
"""
from __future__ import annotations

import errno
import multiprocessing
import os
import traceback

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.core import errors
from ansible_collections.podnet.mesh.plugins.module_utils.core import validate as v
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import Action
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import links as link_plan
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import pod as pod_plan
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import changes
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import netlink as _netlink
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import netns as _netns
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import reads as readers
from ansible_collections.podnet.mesh.plugins.modules import bridge, pod_route, pods, veth

PROTO = 149


def host_link(session, name):
    return session.ns(None).links().get(name)


def foreign_pair(session, host, peer_ns, peer="eth0"):
    """A veth pair another tool made: host end here, its peer in namespace peer_ns."""
    session.apply([Action("veth_add", None, host, {"peer": peer, "peer_ns": peer_ns})])
    return host_link(session, host)["ifindex"]


# ------------------------------------------------------------ veth: both ends
@pytest.mark.parametrize("state", ["absent", "present"])
def test_veth_leaves_a_pair_whose_peer_is_in_another_namespace(module, session, named_ns, prefix, host_links,
                                                               state):
    pod, other = named_ns("a"), named_ns("b")
    host = prefix + "v"
    host_links.append(host)
    ifindex = foreign_pair(session, host, other)
    kind, result = module(veth, {"name": host, "netns": pod, "state": state})
    assert kind == "fail" and result["changed"] is False, result
    assert result["msg"] == (
        "name: '%s' is a veth whose peer eth0 is in namespace %s, not eth0 in namespace %s: a pair podnet.mesh "
        "was not asked for; nothing was changed" % (host, other, pod))
    assert host_link(session, host)["ifindex"] == ifindex
    assert "eth0" in session.ns(other).links() and "eth0" not in session.ns(pod).links()


def test_veth_without_netns_leaves_a_pair_whose_peer_is_in_a_namespace(module, session, named_ns, prefix,
                                                                       host_links):
    other = named_ns("b")
    host = prefix + "v"
    host_links.append(host)
    ifindex = foreign_pair(session, host, other, peer=prefix + "p")
    kind, result = module(veth, {"name": host, "peer": prefix + "p", "state": "absent"})
    assert kind == "fail" and result["changed"] is False
    assert "peer %sp is in namespace %s, not %sp in the host namespace" % (prefix, other, prefix) in result["msg"]
    assert host_link(session, host)["ifindex"] == ifindex


def test_veth_pair_is_found_by_namespace_id_not_by_name(session, named_ns, prefix, host_links):
    pod, other = named_ns("a"), named_ns("b")
    host = prefix + "v"
    host_links.append(host)
    foreign_pair(session, host, other)
    place = session.peer_of(host_link(session, host), None, hint=(pod,))
    assert place["seen"] and place["netns"] == other and place["link"]["name"] == "eth0"
    # Both ends here: the peer is read by its index.
    session.apply([Action("veth_add", None, prefix + "w", {"peer": prefix + "x", "peer_ns": None})])
    host_links.append(prefix + "w")
    place = session.peer_of(host_link(session, prefix + "w"))
    assert place["seen"] and place["netns"] is None and place["link"]["name"] == prefix + "x"


def hold_and_remake(name):
    """Delete and make again a namespace while this process holds the old one: its peers are lost."""
    from pyroute2 import netns as pr_netns

    fd = os.open(_netns.netns_path(name), os.O_RDONLY)
    pr_netns.remove(name)
    pr_netns.create(name)
    return fd


@pytest.mark.parametrize("state, count", [("present", 2), ("absent", 1)])
def test_veth_whose_peer_is_in_no_namespace_we_see_is_lost(module, session, named_ns, prefix, host_links, state,
                                                           count):
    pod = named_ns("a")
    host = prefix + "v"
    host_links.append(host)
    assert module(veth, {"name": host, "netns": pod})[0] == "exit"
    fd = hold_and_remake(pod)
    try:
        place = session.peer_of(host_link(session, host), None, hint=(pod,))
        assert place == {"seen": False, "netns": None, "link": None}
        kind, result = module(veth, {"name": host, "netns": pod, "state": state})
        assert kind == "exit" and result["changed"], result
        assert result["actions"][:count] == [
            "delete link %s" % host, "create veth %s with peer eth0 in namespace %s" % (host, pod)][:count]
        assert ("eth0" in session.ns(pod).links()) == (state == "present")
    finally:
        os.close(fd)


def test_veth_whose_peer_was_renamed_in_its_namespace_is_made_again(module, session, named_ns, prefix,
                                                                    host_links):
    pod = named_ns("a")
    host = prefix + "v"
    host_links.append(host)
    assert module(veth, {"name": host, "netns": pod})[0] == "exit"
    handle = session.ns(pod)
    index = handle.index("eth0")
    handle.ipr.link("set", index=index, state="down")
    handle.ipr.link("set", index=index, ifname="eth9")
    kind, result = module(veth, {"name": host, "netns": pod})
    assert kind == "exit" and result["actions"][:2] == [
        "delete link %s" % host, "create veth %s with peer eth0 in namespace %s" % (host, pod)]
    names = session.ns(pod).links()
    assert "eth0" in names and "eth9" not in names


# ------------------------------------------------------------ pods: both ends
def pods_args(bridge_name, items, state="present", cidr="10.96.1.0/24"):
    return {"bridge": bridge_name, "pod_cidr": cidr, "pods": items, "state": state}


@pytest.fixture
def pod_bridge(module, prefix, host_links):
    name = prefix + "b"
    host_links.append(name)
    assert module(bridge, {"name": name, "addresses": ["10.96.1.1/24"]})[0] == "exit"
    return name


@pytest.mark.parametrize("state", ["present", "absent"])
def test_pods_leave_a_veth_of_the_pods_name_whose_peer_is_elsewhere(module, session, named_ns, prefix, host_links,
                                                                    pod_bridge, state):
    pod, other = named_ns("p", create=False), named_ns("c")
    host = prefix + "v"
    host_links.append(host)
    ifindex = foreign_pair(session, host, other)
    kind, result = module(pods, pods_args(pod_bridge, [{"name": pod, "veth": host}], state))
    assert kind == "fail" and result["changed"] is False, result
    assert result["msg"].startswith("name: '%s' is a veth whose peer eth0 is in namespace %s, not eth0 in "
                                    "namespace %s" % (host, other, pod))
    assert host_link(session, host)["ifindex"] == ifindex
    assert not _netns.netns_exists(pod)


def test_pods_remake_a_pair_whose_peer_is_lost(module, session, named_ns, prefix, host_links, pod_bridge):
    pod = named_ns("p", create=False)
    host = prefix + "v"
    host_links.append(host)
    items = [{"name": pod, "veth": host, "address": "10.96.1.9"}]
    assert module(pods, pods_args(pod_bridge, items))[0] == "exit"
    fd = hold_and_remake(pod)
    try:
        kind, result = module(pods, pods_args(pod_bridge, items))
        assert kind == "exit", result
        assert "delete link %s" % host in result["actions"]
        assert session.ns(pod).links(with_addresses=["eth0"])["eth0"]["addresses"] == ["10.96.1.9/24"]
    finally:
        os.close(fd)


def test_pods_next_free_address_skips_the_pods_of_an_earlier_call(module, session, named_ns, prefix, pod_bridge):
    first, second = named_ns("p", create=False), named_ns("q", create=False)
    kind, result = module(pods, pods_args(pod_bridge, [{"name": first, "veth": prefix + "vp"}]))
    assert kind == "exit" and result["pods"][0]["address"] == "10.96.1.2/24", result
    kind, result = module(pods, pods_args(pod_bridge, [{"name": second, "veth": prefix + "vq"}]))
    assert kind == "exit" and result["pods"][0]["address"] == "10.96.1.3/24", result
    # Given addresses and kept ones read no other namespace.
    kind, result = module(pods, pods_args(pod_bridge, [{"name": second, "veth": prefix + "vq"}]))
    assert result["changed"] is False and result["pods"][0]["address"] == "10.96.1.3/24"
    module(pods, pods_args(pod_bridge, [{"name": first, "veth": prefix + "vp"},
                                        {"name": second, "veth": prefix + "vq"}], "absent"))


# --------------------------------------------------- routes: every route type
@pytest.fixture
def node(session, prefix, host_links):
    """The test's namespace as a node on 192.168.77.0/24 (a bridge holding .11, up)."""
    name = prefix + "n"
    host_links.append(name)
    session.apply([Action("bridge_add", None, name, {}),
                   Action("addr_add", None, name, {"address": "192.168.77.11/24"}),
                   Action("link_set", None, name, {"up": True})])
    yield name
    ipr = session.ns(None).ipr
    for route in session.ns(None).routes(254, families=(4,)):
        if route["dst"].startswith("10.95."):
            dst, _slash, plen = route["dst"].partition("/")
            ipr.route("del", dst=dst, dst_len=int(plen), type=route["type"], proto=route["proto"])


@pytest.mark.parametrize("kind", ["blackhole", "unreachable", "prohibit", "throw"])
def test_pod_route_refuses_a_listed_destination_held_by_a_route_of_another_type(module, session, node, kind):
    session.ns(None).ipr.route("add", dst="10.95.3.0", dst_len=24, type=kind, proto=4)
    routes = [{"dst": "10.95.2.0/24", "via": "192.168.77.12"}, {"dst": "10.95.3.0/24", "via": "192.168.77.13"}]
    kind_, result = module(pod_route, {"routes": routes})
    assert kind_ == "fail" and result["changed"] is False, result
    assert result["msg"].startswith("routes[1].dst: '10.95.3.0/24' already has a route with metric 0")
    assert "(%s 10.95.3.0/24 metric 0, protocol 4)" % kind in result["msg"]
    read = dict((r["dst"], r) for r in session.ns(None).routes(254, families=(4,)))
    assert "10.95.2.0/24" not in read and read["10.95.3.0/24"]["type"] == kind


def test_routes_are_read_with_their_type(session, node):
    session.ns(None).ipr.route("add", dst="10.95.4.0", dst_len=24, type="blackhole", proto=4)
    route = [r for r in session.ns(None).routes(254, families=(4,)) if r["dst"] == "10.95.4.0/24"]
    assert route == [{"dst": "10.95.4.0/24", "family": 4, "via": None, "dev": None, "metric": 0, "proto": 4,
                      "type": "blackhole"}]


def test_a_refused_batch_reports_every_change_it_applied(session, node):
    good = v.route_list([{"dst": "10.95.%d.0/24" % i, "via": "192.168.77.12"} for i in range(10, 15)])
    bad = [v.route({"dst": "10.95.%d.0/24" % i, "via": "172.31.0.1"}, "routes[x]") for i in (20, 21)]
    routes = good[:2] + bad[:1] + good[2:4] + bad[1:] + good[4:]
    actions = [Action("route_add", None, r["dst"], {"route": r, "table": 254, "proto": PROTO}) for r in routes]
    before = len(session.applied)
    with pytest.raises(errors.KernelError) as err:
        session.apply(actions)
    assert err.value.code == errno.ENETUNREACH
    assert str(err.value).startswith("cannot add route 10.95.20.0/24 via 172.31.0.1 metric 0 (namespace host): ")
    assert "1 other route change of the same batch was refused too" in str(err.value)
    # Those sent after the refused one were applied, and are reported.
    assert session.applied[before:] == [a for a in actions if a.args["route"] in good]
    installed = set(r["dst"] for r in session.ns(None).routes(254, families=(4,)) if r["proto"] == PROTO)
    assert installed == set(r["dst"] for r in good)


def test_pod_route_reports_what_a_refused_batch_applied(module, monkeypatch, session, node):
    """A host that changes between read and apply: the failure lists every change that was made."""
    real, reads = readers.routes, []

    def read_then_change(session_, want):
        cur = real(session_, want)
        if not reads:  # another tool takes one destination after the read, before the apply
            session.ns(None).ipr.route("add", dst="10.95.31.0", dst_len=24, type="blackhole", proto=4)
        reads.append(cur)
        return cur

    monkeypatch.setattr(readers, "routes", read_then_change)
    routes = [{"dst": "10.95.%d.0/24" % i, "via": "192.168.77.12"} for i in (30, 31, 32)]
    kind, result = module(pod_route, {"routes": routes})
    assert kind == "fail" and result["changed"] is True, result
    assert result["errno"] == errno.EEXIST
    assert result["actions"] == ["add route 10.95.30.0/24 via 192.168.77.12 metric 0",
                                 "add route 10.95.32.0/24 via 192.168.77.12 metric 0"]


# ---------------------------------------------- create-if-missing, concurrently
RUNS = 4


def _race(work, count=RUNS):
    """Run work(barrier) in count forked processes; [(ok, detail)] of each."""
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(count)
    queue = ctx.Queue()

    def child(index):
        try:
            queue.put((index, True, work(barrier)))
        except BaseException as exc:  # pylint: disable=broad-except
            queue.put((index, False, "%s\n%s" % (exc, traceback.format_exc())))

    procs = [ctx.Process(target=child, args=(i,)) for i in range(count)]
    for proc in procs:
        proc.start()
    results = sorted(queue.get(timeout=60) for _proc in procs)
    for proc in procs:
        proc.join(timeout=30)
    return [(ok, detail) for _index, ok, detail in results]


def _converge(read, planner, want, barrier):
    """Read and plan, wait for the others, then apply: every run plans the same creations."""
    with _netlink.Session() as session:
        plan = planner(want, read(session, want))
        barrier.wait(timeout=30)
        session.apply(plan.actions)
        return [a.op for a in plan.actions]


def test_concurrent_bridge_runs_all_succeed(prefix, host_links):
    name = prefix + "b"
    host_links.append(name)
    want = bridge.validate({"name": name, "addresses": ["10.96.7.1/24"], "mac": None, "mtu": None, "stp": False,
                            "up": True, "state": "present"})
    results = _race(lambda barrier: _converge(readers.bridge, link_plan.plan_bridge, want, barrier))
    assert all(ok for ok, _detail in results), results
    assert all(detail[0] == "bridge_add" for _ok, detail in results)
    with _netlink.Session() as session:
        link = session.ns(None).links(with_addresses=[name])[name]
    assert link["kind"] == "bridge" and link["addresses"] == ["10.96.7.1/24"] and link["up"]
    assert link["mac"] == "0a:58:0a:60:07:01"


def test_concurrent_netns_runs_all_succeed(named_ns):
    name = named_ns("n", create=False)
    want = {"name": name, "state": "present"}
    results = _race(lambda barrier: _converge(lambda s, w: _netns.netns_state(w["name"]), link_plan.plan_netns,
                                              want, barrier))
    assert all(ok for ok, _detail in results), results
    assert _netns.netns_exists(name)


def test_concurrent_pods_runs_all_succeed(prefix, named_ns, host_links, pod_bridge):
    pod = named_ns("p", create=False)
    host_links.append(prefix + "v")
    want = pod_plan.validate(pods_args(pod_bridge, [{"name": pod, "veth": prefix + "v", "address": "10.96.1.5"}]))
    results = _race(lambda barrier: _converge(readers.pods, pod_plan.plan_pods, want, barrier))
    assert all(ok for ok, _detail in results), results
    assert all(detail[:2] == ["netns_add", "veth_add"] for _ok, detail in results)
    with _netlink.Session() as session:
        cur = readers.pods(session, want)
        assert pod_plan.plan_pods(want, cur).actions == []
        place = cur["pods"][pod]["peer_at"]
    assert place["seen"] and place["netns"] == pod and place["link"]["name"] == "eth0"


# ------------------------------------------- ... and real conflicts still refused
def test_bridge_add_over_a_link_of_another_kind_is_still_refused(session, prefix, host_links):
    name = prefix + "b"
    host_links.append(name)
    session.apply([Action("veth_add", None, name, {"peer": prefix + "p", "peer_ns": None})])
    with pytest.raises(errors.KernelError) as err:
        session.apply([Action("bridge_add", None, name, {})])
    assert err.value.code == errno.EEXIST


def test_veth_add_over_another_pair_is_still_refused(session, named_ns, prefix, host_links):
    pod, other = named_ns("a"), named_ns("b")
    host = prefix + "v"
    host_links.append(host)
    foreign_pair(session, host, other)
    with pytest.raises(errors.KernelError) as err:
        session.apply([Action("veth_add", None, host, {"peer": "eth0", "peer_ns": pod})])
    assert err.value.code == errno.EEXIST
    # The same pair asked for again is what is there: fine.
    session.apply([Action("veth_add", None, host, {"peer": "eth0", "peer_ns": other})])


def test_netns_add_over_a_file_that_never_becomes_a_namespace_is_still_refused(session, named_ns, monkeypatch):
    name = named_ns("s", create=False)
    os.makedirs(_netns.NETNS_RUN_DIR, exist_ok=True)
    open(_netns.netns_path(name), "w").close()
    monkeypatch.setattr(changes, "NETNS_SETTLE", 0.2)
    with pytest.raises(errors.KernelError) as err:
        session.apply([Action("netns_add", None, name, {})])
    assert err.value.code == errno.EEXIST
    os.unlink(_netns.netns_path(name))
