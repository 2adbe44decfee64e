# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""topology_svg and matrix_svg: well-formed, complete, escaped, deterministic SVG."""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.podnet.mesh.plugins.filter import mesh, pictures

NS = "{http://www.w3.org/2000/svg}"
HOSTILE = 'a<b&"c'


def parse(svg):
    assert svg.endswith("</svg>\n")
    root = ET.fromstring(svg)
    assert root.tag == NS + "svg"
    return root


def texts(root):
    return [e.text for e in root.iter(NS + "text")]


def classes(root, tag, prefix):
    """The class attributes of the elements of tag whose class starts with prefix."""
    return [e.get("class") for e in root.iter(NS + tag) if (e.get("class") or "").startswith(prefix)]


def node(number, subnet=1, dual=False, read=True):
    hv = {"podnet_pod_cidr": "10.244.%d.0/24" % number, "podnet_node_ip": "192.168.%d.1%d" % (subnet, number)}
    if dual:
        hv["podnet_pod_cidrs"] = ["10.244.%d.0/24" % number, "fd00:10:244:%d::/64" % number]
        hv["podnet_node_ips"] = ["192.168.%d.1%d" % (subnet, number), "fd00:168:%d::1%d" % (subnet, number)]
    if read:
        nets = ["192.168.%d.0/24" % subnet] + (["fd00:168:%d::/64" % subnet] if dual else [])
        hv["podnet_node_info"] = {"networks": nets}
    return hv


# The routed lab: node1 and node2 on one subnet, node3 on another.
ROUTED = {"node1": node(1), "node2": node(2), "node3": node(3, subnet=2)}
FLAT = {"node1": node(1), "node2": node(2), "node3": node(3)}


def modes_of(nodes, hostvars, backend):
    """The modes of the unordered pairs, from mesh_table (what the picture must show)."""
    modes = []
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            there = [p["mode"] for p in mesh.mesh_table(nodes, hostvars, a, backend) if p["name"] == b]
            back = [p["mode"] for p in mesh.mesh_table(nodes, hostvars, b, backend) if p["name"] == a]
            modes.append(there[0] if there == back else "mixed")
    return sorted(modes)


@pytest.mark.parametrize("hostvars, backend, expected", [
    (ROUTED, "auto", ["host-gw", "vxlan", "vxlan"]),
    (FLAT, "auto", ["host-gw", "host-gw", "host-gw"]),
    (FLAT, "vxlan", ["vxlan", "vxlan", "vxlan"]),
    (FLAT, "host-gw", ["host-gw", "host-gw", "host-gw"]),
])
def test_topology_has_every_node_and_one_edge_per_pair_by_mode(hostvars, backend, expected):
    nodes = sorted(hostvars)
    root = parse(pictures.topology_svg(nodes, hostvars, backend))
    assert sorted(e.split()[1] for e in classes(root, "path", "edge")) == expected == modes_of(nodes, hostvars, backend)
    assert [t for t in texts(root) if t in nodes] == nodes
    for name in nodes:
        assert "node %s" % hostvars[name]["podnet_node_ip"] in texts(root)
        assert "pods %s" % hostvars[name]["podnet_pod_cidr"] in texts(root)
    labels = [t for t in texts(root) if t in ("host-gw", "vxlan")]
    assert sorted(labels) == expected
    heading = root.find(NS + "title").text
    assert heading == "Pod network: 3 nodes, 3 pairs: %d host-gw, %d vxlan" % (expected.count("host-gw"),
                                                                               expected.count("vxlan"))


def test_topology_groups_the_nodes_by_subnet():
    root = parse(pictures.topology_svg(["node1", "node2", "node3"], ROUTED, "auto"))
    assert [t for t in texts(root) if t.startswith("subnet")] == ["subnet 192.168.1.0/24", "subnet 192.168.2.0/24"]
    data = pictures.topology(["node1", "node2", "node3"], ROUTED, "auto")
    assert data["subnets"] == [(("192.168.1.0/24",), ["node1", "node2"]), (("192.168.2.0/24",), ["node3"])]
    assert data["counts"] == {"host-gw": 1, "vxlan": 2, "mixed": 0}


