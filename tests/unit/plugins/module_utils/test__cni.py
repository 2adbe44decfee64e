# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The CNI plugin without the kernel: protocol, validation, results, verb flows.

The netlink layer is replaced by a small fake kernel that applies the
planners' actions to dicts, so every verb runs its real code path: what it
plans, what it applies, what it leaves behind when something fails, and the
JSON it prints.
"""
from __future__ import annotations

import copy
import errno
import json
import os
import subprocess
import sys

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils import _cni, _ipam, _netlink, _plan

NETNS = "/run/netns/pod1"
CID = "c0ffee"


# --------------------------------------------------------------- fake kernel
def _link(name, index, kind=None, **extra):
    link = {"name": name, "ifindex": index, "kind": kind, "mac": "02:00:00:00:00:%02x" % index,
            "mtu": 1500, "up": False, "master": None, "link": None, "link_netnsid": None,
            "stp": False if kind == "bridge" else None, "hairpin": None, "addresses": []}
    link.update(extra)
    return link


class FakeKernel:
    """Namespaces of links and routes; applies actions as the kernel would, roughly."""

    def __init__(self):
        self.index = 10
        self.spaces = {None: {"lo": _link("lo", 1, up=True)}}
        self.routes = {None: []}

    def add_ns(self, path=NETNS):
        self.spaces[path] = {"lo": _link("lo", 1)}
        self.routes[path] = []

    def next_index(self):
        self.index += 1
        return self.index

    def find(self, ns, name):
        return self.spaces[ns][name]

    def apply(self, action):
        ns, name, args = action.ns, action.name, action.args
        space = self.spaces[ns]
        if action.op == "bridge_add":
            space[name] = _link(name, self.next_index(), "bridge")
        elif action.op == "veth_add":
            peer_ns = args.get("peer_ns")
            if args["peer"] in self.spaces[peer_ns]:
                raise _netlink.NetlinkOpError(_plan.describe(action), ns, errno.EEXIST, "File exists")
            host, peer = self.next_index(), self.next_index()
            space[name] = _link(name, host, "veth", link=peer, link_netnsid=0 if peer_ns else None)
            self.spaces[peer_ns][args["peer"]] = _link(args["peer"], peer, "veth", link=host,
                                                       link_netnsid=0 if peer_ns else None)
        elif action.op == "link_del":
            gone = space.pop(name)
            for other in self.spaces.values():
                for key, link in list(other.items()):
                    if link["kind"] == "veth" and link["link"] == gone["ifindex"]:
                        del other[key]
        elif action.op == "link_set":
            link = space[name]
            for key, value in args.items():
                link[key] = value
            if "master" in args:
                link["hairpin"] = False
        elif action.op == "brport_set":
            space[name]["hairpin"] = args["hairpin"]
        elif action.op == "addr_add":
            space[name]["addresses"].append(args["address"])
        elif action.op == "addr_del":
            space[name]["addresses"].remove(args["address"])
        elif action.op == "route_add":
            self.routes[ns].append(dict(args["route"], proto=args["proto"]))
        else:
            raise AssertionError("unexpected action %r" % (action,))


class FakeNamespace:
    def __init__(self, kernel, name):
        self.kernel = kernel
        self.name = name

    def links(self, with_addresses=(), only=None):
        links = copy.deepcopy(self.kernel.spaces[self.name])
        return links if only is None else dict((n, link) for n, link in links.items() if n in only)

    def routes(self, table, families=(4, 6)):
        return [dict(r) for r in self.kernel.routes[self.name] if r["family"] in families]

    def networks(self):
        import ipaddress
        return [ipaddress.ip_interface(a).network for link in self.kernel.spaces[self.name].values()
                for a in link["addresses"]]


class FakeSession:
    def __init__(self, kernel, fail_on=None):
        self.kernel = kernel
        self.fail_on = fail_on
        self.applied = []
        self.closed = False

    def ns(self, name=None):
        if name not in self.kernel.spaces:
            raise _netlink.NetlinkOpError("open namespace %s" % name, name, errno.ENOENT, "no namespace")
        return FakeNamespace(self.kernel, name)

    def apply(self, actions):
        for action in actions:
            if action.op == self.fail_on:
                raise _netlink.NetlinkOpError(_plan.describe(action), action.ns, errno.EINVAL, "Invalid argument")
            self.kernel.apply(action)
            self.applied.append(action)

    def close(self):
        self.closed = True


# ------------------------------------------------------------------ harness
@pytest.fixture
def kernel(monkeypatch):
    k = FakeKernel()
    k.add_ns()
    monkeypatch.setattr(_cni, "_link_exists", lambda name: name in k.spaces[None])
    return k


@pytest.fixture
def conf(tmp_path):
    return {"cniVersion": "1.1.0", "name": "podnet", "type": "podnet", "bridge": "cni0",
            "ipam": {"subnet": "10.244.1.0/24", "dataDir": str(tmp_path / "ipam")}}


def env(command, **overrides):
    base = {"CNI_COMMAND": command, "CNI_CONTAINERID": CID, "CNI_NETNS": NETNS, "CNI_IFNAME": "eth0",
            "CNI_PATH": "/opt/cni/bin"}
    base.update(overrides)
    return dict((k, v) for k, v in base.items() if v is not None)


class Run:
    """Invoke the plugin in-process against a fake kernel; keeps the sessions it made."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.sessions = []

    def __call__(self, command, config, fail_on=None, raw=None, **environ):
        def factory():
            session = FakeSession(self.kernel, fail_on)
            self.sessions.append(session)
            return session

        data = raw if raw is not None else json.dumps(config).encode()
        code, text = _cni.run(env(command, **environ), lambda: data, factory)
        return code, (json.loads(text) if text else None)

    @property
    def applied(self):
        return [a for s in self.sessions for a in s.applied]


