# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The node state file: its shape (version 1), what each section turns into, what is refused. No kernel."""
from __future__ import annotations

import ipaddress
import json

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ValidationError
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import nat as nat_plan
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import pod as pod_plan
from ansible_collections.podnet.mesh.plugins.module_utils.node import state as node_state
from ansible_collections.podnet.mesh.tests.unit.plugins.module_utils.node.statedoc import DOC, doc


def test_the_roles_document_is_read_into_the_modules_wants():
    state = node_state.parse(doc())
    assert state.version == 1 and state.node == "node1"
    assert state.concerns == ["kernel", "masquerade", "bridge", "routes", "pods"]
    assert state.wants["bridge"] == {"name": "cni0", "addresses": ["10.244.1.1/24"], "mac": "0a:58:0a:f4:01:01",
                                     "mtu": None, "stp": False, "up": True, "state": "present"}
    assert state.wants["masquerade"] == nat_plan.validate(dict(DOC["masquerade"], forward=True))
    routes = state.wants["routes"]
    assert (routes["purge"], routes["proto"], routes["table"], routes["netns"]) == (True, 149, 254, None)
    assert [(r["dst"], r["via"], r["metric"]) for r in routes["routes"]] == [
        ("10.244.2.0/24", "192.168.1.12", 0), ("10.244.3.0/24", "192.168.1.13", 0)]
    pods = state.wants["pods"]
    assert pods == pod_plan.validate({"pods": DOC["pods"]["pods"], "bridge": "cni0", "pod_cidr": "10.244.1.0/24",
                                      "gateway": None, "mtu": None, "hairpin": None, "proto": 149,
                                      "state": "present"})
    assert [p["addresses"] for p in pods["pods"]] == [{4: ipaddress.ip_address("10.244.1.2")},
                                                      {4: ipaddress.ip_address("10.244.1.3")}]
    assert state.wants["kernel"] == {"modules": [], "sysctls": []}


def test_sections_are_optional_and_a_mac_given_is_kept():
    state = node_state.parse({"version": 1, "bridge": {"name": "br9", "addresses": ["10.9.0.1/24"],
                                                       "mac": "0A:58:00:00:00:01"}, "pods": None})
    assert state.concerns == ["bridge"] and state.node is None
    assert state.wants["bridge"]["mac"] == "0a:58:00:00:00:01"
    assert node_state.parse({"version": 1}).concerns == []
    assert node_state.parse({"version": 1, "bridge": {"addresses": ["fd00::1/64"]}}).wants["bridge"]["mac"] == "0a:58:00:00:00:01"
    assert node_state.parse({"version": 1, "bridge": {"addresses": []}}).wants["bridge"]["mac"] is None


def test_kernel_section_keeps_order_and_normalises_names():
    want = node_state.parse({"version": 1, "kernel": {
        "modules": ["br_netfilter"], "sysctls": {"net/bridge/bridge-nf-call-iptables": "1", "net.ipv4.ip_forward": 1}}})
    assert want.wants["kernel"] == {"modules": ["br_netfilter"], "sysctls": [
        ("net.bridge.bridge-nf-call-iptables", "1"), ("net.ipv4.ip_forward", "1")]}


