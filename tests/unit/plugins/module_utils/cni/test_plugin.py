# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The CNI plugin's verbs against a fake kernel: ADD, DEL, CHECK, GC, STATUS.

The netlink layer is replaced by a small fake kernel (``fake_kernel``) that
applies the planners' actions to dicts, so every verb runs its real code path:
what it plans, what it applies, what it leaves behind when something fails,
and the JSON it prints.
"""
from __future__ import annotations

import copy
import os

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.cni import ipam, plugin, protocol
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import Action, Op
from ansible_collections.podnet.mesh.tests.unit.plugins.module_utils.cni.fake_kernel import (
    CID, NETNS, link, reservations, state_dir, state_files, veth, write_state)

POD2 = "/run/netns/pod2"


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
    assert reservations(conf) == {"10.244.1.2": {"containerID": CID, "ifname": "eth0", "netns": NETNS}}
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


@pytest.mark.parametrize("version, shown", [("1.1.0", {"priority": 6}), ("1.0.0", {})])
def test_a_default_route_already_there_stays_and_ours_comes_after_it(run, kernel, conf, version, shown):
    """Another attachment's default route is neither replaced nor refused: ours gets the next metric."""
    conf["cniVersion"] = version
    kernel.routes[NETNS].append({"dst": "default", "family": 4, "via": "192.0.2.1", "dev": "net1",
                                 "metric": 5, "proto": 4})
    code, out = run("ADD", conf)
    assert code == 0, out
    assert out["routes"] == [dict({"dst": "0.0.0.0/0", "gw": "10.244.1.1"}, **shown)]
    defaults = sorted((r["dev"], r["metric"], r["via"]) for r in kernel.routes[NETNS] if r["dst"] == "default")
    assert defaults == [("eth0", 6, "10.244.1.1"), ("net1", 5, "192.0.2.1")]


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
    (_unplug, "is no bridge's port, not of bridge cni0"),
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
    assert list(reservations(conf).values()) == [{"containerID": "keep", "ifname": "eth0", "netns": "/run/netns/pod2"}]
    assert veth() not in kernel.spaces[None]
    assert plugin.attachment_veth("keep", "eth0") in kernel.spaces[None]
    del conf["cni.dev/valid-attachments"]
    assert run("GC", conf) == (0, None), "a GC with no list proves nothing stale"
    assert len(reservations(conf)) == 1
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


@pytest.mark.parametrize("place", ["proc", "file", "unsafe"])
def test_status_is_error_50_where_add_cannot_keep_its_state(run, kernel, conf, tmp_path, place):
    """STATUS says not ready exactly where ADD fails on its state directory; both name the directory."""
    if place == "proc":
        conf["ipam"]["dataDir"] = "/proc/podnet-state"
    elif place == "file":
        (tmp_path / "afile").write_text("x")
        conf["ipam"]["dataDir"] = str(tmp_path / "afile" / "state")
    else:
        conf["ipam"]["dataDir"] = str(tmp_path / "open")
        os.mkdir(conf["ipam"]["dataDir"])
        os.chmod(conf["ipam"]["dataDir"], 0o777)
    code, out = run("STATUS", conf)
    assert (code, out["code"]) == (1, protocol.ERR_NOT_AVAILABLE), out
    assert out["cniVersion"] == conf["cniVersion"]
    assert "None" not in out["msg"]
    code, added = run("ADD", conf)
    assert code == 1 and added["code"] != 0
    assert "eth0" not in kernel.spaces[NETNS]
    assert not os.path.exists("/proc/podnet-state")


def test_status_needs_no_pyroute2(run, conf, monkeypatch):
    """The plugin speaks netlink on the standard library alone (kernel.lite): pyroute2 is no condition of STATUS."""
    monkeypatch.setitem(__import__("sys").modules, "pyroute2", None)
    assert run("STATUS", conf) == (0, None)


