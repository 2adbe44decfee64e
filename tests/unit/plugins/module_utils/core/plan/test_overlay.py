# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The VXLAN overlay's validation and plans (no kernel)."""
from __future__ import annotations

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.core import model
from ansible_collections.podnet.mesh.plugins.module_utils.core.describe import describe_all
from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ConflictError, ValidationError
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import overlay

PEER3 = {"node_ip": "192.168.2.13", "vtep": ["10.244.3.0", "fd00:10:244:3::"]}


def params(**kw):
    p = {"name": "podnet.vxlan", "vni": 1, "port": 8472, "local": "192.168.1.11", "dev": None, "mac": None,
         "mtu": None, "peers": [PEER3], "purge": True, "state": "present"}
    p.update(kw)
    return p


def converged():
    vxlan = {"vni": 1, "port": 8472, "local": "192.168.1.11", "link": None, "learning": False}
    link = {"name": "podnet.vxlan", "kind": "vxlan", "alias": overlay.OWNER_ALIAS, "mac": "0e:58:c0:a8:01:0b",
            "mtu": 1450, "up": True, "vxlan": vxlan}
    return {"link": link, "dev_index": None, "fdb": [{"mac": "0e:58:c0:a8:02:0d", "dst": "192.168.2.13"}],
            "neighbours": [{"address": "10.244.3.0", "mac": "0e:58:c0:a8:02:0d", "permanent": True},
                           {"address": "fd00:10:244:3::", "mac": "0e:58:c0:a8:02:0d", "permanent": True}]}


def test_vtep_macs_derive_from_node_addresses():
    assert model.vtep_mac("192.168.1.11") == "0e:58:c0:a8:01:0b"
    assert model.vtep_mac("2001:db8:1::11") == "0e:58:00:00:00:11"


def test_new_overlay_in_kernel_order():
    empty = {"link": None, "dev_index": None, "fdb": [], "neighbours": []}
    plan = overlay.plan_overlay(overlay.validate(params()), empty)
    assert describe_all(plan.actions) == [
        "create vxlan podnet.vxlan with VNI 1, port 8472, local 192.168.1.11, MAC 0e:58:c0:a8:01:0b",
        "set up=True on link podnet.vxlan",
        "add forwarding entry 0e:58:c0:a8:02:0d dst 192.168.2.13 to podnet.vxlan",
        "set neighbour 10.244.3.0 lladdr 0e:58:c0:a8:02:0d (permanent) on podnet.vxlan",
        "set neighbour fd00:10:244:3:: lladdr 0e:58:c0:a8:02:0d (permanent) on podnet.vxlan"]
    assert plan.before == {"name": None, "state": "absent"}
    assert plan.after["fdb"] == ["0e:58:c0:a8:02:0d dst 192.168.2.13"]
    assert plan.details["overlay"]["peers"] == [dict(PEER3, mac="0e:58:c0:a8:02:0d")]


def test_converged_overlay_plans_nothing():
    assert overlay.plan_overlay(overlay.validate(params()), converged()).actions == []


def test_peer_that_left_is_purged_and_a_moved_peer_follows():
    cur = converged()
    cur["fdb"].append({"mac": "0e:58:c0:a8:02:0e", "dst": "192.168.2.14"})
    cur["neighbours"].append({"address": "10.244.4.0", "mac": "0e:58:c0:a8:02:0e", "permanent": True})
    moved = dict(PEER3, node_ip="192.168.3.13", mac="0e:58:c0:a8:02:0d")
    plan = overlay.plan_overlay(overlay.validate(params(peers=[moved])), cur)
    assert describe_all(plan.actions) == [
        "delete forwarding entry 0e:58:c0:a8:02:0d dst 192.168.2.13 from podnet.vxlan",
        "delete forwarding entry 0e:58:c0:a8:02:0e dst 192.168.2.14 from podnet.vxlan",
        "delete neighbour 10.244.4.0 on podnet.vxlan",
        "add forwarding entry 0e:58:c0:a8:02:0d dst 192.168.3.13 to podnet.vxlan"]
    kept = overlay.plan_overlay(overlay.validate(params(purge=False)), cur)
    assert kept.actions == [] and "10.244.4.0 lladdr 0e:58:c0:a8:02:0e" in kept.after["neighbours"]


