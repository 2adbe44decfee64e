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
    # Python's re.match(...$) takes a trailing newline; the SPEC's pattern does not.
    ("ADD", {"CNI_CONTAINERID": "c0ffee\n"}, ["CNI_CONTAINERID 'c0ffee\\n' is invalid"]),
    ("DEL", {"CNI_CONTAINERID": "c\u00f6ffee"}, ["CNI_CONTAINERID 'c\u00f6ffee' is invalid"]),
    ("ADD", {"CNI_CONTAINERID": "\u0661\u0662"}, ["CNI_CONTAINERID '\u0661\u0662' is invalid"]),
    ("ADD", {"CNI_IFNAME": "eth0\n"}, ["CNI_IFNAME: 'eth0\\n' is not a valid interface name"]),
    ("ADD", {"CNI_IFNAME": "\u00e9th0"}, ["CNI_IFNAME: '\u00e9th0' is not a valid interface name"]),
    ("ADD", {"CNI_IFNAME": "eth%d"}, ["CNI_IFNAME: 'eth%d' is not a valid interface name"]),
    ("ADD", {"CNI_IFNAME": "eth\x01"}, ["CNI_IFNAME: 'eth\\x01' is not a valid interface name"]),
    ("ADD", {"CNI_IFNAME": "\udcff"}, ["CNI_IFNAME: '\\udcff' is not a valid interface name"]),
    ("CHECK", {"CNI_NETNS": "/run/netns/pod1\n"}, ["CNI_NETNS '/run/netns/pod1\\n' is not an absolute path",
                                                   "control characters"]),
    ("ADD", {"CNI_NETNS": "/run/\x00netns"}, ["control characters"]),
    ("ADD\n", {}, ["CNI_COMMAND 'ADD\\n' is not a CNI verb"]),
    ("add", {}, ["CNI_COMMAND 'add' is not a CNI verb"]),
    ("X" * 500, {}, ["CNI_COMMAND 'XXXX", "XXX... is not a CNI verb"]),
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
    (b"", "it is empty; a JSON object is expected"),
    (b" \n\t", "it is empty"),
    (b"{\"cniVersion\": ", "Expecting value"),
    (b"\xff\xfe", "it is not UTF-8 text (byte 0)"),
    (b"[1, 2]", "must be a JSON object, not an array"),
    (b"null", "must be a JSON object, not null"),
    (b"true", "must be a JSON object, not a boolean"),
    (b"\"x\"", "must be a JSON object, not a string"),
    # What Python's json takes and JSON does not.
    (b"{\"mtu\": NaN}", "NaN is not a JSON number"),
    (b"{\"mtu\": Infinity}", "Infinity is not a JSON number"),
    (b"{\"mtu\": -Infinity}", "-Infinity is not a JSON number"),
    (b"{\"mtu\": 1e999}", "the number '1e999' is too large"),
    (b"{\"mtu\": -1e400}", "the number '-1e400' is too large"),
    (b"{\"mtu\": " + b"9" * 5000 + b"}", "the number '99999"),
    (b"{\"name\": \"a\", \"name\": \"b\"}", "the key 'name' appears twice in one object"),
    (b"{\"ipam\": {\"subnet\": \"10.244.1.0/24\", \"subnet\": \"10.0.0.0/8\"}}", "the key 'subnet' appears twice"),
    (b"\xef\xbb\xbf{}", "byte order mark"),
    # Nesting that would exhaust Python's recursion limit, and nesting just past ours.
    (b"[" * 100000, "nests more than 64 levels deep"),
    (b"{\"a\": " * 100000, "nests more than 64 levels deep"),
    (b"{\"args\": " + b"[" * 64 + b"]" * 64 + b"}", "nests more than 64 levels deep"),
    (b"{\"a\": 1}" + b" " * (protocol.MAX_INPUT + 1), "larger than"),
])
def test_undecodable_config_is_error_6(run, kernel, raw, why):
    code, out = run("ADD", None, raw=raw)
    assert (code, out["code"]) == (1, 6)
    assert why in out["msg"]
    assert run.applied == []