# ---------------------------------------------------- attachment ownership
def test_repeat_add_in_another_namespace_is_refused_and_the_first_stays(run, kernel, conf):
    kernel.add_ns(POD2)
    assert run("ADD", conf)[0] == 0
    spaces, routes, files = copy.deepcopy(kernel.spaces), copy.deepcopy(kernel.routes), state_files(conf)
    run.sessions = []
    code, out = run("ADD", conf, CNI_NETNS=POD2)
    assert (code, out["code"]) == (1, protocol.ERR_CONFLICT)
    assert out["msg"] == (
        "container c0ffee already has interface eth0 with address 10.244.1.2 in the network namespace "
        "/run/netns/pod1; an ADD of the same attachment in /run/netns/pod2 is refused (duplicate allocation): "
        "DEL it first; nothing was changed")
    assert run.applied == []
    assert (kernel.spaces, kernel.routes, state_files(conf)) == (spaces, routes, files)


def test_failed_repeat_add_in_another_namespace_does_not_free_the_first_address(run, kernel, conf):
    conf["ipam"]["subnet"] = "10.244.1.0/30"  # one address: .2
    kernel.add_ns(POD2)
    kernel.add_ns("/run/netns/pod3")
    assert run("ADD", conf)[0] == 0
    code, out = run("ADD", conf, CNI_NETNS=POD2, fail_on="route_add")
    assert (code, out["code"]) == (1, protocol.ERR_CONFLICT)
    assert reservations(conf) == {"10.244.1.2": {"containerID": CID, "ifname": "eth0", "netns": NETNS}}
    assert kernel.find(NETNS, "eth0")["addresses"] == ["10.244.1.2/30"]
    # The next pod does not get the first one's address (nor its MAC).
    code, out = run("ADD", conf, CNI_CONTAINERID="next", CNI_NETNS="/run/netns/pod3")
    assert (code, out["code"]) == (1, protocol.ERR_NO_ADDRESS)


def test_failed_repeat_add_in_the_same_namespace_keeps_the_earlier_reservation(run, kernel, conf):
    assert run("ADD", conf)[0] == 0
    kernel.apply(Action(Op.LINK_DEL, None, veth(), {}))  # the pair went away, the runtime ADDs again
    kernel.routes[NETNS] = []  # with its device, its route
    code, out = run("ADD", conf, fail_on="route_add")
    assert (code, out["code"]) == (1, protocol.ERR_KERNEL)
    assert veth() not in kernel.spaces[None]
    assert reservations(conf) == {"10.244.1.2": {"containerID": CID, "ifname": "eth0", "netns": NETNS}}
    assert run("DEL", conf) == (0, None)
    assert reservations(conf) == {}


def test_repeat_add_in_the_same_namespace_reuses_the_address(run, kernel, conf):
    assert run("ADD", conf)[0] == 0
    kernel.apply(Action(Op.LINK_DEL, None, veth(), {}))
    kernel.routes[NETNS] = []
    code, out = run("ADD", conf)
    assert code == 0, out
    assert out["ips"][0]["address"] == "10.244.1.2/24"
    assert list(reservations(conf)) == ["10.244.1.2"]


def test_del_naming_another_namespace_is_not_the_owners(run, kernel, conf):
    """A runtime cleans up after the refused ADD with a DEL in its namespace: the first attachment stays."""
    kernel.add_ns(POD2)
    assert run("ADD", conf)[0] == 0
    assert run("ADD", conf, CNI_NETNS=POD2)[0] == 1
    run.sessions = []
    assert run("DEL", conf, CNI_NETNS=POD2) == (0, None)
    assert run.sessions == []
    assert veth() in kernel.spaces[None] and "eth0" in kernel.spaces[NETNS]
    assert list(reservations(conf)) == ["10.244.1.2"]
    # The owner's DEL, with or without CNI_NETNS, releases.
    assert run("DEL", conf, CNI_NETNS=None) == (0, None)
    assert veth() not in kernel.spaces[None] and reservations(conf) == {}