def test_changed_tunnel_is_made_again_and_mtu_changes_in_place():
    plan = overlay.plan_overlay(overlay.validate(params(vni=7)), converged())
    assert [a.op for a in plan.actions][:3] == [model.Op.LINK_DEL, model.Op.VXLAN_ADD, model.Op.LINK_SET]
    plan = overlay.plan_overlay(overlay.validate(params(mtu=1400)), converged())
    assert describe_all(plan.actions) == ["set mtu=1400 on link podnet.vxlan"]


def test_absent_deletes_the_device():
    plan = overlay.plan_overlay(overlay.validate(params(state="absent", local=None)), converged())
    assert describe_all(plan.actions) == ["delete link podnet.vxlan"]
    assert overlay.plan_overlay(overlay.validate(params(state="absent")), {"link": None}).actions == []


@pytest.mark.parametrize("cur, message", [
    (dict(converged(), link=dict(converged()["link"], alias=None)),
     "name: 'podnet.vxlan' is a vxlan link that podnet.mesh did not create (its alias is unset"),
    (dict(converged(), link=dict(converged()["link"], kind="bridge")),
     "name: 'podnet.vxlan' already exists as a link of kind bridge, not a vxlan"),
])
def test_a_link_not_ours_is_refused(cur, message):
    with pytest.raises(ConflictError) as err:
        overlay.plan_overlay(overlay.validate(params()), cur)
    assert str(err.value).startswith(message)


@pytest.mark.parametrize("kw, message", [
    ({"local": None}, "local: null is required"),
    ({"vni": 0}, "vni: 0 must be an integer from 1 to 16777215"),
    ({"port": 70000}, "port: 70000 must be an integer from 1 to 65535"),
    ({"peers": [dict(PEER3, node_ip="2001:db8::13")]}, "peers[0].node_ip: '2001:db8::13' is IPv6 but local"),
    ({"peers": [dict(PEER3, node_ip="192.168.1.11")]}, "peers[0].node_ip: '192.168.1.11' is this node's own address"),
    ({"peers": [PEER3, PEER3]}, "peers[1].node_ip: '192.168.2.13' is listed twice (also peers[0])"),
    ({"peers": [dict(PEER3, vtep=[])]}, "peers[0].vtep: [] must list the peer's VTEP addresses"),
    ({"peers": [dict(PEER3, vtep=["10.244.3.0", "10.244.4.0"])]}, "peers[0].vtep[1]: '10.244.4.0' is a second IPv4"),
    ({"peers": [PEER3, {"node_ip": "192.168.2.14", "vtep": ["10.244.3.0"]}]},
     "peers[1].vtep[0]: '10.244.3.0' is also the VTEP address of peers[0]"),
    ({"peers": [dict(PEER3, mac="0e:58:c0:a8:01:0b")]}, "peers[0].mac: '0e:58:c0:a8:01:0b' is also the MAC of this node"),
])
def test_validate_refuses(kw, message):
    with pytest.raises(ValidationError) as err:
        overlay.validate(params(**kw))
    assert str(err.value).startswith(message)


def test_onlink_routes():
    from ansible_collections.podnet.mesh.plugins.module_utils.core import validate as v
    route = v.route({"dst": "10.244.3.0/24", "via": "10.244.3.0", "dev": "podnet.vxlan", "onlink": True}, "routes[0]")
    assert route["onlink"] is True
    with pytest.raises(ValidationError) as err:
        v.route({"dst": "10.244.3.0/24", "via": "10.244.3.0", "onlink": True}, "routes[0]")
    assert str(err.value).startswith("routes[0].onlink: true needs via and dev")
