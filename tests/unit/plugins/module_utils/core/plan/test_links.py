# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Planning tables: desired + current -> actions and diff, no kernel, no root."""
from __future__ import annotations

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.core import model
from ansible_collections.podnet.mesh.plugins.module_utils.core.describe import describe_all
from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ValidationError
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import links
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import node as node_plan


def link(name, kind, ifindex=10, **kw):
    base = {"name": name, "ifindex": ifindex, "kind": kind, "mac": "02:00:00:00:00:%02x" % ifindex,
            "mtu": 1500, "up": True, "master": None, "link": None, "link_netnsid": None,
            "stp": False if kind == "bridge" else None, "hairpin": None, "addresses": []}
    base.update(kw)
    return base


def ops(plan):
    return [(a.op, a.ns, a.name, a.args) for a in plan.actions]


# ---------------------------------------------------------------- netns
@pytest.mark.parametrize("state, exists, expected", [
    ("present", False, [("netns_add", None, "red", {})]),
    ("present", True, []),
    ("absent", True, [("netns_del", None, "red", {})]),
    ("absent", False, []),
])
def test_plan_netns(state, exists, expected):
    plan = links.plan_netns({"name": "red", "state": state}, exists)
    assert ops(plan) == expected
    assert plan.before == {"name": "red", "state": "present" if exists else "absent"}
    assert plan.after == {"name": "red", "state": state}


# --------------------------------------------------------------- bridge
def bridge_want(**kw):
    want = {"name": "cni0", "state": "present", "addresses": ["10.244.1.1/24"],
            "mtu": None, "stp": False, "up": True}
    want.update(kw)
    return want


BRIDGE_CASES = [
    ("create", bridge_want(), None, [
        ("bridge_add", None, "cni0", {}),
        ("addr_add", None, "cni0", {"address": "10.244.1.1/24", "broadcast": "10.244.1.255"}),
        ("link_set", None, "cni0", {"up": True})]),
    ("create with mtu and stp", bridge_want(mtu=1450, stp=True, addresses=None), None, [
        ("bridge_add", None, "cni0", {}),
        ("link_set", None, "cni0", {"mtu": 1450, "stp": True}),
        ("link_set", None, "cni0", {"up": True})]),
    ("converged", bridge_want(), link("cni0", "bridge", addresses=["10.244.1.1/24"]), []),
    ("addresses not managed", bridge_want(addresses=None),
     link("cni0", "bridge", addresses=["10.9.9.9/24"]), []),
    ("address replaced", bridge_want(),
     link("cni0", "bridge", addresses=["10.9.9.9/24"]), [
         ("addr_del", None, "cni0", {"address": "10.9.9.9/24"}),
         ("addr_add", None, "cni0", {"address": "10.244.1.1/24", "broadcast": "10.244.1.255"})]),
    ("prefix change is a replace", bridge_want(),
     link("cni0", "bridge", addresses=["10.244.1.1/16"]), [
         ("addr_del", None, "cni0", {"address": "10.244.1.1/16"}),
         ("addr_add", None, "cni0", {"address": "10.244.1.1/24", "broadcast": "10.244.1.255"})]),
    ("mtu and down", bridge_want(mtu=9000, up=False),
     link("cni0", "bridge", addresses=["10.244.1.1/24"]), [
         ("link_set", None, "cni0", {"mtu": 9000}),
         ("link_set", None, "cni0", {"up": False})]),
    ("stp off", bridge_want(), link("cni0", "bridge", stp=True, addresses=["10.244.1.1/24"]), [
        ("link_set", None, "cni0", {"stp": False})]),
    ("created pinned", bridge_want(mac="0a:58:0a:f4:01:01"), None, [
        ("bridge_add", None, "cni0", {"mac": "0a:58:0a:f4:01:01"}),
        ("addr_add", None, "cni0", {"address": "10.244.1.1/24", "broadcast": "10.244.1.255"}),
        ("link_set", None, "cni0", {"up": True})]),
    ("pinned already", bridge_want(mac="0a:58:0a:f4:01:01"),
     link("cni0", "bridge", mac="0A:58:0A:F4:01:01", addresses=["10.244.1.1/24"]), []),
    ("pinned now", bridge_want(mac="0a:58:0a:f4:01:01"),
     link("cni0", "bridge", mac="3e:11:22:33:44:55", addresses=["10.244.1.1/24"]), [
         ("link_set", None, "cni0", {"mac": "0a:58:0a:f4:01:01"})]),
    ("slash 31 has no broadcast", bridge_want(addresses=["10.244.1.0/31"]), link("cni0", "bridge"), [
        ("addr_add", None, "cni0", {"address": "10.244.1.0/31"})]),
    ("absent", bridge_want(state="absent"), link("cni0", "bridge"), [
        ("link_del", None, "cni0", {})]),
    ("absent already", bridge_want(state="absent"), None, []),
]