def test_state_written_without_namespaces_keeps_working(run, kernel, conf):
    write_state(conf, "10.244.1.7", '{"containerID": "%s", "ifname": "eth0"}\n' % CID)
    write_state(conf, "10.244.1.8", '{"containerID": "gone", "ifname": "eth0"}\n')
    code, out = run("ADD", conf)
    assert code == 0, out
    assert out["ips"][0]["address"] == "10.244.1.7/24"
    assert reservations(conf)["10.244.1.7"] == {"containerID": CID, "ifname": "eth0", "netns": NETNS}
    assert run("CHECK", dict(conf, prevResult=out)) == (0, None)
    assert run("DEL", conf) == (0, None)
    conf["cni.dev/valid-attachments"] = []
    assert run("GC", conf) == (0, None)
    assert reservations(conf) == {}


def test_state_without_namespaces_refuses_an_add_while_its_host_end_is_elsewhere(run, kernel, conf):
    kernel.add_ns(POD2)
    assert run("ADD", conf, CNI_NETNS=POD2)[0] == 0
    write_state(conf, "10.244.1.2", '{"containerID": "%s", "ifname": "eth0"}\n' % CID)  # as before the upgrade
    spaces, files = copy.deepcopy(kernel.spaces), state_files(conf)
    code, out = run("ADD", conf)
    assert (code, out["code"]) == (1, protocol.ERR_CONFLICT)
    assert ("container c0ffee already has interface eth0 with address 10.244.1.2 (host end %s) outside the "
            "network namespace /run/netns/pod1" % veth()) in out["msg"]
    assert (kernel.spaces, state_files(conf)) == (spaces, files)


# ------------------------------------------------------------------ bridge
@pytest.mark.parametrize("held", ["10.244.1.1/16", "10.244.1.1/28"])
def test_bridge_with_the_gateway_at_another_prefix_length_is_refused(run, kernel, conf, held):
    kernel.spaces[None]["cni0"] = link("cni0", 5, "bridge", up=True, addresses=[held])
    spaces = copy.deepcopy(kernel.spaces)
    code, out = run("ADD", conf)
    assert (code, out["code"]) == (1, protocol.ERR_CONFLICT)
    assert out["msg"] == ("bridge cni0 holds the gateway 10.244.1.1 as %s, not with the prefix length /24 of "
                          "ipam.subnet 10.244.1.0/24; nothing was changed" % held)
    assert run.applied == [] and kernel.spaces == spaces and state_files(conf) == {}


def _made_meanwhile(kind, addresses=()):
    def create(kernel):
        kernel.spaces[None]["cni0"] = link("cni0", kernel.next_index(), kind, up=True, addresses=list(addresses))
    return create


def test_add_goes_on_when_another_network_made_the_bridge_meanwhile(run, kernel, conf):
    kernel.meanwhile[Op.BRIDGE_ADD] = [_made_meanwhile("bridge", ["10.244.2.1/24"])]
    code, out = run("ADD", conf)
    assert code == 0, out
    bridge = kernel.find(None, "cni0")
    assert bridge["addresses"] == ["10.244.2.1/24", "10.244.1.1/24"] and bridge["up"]
    assert kernel.find(None, veth())["master"] == "cni0"
    assert out["interfaces"][0]["name"] == "cni0"


def test_add_goes_on_when_the_gateway_was_added_meanwhile(run, kernel, conf):
    kernel.spaces[None]["cni0"] = link("cni0", 5, "bridge", up=True)

    def gateway(k):
        k.spaces[None]["cni0"]["addresses"].append("10.244.1.1/24")
    kernel.meanwhile[Op.ADDR_ADD] = [gateway]
    code, out = run("ADD", conf)
    assert code == 0, out
    assert kernel.find(None, "cni0")["addresses"] == ["10.244.1.1/24"]


@pytest.mark.parametrize("meanwhile, message", [
    (_made_meanwhile("dummy"), "bridge cni0: already exists in namespace host as a link of kind dummy"),
    (_made_meanwhile("bridge", ["10.244.1.1/16"]), "bridge cni0 holds the gateway 10.244.1.1 as 10.244.1.1/16"),
])
def test_what_a_concurrent_creator_made_is_checked_again(run, kernel, conf, meanwhile, message):
    kernel.meanwhile[Op.BRIDGE_ADD] = [meanwhile]
    code, out = run("ADD", conf)
    assert (code, out["code"]) == (1, protocol.ERR_CONFLICT)
    assert message in out["msg"]
    assert reservations(conf) == {} and veth() not in kernel.spaces[None]


