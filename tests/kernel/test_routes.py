# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""pod_route's layers against the real kernel: batches, purge, ownership."""
from __future__ import annotations

import errno

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.core import errors
from ansible_collections.podnet.mesh.plugins.module_utils.core import model
from ansible_collections.podnet.mesh.plugins.module_utils.core import validate as v
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import routes as route_plan

PROTO = 149


def want(routes, purge=False, netns=None, state="present"):
    return {"netns": netns, "routes": v.route_list(routes), "purge": purge, "state": state,
            "proto": PROTO, "table": 254}


def read(session, w):
    ns = w["netns"]
    handle = session.ns(ns)
    ours, foreign = route_plan.split_routes(handle.routes(w["table"]), PROTO)
    return {"netns_exists": True, "ours": ours, "foreign": foreign,
            "connected": handle.networks(), "links": set(handle.links())}


@pytest.fixture
def node(session, prefix, host_links):
    """The test's namespace as a node: a bridge holding 192.168.1.11/24, plus a foreign route."""
    br = prefix + "n"
    host_links.append(br)
    session.apply([
        model.Action("bridge_add", None, br, {}),
        model.Action("addr_add", None, br, {"address": "192.168.1.11/24"}),
        model.Action("link_set", None, br, {"up": True}),
    ])
    ipr = session.ns(None).ipr
    # Another tool's route (protocol static), for a destination we also list.
    ipr.route("add", dst="10.99.0.0", dst_len=16, gateway="192.168.1.1", proto=4)
    yield br
    for route in session.ns(None).routes(254):
        if route["proto"] in (PROTO, 4) and route["dst"] != "default":
            dst, dummy, plen = route["dst"].partition("/")
            ipr.route("del", dst=dst, dst_len=int(plen), proto=route["proto"])


def converge(session, w):
    first = route_plan.plan_routes(w, read(session, w))
    session.apply(first.actions)
    return first, route_plan.plan_routes(w, read(session, w))


def mesh(count, via="192.168.1.12"):
    return [{"dst": "10.%d.%d.0/24" % (100 + i // 256, i % 256), "via": via} for i in range(count)]


def test_thousand_routes_batched_then_unchanged(session, node):
    first, second = converge(session, want(mesh(1000)))
    assert len(first.actions) == 1000
    assert second.actions == []
    ours = [r for r in session.ns(None).routes(254) if r["proto"] == PROTO]
    assert len(ours) == 1000
    assert set(r["via"] for r in ours) == {"192.168.1.12"}


def test_gateway_change_replaces_without_duplicates(session, node):
    converge(session, want(mesh(3)))
    first, second = converge(session, want(mesh(3, via="192.168.1.13")))
    assert [a.op for a in first.actions] == ["route_replace"] * 3
    assert second.actions == []
    ours = [r for r in session.ns(None).routes(254) if r["proto"] == PROTO]
    assert sorted((r["dst"], r["via"]) for r in ours) == [
        ("10.100.%d.0/24" % i, "192.168.1.13") for i in range(3)]


def test_purge_removes_stale_ours_and_leaves_foreign(session, node):
    converge(session, want(mesh(5)))
    first, second = converge(session, want(mesh(2), purge=True))
    assert [a.op for a in first.actions] == ["route_del"] * 3
    assert second.actions == []
    routes = session.ns(None).routes(254)
    assert len([r for r in routes if r["proto"] == PROTO]) == 2
    assert [r for r in routes if r["dst"] == "10.99.0.0/16"][0]["proto"] == 4


def test_foreign_route_for_a_listed_destination_is_refused(session, node):
    with pytest.raises(v.ValidationError) as err:
        route_plan.plan_routes(want([{"dst": "10.99.0.0/16", "via": "192.168.1.12"}]),
                               read(session, want([])))
    assert "did not create" in str(err.value)


def test_delete_tagged_with_our_protocol_cannot_remove_a_foreign_route(session, node):
    foreign = {"dst": "10.99.0.0/16", "family": 4, "via": "192.168.1.1", "dev": None, "metric": 0}
    action = model.Action("route_del", None, foreign["dst"],
                          {"route": foreign, "table": 254, "proto": PROTO})
    with pytest.raises(errors.KernelError) as err:
        session.apply([action])
    assert err.value.code == errno.ESRCH
    assert any(r["dst"] == "10.99.0.0/16" for r in session.ns(None).routes(254))


def test_batch_error_names_the_route_and_keeps_count_of_what_was_done(session, node):
    good = v.route_list(mesh(2))
    bad = v.route({"dst": "10.250.0.0/24", "via": "172.31.0.1"}, "routes[2]")
    actions = [model.Action("route_add", None, r["dst"], {"route": r, "table": 254, "proto": PROTO})
               for r in good + [bad]]
    with pytest.raises(errors.KernelError) as err:
        session.apply(actions)
    assert err.value.code == errno.ENETUNREACH
    assert "add route 10.250.0.0/24 via 172.31.0.1" in str(err.value)
    assert session.applied[-2:] == actions[:2]


def test_pod_default_route_in_a_named_namespace(session, named_ns):
    pod = named_ns("p")
    session.apply([
        model.Action("addr_add", pod, "lo", {"address": "10.244.1.2/24"}),
        model.Action("link_set", pod, "lo", {"up": True}),
    ])
    w = want([{"dst": "default", "via": "10.244.1.1"}], netns=pod)
    first, second = converge(session, w)
    assert [a.op for a in first.actions] == ["route_add"]
    assert second.actions == []
    default = [r for r in session.ns(pod).routes(254, families=(4,)) if r["dst"] == "default"]
    assert default == [{"dst": "default", "family": 4, "via": "10.244.1.1", "dev": "lo",
                        "metric": 0, "proto": PROTO, "type": "unicast"}]