@pytest.mark.parametrize("title, want, current, expected", BRIDGE_CASES, ids=[c[0] for c in BRIDGE_CASES])
def test_plan_bridge(title, want, current, expected):
    plan = links.plan_bridge(want, current)
    assert ops(plan) == expected
    assert plan.changed == bool(expected)


def test_plan_bridge_diff_and_after():
    plan = links.plan_bridge(bridge_want(mtu=1450), None)
    assert plan.before == {"name": "cni0", "state": "absent"}
    assert plan.after == {"name": "cni0", "state": "present", "mac": None, "mtu": 1450, "stp": False,
                          "up": True, "addresses": ["10.244.1.1/24"]}
    converged = link("cni0", "bridge", mac=None, mtu=1450, addresses=["10.244.1.1/24"])
    again = links.plan_bridge(bridge_want(mtu=1450), converged)
    assert again.before == again.after == plan.after


@pytest.mark.parametrize("state", ["present", "absent"])
def test_plan_bridge_refuses_other_kind(state):
    with pytest.raises(ValidationError) as err:
        links.plan_bridge(bridge_want(state=state), link("cni0", "veth"))
    assert str(err.value).startswith("name: 'cni0' already exists")
    assert "kind veth, not a bridge" in str(err.value)


# ----------------------------------------------------------------- veth
def veth_want(**kw):
    want = {"name": "veth-red", "peer": "eth0", "netns": "red", "master": "cni0", "mtu": None,
            "hairpin": None, "up": True, "state": "present"}
    want.update(kw)
    return want


HOST = link("veth-red", "veth", ifindex=7, master="cni0", link=2, link_netnsid=0, hairpin=False)
PEER = link("eth0", "veth", ifindex=2, link=7, link_netnsid=0)
BR = link("cni0", "bridge", ifindex=3)


_DEFAULT = object()


def veth_cur(host=_DEFAULT, peer=_DEFAULT, stray=None, exists=True, master=_DEFAULT):
    return {"host": HOST if host is _DEFAULT else host, "peer": PEER if peer is _DEFAULT else peer,
            "stray_peer": stray, "netns_exists": exists, "master": BR if master is _DEFAULT else master}