# ------------------------------------------------------ the state's safety
@pytest.mark.parametrize("command, code", [("ADD", 5), ("DEL", 5), ("GC", 5), ("STATUS", 50)])
def test_a_state_directory_writable_by_others_is_refused_naming_it(run, kernel, conf, command, code):
    data = conf["ipam"]["dataDir"]
    os.makedirs(data, 0o700)
    os.chmod(data, 0o777)
    conf["cni.dev/valid-attachments"] = []
    rc, out = run(command, conf)
    assert (rc, out["code"]) == (1, code), out
    assert out["msg"].startswith("the IPAM state directory %s is writable by its group and others (mode 0777" % data)
    assert run.applied == [] and os.listdir(data) == []


def test_a_link_for_the_network_directory_is_refused(run, kernel, conf, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    os.makedirs(conf["ipam"]["dataDir"], 0o700)
    os.symlink(str(elsewhere), state_dir(conf))
    code, out = run("ADD", conf)
    assert (code, out["code"]) == (1, protocol.ERR_IO)
    assert "the IPAM state directory %s is a symbolic link" % state_dir(conf) in out["msg"]
    assert os.listdir(str(elsewhere)) == [] and run.applied == []


# -------------------------------------------- state of unexpected shape
def _plant(conf, name, shape):
    if not os.path.isdir(state_dir(conf)):
        os.makedirs(state_dir(conf), 0o700)
    if shape == "directory":
        os.makedirs(os.path.join(state_dir(conf), name), 0o700)
    elif shape == "named pipe":
        os.mkfifo(os.path.join(state_dir(conf), name))
    else:
        write_state(conf, name, shape)


@pytest.mark.parametrize("shape", ["garbage", "[1, 2]", '{"containerID": ["x"], "ifname": "eth0"}', "directory",
                                   "named pipe"])
def test_gc_keeps_entries_of_unexpected_shape_and_collects_the_rest(run, kernel, conf, deadline, shape):
    kernel.add_ns(POD2)
    assert run("ADD", conf)[0] == 0
    assert run("ADD", conf, CNI_CONTAINERID="keep", CNI_NETNS=POD2)[0] == 0
    _plant(conf, "10.244.1.9", shape)
    conf["cni.dev/valid-attachments"] = [{"containerID": "keep", "ifname": "eth0"}]
    with deadline(5):
        assert run("GC", conf) == (0, None)
        owners = reservations(conf)
    assert sorted(owners) == ["10.244.1.3", "10.244.1.9"]
    assert owners["10.244.1.9"]["problem"] and owners["10.244.1.3"]["containerID"] == "keep"
    assert veth() not in kernel.spaces[None]


def test_status_and_add_count_entries_of_unexpected_shape_as_reserved(run, kernel, conf, deadline):
    conf["ipam"]["subnet"] = "10.244.1.0/30"  # one address: .2
    _plant(conf, "10.244.1.2", "named pipe")
    for command, code in (("STATUS", protocol.ERR_NOT_AVAILABLE), ("ADD", protocol.ERR_NO_ADDRESS)):
        with deadline(5):
            rc, out = run(command, conf)
        assert (rc, out["code"]) == (1, code)
        assert ("no free address in 10.244.1.0/30: all 1 addresses are reserved (1 of them by state entries that "
                "are no reservation records: 10.244.1.2 (a named pipe)") in out["msg"]
    assert "eth0" not in kernel.spaces[NETNS]


def test_a_repeated_del_takes_neither_netlink_nor_the_lock(run, kernel, conf, monkeypatch):
    """containerd sends DEL at stop and again at remove: the second has nothing to do, and does nothing."""
    assert run("ADD", conf)[0] == 0
    assert run("DEL", conf) == (0, None)
    run.sessions = []

    def no_lock(self, timeout=None):
        raise AssertionError("a DEL with nothing to release took the lock")

    monkeypatch.setattr(ipam.Store, "locked", no_lock)
    assert run("DEL", conf) == (0, None)
    assert run("DEL", conf, CNI_NETNS=None) == (0, None)
    assert run.sessions == []


# ------------------------------------------------------------ dual-stack
V6_NET = "fd00:10:244:1::/64"


@pytest.fixture
def dual(conf):
    data_dir = conf["ipam"]["dataDir"]
    conf["ipam"] = {"ranges": [[{"subnet": "10.244.1.0/24"}], [{"subnet": V6_NET}]], "dataDir": data_dir}
    return conf


@pytest.mark.parametrize("version", protocol.SUPPORTED_VERSIONS)
def test_dual_stack_add_gives_an_address_and_a_default_route_per_family(run, kernel, dual, version):
    dual["cniVersion"] = version
    code, out = run("ADD", dual)
    assert code == 0, out
    ips = [{"address": "10.244.1.2/24", "gateway": "10.244.1.1", "interface": 2},
           {"address": "fd00:10:244:1::2/64", "gateway": "fd00:10:244:1::1", "interface": 2}]
    if version.startswith("0."):
        ips[0]["version"], ips[1]["version"] = "4", "6"
    assert out["ips"] == ips
    # The IPv6 route's metric is the kernel's (IPv6 has no metric 0): reported as its priority from 1.1.0 on.
    v6_route = {"dst": "::/0", "gw": "fd00:10:244:1::1"}
    if version == "1.1.0":
        v6_route["priority"] = 1024
    assert out["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.244.1.1"}, v6_route]
    assert reservations(dual) == dict((ip, {"containerID": CID, "ifname": "eth0", "netns": NETNS})
                                      for ip in ("10.244.1.2", "fd00:10:244:1::2"))
    bridge = kernel.find(None, "cni0")
    assert bridge["addresses"] == ["10.244.1.1/24", "fd00:10:244:1::1/64"]
    pinned = [a for a in run.applied if a.op == "bridge_add"][0].args["mac"]
    assert pinned == "0a:58:0a:f4:01:01"   # from the IPv4 gateway, as a one-family bridge of it
    pod = kernel.find(NETNS, "eth0")
    assert pod["addresses"] == ["10.244.1.2/24", "fd00:10:244:1::2/64"]
    added = dict((a.args["address"], a.args) for a in run.applied if a.op == "addr_add")
    assert added["fd00:10:244:1::2/64"]["nodad"] and added["fd00:10:244:1::1/64"]["nodad"]
    assert kernel.routes[NETNS] == [
        {"dst": "default", "family": 4, "via": "10.244.1.1", "dev": "eth0", "metric": 0, "proto": 149},
        {"dst": "default", "family": 6, "via": "fd00:10:244:1::1", "dev": "eth0", "metric": 1024, "proto": 149}]
    assert kernel.sysctls == {(NETNS, "/proc/sys/net/ipv6/conf/eth0/accept_ra"): "0",
                              (NETNS, "/proc/sys/net/ipv6/conf/eth0/accept_dad"): "0"}


