# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Route validation and planning tables (pod_route), no kernel."""
from __future__ import annotations

import ipaddress

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.core import validate as v
from ansible_collections.podnet.mesh.plugins.module_utils.core.describe import describe_all
from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ValidationError
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import routes as route_plan

PROTO = 149


@pytest.mark.parametrize("route, expected", [
    ({"dst": "10.244.2.0/24", "via": "192.168.1.12"},
     {"dst": "10.244.2.0/24", "family": 4, "via": "192.168.1.12", "dev": None, "metric": 0}),
    ({"dst": "default", "via": "10.244.1.1"},
     {"dst": "default", "family": 4, "via": "10.244.1.1", "dev": None, "metric": 0}),
    ({"dst": "0.0.0.0/0", "dev": "eth0", "metric": 5},
     {"dst": "default", "family": 4, "via": None, "dev": "eth0", "metric": 5}),
    ({"dst": "fd00:2::/64", "via": "fd00::12"},
     {"dst": "fd00:2::/64", "family": 6, "via": "fd00::12", "dev": None, "metric": 1024}),
    ({"dst": "default", "via": "fd00::1"},
     {"dst": "default", "family": 6, "via": "fd00::1", "dev": None, "metric": 1024}),
])
def test_route_normalises(route, expected):
    assert v.route(route, "routes[0]") == expected


@pytest.mark.parametrize("route, message", [
    ({"dst": "10.244.2.0/24", "via": "fd00::1"}, "routes[0].via: 'fd00::1' is an IPv6 address but dst"),
    ({"dst": "10.244.2.1/24", "via": "192.168.1.12"}, "routes[0].dst: '10.244.2.1/24'"),
    ({"dst": "10.244.2.0/24"}, "routes[0]: "),
    ({"via": "192.168.1.12"}, "routes[0].dst: null is required"),
    ({"dst": "10.244.2.0/24", "via": "192.168.1.300"}, "routes[0].via: '192.168.1.300' is not an IP"),
    ({"dst": "10.244.2.0/24", "dev": "x" * 16}, "routes[0].dev: "),
    ({"dst": "10.244.2.0/24", "via": "192.168.1.12", "metric": -1}, "routes[0].metric: -1"),
    ({"dst": "10.244.2.0/24", "gw": "192.168.1.12"}, "routes[0]: "),
    ("10.244.2.0/24", "routes[0]: "),
])
def test_route_refuses(route, message):
    with pytest.raises(ValidationError) as err:
        v.route(route, "routes[0]")
    assert str(err.value).startswith(message)


def test_route_list_refuses_duplicate_destination():
    routes = [{"dst": "10.244.2.0/24", "via": "192.168.1.12"},
              {"dst": "10.244.3.0/24", "via": "192.168.1.13"},
              {"dst": "10.244.2.0/24", "via": "192.168.1.14"}]
    with pytest.raises(ValidationError) as err:
        v.route_list(routes)
    assert str(err.value).startswith("routes[2].dst: '10.244.2.0/24' is listed twice (also routes[0])")
    # The same destination with another metric is a different route.
    routes[2]["metric"] = 10
    assert len(v.route_list(routes)) == 3


def have(dst, via, dev="eth0", metric=0, proto=PROTO, family=4):
    return {"dst": dst, "family": family, "via": via, "dev": dev, "metric": metric, "proto": proto}


def cur(ours=(), foreign=(), connected=("192.168.1.0/24",), links=("eth0", "lo"), exists=True):
    return {"netns_exists": exists,
            "ours": dict((v.route_key(r), r) for r in ours),
            "foreign": dict((v.route_key(r), r) for r in foreign),
            "connected": [ipaddress.ip_network(n) for n in connected],
            "links": set(links)}


def want(routes, purge=False, state="present", netns=None):
    return {"netns": netns, "routes": v.route_list(routes), "purge": purge, "state": state,
            "proto": PROTO, "table": 254}


R2 = {"dst": "10.244.2.0/24", "via": "192.168.1.12"}
R3 = {"dst": "10.244.3.0/24", "via": "192.168.1.13"}