VETH_CASES = [
    ("create", veth_want(), veth_cur(host=None, peer=None), [
        ("veth_add", None, "veth-red", {"peer": "eth0", "peer_ns": "red"}),
        ("link_set", None, "veth-red", {"master": "cni0"}),
        ("link_set", None, "veth-red", {"up": True}),
        ("link_set", "red", "eth0", {"up": True})]),
    ("converged", veth_want(), veth_cur(), []),
    ("re-attach to master", veth_want(), veth_cur(host=dict(HOST, master="br-old")), [
        ("link_set", None, "veth-red", {"master": "cni0"})]),
    ("peer not yet moved", veth_want(),
     veth_cur(host=dict(HOST, link=8, link_netnsid=None), peer=None,
              stray=link("eth0", "veth", ifindex=8, link=7)), [
         ("link_move", None, "eth0", {"to_ns": "red"}),
         ("link_set", "red", "eth0", {"up": True})]),
    ("peer lost: recreate", veth_want(), veth_cur(peer=None), [
        ("link_del", None, "veth-red", {}),
        ("veth_add", None, "veth-red", {"peer": "eth0", "peer_ns": "red"}),
        ("link_set", None, "veth-red", {"master": "cni0"}),
        ("link_set", None, "veth-red", {"up": True}),
        ("link_set", "red", "eth0", {"up": True})]),
    ("mtu both ends", veth_want(mtu=1450), veth_cur(), [
        ("link_set", None, "veth-red", {"mtu": 1450}),
        ("link_set", "red", "eth0", {"mtu": 1450})]),
    ("hairpin on", veth_want(hairpin=True), veth_cur(), [
        ("brport_set", None, "veth-red", {"hairpin": True})]),
    ("hairpin kept when unmanaged", veth_want(), veth_cur(host=dict(HOST, hairpin=True)), []),
    ("hairpin on new bridge", veth_want(hairpin=True),
     veth_cur(host=dict(HOST, master="br-old", hairpin=True)), [
         ("link_set", None, "veth-red", {"master": "cni0"}),
         ("brport_set", None, "veth-red", {"hairpin": True})]),
    ("down", veth_want(up=False), veth_cur(), [
        ("link_set", None, "veth-red", {"up": False}),
        ("link_set", "red", "eth0", {"up": False})]),
    ("no master given: left alone", veth_want(master=None), veth_cur(host=dict(HOST, master="other")), []),
    ("both ends in host", veth_want(netns=None, peer="veth-red-p", master=None),
     veth_cur(host=dict(HOST, link=8, link_netnsid=None),
              peer=link("veth-red-p", "veth", ifindex=8, link=7)), []),
    ("absent", veth_want(state="absent"), veth_cur(), [("link_del", None, "veth-red", {})]),
    ("absent, namespace gone", veth_want(state="absent"),
     veth_cur(host=None, peer=None, exists=False), []),
]


@pytest.mark.parametrize("title, want, cur, expected", VETH_CASES, ids=[c[0] for c in VETH_CASES])
def test_plan_veth(title, want, cur, expected):
    assert ops(links.plan_veth(want, cur)) == expected


def test_plan_veth_diff():
    plan = links.plan_veth(veth_want(), veth_cur(host=dict(HOST, master="br-old")))
    assert plan.before["master"] == "br-old"
    assert plan.after["master"] == "cni0"
    assert plan.after["netns"] == "red"
    created = links.plan_veth(veth_want(), veth_cur(host=None, peer=None))
    assert created.before == {"name": "veth-red", "state": "absent"}
    assert created.after == {"name": "veth-red", "state": "present", "peer": "eth0", "netns": "red",
                             "master": "cni0", "mtu": 1500, "hairpin": False, "up": True}


VETH_REFUSALS = [
    ("name is a bridge", veth_want(), veth_cur(host=link("veth-red", "bridge")), "name: 'veth-red'"),
    ("namespace missing", veth_want(), veth_cur(host=None, peer=None, exists=False), "netns: 'red'"),
    ("master missing", veth_want(), veth_cur(master=None), "master: 'cni0' does not exist"),
    ("master not a bridge", veth_want(), veth_cur(master=link("cni0", "veth")), "master: 'cni0'"),
    ("peer name taken", veth_want(), veth_cur(host=None, peer=link("eth0", "macvlan")),
     "peer: 'eth0' already exists in namespace red"),
    ("hairpin without bridge", veth_want(master=None, hairpin=True), veth_cur(host=dict(HOST, master=None)),
     "hairpin: true needs a bridge port"),
    ("same names in one namespace", veth_want(netns=None, peer="veth-red", master=None),
     veth_cur(host=None, peer=None), "peer: 'veth-red' must differ"),
]


@pytest.mark.parametrize("title, want, cur, message", VETH_REFUSALS, ids=[c[0] for c in VETH_REFUSALS])
def test_plan_veth_refuses(title, want, cur, message):
    with pytest.raises(ValidationError) as err:
        links.plan_veth(want, cur)
    assert str(err.value).startswith(message)


# ------------------------------------------------------------ addresses
def addr_want(**kw):
    want = {"netns": "red", "interface": "eth0", "addresses": ["10.244.1.2/24"], "up": True,
            "state": "present"}
    want.update(kw)
    return want


def addr_cur(link_=None, lo_up=True, exists=True):
    return {"netns_exists": exists, "link": link_, "lo": link("lo", None, ifindex=1, up=lo_up)}


ETH0 = link("eth0", "veth", ifindex=2, up=False)

