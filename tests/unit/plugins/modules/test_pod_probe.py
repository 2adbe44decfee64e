# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""pod_probe without the kernel: pods' addresses per family, the probes planned, the verdicts.

The netlink layer is a fake and the commands the module would run in the pods
are answered here, so these prove which probes each pod runs (per address
family) and how their outcomes become results and failure lines.
"""
from __future__ import annotations

import json

import pytest

from ansible.module_utils import basic

from ansible_collections.podnet.mesh.plugins.module_utils.kernel import netlink as _netlink
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import netns as _netns
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import pyroute2_parts
from ansible_collections.podnet.mesh.plugins.modules import pod_probe
from ansible_collections.podnet.mesh.tests.helpers.module_runner import run_main, stub_exits

ADDRESSES = {
    "dual": ["fd00::2/64", "10.0.0.2/24", "fe80::1/64"],
    "four": ["10.0.0.3/24"],
    "six": ["fd00::4/64", "fe80::4/64"],
    "none": ["fe80::5/64"],
}


class FakeNamespace:
    def __init__(self, name):
        self.name = name

    def links(self, with_addresses=()):
        return {"eth0": {"name": "eth0", "addresses": list(ADDRESSES[self.name])}}


class FakeSession:
    def ns(self, name=None):
        return FakeNamespace(name)

    def close(self):
        pass


@pytest.fixture
def probe(monkeypatch):
    """Run pod_probe; outcome(job) answers each probe the pods would run. Returns (kind, result, jobs)."""
    stub_exits(monkeypatch)
    monkeypatch.setattr(pyroute2_parts, "HAS_PYROUTE2", True)
    monkeypatch.setattr(_netlink, "Session", FakeSession)
    monkeypatch.setattr(_netns, "netns_exists", lambda name: name in ADDRESSES)

    def _probe(args, outcome=None):
        ran = []

        def run_command(self, argv, **kw):
            pod = argv[1].rsplit("/", 1)[1]
            if argv[argv.index("-c") + 1] == pod_probe.LISTENER:
                ran.append((pod, "listen"))
                return 0, "ready\n", ""
            jobs = json.loads(argv[-3])
            ran.append((pod, jobs))
            out = []
            for job in jobs:
                res = dict(job, ping=True, ping_error=None, tcp=None, seen=None, tcp_error=None)
                if job["kind"] == "pod":
                    res.update(tcp=True, seen=job["src_address"])
                res.update((outcome or (lambda job: {}))(job))
                out.append(res)
            return 0, json.dumps(out), ""

        monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
        kind, result = run_main(pod_probe.main, args)
        return kind, result, ran
    return _probe


def test_listen_returns_every_global_address_ipv4_first(probe):
    kind, result, ran = probe({"mode": "listen", "pods": ["dual", "four", "six", "none", "gone"], "node": "n1"})
    assert kind == "exit", result
    assert result["changed"] is False
    assert result["pods"] == [
        {"name": "dual", "address": "10.0.0.2", "addresses": ["10.0.0.2", "fd00::2"], "node": "n1", "problem": None},
        {"name": "four", "address": "10.0.0.3", "addresses": ["10.0.0.3"], "node": "n1", "problem": None},
        {"name": "six", "address": "fd00::4", "addresses": ["fd00::4"], "node": "n1", "problem": None},
        {"name": "none", "address": None, "addresses": [], "node": "n1",
         "problem": "no IPv4 or IPv6 address on eth0"},
        {"name": "gone", "address": None, "addresses": [], "node": "n1", "problem": "namespace does not exist"},
    ]
    # Listeners only where there is an address to reach.
    assert ran == [("dual", "listen"), ("four", "listen"), ("six", "listen")]


TARGETS = [
    {"name": "dual", "node": "n1", "address": "10.0.0.2", "addresses": ["10.0.0.2", "fd00::2"]},
    {"name": "four", "node": "n1", "address": "10.0.0.3", "addresses": ["10.0.0.3"]},
    {"name": "six", "node": "n1", "address": "fd00::4", "addresses": ["fd00::4"]},
    {"name": "red", "node": "n2", "address": "10.0.2.2/24"},
]


def pairs(jobs):
    return [(j["src_address"], j["dst"], j["dst_address"], j["kind"], j["family"]) for j in jobs]


def test_each_pod_probes_the_addresses_of_its_own_families(probe):
    kind, result, ran = probe({"pods": ["dual", "four", "six"], "node": "n1", "targets": TARGETS,
                               "external": ["2001:db8::10", "203.0.113.10"]})
    assert kind == "exit", result
    assert [pod for pod, _jobs in ran] == ["dual", "four", "six"]
    assert pairs(ran[0][1]) == [
        ("10.0.0.2", "four@n1", "10.0.0.3", "pod", 4),
        ("fd00::2", "six@n1", "fd00::4", "pod", 6),
        ("10.0.0.2", "red@n2", "10.0.2.2", "pod", 4),
        ("10.0.0.2", "203.0.113.10", "203.0.113.10", "external", 4),
        ("fd00::2", "2001:db8::10", "2001:db8::10", "external", 6),
    ]
    assert pairs(ran[1][1]) == [
        ("10.0.0.3", "dual@n1", "10.0.0.2", "pod", 4),
        ("10.0.0.3", "red@n2", "10.0.2.2", "pod", 4),
        ("10.0.0.3", "203.0.113.10", "203.0.113.10", "external", 4),
    ]
    assert pairs(ran[2][1]) == [
        ("fd00::4", "dual@n1", "fd00::2", "pod", 6),
        ("fd00::4", "2001:db8::10", "2001:db8::10", "external", 6),
    ]
    # A family the source lacks is no failure.
    assert result["failures"] == []
    assert len(result["results"]) == 10
    assert all(r["ok"] and not r["nat"] for r in result["results"])


def test_nat_is_judged_per_family(probe):
    def outcome(job):
        if job["family"] == 6 and job["kind"] == "pod":
            return {"seen": "fd00::1"}
        return {}

    kind, result, ran = probe({"pods": ["dual"], "node": "n1", "targets": TARGETS[1:3]}, outcome)
    by_family = dict((r["family"], r) for r in result["results"])
    assert by_family[4]["nat"] is False and by_family[4]["ok"] is True
    assert by_family[6]["nat"] is True and by_family[6]["ok"] is False
    assert result["failures"] == ["dual@n1 (fd00::2) -> six@n1 (fd00::4): source NATed to fd00::1"]


def test_seen_source_is_compared_as_an_address(probe):
    # The same IPv6 address written out in full is no NAT.
    kind, result, ran = probe({"pods": ["six"], "targets": TARGETS[:1]},
                              lambda job: {"seen": "fd00:0000:0000:0000:0000:0000:0000:0004"})
    assert result["results"][0]["nat"] is False
    assert result["failures"] == []


def test_an_unusable_source_address_is_named(probe):
    def outcome(job):
        return {"ping": False, "ping_error": "ping: bind icmp socket: Cannot assign requested address",
                "tcp": False if job["kind"] == "pod" else None,
                "tcp_error": "EADDRNOTAVAIL (Cannot assign requested address)" if job["kind"] == "pod" else None,
                "seen": None}

    kind, result, ran = probe({"pods": ["six"], "targets": TARGETS[:1], "external": ["2001:db8::10"]}, outcome)
    assert kind == "exit", result
    assert [r["ok"] for r in result["results"]] == [False, False]
    why = ("source address fd00::4 is not usable (EADDRNOTAVAIL: not on the pod, or IPv6 duplicate address "
           "detection holds it as tentative or found it duplicated)")
    assert result["failures"] == ["six (fd00::4) -> dual@n1 (fd00::2): " + why,
                                  "six (fd00::4) -> 2001:db8::10 (2001:db8::10): " + why]


def test_failure_lines(probe):
    def outcome(job):
        if job["dst_address"] == "10.0.0.3":
            return {"ping": False, "tcp": False, "tcp_error": "timed out", "seen": None}
        return {"ping": False, "ping_error": "ping: connect: Network is unreachable"}

    kind, result, ran = probe({"pods": ["dual", "gone"], "node": "n1",
                               "targets": [TARGETS[1], {"name": "lost", "address": None, "problem": "no eth0"}],
                               "external": ["203.0.113.10"]}, outcome)
    assert result["failures"] == [
        "dual@n1 (10.0.0.2, fd00::2) -> lost: no eth0",
        "dual@n1 (10.0.0.2) -> four@n1 (10.0.0.3): no ping answer, no TCP connection",
        "dual@n1 (10.0.0.2) -> 203.0.113.10 (203.0.113.10): no ping answer (ping: connect: Network is unreachable)",
        "gone@n1: namespace does not exist, it reaches nothing",
    ]


def test_a_pod_with_nothing_to_probe_runs_nothing(probe):
    kind, result, ran = probe({"pods": ["four"], "targets": TARGETS[2:3], "external": ["2001:db8::10"]})
    assert kind == "exit", result
    assert ran == []
    assert result["results"] == [] and result["failures"] == []


@pytest.mark.parametrize("targets, external, message", [
    ([{"name": "x"}], [], 'targets[0]: {"name": "x"} needs name and address (or addresses)'),
    ([{"name": "x", "addresses": ["10.0.0.1", "fd00::zz"]}], [], "targets[0].addresses[1]: 'fd00::zz'"),
    ([{"name": "x", "addresses": "10.0.0.1"}], [], "targets[0].addresses: '10.0.0.1' is not a list"),
    ([], ["203.0.113.10", "2001:db8::x"], "external[1]: '2001:db8::x'"),
])
def test_bad_input_fails_before_probing(probe, targets, external, message):
    kind, result, ran = probe({"pods": ["dual"], "targets": targets, "external": external})
    assert kind == "fail"
    assert result["msg"].startswith(message), result["msg"]
    assert ran == []


@pytest.mark.parametrize("cidrs, expected", [
    (["fd00::2/64", "10.0.0.2/24"], ["10.0.0.2", "fd00::2"]),
    (["fe80::1/64", "fe80::2", "fd00::2"], ["fd00::2"]),
    (["10.0.0.3", "10.0.0.2/24", "10.0.0.3/24"], ["10.0.0.3", "10.0.0.2"]),
    (["FD00:0::2", "fd00::2/64"], ["fd00::2"]),
    ([], []),
])
def test_ordered(cidrs, expected):
    assert pod_probe.ordered(cidrs) == expected
