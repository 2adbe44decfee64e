# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""probe_report: one matrix per address family, today's lines when there is one family."""

from __future__ import annotations

import pytest

from ansible_collections.podnet.mesh.plugins.filter import mesh

LEGEND = "('.' ok, 'X' failed, 'N' NATed, '-' self)"


def pod(name, *addresses):
    return {"name": name, "address": addresses[0] if addresses else None, "addresses": list(addresses),
            "node": None, "problem": None if addresses else "no IPv4 or IPv6 address on eth0"}


def res(src, src_address, dst, dst_address, ok=True, nat=False, kind="pod"):
    family = 6 if ":" in dst_address else 4
    return {"src": src, "src_address": src_address, "dst": dst, "dst_address": dst_address, "kind": kind,
            "family": family, "ok": ok, "nat": nat}


def hostvars(**nodes):
    return dict((node, {"podnet_verify_check": {"pods": pods, "results": results, "failures": failures}})
                for node, (pods, results, failures) in nodes.items())


# Two nodes, one dual-stack pod each; node2's IPv6 connection to node1 is NATed, and node2 does
# not reach the IPv6 external host.
DUAL = hostvars(
    n1=([pod("red", "10.0.1.2", "fd00:1::2")],
        [res("red", "10.0.1.2", "red@n2", "10.0.2.2"), res("red", "fd00:1::2", "red@n2", "fd00:2::2"),
         res("red", "10.0.1.2", "203.0.113.10", "203.0.113.10", kind="external"),
         res("red", "fd00:1::2", "2001:db8::10", "2001:db8::10", kind="external")],
        []),
    n2=([pod("red", "10.0.2.2", "fd00:2::2")],
        [res("red", "10.0.2.2", "red@n1", "10.0.1.2"),
         res("red", "fd00:2::2", "red@n1", "fd00:1::2", ok=False, nat=True),
         res("red", "10.0.2.2", "203.0.113.10", "203.0.113.10", kind="external"),
         res("red", "fd00:2::2", "2001:db8::10", "2001:db8::10", ok=False, kind="external")],
        ["red (fd00:2::2) -> red@n1 (fd00:1::2): source NATed to fd00:2::1",
         "red (fd00:2::2) -> 2001:db8::10 (2001:db8::10): no ping answer"]),
)


def test_dual_stack_has_one_matrix_per_family():
    report = mesh.probe_report(["n1", "n2"], DUAL)
    assert report["lines"] == [
        "IPv4",
        "       | 1   2   | 203.0.113.10",
        "red@n1 | -   .   | .              1=10.0.1.2",
        "red@n2 | .   -   | .              2=10.0.2.2",
        "IPv6",
        "       | 1   2   | 2001:db8::10",
        "red@n1 | -   .   | .              1=fd00:1::2",
        "red@n2 | N   -   | X              2=fd00:2::2",
        "8 probes, 2 failed " + LEGEND,
    ]
    assert report["probes"] == 8
    assert report["families"] == [4, 6]
    assert report["failures"] == ["n2: red (fd00:2::2) -> red@n1 (fd00:1::2): source NATed to fd00:2::1",
                                  "n2: red (fd00:2::2) -> 2001:db8::10 (2001:db8::10): no ping answer"]


def test_a_pod_without_the_family_is_left_out_of_its_matrix():
    # blue has IPv4 only: it is in the IPv4 matrix only, and nobody probed it over IPv6.
    hv = hostvars(n1=([pod("red", "10.0.1.2", "fd00:1::2"), pod("blue", "10.0.1.3"), pod("green", "fd00:1::4")],
                      [res("red", "10.0.1.2", "blue@n1", "10.0.1.3"), res("blue", "10.0.1.3", "red@n1", "10.0.1.2"),
                       res("red", "fd00:1::2", "green@n1", "fd00:1::4"),
                       res("green", "fd00:1::4", "red@n1", "fd00:1::2")],
                      []))
    report = mesh.probe_report(["n1"], hv)
    assert report["lines"] == [
        "IPv4",
        "         | 1   2  ",
        "red@n1   | -   .     1=10.0.1.2",
        "blue@n1  | .   -     2=10.0.1.3",
        "IPv6",
        "         | 1   2  ",
        "red@n1   | -   .     1=fd00:1::2",
        "green@n1 | .   -     2=fd00:1::4",
        "4 probes, 0 failed " + LEGEND,
    ]


def test_a_pod_without_any_address_is_in_every_matrix():
    hv = hostvars(n1=([pod("red", "10.0.1.2", "fd00:1::2"), pod("blue")], [],
                      ["blue@n1: no IPv4 or IPv6 address on eth0, it reaches nothing"]))
    report = mesh.probe_report(["n1"], hv)
    assert report["lines"][0] == "IPv4"
    assert report["lines"][2:4] == ["red@n1  | -   X     1=10.0.1.2", "blue@n1 | X   -     2=no address"]
    assert report["lines"][4] == "IPv6"
    assert report["lines"][6:8] == ["red@n1  | -   X     1=fd00:1::2", "blue@n1 | X   -     2=no address"]
    assert report["failures"] == ["n1: blue@n1: no IPv4 or IPv6 address on eth0, it reaches nothing"]


@pytest.mark.parametrize("a, b, external", [
    ("10.0.1.2", "10.0.2.2", "203.0.113.10"),
    ("fd00:1::2", "fd00:2::2", "2001:db8::10"),
])
def test_one_family_keeps_a_single_matrix_without_heading(a, b, external):
    hv = hostvars(n1=([pod("red", a)], [res("red", a, "red@n2", b), res("red", a, external, external, kind="external")],
                      []),
                  n2=([pod("red", b)], [res("red", b, "red@n1", a, ok=False, nat=True),
                                        res("red", b, external, external, ok=False, kind="external")],
                      ["NATed", "no ping"]))
    report = mesh.probe_report(["n1", "n2"], hv)
    pad = " " * (len(external) - 1)
    assert report["lines"] == [
        "       | 1   2   | " + external,
        "red@n1 | -   .   | ." + pad + "   1=" + a,
        "red@n2 | N   -   | X" + pad + "   2=" + b,
        "4 probes, 2 failed " + LEGEND,
    ]
    assert report["families"] == [4 if a.count(".") else 6]


def test_results_of_older_modules_without_addresses_or_family():
    hv = {"n1": {"podnet_verify_check": {
        "pods": [{"name": "red", "address": "10.0.1.2"}, {"name": "blue", "address": "10.0.1.3"}],
        "results": [{"src": "red", "dst": "blue@n1", "dst_address": "10.0.1.3", "kind": "pod", "ok": True},
                    {"src": "blue", "dst": "red@n1", "dst_address": "10.0.1.2", "kind": "pod", "ok": True}],
        "failures": []}}}
    report = mesh.probe_report(["n1"], hv)
    assert report["lines"][1:3] == ["red@n1  | -   .     1=10.0.1.2", "blue@n1 | .   -     2=10.0.1.3"]
    assert report["probes"] == 2


def test_no_nodes_and_no_results():
    assert mesh.probe_report([], {}) == {"lines": ["     | ", "0 probes, 0 failed " + LEGEND], "failures": [],
                                         "probes": 0, "families": []}