ADDR_CASES = [
    ("fresh pod", addr_want(), addr_cur(ETH0, lo_up=False), [
        ("addr_add", "red", "eth0", {"address": "10.244.1.2/24", "broadcast": "10.244.1.255"}),
        ("link_set", "red", "eth0", {"up": True}),
        ("link_set", "red", "lo", {"up": True})]),
    ("converged", addr_want(), addr_cur(dict(ETH0, up=True, addresses=["10.244.1.2/24"])), []),
    ("extra address removed", addr_want(),
     addr_cur(dict(ETH0, up=True, addresses=["10.244.1.2/24", "10.244.1.9/24"])), [
         ("addr_del", "red", "eth0", {"address": "10.244.1.9/24"})]),
    ("addresses unmanaged", addr_want(addresses=None),
     addr_cur(dict(ETH0, up=True, addresses=["10.244.1.9/24"])), []),
    ("down leaves lo", addr_want(up=False), addr_cur(dict(ETH0, up=True, addresses=["10.244.1.2/24"]),
                                                     lo_up=False), [
        ("link_set", "red", "eth0", {"up": False})]),
    ("absent listed", addr_want(state="absent", addresses=["10.244.1.2/24", "10.244.1.7/24"]),
     addr_cur(dict(ETH0, addresses=["10.244.1.2/24", "10.244.1.9/24"])), [
         ("addr_del", "red", "eth0", {"address": "10.244.1.2/24"})]),
    ("absent all", addr_want(state="absent", addresses=None),
     addr_cur(dict(ETH0, addresses=["10.244.1.2/24", "10.244.1.9/24"])), [
         ("addr_del", "red", "eth0", {"address": "10.244.1.2/24"}),
         ("addr_del", "red", "eth0", {"address": "10.244.1.9/24"})]),
    ("absent, interface gone", addr_want(state="absent"), addr_cur(None), []),
    ("absent, namespace gone", addr_want(state="absent"), addr_cur(None, exists=False), []),
]


@pytest.mark.parametrize("title, want, cur, expected", ADDR_CASES, ids=[c[0] for c in ADDR_CASES])
def test_plan_interface_addresses(title, want, cur, expected):
    assert ops(links.plan_interface_addresses(want, cur)) == expected


@pytest.mark.parametrize("cur, message", [
    (addr_cur(None), "interface: 'eth0' does not exist in namespace red"),
    (addr_cur(None, exists=False), "netns: 'red' does not exist"),
])
def test_plan_interface_addresses_refuses(cur, message):
    with pytest.raises(ValidationError) as err:
        links.plan_interface_addresses(addr_want(), cur)
    assert str(err.value).startswith(message)


def test_describe_every_action():
    plan = model.Plan({})
    plan.add("netns_add", None, "red")
    plan.add("veth_add", None, "v", peer="eth0", peer_ns="red")
    plan.add("link_set", "red", "eth0", up=True, mtu=1400)
    plan.add("addr_del", None, "cni0", address="10.0.0.1/24")
    assert describe_all(plan.actions) == [
        "create namespace red",
        "create veth v with peer eth0 in namespace red",
        "set mtu=1400, up=True on link eth0 in namespace red",
        "delete address 10.0.0.1/24 from cni0",
    ]


@pytest.mark.parametrize("state, expected", [
    ("present", ["netns_clear", "netns_add"]),
    ("absent", ["netns_clear"]),
])
def test_plan_netns_replaces_a_leftover_file(state, expected):
    plan = links.plan_netns({"name": "red", "state": state}, model.STALE)
    assert [a.op for a in plan.actions] == expected
    assert plan.before == {"name": "red", "state": "stale"}
    assert describe_all(plan.actions)[0] == "remove leftover file /run/netns/red (not a namespace)"


def test_check_mode_assumes_what_earlier_tasks_create():
    want = veth_want()
    plan = links.plan_veth(want, veth_cur(host=None, peer=None, exists=False, master=None), assume_missing=True)
    assert [a.op for a in plan.actions][0] == "veth_add"
    plan = links.plan_interface_addresses(addr_want(), addr_cur(None, exists=False), assume_missing=True)
    assert [a.op for a in plan.actions] == ["addr_add", "link_set"]