def ops(plan):
    return [(a.op, a.args["route"]["dst"], a.args["route"]["via"]) for a in plan.actions]


ROUTE_CASES = [
    ("add two", want([R2, R3]), cur(), [
        ("route_add", "10.244.2.0/24", "192.168.1.12"), ("route_add", "10.244.3.0/24", "192.168.1.13")]),
    ("converged", want([R2]), cur([have("10.244.2.0/24", "192.168.1.12")]), []),
    ("dev given and matching", want([dict(R2, dev="eth0")]), cur([have("10.244.2.0/24", "192.168.1.12")]), []),
    ("gateway changed: replace", want([R2]), cur([have("10.244.2.0/24", "192.168.1.99")]), [
        ("route_replace", "10.244.2.0/24", "192.168.1.12")]),
    ("no purge keeps others", want([R2]), cur([have("10.244.2.0/24", "192.168.1.12"),
                                               have("10.244.9.0/24", "192.168.1.19")]), []),
    ("purge removes ours first", want([R3], purge=True), cur([have("10.244.2.0/24", "192.168.1.12")]), [
        ("route_del", "10.244.2.0/24", "192.168.1.12"), ("route_add", "10.244.3.0/24", "192.168.1.13")]),
    ("purge never sees foreign", want([], purge=True),
     cur(foreign=[have("10.9.0.0/16", "192.168.1.1", proto=4)]), []),
    ("absent removes ours", want([R2, R3], state="absent"), cur([have("10.244.2.0/24", "192.168.1.12")]), [
        ("route_del", "10.244.2.0/24", "192.168.1.12")]),
    ("absent leaves foreign", want([R2], state="absent"),
     cur(foreign=[have("10.244.2.0/24", "192.168.1.12", proto=4)]), []),
    ("absent in a missing namespace", want([R2], state="absent", netns="red"), cur(exists=False), []),
    ("pod default route", want([{"dst": "default", "via": "10.244.1.1"}], netns="red"),
     cur(connected=("10.244.1.0/24",)), [("route_add", "default", "10.244.1.1")]),
]


@pytest.mark.parametrize("title, w, c, expected", ROUTE_CASES, ids=[x[0] for x in ROUTE_CASES])
def test_plan_routes(title, w, c, expected):
    assert ops(route_plan.plan_routes(w, c)) == expected


def test_plan_routes_results_and_diff():
    plan = route_plan.plan_routes(want([R3], purge=True), cur([have("10.244.2.0/24", "192.168.1.12")]))
    assert plan.before == {"routes": ["10.244.2.0/24 via 192.168.1.12 dev eth0 metric 0"]}
    assert plan.after == {"routes": ["10.244.3.0/24 via 192.168.1.13 metric 0"]}
    assert plan.details["added"] == [{"dst": "10.244.3.0/24", "via": "192.168.1.13", "dev": None, "metric": 0}]
    assert plan.details["removed"] == [{"dst": "10.244.2.0/24", "via": "192.168.1.12", "dev": "eth0", "metric": 0}]
    assert plan.details["routes"] == plan.details["added"]
    assert describe_all(plan.actions) == ["delete route 10.244.2.0/24 via 192.168.1.12 dev eth0 metric 0",
                                          "add route 10.244.3.0/24 via 192.168.1.13 metric 0"]


@pytest.mark.parametrize("w, c, message", [
    (want([R2]), cur(foreign=[have("10.244.2.0/24", "192.168.1.12", proto=4)]),
     "routes[0].dst: '10.244.2.0/24' already has a route with metric 0 in namespace host that podnet.mesh did not create"),
    (want([{"dst": "10.244.2.0/24", "via": "192.168.2.12"}]), cur(),
     "routes[0].via: '192.168.2.12' is not on a directly connected subnet in namespace host (connected: 192.168.1.0/24)"),
    (want([{"dst": "10.244.2.0/24", "dev": "eth9"}]), cur(), "routes[0].dev: 'eth9' does not exist"),
    (want([R2], netns="red"), cur(exists=False), "netns: 'red' does not exist"),
    (want([{"dst": "default", "via": "fe80::1"}]), cur(),
     "routes[0].via: 'fe80::1' is a link-local address: it is reachable on one interface only, so the route needs dev"),
])
def test_plan_routes_refuses(w, c, message):
    with pytest.raises(ValidationError) as err:
        route_plan.plan_routes(w, c)
    assert str(err.value).startswith(message)