@pytest.fixture
def run(kernel):
    return Run(kernel)


def reservations(config):
    return _ipam.Store(config["ipam"]["dataDir"], config["name"]).reservations()


def veth():
    return _cni.host_veth_name(CID, "eth0")


# ------------------------------------------------------------ VERSION, env
def test_version_needs_nothing_but_the_command():
    code, text = _cni.run({"CNI_COMMAND": "VERSION"}, lambda: b"")
    assert code == 0
    assert json.loads(text) == {"cniVersion": "1.1.0", "supportedVersions": ["0.3.1", "0.4.0", "1.0.0", "1.1.0"]}


@pytest.mark.parametrize("command, overrides, named", [
    (None, {}, ["CNI_COMMAND is missing"]),
    ("ATTACH", {}, ["CNI_COMMAND 'ATTACH' is not a CNI verb"]),
    ("ADD", {"CNI_CONTAINERID": None}, ["CNI_CONTAINERID is missing"]),
    ("ADD", {"CNI_NETNS": None, "CNI_IFNAME": ""}, ["CNI_NETNS is missing", "CNI_IFNAME is missing"]),
    ("ADD", {"CNI_PATH": None}, ["CNI_PATH is missing"]),
    ("CHECK", {"CNI_NETNS": None}, ["CNI_NETNS is missing"]),
    ("DEL", {"CNI_IFNAME": None}, ["CNI_IFNAME is missing"]),
    ("ADD", {"CNI_NETNS": "pod1"}, ["CNI_NETNS 'pod1' is not an absolute path"]),
    ("ADD", {"CNI_IFNAME": "a-very-long-interface"}, ["CNI_IFNAME: 'a-very-long-interface' is 21 bytes long"]),
    ("ADD", {"CNI_IFNAME": "eth/0"}, ["CNI_IFNAME: 'eth/0' is not a valid interface name"]),
    ("ADD", {"CNI_CONTAINERID": "-bad id"}, ["CNI_CONTAINERID '-bad id' is invalid"]),
])
def test_invalid_environment_is_error_4_naming_every_variable(run, conf, command, overrides, named):
    environ = env(command, **overrides) if command else {}
    code, text = _cni.run(environ, lambda: json.dumps(conf).encode())
    out = json.loads(text)
    assert (code, out["code"]) == (1, 4)
    for part in named:
        assert part in out["msg"]
    assert not os.path.exists(conf["ipam"]["dataDir"])


def test_del_needs_no_netns(run, conf):
    assert run("DEL", conf, CNI_NETNS=None) == (0, None)