@pytest.mark.parametrize("document, message", [
    ([], "state: [] must be an object"),
    ({"version": 2}, "version: 2 is not a shape this program reads (it reads version 1)"),
    ({"version": "1"}, "version: '1' must be the state file's shape version"),
    ({"version": True}, "version: true must be the state file's shape version"),
    ({}, "version: null must be"),
    (doc(extra=1), "state.extra: 1 is not part of the state file shape 1"),
    (doc(node=3), "node: 3 must be a string"),
    (doc(bridge={"name": "cni0", "addresses": ["10.244.1.1"]}), "bridge.addresses[0]: '10.244.1.1'"),
    (doc(bridge={"name": "x" * 16}), "bridge.name: "),
    (doc(bridge={"name": "cni0", "stp": True}), "bridge.stp: true is not part of the state file shape 1"),
    (doc(bridge={"name": "cni0", "mac": "01:00:5e:00:00:01"}), "bridge.mac: '01:00:5e:00:00:01' is a multicast"),
    (doc(masquerade={"source": []}), "masquerade.source: [] must list at least one network"),
    (doc(masquerade={"source": ["10.244.0.0/16"], "backend": "pf"}), "masquerade.backend: 'pf'"),
    (doc(masquerade={"source": ["10.244.0.0/16"], "forward": "yes"}), "masquerade.forward: 'yes' must be true or false"),
    (doc(routes={"routes": [{"dst": "10.244.2.0/24"}]}), "routes.routes[0]: "),
    (doc(routes={"routes": [{"dst": "10.244.2.0/24", "via": "192.168.1.12", "gw": "x"}]}),
     "routes.routes[0].gw: 'x' is not part of"),
    (doc(routes={"routes": "10.244.2.0/24"}), "routes.routes: '10.244.2.0/24' must be a list"),
    (doc(routes={"routes": [], "proto": 300}), "routes.proto: 300"),
    (doc(routes={"routes": [], "purge": 1}), "routes.purge: 1 must be true or false"),
    (doc(pods={"pod_cidr": "10.244.1.0/24", "pods": [{"name": "red", "address": "10.244.9.2"}]}),
     "pods.pods[0].address: '10.244.9.2' is not a host address of pod_cidr 10.244.1.0/24"),
    (doc(pods={"pod_cidr": "10.244.1.0/24", "pods": [{"name": "red", "ip": "10.244.1.2"}]}),
     "pods.pods[0].ip: '10.244.1.2' is not part of"),
    (doc(pods={"pods": []}), "pods.pod_cidr: "),
    (doc(pods={"pod_cidr": "10.244.1.0/24", "pods": [{"name": "red"}, {"name": "red"}]}),
     "pods.pods[1].name: 'red' is listed twice"),
    (doc(kernel={"modules": ["-r"]}), "kernel.modules[0]: '-r' is not a kernel module name"),
    (doc(kernel={"sysctls": {"net..x": "1"}}), "kernel.sysctls.net..x: 'net..x' is not a sysctl name"),
    (doc(kernel={"sysctls": {"net.ipv4.ip_forward": "1\n0"}}), "kernel.sysctls.net.ipv4.ip_forward: '1\\n0' must be"),
    (doc(kernel={"sysctls": {"net.ipv4.ip_forward": True}}), "kernel.sysctls.net.ipv4.ip_forward: true must be a value"),
    (doc(kernel={"sysctls": ["net.ipv4.ip_forward"]}), "kernel.sysctls: [\"net.ipv4.ip_forward\"] must be an object"),
])
def test_what_is_refused_is_named_by_its_path(document, message):
    with pytest.raises(ValidationError) as err:
        node_state.parse(document)
    assert str(err.value).startswith(message), str(err.value)


def test_load_reads_files_and_refuses_what_is_no_state(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(node_state.dumps(DOC))
    assert node_state.load(str(path)).concerns == ["kernel", "masquerade", "bridge", "routes", "pods"]
    assert json.loads(path.read_text()) == DOC and path.read_text().endswith("}\n")
    path.write_text("{not json")
    with pytest.raises(ValidationError, match="^state: '{not json' is not JSON"):
        node_state.load(str(path))
    path.write_bytes(b'{"version": 1, "node": "\xff"}')
    with pytest.raises(ValidationError, match="is not UTF-8 text"):
        node_state.load(str(path))
    with pytest.raises(OSError):
        node_state.load(str(tmp_path / "missing.json"))


def test_dumps_is_stable():
    assert node_state.dumps(DOC) == node_state.dumps(json.loads(node_state.dumps(DOC)))


def test_the_overlay_section_is_the_overlay_modules_options():
    doc = {"version": 1, "overlay": {"local": "192.168.1.11", "peers": [{"node_ip": "192.168.2.13",
                                                                         "vtep": ["10.244.3.0"]}]},
           "routes": {"routes": [{"dst": "10.244.3.0/24", "via": "10.244.3.0", "dev": "podnet.vxlan", "onlink": True}]}}
    state = node_state.parse(doc)
    assert state.concerns == ["overlay", "routes"]
    assert state.wants["overlay"]["peers"] == [{"node_ip": "192.168.2.13", "vtep": ["10.244.3.0"],
                                               "mac": "0e:58:c0:a8:02:0d"}]
    assert state.wants["overlay"]["port"] == 8472 and state.wants["overlay"]["name"] == "podnet.vxlan"
    assert state.wants["routes"]["routes"][0]["onlink"] is True
    with pytest.raises(ValidationError) as err:
        node_state.parse({"version": 1, "overlay": {"local": "192.168.1.11", "peers": [{"node_ip": "x", "vtep": []}]}})
    assert str(err.value).startswith("overlay.peers[0].node_ip: 'x' is not an IP address")