def test_nesting_up_to_the_limit_is_taken(run, conf):
    conf["args"] = json.loads("[" * 63 + "]" * 63)
    code, out = run("ADD", conf)
    assert code == 0, out


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0", "0.3.0", "1.2.0", "2.0.0", "", "1.0.0\n", " 1.0.0"])
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
    (_without(["cniVersion"]), 7, "configuration: cniVersion is required"),
    (_set(["cniVersion"], None), 7, "configuration: cniVersion is required"),
    (_set(["cniVersion"], 1), 7, "cniVersion: 1 must be a version string"),
    (_set(["cniVersion"], ["1.0.0"]), 7, "cniVersion: [\"1.0.0\"] must be a version string"),
    (_without(["name"]), 7, "configuration: name must be a network name"),
    (_set(["name"], "../etc"), 7, "name: '../etc' must be a network name"),
    (_set(["name"], "podnet\n"), 7, "name: 'podnet\\n' must be a network name"),
    (_set(["name"], "p\u00f6dnet"), 7, "must be a network name: an ASCII letter"),
    (_set(["name"], "\u0661"), 7, "must be a network name"),
    (_set(["name"], "n" * 256), 7, "at most 255 in all"),
    (_set(["name"], 7), 7, "name: 7 must be a network name"),
    (_without(["type"]), 7, "configuration: type is required"),
    (_set(["type"], ["podnet"]), 7, "type: [\"podnet\"] is required"),
    (_without(["ipam"]), 7, "configuration: ipam is required"),
    (_set(["ipam"], "podnet"), 7, "ipam: 'podnet' is required: an object"),
    (_without(["ipam", "subnet"]), 7, "configuration: ipam.subnet is not a network in CIDR form"),
    (_set(["ipam", "subnet"], 16), 7, "ipam.subnet: 16 is not a network in CIDR form"),
    (_set(["ipam", "subnet"], "0.0.0.0/0"), 7, "is wider than /8"),
    (_set(["ipam", "subnet"], "10.0.0.0/7"), 7, "is wider than /8"),
    (_set(["ipam", "subnet"], "127.0.0.0/24"), 7, "overlaps the loopback block 127.0.0.0/8"),
    (_set(["ipam", "subnet"], "169.254.1.0/24"), 7, "overlaps the link-local block"),
    (_set(["ipam", "subnet"], "224.1.0.0/24"), 7, "overlaps the multicast block"),
    (_set(["ipam", "subnet"], "240.0.0.0/24"), 7, "overlaps the reserved block"),
    (_set(["ipam", "subnet"], "255.255.255.252/30"), 7, "overlaps the reserved block"),
    (_set(["ipam", "subnet"], "0.0.0.0/24"), 7, "overlaps the unspecified"),
    (_set(["ipam", "subnet"], "fe80::%eth0/64"), 7, "has a zone"),
    (_set(["ipam", "subnet"], "10.244.1.0/33"), 7, "ipam.subnet: '10.244.1.0/33' is not a valid network"),
    (_set(["ipam", "subnet"], "10.244.1.1/24"), 7, "has host bits set"),
    (_set(["ipam", "subnet"], "10.244.300.0/24"), 7, "ipam.subnet: '10.244.300.0/24' is not a valid network"),
    (_set(["ipam", "subnet"], "fd00::/121"), 7, "ipam.subnet: 'fd00::/121' must be an IPv6 network of at least 256"),
    (_set(["ipam", "subnet"], "10.244.1.0/31"), 7, "of at least 4 addresses"),
    (_set(["ipam", "gateway"], "10.244.2.1"), 7, "ipam.gateway: '10.244.2.1' is not a host address"),
    (_set(["ipam", "gateway"], "10.244.1.255"), 7, "is not a host address of ipam.subnet"),
    (_set(["ipam", "gateway"], "gw"), 7, "ipam.gateway: 'gw' is not an IP address"),
    (_set(["ipam", "gateway"], 183238913), 7, "ipam.gateway: 183238913 is not an IP address"),
    (_set(["ipam", "gateway"], ["10.244.1.1"]), 7, "ipam.gateway: [\"10.244.1.1\"] is not an IP address"),
    (_set(["ipam", "gateway"], True), 7, "ipam.gateway: true is not an IP address"),
    (_set(["ipam", "dataDir"], "var/lib"), 7, "ipam.dataDir: 'var/lib' must be an absolute path"),
    (_set(["ipam", "dataDir"], 5), 7, "ipam.dataDir: 5 must be an absolute path"),
    (_set(["ipam", "dataDir"], "/var/lib/\u0000x"), 7, "must be a path of printable UTF-8 text"),
    (_set(["ipam", "dataDir"], "/var/lib/x\n"), 7, "must be a path of printable UTF-8 text"),
    (_set(["ipam", "dataDir"], "/var/lib/\ud800"), 7, "must be a path of printable UTF-8 text"),
    (_set(["ipam", "type"], ["podnet"]), 7, "ipam.type: [\"podnet\"] must be a string"),
    (_set(["ipam", "rangeStart"], 5), 7, "ipam.rangeStart: 5 is not an IP address"),
    (_set(["ipam", "rangeEnd"], {"a": 1}), 7, "ipam.rangeEnd: {\"a\": 1} is not an IP address"),
    (_set(["clusterCIDR"], "10.245.0.0/16"), 7, "is not inside clusterCIDR 10.245.0.0/16"),
    (_set(["clusterCIDR"], "10.245.0.0"), 7, "clusterCIDR: '10.245.0.0' is not a network"),
    (_set(["bridge"], "bridge-name-too-long"), 7, "bridge: 'bridge-name-too-long' is 20 bytes long"),
    (_set(["mtu"], 40), 7, "mtu: 40 is out of range"),
    (_set(["mtu"], "1500"), 7, "mtu: '1500' must be an integer"),
    (_set(["mtu"], 1500.0), 7, "mtu: 1500.0 must be an integer"),
    (_set(["mtu"], True), 7, "mtu: true must be an integer"),
    (_set(["mtu"], 10 ** 30), 7, "mtu: 1000000000000000000000000000000 is out of range"),
    (_set(["mtu"], [1500]), 7, "mtu: [1500] must be an integer"),
    (_set(["bridge"], 0), 7, "bridge: 0 must be a non-empty string"),
    (_set(["bridge"], ""), 7, "bridge: '' must be a non-empty string"),
    (_set(["bridge"], "cni\u00e9"), 7, "is not a valid interface name"),
    (_set(["bridge"], "cni%d"), 7, "is not a valid interface name"),
    (_set(["bridge"], "cni0\n"), 7, "is not a valid interface name"),
    (_set(["hairpinMode"], "yes"), 7, "hairpinMode: 'yes' must be true or false"),
    (_set(["hairpinMode"], 1), 7, "hairpinMode: 1 must be true or false"),
    (_set(["isGateway"], "false"), 7, "isGateway: 'false' must be true or false"),
    (_set(["ipMasq"], 0), 7, "ipMasq: 0 must be true or false"),
    (_set(["clusterCIDR"], 10), 7, "clusterCIDR: 10 is not a network"),
    (_set(["dns"], []), 7, "dns: [] must be an object"),
    (_set(["dns"], {"nameservers": "10.0.0.10"}), 7, "dns.nameservers: '10.0.0.10' must be a list of strings"),
    (_set(["dns"], {"nameservers": [10]}), 7, "dns.nameservers[0]: 10 must be a string"),
    (_set(["dns"], {"search": [None]}), 7, "dns.search[0] must be a string"),
    (_set(["dns"], {"options": {}}), 7, "dns.options: {} must be a list of strings"),
    (_set(["dns"], {"domain": 1}), 7, "dns.domain: 1 must be a string"),
    (_set(["prevResult"], []), 7, "prevResult: [] must be a result object"),
    (_set(["prevResult"], {"ips": [{"address": "10.0.0.300/24"}]}), 7, "prevResult.ips[0].address"),
    (_set(["prevResult"], {"ips": [{"address": "10.0.0.3/24", "interface": 4}]}), 7,
     "prevResult.ips[0].interface: 4 is not an index into interfaces"),
    (_set(["prevResult"], {"interfaces": [{"mac": "x"}]}), 7, "prevResult.interfaces[0].name"),
    # prevResult: every field of the SPEC's result with its JSON type.
    (_set(["prevResult"], {"interfaces": {}}), 7, "prevResult.interfaces: {} must be a list"),
    (_set(["prevResult"], {"interfaces": 0}), 7, "prevResult.interfaces: 0 must be a list"),
    (_set(["prevResult"], {"interfaces": ["eth0"]}), 7, "prevResult.interfaces[0]: 'eth0' must be an object"),
    (_set(["prevResult"], {"interfaces": [{"name": ""}]}), 7, "prevResult.interfaces[0].name: '' is required"),
    (_set(["prevResult"], {"interfaces": [{"name": 5}]}), 7, "prevResult.interfaces[0].name: 5 must be a string"),
    (_set(["prevResult"], {"interfaces": [{"name": "eth0", "mac": 5}]}), 7,
     "prevResult.interfaces[0].mac: 5 must be a string"),
    (_set(["prevResult"], {"interfaces": [{"name": "eth0", "mac": "zz:58:0a:f4:01:02"}]}), 7,
     "prevResult.interfaces[0].mac: 'zz:58:0a:f4:01:02' is not a MAC address"),
    (_set(["prevResult"], {"interfaces": [{"name": "eth0", "sandbox": ["/run/netns/x"]}]}), 7,
     "prevResult.interfaces[0].sandbox: [\"/run/netns/x\"] must be a string"),
    (_set(["prevResult"], {"interfaces": [{"name": "eth0", "mtu": "1500"}]}), 7,
     "prevResult.interfaces[0].mtu: '1500' must be an integer"),
    (_set(["prevResult"], {"interfaces": [{"name": "eth0", "mtu": -1}]}), 7,
     "prevResult.interfaces[0].mtu: -1 must be an integer from 0"),
    (_set(["prevResult"], {"ips": [{"address": 167772161}]}), 7, "prevResult.ips[0].address: 167772161 must be"),
    (_set(["prevResult"], {"ips": [{}]}), 7, "prevResult.ips[0].address is required"),
    (_set(["prevResult"], {"ips": [{"address": "10.0.0.3"}]}), 7, "prevResult.ips[0].address: '10.0.0.3' is not"),
    (_set(["prevResult"], {"ips": [{"address": "fe80::3%eth0/64"}]}), 7, "is not an address in CIDR form"),
    (_set(["prevResult"], {"ips": [{"address": "10.0.0.3/24", "gateway": 5}]}), 7,
     "prevResult.ips[0].gateway: 5 must be a string"),
    (_set(["prevResult"], {"ips": [{"address": "10.0.0.3/24", "gateway": "gw"}]}), 7,
     "prevResult.ips[0].gateway: 'gw' is not an IP address"),
    (_set(["prevResult"], {"ips": [{"address": "10.0.0.3/24", "version": 4}]}), 7,
     "prevResult.ips[0].version: 4 must be a string"),
    (_set(["prevResult"], {"ips": [{"address": "10.0.0.3/24", "version": "5"}]}), 7,
     "prevResult.ips[0].version: '5' must be \"4\" or \"6\""),
    (_set(["prevResult"], {"interfaces": [{"name": "eth0"}], "ips": [{"address": "10.0.0.3/24", "interface": True}]}),
     7, "prevResult.ips[0].interface: true must be an integer"),
    (_set(["prevResult"], {"interfaces": [{"name": "eth0"}], "ips": [{"address": "10.0.0.3/24", "interface": 0.0}]}),
     7, "prevResult.ips[0].interface: 0.0 must be an integer"),
    (_set(["prevResult"], {"routes": [{"dst": 5}]}), 7, "prevResult.routes[0].dst: 5 must be a string"),
    (_set(["prevResult"], {"routes": [{}]}), 7, "prevResult.routes[0].dst is required"),
    (_set(["prevResult"], {"routes": [{"dst": "10.0.0.0"}]}), 7, "prevResult.routes[0].dst: '10.0.0.0' is not"),
    (_set(["prevResult"], {"routes": [{"dst": "0.0.0.0/0", "gw": "bogus"}]}), 7,
     "prevResult.routes[0].gw: 'bogus' is not an IP address"),
    (_set(["prevResult"], {"routes": [{"dst": "0.0.0.0/0", "gw": 167772161}]}), 7,
     "prevResult.routes[0].gw: 167772161 must be a string"),
    (_set(["prevResult"], {"routes": [{"dst": "0.0.0.0/0", "table": "main"}]}), 7,
     "prevResult.routes[0].table: 'main' must be an integer"),
    (_set(["prevResult"], {"dns": [1]}), 7, "prevResult.dns: [1] must be an object"),
    (_set(["prevResult"], {"dns": {"nameservers": [1]}}), 7, "prevResult.dns.nameservers[0]: 1 must be a string"),
    (_set(["ipam", "rangeStart"], "10.244.2.9"), 7, "defines no usable pool: range start 10.244.2.9 is not a host"),
    (_set(["ipam", "rangeEnd"], "x"), 7, "ipam.rangeEnd: 'x' is not an IP address"),
    # A range that holds the gateway alone: no address a container can have.
    (lambda conf: conf["ipam"].update(rangeStart="10.244.1.1", rangeEnd="10.244.1.1"), 7,
     "defines no usable pool: the range 10.244.1.1-10.244.1.1 holds no address but the gateway"),
    (lambda conf: conf["ipam"].update(gateway="10.244.1.9", rangeStart="10.244.1.9", rangeEnd="10.244.1.9"), 7,
     "holds no address but the gateway"),
    (lambda conf: conf["ipam"].update(rangeStart="10.244.1.0"), 7, "range start 10.244.1.0 is not a host address"),
    (lambda conf: conf["ipam"].update(rangeEnd="10.244.1.255"), 7, "range end 10.244.1.255 is not a host address"),
    (lambda conf: conf["ipam"].update(rangeStart="fd00::1"), 7, "defines no usable pool"),
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
    ({"containerID": "a"}, "must be a list"),
    ([{"containerID": "a"}], "cni.dev/valid-attachments[0]"),
    (["c1/eth0"], "cni.dev/valid-attachments[0]: 'c1/eth0' must be an object"),
    ([{"containerID": ["c1"], "ifname": "eth0"}], "cni.dev/valid-attachments[0]: {\"containerID\": [\"c1\"]"),
    ([{"containerID": "c1", "ifname": None}], "must be an object with containerID and ifname"),
])
def test_gc_refuses_a_malformed_list(run, conf, attachments, message):
    conf["cni.dev/valid-attachments"] = attachments
    code, out = run("GC", conf)
    assert (code, out["code"]) == (1, 7)
    assert message in out["msg"]
    assert "None" not in out["msg"]