def test_link_local_gateway_with_its_device_is_on_link():
    """fe80::/10 is on every IPv6 link: no connected network names it, and none needs to."""
    routes = [{"dst": "default", "via": "fe80::1", "dev": "eth0"}, {"dst": "fd00:2::/64", "via": "fe80::2", "dev": "eth0"}]
    plan = route_plan.plan_routes(want(routes), cur(connected=("192.168.1.0/24", "fd00:1::/64")))
    assert [(a.op, a.name) for a in plan.actions] == [("route_add", "default"), ("route_add", "fd00:2::/64")]
    assert plan.details["added"][0] == {"dst": "default", "via": "fe80::1", "dev": "eth0", "metric": 1024}


def test_thousand_routes_plan_in_one_pass():
    routes = [{"dst": "10.%d.%d.0/24" % (100 + i // 256, i % 256), "via": "192.168.1.12"} for i in range(1000)]
    plan = route_plan.plan_routes(want(routes), cur())
    assert len(plan.actions) == 1000 and len(plan.details["added"]) == 1000
    converged = cur([dict(r, dev="eth0", proto=PROTO) for r in v.route_list(routes)])
    assert route_plan.plan_routes(want(routes), converged).actions == []


# ------------------------------------------------ every route type holds its destination
def read_route(dst, proto=PROTO, kind="unicast", via=None, dev=None, metric=0, family=4):
    return {"dst": dst, "family": family, "via": via, "dev": dev, "metric": metric, "proto": proto, "type": kind}


def test_split_routes_ours_are_unicast_with_our_protocol():
    routes = [read_route("10.244.2.0/24", via="192.168.1.12"),
              read_route("10.244.3.0/24", kind="blackhole"),
              read_route("10.244.4.0/24", proto=4, via="192.168.1.14"),
              {"dst": "10.244.5.0/24", "family": 4, "via": "192.168.1.15", "dev": None, "metric": 0, "proto": PROTO}]
    ours, foreign = route_plan.split_routes(routes, PROTO)
    assert sorted(k[1] for k in ours) == ["10.244.2.0/24", "10.244.5.0/24"]
    assert sorted(k[1] for k in foreign) == ["10.244.3.0/24", "10.244.4.0/24"]


@pytest.mark.parametrize("kind, proto", [("blackhole", 4), ("unreachable", 3), ("prohibit", 4), ("throw", 4),
                                         ("blackhole", PROTO), ("local", 2)])
def test_a_route_of_another_type_to_a_listed_destination_is_a_conflict(kind, proto):
    ours, foreign = route_plan.split_routes([read_route("10.244.3.0/24", proto=proto, kind=kind)], PROTO)
    want = {"netns": None, "routes": v.route_list([{"dst": "10.244.3.0/24", "via": "192.168.1.13"}]),
            "purge": True, "state": "present", "proto": PROTO, "table": 254}
    with pytest.raises(ValidationError) as err:
        route_plan.plan_routes(want, {"netns_exists": True, "ours": ours, "foreign": foreign,
                                      "connected": [ipaddress.ip_network("192.168.1.0/24")], "links": None})
    assert str(err.value).startswith("routes[0].dst: '10.244.3.0/24' already has a route with metric 0")
    assert "(%s 10.244.3.0/24 metric 0, protocol %d)" % (kind, proto) in str(err.value)


def test_purge_leaves_a_blackhole_route_of_our_protocol_alone():
    ours, foreign = route_plan.split_routes([read_route("10.244.3.0/24", kind="blackhole")], PROTO)
    want = {"netns": None, "routes": [], "purge": True, "state": "present", "proto": PROTO, "table": 254}
    plan = route_plan.plan_routes(want, {"netns_exists": True, "ours": ours, "foreign": foreign,
                                         "connected": [], "links": None})
    assert plan.actions == []