def test_ipv6_only_network(run, kernel, conf):
    conf["ipam"]["subnet"] = V6_NET
    conf["clusterCIDR"] = "fd00:10:244::/56"
    code, out = run("ADD", conf)
    assert code == 0, out
    assert out["ips"] == [{"address": "fd00:10:244:1::2/64", "gateway": "fd00:10:244:1::1", "interface": 2}]
    assert out["routes"] == [{"dst": "::/0", "gw": "fd00:10:244:1::1", "priority": 1024}]
    assert kernel.find(None, "cni0")["addresses"] == ["fd00:10:244:1::1/64"]
    assert [a for a in run.applied if a.op == "bridge_add"][0].args["mac"] == "0a:58:00:00:00:01"
    assert kernel.find(NETNS, "eth0")["addresses"] == ["fd00:10:244:1::2/64"]
    dual = dict(conf, prevResult=out)
    assert run("CHECK", dual) == (0, None)
    assert run("DEL", conf) == (0, None)
    assert reservations(conf) == {} and veth() not in kernel.spaces[None]


def test_dual_stack_add_after_another_attachments_ipv6_default_route(run, kernel, dual):
    kernel.routes[NETNS].append({"dst": "default", "family": 6, "via": "fd00:9::1", "dev": "net9", "metric": 1024,
                                 "proto": 149})
    code, out = run("ADD", dual)
    assert code == 0, out
    assert out["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.244.1.1"},
                             {"dst": "::/0", "gw": "fd00:10:244:1::1", "priority": 1025}]
    assert kernel.routes[NETNS][-1]["metric"] == 1025