@pytest.mark.parametrize("address, mac", [
    ("10.244.1.2/24", "0a:58:0a:f4:01:02"),
    ("10.244.255.254", "0a:58:0a:f4:ff:fe"),
    ("fd00::2/64", "0a:58:00:00:00:02"),
    ("fd00:10:244:1::a:2", "0a:58:00:0a:00:02"),
])
def test_pod_mac_follows_the_address(address, mac):
    assert model.pod_mac(address) == mac


def test_a_dual_stack_mac_derives_from_the_ipv4_address():
    assert model.mac_source(["fd00::2/64", "10.244.1.2/24"]) == "10.244.1.2/24"
    assert model.mac_source(["fd00::2/64"]) == "fd00::2/64"
    assert model.mac_source([]) is None
    assert model.pinned_bridge_mac(["fd00:10:244:1::1/64", "10.244.1.1/24"]) == "0a:58:0a:f4:01:01"
    assert model.pinned_bridge_mac(["fd00:10:244:1::1/64"]) == "0a:58:00:00:00:01"


def test_node_view_takes_the_default_route_interface_address():
    links = {"lo": {"ifindex": 1}, "eth0": {"ifindex": 2}, "eth1": {"ifindex": 3}}
    addresses = [(1, "127.0.0.1/8"), (2, "192.0.2.5/24"), (2, "198.51.100.5/24"), (3, "203.0.113.7/24"),
                 (3, "fd00::7/64")]
    routes = [
        {"dst": "default", "family": 4, "via": "203.0.113.1", "dev": "eth1", "metric": 200, "proto": 4},
        {"dst": "default", "family": 4, "via": "192.0.2.1", "dev": "eth0", "metric": 100, "proto": 4},
        {"dst": "10.0.0.0/8", "family": 4, "via": "192.0.2.1", "dev": "eth0", "metric": 0, "proto": 4},
    ]
    view = node_plan.node_view(links, addresses, routes)
    assert view["default_ipv4"] == {"address": "192.0.2.5", "prefix": 24, "interface": "eth0",
                                    "gateway": "192.0.2.1"}
    assert view["networks"] == ["127.0.0.0/8", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "fd00::/64"]
    assert view["addresses"][4] == {"interface": "eth1", "address": "fd00::7/64"}
    assert view["default_ipv6"] is None
    routes.append({"dst": "default", "family": 6, "via": "fd00::1", "dev": "eth1", "metric": 1024, "proto": 4})
    assert node_plan.node_view(links, addresses, routes)["default_ipv6"] == {
        "address": "fd00::7", "prefix": 64, "interface": "eth1", "gateway": "fd00::1"}


def test_node_view_without_a_usable_default_route():
    links = {"eth0": {"ifindex": 2}, "eth1": {"ifindex": 3}}
    # The default route's interface has only IPv6: no IPv4 address to take.
    routes = [{"dst": "default", "family": 4, "via": None, "dev": "eth1", "metric": 0, "proto": 4}]
    view = node_plan.node_view(links, [(2, "192.0.2.5/24"), (3, "fd00::7/64")], routes)
    assert view["default_ipv4"] is None
    assert node_plan.node_view(links, [(2, "192.0.2.5/24")], [])["default_ipv4"] is None


# ------------------------------------------------ veth: whose pair it is
def at(netns, peer, seen=True):
    """Where the host end's peer is, as the kernel layer proves it."""
    return {"seen": seen, "netns": netns if seen else None, "link": peer if seen else None}


def owned_cur(peer_at, host=_DEFAULT, peer=_DEFAULT, **kw):
    cur = veth_cur(host=host, peer=peer, **kw)
    cur["peer_at"] = peer_at
    return cur


ELSEWHERE = link("eth0", "veth", ifindex=2, link=7, link_netnsid=0)
RECREATE = [
    ("link_del", None, "veth-red", {}),
    ("veth_add", None, "veth-red", {"peer": "eth0", "peer_ns": "red"}),
    ("link_set", None, "veth-red", {"master": "cni0"}),
    ("link_set", None, "veth-red", {"up": True}),
    ("link_set", "red", "eth0", {"up": True})]