@pytest.mark.parametrize("fields, expected", [
    ({}, None),
    ({"cni.dev/valid-attachments": None}, set()),
    ({"cni.dev/valid-attachments": []}, set()),
    ({"cni.dev/attachments": [{"containerID": "c1", "ifname": "eth0"}]}, {("c1", "eth0")}),
    ({"cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}], "cni.dev/attachments": None},
     {("c1", "eth0")}),
])
def test_gc_list_as_libcni_sends_it(fields, expected):
    """libcni leaves the list out without GC arguments, sends null for none, and sends the old name too."""
    data = dict({"cniVersion": "1.1.0", "name": "podnet", "type": "podnet", "ipam": {"subnet": "10.244.1.0/24"}},
                **fields)
    assert protocol.parse_config(data, "GC")["attachments"] == expected


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


# ------------------------------------------------------------ dual-stack
V4 = {"subnet": "10.244.1.0/24"}
V6 = {"subnet": "fd00:10:244:1::/64"}


def _ranges(*sets, **fields):
    conf = {"cniVersion": "1.1.0", "name": "podnet", "type": "podnet", "ipam": {"ranges": list(sets)}}
    conf.update(fields)
    return conf


def test_ranges_give_one_range_per_family_in_their_order():
    conf = protocol.parse_config(_ranges(
        [dict(V6, gateway="fd00:10:244:1::fe", rangeStart="fd00:10:244:1::100", rangeEnd="fd00:10:244:1::1ff")],
        [V4], clusterCIDRs=["10.244.0.0/16", "fd00:10:244::/56"]), "ADD")
    assert [(str(r["subnet"]), str(r["gateway"]), str(r["range_start"]), str(r["range_end"]), r["path"])
            for r in conf["ranges"]] == [
        ("fd00:10:244:1::/64", "fd00:10:244:1::fe", "fd00:10:244:1::100", "fd00:10:244:1::1ff", "ipam.ranges[0][0]"),
        ("10.244.1.0/24", "10.244.1.1", "None", "None", "ipam.ranges[1][0]")]
    assert [str(c) for c in conf["cluster_cidrs"]] == ["10.244.0.0/16", "fd00:10:244::/56"]


def test_the_subnet_shorthand_is_one_range_and_may_be_ipv6():
    conf = protocol.parse_config({"cniVersion": "1.0.0", "name": "n", "type": "podnet",
                                  "clusterCIDR": "fd00:10:244::/56", "ipam": {"subnet": "fd00:10:244:7::/64"}}, "ADD")
    assert [(str(r["subnet"]), str(r["gateway"]), r["path"]) for r in conf["ranges"]] == [
        ("fd00:10:244:7::/64", "fd00:10:244:7::1", "ipam")]


@pytest.mark.parametrize("conf, code, message", [
    (dict(_ranges([V4]), ipam={"ranges": [[V4]], "subnet": "10.244.1.0/24"}), 7,
     "ipam.subnet: '10.244.1.0/24' cannot be given with ipam.ranges"),
    (dict(_ranges([V4]), ipam={"ranges": [[V4]], "rangeStart": "10.244.1.9"}), 7,
     "ipam.rangeStart: '10.244.1.9' cannot be given with ipam.ranges"),
    (_ranges(), 7, "ipam.ranges: [] must be a non-empty list of range sets"),
    (dict(_ranges(), ipam={"ranges": {"subnet": "10.244.1.0/24"}}), 7, "ipam.ranges: {\"subnet\""),
    (_ranges([]), 7, "ipam.ranges[0]: [] must be a non-empty list of ranges"),
    (_ranges(V4), 7, "ipam.ranges[0]: {\"subnet\": \"10.244.1.0/24\"} must be a non-empty list"),
    (_ranges(["10.244.1.0/24"]), 7, "ipam.ranges[0][0]: '10.244.1.0/24' must be an object"),
    (_ranges([V4], [V6], [{"subnet": "10.244.2.0/24"}]), 7,
     "ipam.ranges[2][0].subnet: '10.244.2.0/24' is a second IPv4 range set (also 10.244.1.0/24 at ipam.ranges[0][0])"),
    (_ranges([V6], [{"subnet": "fd00:10:244:2::/64"}]), 7, "ipam.ranges[1][0].subnet: 'fd00:10:244:2::/64' is a second IPv6"),
    (_ranges([V4, {"subnet": "10.244.2.0/24"}]), 2, "unsupported field ipam.ranges[0][1]: podnet takes one range per"),
    (_ranges([V4, V6]), 2, "unsupported field ipam.ranges[0][1]"),
    (_ranges([{}]), 7, "ipam.ranges[0][0].subnet is not a network in CIDR form"),
    (_ranges([V4], [{"subnet": "fd00::/121"}]), 7, "ipam.ranges[1][0].subnet: 'fd00::/121' must be an IPv6 network"),
    (_ranges([V4], [{"subnet": "fe80::/64"}]), 7, "ipam.ranges[1][0].subnet: 'fe80::/64' overlaps the link-local"),
    (_ranges([V4], [dict(V6, gateway="10.244.1.1")]), 7,
     "ipam.ranges[1][0].gateway: '10.244.1.1' is not a host address of ipam.ranges[1][0].subnet fd00:10:244:1::/64"),
    (_ranges([V4], [dict(V6, gateway="fd00:10:244:1::")]), 7, "ipam.ranges[1][0].gateway: 'fd00:10:244:1::' is not a host"),
    (_ranges([V4], [dict(V6, rangeStart="fd00:10:244:2::1")]), 7,
     "ipam.ranges[1][0]: {\"subnet\": \"fd00:10:244:1::/64\", \"rangeStart\": \"fd00:10:244:2::1\"} defines no usable pool"),
    (_ranges([V4], [dict(V6, rangeStart="10.244.1.5")]), 7, "range start 10.244.1.5 is not a host address"),
    (_ranges([V4], [dict(V6, rangeEnd=7)]), 7, "ipam.ranges[1][0].rangeEnd: 7 is not an IP address"),
    (_ranges([V4], [V6], clusterCIDR="10.244.0.0/16"), 7,
     "ipam.ranges[1][0].subnet: 'fd00:10:244:1::/64' is not inside clusterCIDR (it has no IPv6 prefix)"),
    (_ranges([V4], [V6], clusterCIDRs=["10.244.0.0/16", "fd00:99::/56"]), 7,
     "ipam.ranges[1][0].subnet: 'fd00:10:244:1::/64' is not inside clusterCIDRs fd00:99::/56"),
    (_ranges([V4], clusterCIDRs=["10.244.0.0/16", "10.0.0.0/8"]), 7,
     "clusterCIDRs[1]: '10.0.0.0/8' is a second IPv4 prefix (also 10.244.0.0/16)"),
    (_ranges([V4], clusterCIDRs="10.244.0.0/16"), 7, "clusterCIDRs: '10.244.0.0/16' must be a non-empty list"),
    (_ranges([V4], clusterCIDRs=["10.244.0.0/16"], clusterCIDR="10.244.0.0/16"), 7,
     "clusterCIDRs: [\"10.244.0.0/16\"] cannot be given with clusterCIDR"),
    (_ranges([V4], clusterCIDRs=["10.244.0.0/33"]), 7, "clusterCIDRs[0]: '10.244.0.0/33' is not a valid network"),
])
def test_bad_ranges_are_refused_naming_the_path(conf, code, message):
    with pytest.raises(protocol.CniError) as caught:
        protocol.parse_config(conf, "ADD")
    assert caught.value.code == code
    assert message in caught.value.msg, caught.value.msg


def test_bad_ranges_are_refused_before_any_change(run, conf):
    data_dir = conf["ipam"]["dataDir"]
    conf["ipam"] = {"dataDir": data_dir, "ranges": [[V4], [V6], [{"subnet": "fd00:1::/64"}]]}
    for command in ("ADD", "DEL", "CHECK", "GC", "STATUS"):
        rc, out = run(command, conf)
        assert (rc, out["code"]) == (1, 7), out
        assert "ipam.ranges[2][0].subnet" in out["msg"]
    assert run.sessions == []
    assert not os.path.exists(data_dir)


def test_a_dual_stack_result_parses_as_prev_result():
    prev = protocol.parse_result({
        "cniVersion": "0.4.0",
        "interfaces": [{"name": "eth0", "sandbox": "/run/netns/x"}],
        "ips": [{"version": "4", "address": "10.244.1.2/24", "gateway": "10.244.1.1", "interface": 0},
                {"version": "6", "address": "fd00:10:244:1::2/64", "gateway": "fd00:10:244:1::1", "interface": 0}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.244.1.1"}, {"dst": "::/0", "gw": "fd00:10:244:1::1", "priority": 1024}],
    }, "prevResult")
    assert [ip["address"] for ip in prev["ips"]] == ["10.244.1.2/24", "fd00:10:244:1::2/64"]
    assert prev["routes"][1] == {"dst": "::/0", "gw": "fd00:10:244:1::1", "priority": 1024}
    out = protocol.format_result(prev, "0.4.0")
    assert [ip["version"] for ip in out["ips"]] == ["4", "6"]
    for bad, message in ((("ips", 1, "address"), "fd00::2/129"), (("routes", 1, "gw"), "fd00::1%eth0")):
        data = {"ips": [{"address": "10.244.1.2/24"}, {"address": "fd00::2/64"}],
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "fd00::1"}]}
        data[bad[0]][bad[1]][bad[2]] = message
        with pytest.raises(protocol.CniError, match=r"prevResult\.%s\[1\]\.%s" % (bad[0], bad[2])):
            protocol.parse_result(data, "prevResult")


def test_check_conflist_names_every_range(tmp_path):
    path = tmp_path / "10-podnet.conflist"
    path.write_text(json.dumps({"cniVersion": "1.0.0", "name": "podnet", "plugins": [
        {"type": "podnet", "ipam": {"ranges": [[V4], [V6]], "dataDir": str(tmp_path / "ipam")}}]}))
    assert main.check_conflist(path.read_text()).startswith(
        "network podnet (cniVersion 1.0.0): bridge cni0, subnet 10.244.1.0/24, gateway 10.244.1.1, "
        "subnet fd00:10:244:1::/64, gateway fd00:10:244:1::1, IPAM state in")
