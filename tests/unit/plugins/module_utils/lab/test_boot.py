# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""A lab node's boot, without root: unit files, their order, command lines."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.lab import boot

RESTORE = """\
[Unit]
Description=Restore the pod network
After=network-online.target podnet-early.service
Wants=network-online.target
ConditionPathExists=/etc/podnet/state.json
ConditionPathExists=!/etc/podnet/disabled

[Service]
Type=oneshot
RemainAfterExit=yes
Environment="STATE=/etc/podnet/state.json" MODE=restore
EnvironmentFile=-/etc/default/podnet
ExecStartPre=-/bin/true
ExecStart=/usr/bin/python3 /usr/local/libexec/podnet/podnet-restore \\
    --state ${STATE} $MODE --unit %n
ExecStartPost=

[Install]
WantedBy=multi-user.target
"""


def unit(name, unit_lines="", service="Type=oneshot\nExecStart=/bin/true"):
    return boot.unit_info(name, "[Unit]\n%s\n[Service]\n%s\n" % (unit_lines, service))


def test_a_unit_file_is_read_as_systemd_reads_it():
    info = boot.unit_info("podnet-restore.service", RESTORE)
    assert info["type"] == "oneshot"
    assert info["after"] == ["network-online.target", "podnet-early.service"]
    # An empty value resets the list (ExecStartPost=); continuation lines are joined.
    assert info["exec"] == [("ExecStartPre", "-/bin/true"), (
        "ExecStart", "/usr/bin/python3 /usr/local/libexec/podnet/podnet-restore  --state ${STATE} $MODE --unit %n")]
    assert info["environment"] == [("STATE", "/etc/podnet/state.json"), ("MODE", "restore")]
    assert info["environment_files"] == ["-/etc/default/podnet"]
    assert info["conditions"] == [("ConditionPathExists", "/etc/podnet/state.json", False),
                                  ("ConditionPathExists", "/etc/podnet/disabled", True)]


def test_command_lines_get_prefixes_specifiers_and_variables():
    env = {"STATE": "/etc/podnet/state.json", "MODE": "restore --quiet"}
    info = boot.unit_info("podnet-restore.service", RESTORE)
    argv, ignore = boot.command(info["exec"][1][1], info["name"], env)
    assert argv == ["/usr/bin/python3", "/usr/local/libexec/podnet/podnet-restore", "--state",
                    "/etc/podnet/state.json", "restore", "--quiet", "--unit", "podnet-restore.service"]
    assert not ignore
    assert boot.command("-/bin/sh -c 'echo %i %p %%'", "getty@tty1.service", {}) == (
        ["/bin/sh", "-c", "echo tty1 getty %"], True)
    assert boot.command("@+/bin/true", "x.service", {}) == (["/bin/true"], False)
    with pytest.raises(boot.BootError, match="x.service: empty command line"):
        boot.command("-", "x.service", {})


def test_order_follows_after_and_before_between_the_units_then_names():
    units = [
        unit("b.service", "After=a.service"),
        unit("a.service"),
        unit("c.service", "Before=a.service network.target"),
        unit("z.service"),
        unit("multi-user.target"),  # not a service: not run
    ]
    assert [u["name"] for u in boot.order(units)] == ["c.service", "a.service", "b.service", "z.service"]


def test_an_ordering_cycle_is_refused():
    with pytest.raises(boot.BootError, match="ordering cycle between the units a.service, b.service"):
        boot.order([unit("a.service", "After=b.service"), unit("b.service", "After=a.service")])


@pytest.mark.parametrize("service, message", [
    ("Type=dbus\nExecStart=/bin/true", "Type=dbus is not supported"),
    ("Type=oneshot\nUser=nobody\nExecStart=/bin/true", "User=nobody is not supported"),
    ("Type=simple", "Type=simple needs ExecStart="),
])
def test_units_the_boot_cannot_run_are_refused(service, message):
    with pytest.raises(boot.BootError, match=message):
        unit("x.service", service=service)


def test_the_default_type_is_simple_with_execstart():
    assert unit("x.service", service="ExecStart=/bin/sleep 1")["type"] == "simple"


def test_environment_files():
    assert boot.environment_file("# comment\nA=1\n B = 'two words'\n\nC=\"3\"\nnot a line\n") == {
        "A": "1", "B": "two words", "C": "3"}


def test_enabled_units_are_listed_from_the_boot_targets(tmp_path):
    system = tmp_path / "etc" / "systemd" / "system"
    (system / "multi-user.target.wants").mkdir(parents=True)
    (system / "a.service.wants").mkdir()
    (system / "graphical.target.wants").mkdir()
    for name in ("a.service", "b.service", "g.service"):
        (system / name).write_text("[Service]\nExecStart=/bin/true\n")
    (system / "multi-user.target.wants" / "a.service").symlink_to(system / "a.service")
    (system / "multi-user.target.wants" / "gone.service").symlink_to(system / "gone.service")
    (system / "a.service.wants" / "b.service").symlink_to(system / "b.service")
    (system / "graphical.target.wants" / "g.service").symlink_to(system / "g.service")
    code = boot.LIST_UNITS.replace('base = "/etc/systemd/system"', "base = %r" % str(system))
    out = subprocess.run([sys.executable, "-c", code] + list(boot.BOOT_TARGETS), capture_output=True, text=True,
                         check=True).stdout
    found = json.loads(out)
    assert sorted(found["units"]) == ["a.service", "b.service"]
    assert found["missing"] == ["gone.service"]