OWNED_CASES = [
    ("paired", veth_want(), owned_cur(at("red", PEER)), []),
    ("paired, absent", veth_want(state="absent"), owned_cur(at("red", PEER)), [("link_del", None, "veth-red", {})]),
    ("peer lost (in no namespace we see): made again", veth_want(), owned_cur(at(None, None, seen=False), peer=None),
     RECREATE),
    ("peer lost, absent", veth_want(state="absent"), owned_cur(at(None, None, seen=False), peer=None),
     [("link_del", None, "veth-red", {})]),
    ("peer renamed in the pair's namespace: made again", veth_want(),
     owned_cur(at("red", dict(PEER, name="eth9")), peer=None), RECREATE),
    ("peer renamed in the pair's namespace, absent", veth_want(state="absent"),
     owned_cur(at("red", dict(PEER, name="eth9")), peer=None), [("link_del", None, "veth-red", {})]),
    ("peer never moved: moved", veth_want(),
     owned_cur(at(None, link("eth0", "veth", ifindex=8, link=7)), host=dict(HOST, link=8, link_netnsid=None),
               peer=None), [("link_move", None, "eth0", {"to_ns": "red"}), ("link_set", "red", "eth0", {"up": True})]),
    ("both ends in host, paired", veth_want(netns=None, peer="veth-red-p", master=None),
     owned_cur(at(None, link("veth-red-p", "veth", ifindex=8, link=7)), host=dict(HOST, link=8, link_netnsid=None),
               peer=link("veth-red-p", "veth", ifindex=8, link=7)), []),
    ("both ends in host, peer lost: made again", veth_want(netns=None, peer="veth-red-p", master=None),
     owned_cur(at(None, None, seen=False), peer=None), [
         ("link_del", None, "veth-red", {}),
         ("veth_add", None, "veth-red", {"peer": "veth-red-p", "peer_ns": None}),
         ("link_set", None, "veth-red", {"up": True}),
         ("link_set", None, "veth-red-p", {"up": True})]),
]


@pytest.mark.parametrize("title, want, cur, expected", OWNED_CASES, ids=[c[0] for c in OWNED_CASES])
def test_plan_veth_deletes_only_a_pair_that_is_provably_the_one_asked_for(title, want, cur, expected):
    assert ops(links.plan_veth(want, cur)) == expected


FOREIGN_CASES = [
    ("peer in another namespace", veth_want(), at("blue", ELSEWHERE), "eth0 is in namespace blue, not eth0 in namespace red"),
    ("peer in another namespace file", veth_want(), at("/run/docker/netns/4f2a", ELSEWHERE),
     "eth0 is in namespace file /run/docker/netns/4f2a"),
    ("peer in the host namespace under another name", veth_want(), at(None, dict(ELSEWHERE, name="vx")),
     "vx is in the host namespace, not eth0 in namespace red"),
    ("host pair: peer renamed", veth_want(netns=None, peer="veth-red-p", master=None),
     at(None, dict(ELSEWHERE, name="other")), "other is in the host namespace, not veth-red-p in the host namespace"),
    ("host pair: peer in a namespace", veth_want(netns=None, peer="veth-red-p", master=None),
     at("red", dict(ELSEWHERE, name="veth-red-p")), "veth-red-p is in namespace red"),
]


@pytest.mark.parametrize("state", ["present", "absent"])
@pytest.mark.parametrize("title, want, peer_at, message", FOREIGN_CASES, ids=[c[0] for c in FOREIGN_CASES])
def test_plan_veth_refuses_a_pair_of_the_same_name_whose_peer_is_elsewhere(title, want, peer_at, message, state):
    want = dict(want, state=state)
    with pytest.raises(ValidationError) as err:
        links.plan_veth(want, owned_cur(peer_at, peer=None))
    text = str(err.value)
    assert text.startswith("name: 'veth-red' is a veth whose peer "), text
    assert message in text and text.endswith("nothing was changed")


def test_plan_veth_without_peer_location_presumes_from_the_links():
    """Callers that own the name outright (CNI's hashed names) keep the name-based pairing."""
    assert ops(links.plan_veth(veth_want(), veth_cur())) == []
    assert ops(links.plan_veth(veth_want(), veth_cur(peer=None)))[0] == ("link_del", None, "veth-red", {})