# --------------------------------------------------------------- stdin, JSON
def test_unreadable_stdin_is_error_5(conf):
    def broken():
        raise OSError(errno.EIO, "Input/output error")
    code, text = _cni.run(env("ADD"), broken)
    assert (code, json.loads(text)["code"]) == (1, 5)
    assert "cannot read the network configuration" in json.loads(text)["msg"]


@pytest.mark.parametrize("raw, why", [
    (b"", "Expecting value"),
    (b"{\"cniVersion\": ", "Expecting value"),
    (b"\xff\xfe", "codec"),
    (b"[1, 2]", "must be a JSON object, not list"),
])
def test_undecodable_config_is_error_6(run, kernel, raw, why):
    code, out = run("ADD", None, raw=raw)
    assert (code, out["code"]) == (1, 6)
    assert why in out["msg"]
    assert run.applied == []


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0", "0.3.0", "1.2.0", "2.0.0", 1, ""])
def test_unknown_version_is_error_1(run, conf, version):
    conf["cniVersion"] = version
    code, out = run("ADD", conf)
    assert (code, out["code"], out["cniVersion"]) == (1, 1, "1.1.0")
    assert "not supported" in out["msg"] and "0.3.1, 0.4.0, 1.0.0, 1.1.0" in out["msg"]


@pytest.mark.parametrize("command, version", [
    ("CHECK", "0.3.1"), ("GC", "0.4.0"), ("GC", "1.0.0"), ("STATUS", "1.0.0"), ("STATUS", "0.3.1"),
])
def test_verb_newer_than_the_version_is_error_1(run, conf, command, version):
    conf["cniVersion"] = version
    conf["cni.dev/valid-attachments"] = []
    code, out = run(command, conf)
    assert (code, out["code"], out["cniVersion"]) == (1, 1, version)
    assert "%s needs cniVersion" % command in out["msg"]


def _without(path):
    def change(conf):
        node = conf
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return change


def _set(path, value):
    def change(conf):
        node = conf
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


@pytest.mark.parametrize("change, code, message", [
    (_without(["cniVersion"]), 7, "cniVersion: None is required"),
    (_without(["name"]), 7, "name: None must be a network name"),
    (_set(["name"], "../etc"), 7, "name: '../etc' must be a network name"),
    (_without(["type"]), 7, "type: None is required"),
    (_without(["ipam"]), 7, "ipam: None is required"),
    (_without(["ipam", "subnet"]), 7, "ipam.subnet: None is not a network in CIDR form"),
    (_set(["ipam", "subnet"], "10.244.1.0/33"), 7, "ipam.subnet: '10.244.1.0/33' is not a valid network"),
    (_set(["ipam", "subnet"], "10.244.1.1/24"), 7, "has host bits set"),
    (_set(["ipam", "subnet"], "10.244.300.0/24"), 7, "ipam.subnet: '10.244.300.0/24' is not a valid network"),
    (_set(["ipam", "subnet"], "fd00::/64"), 7, "must be an IPv4 network"),
    (_set(["ipam", "subnet"], "10.244.1.0/31"), 7, "of at least 4 addresses"),
    (_set(["ipam", "gateway"], "10.244.2.1"), 7, "ipam.gateway: '10.244.2.1' is not a host address"),
    (_set(["ipam", "gateway"], "10.244.1.255"), 7, "is not a host address of ipam.subnet"),
    (_set(["ipam", "gateway"], "gw"), 7, "ipam.gateway: 'gw' is not an IP address"),
    (_set(["ipam", "dataDir"], "var/lib"), 7, "ipam.dataDir: 'var/lib' must be an absolute path"),
    (_set(["clusterCIDR"], "10.245.0.0/16"), 7, "is not inside clusterCIDR 10.245.0.0/16"),
    (_set(["clusterCIDR"], "10.245.0.0"), 7, "clusterCIDR: '10.245.0.0' is not a network"),
    (_set(["bridge"], "bridge-name-too-long"), 7, "bridge: 'bridge-name-too-long' is 20 bytes long"),
    (_set(["mtu"], 40), 7, "mtu: 40 is out of range"),
    (_set(["mtu"], "1500"), 7, "mtu: '1500' must be an integer"),
    (_set(["hairpinMode"], "yes"), 7, "hairpinMode: 'yes' must be true or false"),
    (_set(["dns"], []), 7, "dns: [] must be an object"),
    (_set(["prevResult"], []), 7, "prevResult: [] must be a result object"),
    (_set(["prevResult"], {"ips": [{"address": "10.0.0.300/24"}]}), 7, "prevResult.ips[0].address"),
    (_set(["prevResult"], {"ips": [{"address": "10.0.0.3/24", "interface": 4}]}), 7,
     "prevResult.ips[0].interface: 4 is not an index into interfaces"),
    (_set(["prevResult"], {"interfaces": [{"mac": "x"}]}), 7, "prevResult.interfaces[0].name"),
    (_set(["ipam", "rangeStart"], "10.244.2.9"), 7, "defines no usable pool: range start 10.244.2.9 is not a host"),
    (_set(["ipam", "rangeEnd"], "x"), 7, "ipam.rangeEnd: 'x' is not an IP address"),
    (_set(["ipam", "type"], "host-local"), 2, "unsupported field ipam.type='host-local'"),
    (_set(["ipMasq"], True), 2, "unsupported field ipMasq=true"),
    (_set(["isGateway"], False), 2, "unsupported field isGateway=false"),
])
def test_invalid_config_is_refused_before_any_change(run, kernel, conf, change, code, message):
    data_dir = conf["ipam"]["dataDir"]
    change(conf)
    for command in ("ADD", "DEL"):
        rc, out = run(command, conf)
        assert (rc, out["code"]) == (1, code), out
        assert message in out["msg"]
    assert run.sessions == []
    assert not os.path.exists(data_dir)


