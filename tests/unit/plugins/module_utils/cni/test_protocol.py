# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The CNI protocol without the kernel: environment, stdin, configuration, results.

Bad input is refused before anything is read or changed: no session is made,
no IPAM state is written.
"""
from __future__ import annotations

import errno
import json
import os

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.cni import main, protocol
from ansible_collections.podnet.mesh.tests.unit.plugins.module_utils.cni.fake_kernel import env


# ---------------------------------------------------------------- environment
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
    code, text = main.run(environ, lambda: json.dumps(conf).encode())
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
    code, text = main.run(env("ADD"), broken)
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
    out = protocol.format_result(result, version)
    assert out["cniVersion"] == version
    assert [ip.get("version") for ip in out["ips"]] == ([ip_version, "6"] if ip_version else [None, None])
    assert ("mtu" in out["interfaces"][0]) == iface_mtu
    assert ("mtu" in out["routes"][0]) == route_mtu
    assert "version" in result["ips"][0]  # the input is not modified