def test_topology_without_networks_read():
    hostvars = {"node1": node(1, read=False), "node2": node(2, read=False)}
    root = parse(pictures.topology_svg(["node1", "node2"], hostvars, "host-gw"))
    assert "subnet not read" in texts(root)
    assert classes(root, "path", "edge") == ["edge host-gw"]


def test_topology_pair_whose_ways_differ_is_mixed():
    # node2 has no networks read, so auto takes node1 as adjacent; node1 sees node2 elsewhere.
    hostvars = {"node1": node(1), "node2": node(2, subnet=3, read=False)}
    root = parse(pictures.topology_svg(["node1", "node2"], hostvars, "auto"))
    assert classes(root, "path", "edge") == ["edge mixed"]
    tips = [e.text for e in root.iter(NS + "title") if "node1 - node2" in (e.text or "")]
    assert "node1 -> node2 vxlan via 192.168.3.12" in tips[0] and "node2 -> node1 host-gw via 192.168.1.11" in tips[0]
    assert "host-gw/vxlan" in texts(root)


def test_topology_dual_stack_shows_both_families():
    hostvars = {"node1": node(1, dual=True), "node2": node(2, dual=True)}
    root = parse(pictures.topology_svg(["node1", "node2"], hostvars, "auto"))
    assert {"node 192.168.1.11", "node fd00:168:1::11", "pods 10.244.1.0/24", "pods fd00:10:244:1::/64"} <= set(texts(root))
    assert "subnet 192.168.1.0/24, fd00:168:1::/64" in texts(root)


def test_topology_of_one_node_and_of_none():
    root = parse(pictures.topology_svg(["node1"], {"node1": node(1)}, "auto"))
    assert "node1" in texts(root) and classes(root, "path", "edge") == []
    parse(pictures.topology_svg([], {}, "auto"))


# ----------------------------------------------------------------------------- matrix


def probe_hostvars(names, pods=("red", "blue"), dual=False, broken=(), nat=(), externals=("203.0.113.10",)):
    """Every pod probing every other pod and the external hosts; broken/nat: (src label, dst label) pairs."""
    def addresses(number, index):
        return ["10.244.%d.%d" % (number, 2 + index)] + (["fd00:10:244:%d::%d" % (number, 2 + index)] if dual else [])
    all_pods = [(n, p, addresses(k + 1, i)) for k, n in enumerate(names) for i, p in enumerate(pods)]
    hostvars = {}
    for node_name in names:
        mine = [(p, a) for n, p, a in all_pods if n == node_name]
        results, failures = [], []
        for pod, src in mine:
            label = "%s@%s" % (pod, node_name)
            targets = [("%s@%s" % (p, n), a, "pod") for n, p, a in all_pods if "%s@%s" % (p, n) != label]
            targets += [(e, [e], "external") for e in externals]
            for dst, dst_addresses, kind in targets:
                for address in dst_addresses:
                    if ":" in address and not dual:
                        continue
                    ok = (label, dst) not in broken and (label, dst) not in nat
                    results.append({"src": pod, "src_address": src[0], "dst": dst, "dst_address": address,
                                    "kind": kind, "ok": ok, "nat": (label, dst) in nat})
                    if not ok:
                        failures.append("%s -> %s (%s): failed" % (pod, dst, address))
        hostvars[node_name] = {"podnet_verify_check": {
            "pods": [{"name": p, "address": a[0], "addresses": a} for p, a in mine],
            "results": results, "failures": failures}}
    return hostvars


def cells(root, family=None):
    found = []
    for group in root.iter(NS + "g"):
        if group.get("class") == "matrix" and (family is None or group.get("data-family") == family):
            found += [g.get("class").split()[1] for g in group.iter(NS + "g") if (g.get("class") or "").startswith("cell")]
    return found