@pytest.mark.parametrize("attachments, message", [
    (None, "cni.dev/valid-attachments: None is required for GC"),
    ({"containerID": "a"}, "must be a list"),
    ([{"containerID": "a"}], "cni.dev/valid-attachments[0]"),
])
def test_gc_needs_valid_attachments(run, conf, attachments, message):
    if attachments is not None:
        conf["cni.dev/valid-attachments"] = attachments
    code, out = run("GC", conf)
    assert (code, out["code"]) == (1, 7)
    assert message in out["msg"]


# ------------------------------------------------------------------- ADD
@pytest.mark.parametrize("version", _cni.SUPPORTED_VERSIONS)
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
    kernel.spaces[None]["cni0"] = _link("cni0", 5, "bridge", up=True, stp=True, mtu=1400,
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
    kernel.spaces[None]["cni0"] = _link("cni0", 5, "bridge", up=True, addresses=["192.0.2.1/24"])
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
    kernel.spaces[NETNS]["eth0"] = _link("eth0", 3, "dummy")
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
    kernel.spaces[None]["cni0"] = _link("cni0", 5, "dummy")
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
    monkeypatch.setattr(_ipam, "LOCK_TIMEOUT", 0.05)
    with _ipam.Store(conf["ipam"]["dataDir"], conf["name"]).locked():
        code, out = run("ADD", conf)
    assert (code, out["code"]) == (1, 11)
    assert "held by another process for more than 0.05s" in out["msg"]
    assert reservations(conf) == {}


def test_unexpected_exception_is_error_999(run, conf, monkeypatch):
    def boom(*args):
        raise KeyError("surprise")
    monkeypatch.setattr(_cni, "plan_attach", boom)
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
    kernel.spaces[None][veth()] = _link(veth(), 7, "dummy")
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
    store = _ipam.Store(conf["ipam"]["dataDir"], conf["name"])
    with store.locked():
        store.release(CID, "eth0")


def _unplug(kernel, conf):
    kernel.find(None, veth())["master"] = None


def _no_iface(kernel, conf):
    kernel.apply(_plan.Action("link_del", None, veth(), {}))


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
    assert _cni.host_veth_name("keep", "eth0") in kernel.spaces[None]
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
    monkeypatch.setattr(_cni.importlib.util, "find_spec", lambda name: None)
    code, out = run("STATUS", conf)
    assert (code, out["code"]) == (1, 50)
    assert "pyroute2 cannot be imported" in out["msg"]


# ------------------------------------------------------------------ results
@pytest.mark.parametrize("version, ip_version, iface_mtu, route_mtu", [
    ("0.3.1", "4", False, False), ("0.4.0", "4", False, False),
    ("1.0.0", None, False, False), ("1.1.0", None, True, True),
])
def test_format_result_per_version(version, ip_version, iface_mtu, route_mtu):
    result = {"interfaces": [{"name": "eth0", "mac": "m", "mtu": 1500, "sandbox": "/x"}],
              "ips": [{"address": "10.0.0.2/24", "gateway": "10.0.0.1", "interface": 0, "version": "4"},
                      {"address": "fd00::2/64", "interface": 0}],
              "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1", "mtu": 1400}],
              "dns": {}}
    out = _cni.format_result(result, version)
    assert out["cniVersion"] == version
    assert [ip.get("version") for ip in out["ips"]] == ([ip_version, "6"] if ip_version else [None, None])
    assert ("mtu" in out["interfaces"][0]) == iface_mtu
    assert ("mtu" in out["routes"][0]) == route_mtu
    assert "version" in result["ips"][0]  # the input is not modified