def test_dual_stack_add_adds_the_missing_family_to_an_existing_bridge(run, kernel, dual):
    kernel.spaces[None]["cni0"] = link("cni0", 5, "bridge", up=True, stp=False, addresses=["10.244.1.1/24"],
                                       mac="0a:58:0a:f4:01:01")
    assert run("ADD", dual)[0] == 0
    assert [(a.op, a.args) for a in run.applied if a.ns is None and a.name == "cni0"] == [
        ("addr_add", {"address": "fd00:10:244:1::1/64", "nodad": True})]


def test_dual_stack_bridge_with_the_ipv6_gateway_at_another_prefix_is_refused(run, kernel, dual):
    kernel.spaces[None]["cni0"] = link("cni0", 5, "bridge", up=True, stp=False,
                                       addresses=["10.244.1.1/24", "fd00:10:244:1::1/56"])
    code, out = run("ADD", dual)
    assert (code, out["code"]) == (1, 100)
    assert "holds the gateway fd00:10:244:1::1 as fd00:10:244:1::1/56, not with the prefix length /64 of " \
           "ipam.ranges[1][0].subnet fd00:10:244:1::/64" in out["msg"]
    assert reservations(dual) == {} and run.applied == []


def test_an_exhausted_ipv6_pool_leaves_no_ipv4_reservation(run, kernel, dual):
    dual["ipam"]["ranges"][1][0].update(rangeStart="fd00:10:244:1::2", rangeEnd="fd00:10:244:1::2")
    assert run("ADD", dual)[0] == 0
    kernel.add_ns(POD2)
    code, out = run("ADD", dual, CNI_CONTAINERID="other", CNI_NETNS=POD2)
    assert (code, out["code"]) == (1, 101)
    assert "no free address in fd00:10:244:1::/64 (fd00:10:244:1::2-fd00:10:244:1::2)" in out["msg"]
    assert sorted(reservations(dual)) == ["10.244.1.2", "fd00:10:244:1::2"]
    assert "eth0" not in kernel.spaces[POD2]
    code, out = run("STATUS", dual)
    assert (code, out["code"]) == (1, 50) and "fd00:10:244:1::/64" in out["msg"]


@pytest.mark.parametrize("fail_on", [Op.ROUTE_ADD, Op.SYSCTL])
def test_a_failed_dual_stack_add_releases_both_addresses(run, kernel, dual, fail_on):
    code, out = run("ADD", dual, fail_on=fail_on)
    assert (code, out["code"]) == (1, 102)
    assert reservations(dual) == {}
    assert veth() not in kernel.spaces[None]


def _drop_v6_route(kernel, conf):
    kernel.routes[NETNS] = [r for r in kernel.routes[NETNS] if r["family"] == 4]


def _drop_v6_address(kernel, conf):
    kernel.find(NETNS, "eth0")["addresses"].remove("fd00:10:244:1::2/64")


def _move_v6_route(kernel, conf):
    kernel.routes[NETNS][1]["dev"] = "net1"


def _release_v6(kernel, conf):
    os.unlink(os.path.join(state_dir(conf), "fd00:10:244:1::2"))


@pytest.mark.parametrize("damage, message", [
    (_drop_v6_route, "route ::/0 via fd00:10:244:1::1 of prevResult is missing"),
    (_drop_v6_address, "address fd00:10:244:1::2/64 of prevResult is not on eth0"),
    (_move_v6_route, "route ::/0 via fd00:10:244:1::1 of prevResult is on net1, not on eth0"),
    (_release_v6, "address fd00:10:244:1::2 is not reserved for this attachment"),
])
def test_dual_stack_check_compares_each_family(run, kernel, dual, damage, message):
    prev = _added(run, dual)
    assert run("CHECK", prev) == (0, None)
    damage(kernel, dual)
    code, out = run("CHECK", prev)
    assert (code, out["code"]) == (1, 103)
    assert message in out["msg"], out["msg"]


