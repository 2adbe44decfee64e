# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Kernel modules and sysctls of the restore: the plan, and the session with a fake runner."""
from __future__ import annotations

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.core.describe import describe_all
from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ToolError
from ansible_collections.podnet.mesh.plugins.module_utils.node import system

WANT = {"modules": ["br_netfilter"],
        "sysctls": [("net.bridge.bridge-nf-call-iptables", "1"), ("net.ipv4.ip_default_ttl", "64")]}


@pytest.mark.parametrize("current, expected", [
    ({"modules": {"br_netfilter": False}, "sysctls": {"net.bridge.bridge-nf-call-iptables": None,
                                                      "net.ipv4.ip_default_ttl": "64"}},
     ["load kernel module br_netfilter", "set net.bridge.bridge-nf-call-iptables = 1"]),
    ({"modules": {"br_netfilter": True}, "sysctls": {"net.bridge.bridge-nf-call-iptables": "0",
                                                     "net.ipv4.ip_default_ttl": "63"}},
     ["set net.bridge.bridge-nf-call-iptables = 1", "set net.ipv4.ip_default_ttl = 64"]),
    ({"modules": {"br_netfilter": True}, "sysctls": {"net.bridge.bridge-nf-call-iptables": "1",
                                                     "net.ipv4.ip_default_ttl": "64"}}, []),
])
def test_plan_kernel(current, expected):
    plan = system.plan_kernel(WANT, current)
    assert describe_all(plan.actions) == expected
    assert plan.after["modules"] == ["br_netfilter"]
    for action in plan.actions:
        if action.op == "sysctl":
            assert action.args["path"] == "/proc/sys/" + action.name.replace(".", "/")


class Runner:
    def __init__(self, files=None, rc=0, modprobe="/usr/sbin/modprobe"):
        self.files = dict(files or {})
        self.ran = []
        self.rc = rc
        self.modprobe = modprobe

    def which(self, name):
        return self.modprobe if name == "modprobe" else None

    def run(self, argv, data=None):
        self.ran.append(argv)
        return self.rc, "", "modprobe: FATAL: Module nope not found" if self.rc else ""

    def read_file(self, path):
        return self.files.get(path)

    def write_file(self, path, text):
        if path.startswith("/proc/sys/net/bridge") and "loaded" not in self.files:
            raise OSError(2, "No such file or directory")
        self.files[path] = text


def test_session_reads_loads_and_writes():
    runner = Runner({"/proc/sys/net/ipv4/ip_default_ttl": "64\n"})
    session = system.Session(runner)
    current = session.read(WANT)
    assert current["sysctls"] == {"net.bridge.bridge-nf-call-iptables": None, "net.ipv4.ip_default_ttl": "64"}
    runner.files["loaded"] = True
    plan = system.plan_kernel(WANT, dict(current, modules={"br_netfilter": False}))
    session.apply(plan.actions)
    assert runner.ran == [["/usr/sbin/modprobe", "br_netfilter"]]
    assert runner.files["/proc/sys/net/bridge/bridge-nf-call-iptables"] == "1\n"
    assert session.applied == plan.actions


def test_session_names_what_failed():
    plan = system.plan_kernel(WANT, {"modules": {}, "sysctls": {}})
    with pytest.raises(ToolError, match="cannot load kernel module br_netfilter: modprobe exited with 1: modprobe: FATAL"):
        system.Session(Runner(rc=1)).apply(plan.actions)
    with pytest.raises(ToolError, match="modprobe was not found"):
        system.Session(Runner(modprobe=None)).apply(plan.actions)
    with pytest.raises(ToolError, match=r"cannot set net.bridge.bridge-nf-call-iptables = 1: \[Errno 2\]"):
        system.Session(Runner()).apply(plan.actions[1:])


@pytest.mark.parametrize("there, expected", [
    ({"/sys/module/br_netfilter"}, True),
    ({"/proc/sys/net/bridge"}, True),  # built in: no /sys/module entry, maybe no modprobe either
    (set(), False),
])
def test_a_module_is_present_when_loaded_or_its_feature_is_there(there, expected):
    assert system.module_present("br_netfilter", exists=lambda path: path in there) is expected
    assert system.module_present("vxlan", exists=lambda path: path in there) is False