# --------------------------------------------------------- check_conflist
def conflist(**plugin):
    entry = {"type": "podnet", "bridge": "cni0", "ipam": {"subnet": "10.244.1.0/24"}}
    entry.update(plugin)
    return json.dumps({"cniVersion": "1.0.0", "cniVersions": ["1.0.0", "1.1.0"], "name": "podnet",
                       "plugins": [entry, {"type": "portmap"}]})


def test_check_conflist_accepts_the_role_layout():
    line = _cni.check_conflist(conflist(), need_pyroute2=False)
    assert line == ("network podnet (cniVersion 1.1.0): bridge cni0, subnet 10.244.1.0/24, gateway 10.244.1.1, "
                    "IPAM state in /var/lib/cni/podnet/podnet")


@pytest.mark.parametrize("text, message", [
    (conflist(ipam={"subnet": "10.244.1.0/33"}), "ipam.subnet: '10.244.1.0/33' is not a valid network"),
    (json.dumps({"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "bridge"}]}), "has no plugin of type podnet"),
    (json.dumps({"cniVersion": "1.0.0", "name": "x"}), "plugins: None must be a non-empty list"),
    ("{", "cannot decode"),
])
def test_check_conflist_refuses(text, message):
    with pytest.raises(_cni.CniError) as err:
        _cni.check_conflist(text, need_pyroute2=False)
    assert message in err.value.msg


# ------------------------------------------------------------------ build
def _build_script():
    here = os.path.dirname(os.path.abspath(_cni.__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "roles", "cni", "files", "build_podnet.py"))


def test_built_plugin_is_reproducible_and_speaks_cni(tmp_path):
    script = _build_script()
    first, second = str(tmp_path / "a"), str(tmp_path / "b")
    for out in (first, second):
        subprocess.run([sys.executable, script, out, "--interpreter", "/usr/bin/python3"], check=True)
    with open(first, "rb") as a, open(second, "rb") as b:
        data = a.read()
        assert data == b.read()
    assert data.startswith(b"#!/usr/bin/python3\n")
    assert os.stat(first).st_mode & 0o777 == 0o755
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    out = subprocess.run([sys.executable, first], env=dict(clean, CNI_COMMAND="VERSION"),
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0 and json.loads(out.stdout)["supportedVersions"][-1] == "1.1.0"
    out = subprocess.run([sys.executable, first], env=dict(clean, CNI_COMMAND="ADD"), input="{}",
                         capture_output=True, text=True, check=False)
    assert out.returncode == 1 and json.loads(out.stdout)["code"] == 4
    conf = tmp_path / "10-podnet.conflist"
    conf.write_text(conflist())
    out = subprocess.run([sys.executable, first, "--check-conflist", str(conf), "--skip-pyroute2"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0 and out.stdout.startswith("ok: network podnet"), out.stderr
    conf.write_text(conflist(ipam={"subnet": "nope"}))
    out = subprocess.run([sys.executable, first, "--check-conflist", str(conf), "--skip-pyroute2"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 1 and "ipam.subnet: 'nope'" in out.stderr
