# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab as wanted, without the kernel: node pattern, validation, the returned object."""
from __future__ import annotations

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ValidationError
from ansible_collections.podnet.mesh.plugins.module_utils.lab import topology
from ansible_collections.podnet.mesh.tests.unit.plugins.module_utils.lab.fakelab import (
    LAB, ROOT, FakeLab, converge, want)


# ------------------------------------------------------------------ pattern
def test_generate_the_classic_three_nodes():
    lab = topology.generate(3)
    assert lab["gateway"] == "192.168.1.1/24"
    assert lab["nodes"][0] == {
        "name": "node1", "ip": "192.168.1.11", "address": "192.168.1.11/24",
        "pod_cidr": "10.244.1.0/24",
        "pods": [{"name": "red", "address": "10.244.1.2"}, {"name": "blue", "address": "10.244.1.3"}],
    }
    assert [n["address"] for n in lab["nodes"]] == [
        "192.168.1.11/24", "192.168.1.12/24", "192.168.1.13/24"]
    assert [n["pod_cidr"] for n in lab["nodes"]] == ["10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"]
    assert lab["nodes"][2]["pods"][1] == {"name": "blue", "address": "10.244.3.3"}


def test_generate_fifty_nodes_stays_in_the_24():
    lab = topology.generate(50)
    assert lab["gateway"] == "192.168.1.1/24"
    assert lab["nodes"][-1]["address"] == "192.168.1.60/24"
    assert lab["nodes"][-1]["pod_cidr"] == "10.244.50.0/24"


@pytest.mark.parametrize("count, gateway, last", [
    (244, "192.168.1.1/24", "192.168.1.254/24"),
    (245, "192.168.1.1/22", "192.168.1.255/22"),
    (255, "192.168.1.1/22", "192.168.2.9/22"),
])
def test_generate_widens_the_switch_network_only_when_needed(count, gateway, last):
    lab = topology.generate(count)
    assert lab["gateway"] == gateway
    assert lab["nodes"][-1]["address"] == last
    assert lab["nodes"][0]["address"].split("/")[0] == "192.168.1.11"
    assert len({n["ip"] for n in lab["nodes"]}) == count


@pytest.mark.parametrize("kwargs, message", [
    ({"count": 0}, "positive integer"),
    ({"count": True}, "positive integer"),
    ({"count": 256}, "256 nodes need 256 pod CIDRs"),
    ({"count": 3, "pods": ["p%d" % i for i in range(300)]}, "do not fit"),
    ({"count": 3, "gateway": "fd00::1/64"}, "IPv4 only"),
    ({"count": 3, "pod_prefix": 12}, "between the cluster prefix"),
])
def test_generate_refuses_impossible_labs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        topology.generate(**kwargs)


# --------------------------------------------------------------- validation
def test_validate_normalises_and_computes_the_router_addresses():
    w = want(2)
    assert w["path"] == LAB
    assert w["gateway"] == "192.168.1.1/24"
    assert w["router_external"] == "203.0.113.1/24"
    assert w["nodes"] == [{"name": "node1", "address": "192.168.1.11/24"},
                          {"name": "node2", "address": "192.168.1.12/24"}]


def test_router_takes_the_last_external_address_if_the_first_is_the_external_host():
    assert topology.external_gateway("203.0.113.1/24") == "203.0.113.254/24"


def test_absent_needs_no_nodes():
    w = topology.validate({"name": "t", "root": ROOT + "/", "state": "absent", "nodes": None})
    assert w["nodes"] == [] and w["path"] == LAB


@pytest.mark.parametrize("params, path, reason", [
    ({"name": "../x"}, "name", "not a valid lab name"),
    ({"name": ""}, "name", "not a valid lab name"),
    ({"root": "relative"}, "root", "absolute path"),
    ({"root": "/run/../etc"}, "root", "absolute path"),
    ({"root": "/"}, "root", "must not be /"),
    ({"nodes": [{"name": "router", "address": "192.168.1.5/24"}]}, "nodes[0].name", "reserved"),
    ({"nodes": [{"name": "a_b", "address": "192.168.1.5/24"}]}, "nodes[0].name", "not a valid node name"),
    ({"nodes": [{"name": "n" * 16, "address": "192.168.1.5/24"}]}, "nodes[0].name", "not a valid"),
    ({"nodes": [{"name": "a", "address": "192.168.1.5/24"}, {"name": "a", "address": "192.168.1.6/24"}]},
     "nodes[1].name", "listed twice"),
    ({"nodes": [{"name": "a", "address": "192.168.2.5/24"}]}, "nodes[0].address", "not on the switch network"),
    ({"nodes": [{"name": "a", "address": "192.168.1.5/25"}]}, "nodes[0].address", "not on the switch network"),
    ({"nodes": [{"name": "a", "address": "192.168.1.1/24"}]}, "nodes[0].address", "taken by gateway"),
    ({"nodes": [{"name": "a", "address": "192.168.1.5/24"}, {"name": "b", "address": "192.168.1.5/24"}]},
     "nodes[1].address", "taken by nodes[0]"),
    ({"nodes": [{"name": "a"}]}, "nodes[0].address", "is required"),
    ({"nodes": [{"name": "a", "address": "192.168.1.5/24", "ip": 1}]}, "nodes[0]", "unknown key"),
    ({"nodes": "node1"}, "nodes", "must be a list"),
    ({"gateway": "192.168.1.1"}, "gateway", "prefix length"),
    ({"gateway": "fd00::1/64"}, "gateway", "IPv4"),
    ({"external": "192.168.1.200/24"}, "external", "overlaps the switch network"),
    ({"external": "203.0.113.10/31"}, "external", "at least 4 addresses"),
])
def test_validate_refuses_with_a_path(params, path, reason):
    base = {"name": "t", "root": ROOT, "nodes": [], "state": "present"}
    with pytest.raises(ValidationError) as err:
        topology.validate(dict(base, **params))
    assert err.value.path == path
    assert reason in str(err.value)


# -------------------------------------------------------------------- views
def test_render_check_mode_and_read_back():
    fake = FakeLab()
    w = want(1)
    predicted = topology.render(w, fake.cur(), True)
    converge(fake, w)
    actual = topology.render(w, fake.cur(), False)
    assert predicted == actual
    assert actual["nodes"] == [{"name": "node1", "address": "192.168.1.11/24",
                                "net": LAB + "/node1/net", "mnt": LAB + "/node1/mnt",
                                "uts": LAB + "/node1/uts"}]
    assert actual["namespaces"]["router"] == LAB + "/router/net"
    assert topology.render(want(state="absent"), FakeLab().cur(), False)["state"] == "absent"