def test_dual_stack_del_and_gc_release_every_family(run, kernel, dual):
    kernel.add_ns(POD2)
    assert run("ADD", dual)[0] == 0
    assert run("ADD", dual, CNI_CONTAINERID="keep", CNI_NETNS=POD2)[0] == 0
    assert len(reservations(dual)) == 4
    assert run("DEL", dual) == (0, None)
    assert sorted(reservations(dual)) == ["10.244.1.3", "fd00:10:244:1::3"]
    assert veth() not in kernel.spaces[None]
    assert run("ADD", dual)[0] == 0
    dual["cni.dev/valid-attachments"] = [{"containerID": "keep", "ifname": "eth0"}]
    assert run("GC", dual) == (0, None)
    assert dict((ip, owner["containerID"]) for ip, owner in reservations(dual).items()) == {
        "10.244.1.3": "keep", "fd00:10:244:1::3": "keep"}
    assert veth() not in kernel.spaces[None]
    dual["cni.dev/valid-attachments"] = []
    assert run("GC", dual) == (0, None)
    assert reservations(dual) == {}


def test_an_ipv4_network_that_gains_ipv6_keeps_its_addresses_and_pointer(run, kernel, conf):
    assert run("ADD", conf)[0] == 0
    assert state_files(conf)["last_reserved"] == b"10.244.1.2\n"
    kernel.add_ns(POD2)
    conf["ipam"] = {"ranges": [[{"subnet": "10.244.1.0/24"}], [{"subnet": V6_NET}]], "dataDir": conf["ipam"]["dataDir"]}
    code, out = run("ADD", conf, CNI_CONTAINERID="second", CNI_NETNS=POD2)
    assert code == 0, out
    assert [ip["address"] for ip in out["ips"]] == ["10.244.1.3/24", "fd00:10:244:1::2/64"]
    files = state_files(conf)
    assert files["last_reserved"] == b"10.244.1.3\n" and files["last_reserved.1"] == b"fd00:10:244:1::2\n"


def test_an_older_ipv4_reservation_is_adopted_and_the_ipv6_one_added(run, kernel, dual):
    write_state(dual, "10.244.1.7", '{"containerID": "%s", "ifname": "eth0"}\n' % CID)
    code, out = run("ADD", dual)
    assert code == 0, out
    assert [ip["address"] for ip in out["ips"]] == ["10.244.1.7/24", "fd00:10:244:1::2/64"]
    assert reservations(dual) == dict((ip, {"containerID": CID, "ifname": "eth0", "netns": NETNS})
                                      for ip in ("10.244.1.7", "fd00:10:244:1::2"))


def test_an_older_reservation_of_an_attachment_elsewhere_refuses_the_dual_stack_add_wholly(run, kernel, dual):
    kernel.add_ns(POD2)
    assert run("ADD", dual, CNI_NETNS=POD2)[0] == 0
    # As before the upgrade: an IPv4 reservation without namespace, and no IPv6 one.
    os.unlink(os.path.join(state_dir(dual), "fd00:10:244:1::2"))
    write_state(dual, "10.244.1.2", '{"containerID": "%s", "ifname": "eth0"}\n' % CID)
    spaces, files = copy.deepcopy(kernel.spaces), state_files(dual)
    code, out = run("ADD", dual)
    assert (code, out["code"]) == (1, protocol.ERR_CONFLICT)
    assert "already has interface eth0 with address 10.244.1.2" in out["msg"]
    # The IPv6 address this ADD had reserved is released again: nothing half-done stays.
    assert kernel.spaces == spaces
    assert dict((k, v) for k, v in state_files(dual).items() if not k.startswith("last_reserved")) == \
        dict((k, v) for k, v in files.items() if not k.startswith("last_reserved"))
