# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""podnet.mesh.masquerade without the node: nft, iptables and /proc are faked.

These prove the module's flow: check mode runs no write command at all,
validation failures run no command, diff only in diff mode, a failing tool
becomes one clear fail_json, forward warnings reach the result.
"""
from __future__ import annotations

import json

import pytest

from ansible.module_utils import basic

from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import nat as _nat
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import nat as nat_tools
from ansible_collections.podnet.mesh.plugins.modules import masquerade
from ansible_collections.podnet.mesh.tests.helpers.module_runner import run_main, stub_exits


NFT = "/usr/sbin/nft"
SAVE = "/usr/sbin/iptables-save"
RESTORE = "/usr/sbin/iptables-restore"
EMPTY_NFT = json.dumps({"nftables": [{"metainfo": {"json_schema_version": 1}}]})
NAT_EMPTY = "*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n"
FILTER_EMPTY = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
FILTER_DROP = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
# Only these commands read; anything else run in check mode is a write.
READS = ((NFT, "-j", "list"), (SAVE, "-t"))


# What the module passed to module.warn during the last run.
WARNINGS = []


class FakeRunner:
    """A node with nft and iptables-nft, no rules yet; records commands and writes."""

    def __init__(self, module, ip_forward="0\n", filter_table=None, fail=None, binaries=None):
        self.commands = []
        self.writes = []
        self.files = {_nat.IP_FORWARD_PATH: ip_forward}
        self.filter_table = filter_table
        self.fail = fail
        self.binaries = binaries if binaries is not None else {
            "nft": NFT, "iptables-save": SAVE, "iptables-restore": RESTORE}

    def which(self, name):
        return self.binaries.get(name)

    @staticmethod
    def realpath(path):
        return "/usr/sbin/xtables-nft-multi"

    def run(self, argv, data=None):
        argv = tuple(argv)
        self.commands.append((argv, data))
        if self.fail and argv[:len(self.fail)] == self.fail:
            return 1, "", "Error: Could not process rule: No such file or directory\n"
        if argv == (NFT, "-j", "list", "tables"):
            tables = [{"table": {"family": "ip", "name": "filter"}}] if self.filter_table else []
            return 0, json.dumps({"nftables": tables}), ""
        if argv == (NFT, "-j", "list", "chains") and self.filter_table:
            # iptables-nft keeps the FORWARD chain in nftables table ip filter.
            chain = {"family": "ip", "table": "filter", "name": "FORWARD", "type": "filter",
                     "hook": "forward", "prio": 0, "policy": "drop"}
            return 0, json.dumps({"nftables": [{"chain": chain}]}), ""
        if argv[:3] == (NFT, "-j", "list"):
            return 0, EMPTY_NFT, ""
        if argv == (SAVE, "-t", "filter"):
            return 0, self.filter_table or FILTER_EMPTY, ""
        if argv == (SAVE, "-t", "nat"):
            return 0, NAT_EMPTY, ""
        return 0, "", ""

    def read_file(self, path):
        return self.files.get(path)

    def write_file(self, path, text):
        self.writes.append((path, text))

    def write_commands(self):
        return [c for c, _d in self.commands if not any(c[:len(p)] == p for p in READS)]


@pytest.fixture
def run(monkeypatch):
    runners = []

    stub_exits(monkeypatch)
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, warning, **kw: WARNINGS.append(warning))
    del WARNINGS[:]

    def _run(args, **runner_kw):
        def factory(module):
            runners.append(FakeRunner(module, **runner_kw))
            return runners[-1]
        monkeypatch.setattr(nat_tools, "Runner", factory)
        kind, result = run_main(masquerade.main, args)
        return kind, result, runners[-1]
    return _run


ARGS = {"source": ["10.244.1.0/24"], "exempt": ["10.244.0.0/16"]}


@pytest.mark.parametrize("backend", ["auto", "nftables", "iptables"])
def test_check_mode_runs_no_write_command(run, backend):
    kind, result, runner = run(dict(ARGS, backend=backend, _ansible_check_mode=True))
    assert kind == "exit"
    assert result["changed"] is True
    assert runner.commands, "the node was read"
    assert runner.write_commands() == []
    assert runner.writes == []
    expected = "iptables" if backend == "iptables" else "nftables"
    assert result["backend"] == expected
    assert result["rules"] == _nat.desired_rules(expected, _nat.validate(
        dict(ARGS, backend=backend, out_interface=None, forward=True, ip_forward=True,
             state="present")))
    assert result["actions"][-1] == "set net.ipv4.ip_forward = 1"
    assert "diff" not in result


def test_check_mode_absent_runs_no_write_command(run):
    kind, result, runner = run(dict(ARGS, state="absent", _ansible_check_mode=True))
    assert kind == "exit" and result["changed"] is False
    assert runner.write_commands() == [] and runner.writes == []


def test_real_run_applies_rules_then_ip_forward(run):
    kind, result, runner = run(dict(ARGS))
    assert kind == "exit" and result["changed"] is True
    assert runner.write_commands() == [(NFT, "-f", "-")]
    assert runner.writes == [(_nat.IP_FORWARD_PATH, "1\n")]
    assert result["actions"] == ["create nftables table ip podnet (4 rules)",
                                 "set net.ipv4.ip_forward = 1"]
    # Read back from the (fake, still empty) node after applying.
    assert result["rules"] == []


def test_diff_mode(run):
    kind, result, runner = run(dict(ARGS, backend="iptables", _ansible_diff=True,
                                    _ansible_check_mode=True))
    assert result["diff"]["before"] == {"backend": None, "rules": [], "ip_forward": 0}
    assert result["diff"]["after"]["backend"] == "iptables"
    assert result["diff"]["after"]["rules"][0] == "-t nat -N PODNET-MASQ"
    assert result["diff"]["after"]["ip_forward"] == 1


@pytest.mark.parametrize("args, message", [
    (dict(ARGS, source=["10.244.1.0/24", "10.244.300.0/24"]), "source[1]: '10.244.300.0/24'"),
    (dict(ARGS, exempt=["10.244.0.0/16", "10.96.0.1/12"]), "exempt[1]: '10.96.0.1/12'"),
    (dict(ARGS, out_interface="x" * 16), "out_interface: '" + "x" * 16 + "' is 16 bytes"),
])
def test_bad_input_runs_no_command(run, args, message):
    kind, result, runner = run(args)
    assert kind == "fail"
    assert result["msg"].startswith(message), result["msg"]
    assert result["changed"] is False
    assert runner.commands == [] and runner.writes == []


def test_forced_backend_missing_fails_naming_the_parameter(run):
    kind, result, runner = run(dict(ARGS, backend="nftables"),
                               binaries={"iptables-save": SAVE, "iptables-restore": RESTORE})
    assert kind == "fail"
    assert result["msg"] == ("backend: 'nftables' was chosen but the nft command was not found "
                             "on the node")
    assert runner.write_commands() == [] and runner.writes == []


def test_tool_failure_is_one_clear_failure(run):
    kind, result, runner = run(dict(ARGS), fail=(NFT, "-f"))
    assert kind == "fail"
    assert result["msg"].startswith("cannot create nftables table ip podnet (4 rules): ")
    assert result["msg"].endswith("Error: Could not process rule: No such file or directory")
    assert result["changed"] is False and result["actions"] == []
    assert runner.writes == []


def test_forward_drop_is_a_warning(run):
    kind, result, runner = run(dict(ARGS, _ansible_check_mode=True), filter_table=FILTER_DROP)
    assert kind == "exit"
    warnings = list(WARNINGS)
    assert len(warnings) == 1
    assert warnings[0].startswith("forward: the iptables FORWARD chain (table ip filter) hooks "
                                  "forwarding with policy drop")
    # The iptables backend jumps to its accept chain from the top of FORWARD: no warning.
    del WARNINGS[:]
    run(dict(ARGS, backend="iptables", _ansible_check_mode=True), filter_table=FILTER_DROP)
    assert WARNINGS == []


DUAL = {"source": ["10.244.0.0/16", "fd00:10:244::/56"], "exempt": ["10.244.0.0/16", "fd00:10:244::/56"]}
SAVE6 = "/usr/sbin/ip6tables-save"
RESTORE6 = "/usr/sbin/ip6tables-restore"


def test_dual_stack_check_mode_predicts_both_families_and_sysctls(run, monkeypatch):
    monkeypatch.setattr(FakeRunner, "read_file", lambda self, path: dict(
        self.files, **{_nat.IP6_FORWARD_PATH: "0\n"}).get(path))
    kind, result, runner = run(dict(DUAL, _ansible_check_mode=True, _ansible_diff=True))
    assert kind == "exit" and result["changed"] is True
    assert runner.write_commands() == [] and runner.writes == []
    assert result["actions"] == ["create nftables table ip podnet (4 rules)", "create nftables table ip6 podnet (4 rules)",
                                 "set net.ipv4.ip_forward = 1", "set net.ipv6.conf.all.forwarding = 1"]
    assert result["rules_by_family"]["ipv6"][0] == "add table ip6 podnet"
    assert result["rules"] == result["rules_by_family"]["ipv4"] + result["rules_by_family"]["ipv6"]
    assert result["sysctls"] == {"net.ipv4.ip_forward": 1, "net.ipv6.conf.all.forwarding": 1}
    assert result["diff"]["before"] == {"backend": None, "rules": [], "ip_forward": 0, "ipv6_forwarding": 0}
    assert result["diff"]["after"]["ipv6_forwarding"] == 1 and result["diff"]["after"]["rules"] == result["rules"]


def test_ipv4_only_returns_the_ipv4_shape(run):
    kind, result, runner = run(dict(ARGS, _ansible_check_mode=True))
    assert result["rules_by_family"]["ipv6"] == []
    assert result["sysctls"] == {"net.ipv4.ip_forward": 1}
    assert not [c for c, _d in runner.commands if "ip6" in " ".join(c)]


@pytest.mark.parametrize("args, message", [
    (dict(DUAL, source=["10.244.0.0/16", "fd00:10:244::1/56"]), "source[1]: 'fd00:10:244::1/56' is not a valid network"),
    (dict(DUAL, exempt=["fd00:10:244::/56", "fd00::/200"]), "exempt[1]: 'fd00::/200' is not a valid network"),
])
def test_bad_ipv6_input_runs_no_command(run, args, message):
    kind, result, runner = run(args)
    assert kind == "fail" and result["msg"].startswith(message), result["msg"]
    assert runner.commands == [] and runner.writes == []


def test_iptables_without_ip6tables_fails_before_any_change(run, monkeypatch):
    monkeypatch.setattr(FakeRunner, "read_file", lambda self, path: "1\n")
    kind, result, runner = run(dict(DUAL, backend="iptables"))
    assert kind == "fail" and result["changed"] is False
    assert result["msg"].startswith("backend: 'iptables' was chosen but the ip6tables-save/ip6tables-restore command")
    assert "source: fd00:10:244::/56" in result["msg"]
    assert runner.write_commands() == [] and runner.writes == []