def test_matrix_counts_match_the_report():
    names = ["node1", "node2", "node3"]
    hostvars = probe_hostvars(names, broken={("blue@node3", "red@node1")}, nat={("red@node2", "blue@node1")})
    report = mesh.probe_report(names, hostvars)
    root = parse(pictures.matrix_svg(names, hostvars))
    found = cells(root)
    assert len(found) == 6 * 7  # 6 pods by 6 pods and 1 external host
    assert found.count("self") == 6
    assert found.count("pass") == report["probes"] - 2 == 34
    assert found.count("fail") == 1 and found.count("nat") == 1 and found.count("none") == 0
    assert root.find(NS + "title").text == "Connectivity: 36 probes, 2 failed"
    labels = texts(root)
    for node_name in names:
        for pod in ("red", "blue"):
            assert labels.count("%s@%s" % (pod, node_name)) == 2  # row and column
    assert "203.0.113.10" in labels
    tips = [t.text for t in root.iter(NS + "title")]
    assert "blue@node3 (10.244.3.3) -> red@node1 (10.244.1.2): failed" in tips
    assert "red@node2 (10.244.2.2) -> blue@node1 (10.244.1.3): NATed (failed)" in tips


def test_matrix_marks_missing_results_as_not_probed():
    hostvars = probe_hostvars(["node1", "node2"])
    hostvars["node2"]["podnet_verify_check"]["results"] = []
    found = cells(parse(pictures.matrix_svg(["node1", "node2"], hostvars)))
    assert found.count("none") == 2 * 4 and found.count("pass") == 2 * 4


def test_matrix_dual_stack_has_a_panel_per_family():
    names = ["node1", "node2"]
    hostvars = probe_hostvars(names, dual=True, externals=("203.0.113.10", "2001:db8::10"),
                              broken={("red@node1", "blue@node2")})
    root = parse(pictures.matrix_svg(names, hostvars))
    assert [g.get("data-family") for g in root.iter(NS + "g") if g.get("class") == "matrix"] == ["IPv4", "IPv6"]
    for family in ("IPv4", "IPv6"):
        found = cells(root, family)
        assert len(found) == 4 * 5 and found.count("self") == 4 and found.count("fail") == 1
    assert "fd00:10:244:1::2" in texts(root) and "2001:db8::10" in texts(root)
    assert root.find(NS + "title").text == "Connectivity: %d probes, 2 failed" % mesh.probe_report(names, hostvars)["probes"]


def test_matrix_without_results():
    root = parse(pictures.matrix_svg([], {}))
    assert "no probe results" in texts(root)
    root = parse(pictures.matrix_svg(["node1"], {"node1": {}}))
    assert cells(root) == []


# ----------------------------------------------------------------------------- both


def hostile():
    """A node and a pod named like markup."""
    probes = probe_hostvars([HOSTILE, "node2"], pods=(HOSTILE, "blue"))
    return {HOSTILE: dict(node(1), **probes[HOSTILE]), "node2": dict(node(2), **probes["node2"])}


def test_hostile_names_are_escaped():
    hostvars = hostile()
    topo = pictures.topology_svg([HOSTILE, "node2"], hostvars, "auto")
    grid = pictures.matrix_svg([HOSTILE, "node2"], hostvars)
    for svg in (topo, grid):
        assert HOSTILE not in svg and "a&lt;b&amp;&quot;c" in svg
    assert HOSTILE in texts(parse(topo))
    assert "%s@%s" % (HOSTILE, HOSTILE) in texts(parse(grid))
    assert "%s@node2" % HOSTILE in texts(parse(grid))


def test_characters_xml_forbids_are_replaced():
    name = "bad\x00\x1bname'"
    hostvars = {name: node(1), "node2": node(2)}
    root = parse(pictures.topology_svg([name, "node2"], hostvars, "auto"))
    assert "bad\ufffd\ufffdname'" in texts(root)


@pytest.mark.parametrize("draw", [
    lambda hv: pictures.topology_svg(sorted(hv, key=str), hv, "auto"),
    lambda hv: pictures.matrix_svg(sorted(hv, key=str), hv),
], ids=["topology", "matrix"])
def test_same_input_same_bytes(draw):
    hostvars = dict(ROUTED)
    for name, extra in probe_hostvars(sorted(ROUTED), dual=False).items():
        hostvars[name] = dict(hostvars[name], **extra)
    first = draw(hostvars)
    assert draw(copy.deepcopy(hostvars)) == first
    assert draw(dict(reversed(list(copy.deepcopy(hostvars).items())))) == first
    assert first.encode("utf-8") == draw(hostvars).encode("utf-8")


def test_filters_are_registered():
    assert sorted(pictures.FilterModule().filters()) == ["matrix_svg", "topology_svg"]
