# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The CNI plugin's verbs against a fake kernel: ADD, DEL, CHECK, GC, STATUS.

The netlink layer is replaced by a small fake kernel (``fake_kernel``) that
applies the planners' actions to dicts, so every verb runs its real code path:
what it plans, what it applies, what it leaves behind when something fails,
and the JSON it prints.
"""
from __future__ import annotations

import os

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.cni import ipam, plugin, protocol
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import Action, Op
from ansible_collections.podnet.mesh.tests.unit.plugins.module_utils.cni.fake_kernel import (
    CID, NETNS, link, reservations, veth)


@pytest.mark.parametrize("container_id, ifname, name", [
    ("c0ffee", "eth0", "veth6ad2516ced2"), ("a" * 64, "eth1", "vethbf1befda8a7"), ("x", "e", "veth6e0be0fe4ab"),
])
def test_host_end_is_named_after_the_attachment_alone(container_id, ifname, name):
    assert plugin.attachment_veth(container_id, ifname) == name


# ------------------------------------------------------------------- ADD
@pytest.mark.parametrize("version", protocol.SUPPORTED_VERSIONS)
def test_add_wires_the_attachment_and_answers_in_the_version(run, kernel, conf, version):
    conf["cniVersion"] = version
    code, out = run("ADD", conf)
    assert code == 0, out
    assert [a.op for a in run.applied] == [
        "bridge_add", "addr_add", "link_set",                   # bridge, gateway, up
        "veth_add", "link_set", "link_set", "link_set",         # pair, master, both ends up
        "addr_add", "route_add"]
    assert out["cniVersion"] == version
    assert [i["name"] for i in out["interfaces"]] == ["cni0", veth(), "eth0"]
    assert out["interfaces"][2]["sandbox"] == NETNS
    assert "sandbox" not in out["interfaces"][0]
    assert ("mtu" in out["interfaces"][2]) == (version == "1.1.0")
    ip = {"address": "10.244.1.2/24", "gateway": "10.244.1.1", "interface": 2}
    if version.startswith("0."):
        ip["version"] = "4"
    assert out["ips"] == [ip]
    assert out["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.244.1.1"}]
    assert out["dns"] == {}
    assert reservations(conf) == {"10.244.1.2": {"containerID": CID, "ifname": "eth0"}}
    pod = kernel.find(NETNS, "eth0")
    assert pod["addresses"] == ["10.244.1.2/24"] and pod["up"]
    assert kernel.find(None, veth())["master"] == "cni0"
    assert kernel.find(None, "cni0")["addresses"] == ["10.244.1.1/24"]
    assert kernel.routes[NETNS] == [{"dst": "default", "family": 4, "via": "10.244.1.1", "dev": "eth0",
                                     "metric": 0, "proto": 149}]
    assert all(s.closed for s in run.sessions)


def test_add_options_mtu_hairpin_dns_and_existing_bridge(run, kernel, conf):
    kernel.spaces[None]["cni0"] = link("cni0", 5, "bridge", up=True, stp=True, mtu=1400,
                                       addresses=["10.244.1.1/24", "fd00::1/64"])
    conf.update(mtu=1400, hairpinMode=True, dns={"nameservers": ["10.96.0.10"]})
    code, out = run("ADD", conf)
    assert code == 0, out
    ops = [(a.op, a.ns, a.name) for a in run.applied]
    assert ("bridge_add", None, "cni0") not in ops
    assert not any(a.op == "addr_add" and a.ns is None for a in run.applied)
    assert ("brport_set", None, veth()) in ops
    assert kernel.find(None, "cni0")["stp"] is True
    assert kernel.find(NETNS, "eth0")["mtu"] == 1400
    assert out["dns"] == {"nameservers": ["10.96.0.10"]}


def test_add_takes_addresses_from_the_range_only(run, kernel, conf):
    conf["ipam"].update(rangeStart="10.244.1.200", rangeEnd="10.244.1.200")
    code, out = run("ADD", conf)
    assert code == 0 and out["ips"][0]["address"] == "10.244.1.200/24"
    kernel.add_ns("/run/netns/pod2")
    code, out = run("ADD", conf, CNI_CONTAINERID="c2", CNI_NETNS="/run/netns/pod2")
    assert (code, out["code"]) == (1, 101)
    assert "no free address in 10.244.1.0/24 (10.244.1.200-10.244.1.200)" in out["msg"]


def test_add_adds_the_gateway_to_a_bridge_without_it(run, kernel, conf):
    kernel.spaces[None]["cni0"] = link("cni0", 5, "bridge", up=True, addresses=["192.0.2.1/24"])
    assert run("ADD", conf)[0] == 0
    assert kernel.find(None, "cni0")["addresses"] == ["192.0.2.1/24", "10.244.1.1/24"]


def test_add_with_prev_result_appends_and_shifts_indexes(run, kernel, conf):
    conf["cniVersion"] = "0.4.0"
    conf["prevResult"] = {
        "cniVersion": "0.4.0",
        "interfaces": [{"name": "net1", "sandbox": NETNS}],
        "ips": [{"version": "4", "address": "192.0.2.5/24", "interface": 0}],
        "routes": [{"dst": "192.0.2.0/24"}],
        "dns": {"domain": "example.org"},
    }
    code, out = run("ADD", conf)
    assert code == 0, out
    assert [i["name"] for i in out["interfaces"]] == ["net1", "cni0", veth(), "eth0"]
    assert out["ips"] == [
        {"version": "4", "address": "192.0.2.5/24", "interface": 0},
        {"version": "4", "address": "10.244.1.2/24", "gateway": "10.244.1.1", "interface": 3}]
    assert out["routes"] == [{"dst": "192.0.2.0/24"}, {"dst": "0.0.0.0/0", "gw": "10.244.1.1"}]
    assert out["dns"] == {"domain": "example.org"}


def test_add_for_an_existing_interface_fails_and_changes_nothing(run, kernel, conf):
    kernel.spaces[NETNS]["eth0"] = link("eth0", 3, "dummy")
    code, out = run("ADD", conf)
    assert (code, out["code"]) == (1, 100)
    assert "interface eth0 already exists in the container's network namespace /run/netns/pod1" in out["msg"]
    assert run.applied == [] and reservations(conf) == {}


def test_add_to_a_missing_namespace_is_error_3(run, conf):
    code, out = run("ADD", conf, CNI_NETNS="/proc/999999/ns/net")
    assert (code, out["code"]) == (1, 3)
    assert "/proc/999999/ns/net does not exist" in out["msg"]
    assert reservations(conf) == {}


@pytest.mark.parametrize("fail_on", ["bridge_add", "veth_add", "link_set", "addr_add", "route_add"])
def test_failed_add_leaves_no_veth_and_no_reservation(run, kernel, conf, fail_on):
    code, out = run("ADD", conf, fail_on=fail_on)
    assert (code, out["code"]) == (1, 102), out
    assert "Invalid argument" in out["msg"] and out["details"] == "EINVAL"
    assert reservations(conf) == {}
    assert veth() not in kernel.spaces[None]
    assert "eth0" not in kernel.spaces[NETNS]


def test_failed_add_on_a_foreign_default_route_leaves_nothing(run, kernel, conf):
    kernel.routes[NETNS].append({"dst": "default", "family": 4, "via": "192.0.2.1", "dev": "net1",
                                 "metric": 0, "proto": 4})
    code, out = run("ADD", conf)
    assert (code, out["code"]) == (1, 100)
    assert "already has a route" in out["msg"]
    assert reservations(conf) == {} and veth() not in kernel.spaces[None]


def test_bridge_name_taken_by_another_kind_is_a_conflict(run, kernel, conf):
    kernel.spaces[None]["cni0"] = link("cni0", 5, "dummy")
    code, out = run("ADD", conf)
    assert (code, out["code"]) == (1, 100)
    assert "bridge cni0: already exists in namespace host as a link of kind dummy" in out["msg"]
    assert reservations(conf) == {}


def test_exhausted_pool_is_error_101(run, kernel, conf):
    conf["ipam"]["subnet"] = "10.244.1.0/30"
    assert run("ADD", conf)[0] == 0
    kernel.add_ns("/run/netns/pod2")
    code, out = run("ADD", conf, CNI_CONTAINERID="other", CNI_NETNS="/run/netns/pod2")
    assert (code, out["code"]) == (1, 101)
    assert "no free address in 10.244.1.0/30" in out["msg"]
    assert "eth0" not in kernel.spaces["/run/netns/pod2"]


def test_lock_timeout_is_error_11(run, conf, monkeypatch):
    monkeypatch.setattr(ipam, "LOCK_TIMEOUT", 0.05)
    with ipam.Store(conf["ipam"]["dataDir"], conf["name"]).locked():
        code, out = run("ADD", conf)
    assert (code, out["code"]) == (1, 11)
    assert "held by another process for more than 0.05s" in out["msg"]
    assert reservations(conf) == {}


def test_unexpected_exception_is_error_999(run, conf, monkeypatch):
    def boom(*args):
        raise KeyError("surprise")
    monkeypatch.setattr(plugin, "plan_attach", boom)
    code, out = run("ADD", conf)
    assert (code, out["code"]) == (1, 999)
    assert "internal error: KeyError" in out["msg"] and "Traceback" in out["details"]
    assert reservations(conf) == {}


# ------------------------------------------------------------------- DEL
def test_del_removes_the_pair_and_releases_twice_ok(run, kernel, conf):
    run("ADD", conf)
    run.sessions = []
    assert run("DEL", conf) == (0, None)
    assert [(a.op, a.name) for a in run.applied] == [("link_del", veth())]
    assert veth() not in kernel.spaces[None] and "eth0" not in kernel.spaces[NETNS]
    assert reservations(conf) == {}
    run.sessions = []
    assert run("DEL", conf) == (0, None)
    assert run.sessions == []  # nothing to delete: no netlink at all


def test_del_after_the_namespace_is_gone_releases_the_address(run, kernel, conf):
    run("ADD", conf)
    # Deleting a namespace destroys the pair.
    del kernel.spaces[NETNS]
    del kernel.spaces[None][veth()]
    assert run("DEL", conf) == (0, None)
    assert reservations(conf) == {}


def test_del_leaves_a_link_of_another_kind_alone(run, kernel, conf):
    kernel.spaces[None][veth()] = link(veth(), 7, "dummy")
    assert run("DEL", conf) == (0, None)
    assert veth() in kernel.spaces[None]


# ----------------------------------------------------------------- CHECK
def _added(run, conf):
    code, out = run("ADD", conf)
    assert code == 0, out
    conf = dict(conf, prevResult=out)
    return conf


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0", "1.1.0"])
def test_check_passes_on_a_fresh_attachment(run, conf, version):
    conf["cniVersion"] = version
    assert run("CHECK", _added(run, conf)) == (0, None)


def test_check_needs_prev_result(run, conf):
    _added(run, conf)
    code, out = run("CHECK", conf)
    assert (code, out["code"]) == (1, 7)
    assert "CHECK needs prevResult" in out["msg"]


def _break_mac(kernel, conf):
    kernel.find(NETNS, "eth0")["mac"] = "02:aa:aa:aa:aa:aa"


def _drop_address(kernel, conf):
    kernel.find(NETNS, "eth0")["addresses"] = []


def _drop_route(kernel, conf):
    kernel.routes[NETNS] = []


def _down(kernel, conf):
    kernel.find(NETNS, "eth0")["up"] = False


def _release(kernel, conf):
    store = ipam.Store(conf["ipam"]["dataDir"], conf["name"])
    with store.locked():
        store.release(CID, "eth0")


def _unplug(kernel, conf):
    kernel.find(None, veth())["master"] = None


def _no_iface(kernel, conf):
    kernel.apply(Action(Op.LINK_DEL, None, veth(), {}))


@pytest.mark.parametrize("damage, message", [
    (_break_mac, "has MAC 02:aa:aa:aa:aa:aa, prevResult says"),
    (_drop_address, "address 10.244.1.2/24 of prevResult is not on eth0"),
    (_drop_route, "route 0.0.0.0/0 via 10.244.1.1 of prevResult is missing"),
    (_down, "is down"),
    (_release, "is not reserved for this attachment"),
    (_unplug, "is a port of None, not of bridge cni0"),
    (_no_iface, "interface eth0 does not exist"),
])
def test_check_reports_what_differs(run, kernel, conf, damage, message):
    conf = _added(run, conf)
    damage(kernel, conf)
    code, out = run("CHECK", conf)
    assert (code, out["code"]) == (1, 103)
    assert message in out["msg"]


def test_check_of_an_interface_prev_result_does_not_list(run, conf):
    conf = _added(run, conf)
    code, out = run("CHECK", conf, CNI_IFNAME="eth1")
    assert (code, out["code"]) == (1, 103)
    assert "prevResult lists no interface eth1" in out["msg"]


# ----------------------------------------------------------- GC, STATUS
def test_gc_releases_what_is_not_valid_and_removes_its_veth(run, kernel, conf):
    kernel.add_ns("/run/netns/pod2")
    run("ADD", conf)
    run("ADD", conf, CNI_CONTAINERID="keep", CNI_NETNS="/run/netns/pod2")
    conf["cni.dev/valid-attachments"] = [{"containerID": "keep", "ifname": "eth0"}]
    assert run("GC", conf) == (0, None)
    assert list(reservations(conf).values()) == [{"containerID": "keep", "ifname": "eth0"}]
    assert veth() not in kernel.spaces[None]
    assert plugin.attachment_veth("keep", "eth0") in kernel.spaces[None]
    conf["cni.dev/valid-attachments"] = []
    assert run("GC", conf) == (0, None)
    assert reservations(conf) == {}


def test_status_reports_free_addresses(run, kernel, conf, monkeypatch):
    conf["ipam"]["subnet"] = "10.244.1.0/30"
    assert run("STATUS", conf) == (0, None)
    assert not os.path.exists(conf["ipam"]["dataDir"])
    run("ADD", conf)
    code, out = run("STATUS", conf)
    assert (code, out["code"]) == (1, 50)
    assert "no free address in 10.244.1.0/30: all 1 addresses are reserved" in out["msg"]
    run("DEL", conf)
    assert run("STATUS", conf) == (0, None)


def test_status_without_pyroute2_is_error_50(run, conf, monkeypatch):
    monkeypatch.setattr(plugin.importlib.util, "find_spec", lambda name: None)
    code, out = run("STATUS", conf)
    assert (code, out["code"]) == (1, 50)
    assert "pyroute2 cannot be imported" in out["msg"]
