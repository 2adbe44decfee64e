# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The unit podnet.mesh.boot_restore writes with the persistence role's defaults: systemd-analyze verify accepts
it, and the enablement link the module makes is the one systemctl enable makes."""
from __future__ import annotations

import os
import shutil
import subprocess

import jinja2
import pytest
import yaml

from ansible_collections.podnet.mesh.plugins.module_utils.node import install

ROLE = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "roles",
                                     "persistence"))
UNIT = "podnet-restore.service"


def role_vars(**overrides):
    """The role's defaults and vars, with every template string among them resolved."""
    values = {}
    for part in ("defaults", "vars"):
        with open(os.path.join(ROLE, part, "main.yml")) as handle:
            values.update(yaml.safe_load(handle))
    values.update(overrides)
    simple = dict((k, v) for k, v in values.items() if not isinstance(v, str) or "|" not in v)
    for _round in range(3):
        for key, value in list(simple.items()):
            if isinstance(value, str) and "{{" in value:
                simple[key] = jinja2.Template(value).render(**simple)
    return simple


def want(**overrides):
    """The module's options as the role gives them."""
    values = role_vars(**overrides)
    return {"program_path": values["podnet_persist_program"], "program": b"#!/usr/bin/python3\n",
            "state_file": values["podnet_persist_state_file"], "state_text": "{}",
            "interpreter": values["podnet_persist_interpreter"], "unit_dir": values["podnet_persist_unit_dir"],
            "unit": values["podnet_persist_unit"], "before": values["podnet_persist_before"],
            "wait": values["podnet_persist_wait"]}


def render(**overrides):
    unit = [e for e in install.entries(want(**overrides)) if e.key == "unit"][0]
    return unit.data.decode("utf-8")


def test_the_unit_says_what_the_restore_needs():
    text = render()
    lines = text.splitlines()
    for line in ("Type=oneshot", "RemainAfterExit=yes", "Wants=network-online.target",
                 "After=network-online.target nftables.service",
                 "Before=containerd.service crio.service kubelet.service",
                 "ConditionPathExists=/etc/podnet/state.json", "WantedBy=multi-user.target",
                 "ExecStart=/usr/bin/python3 /usr/local/libexec/podnet/podnet-restore --state /etc/podnet/state.json "
                 "--wait 60"):
        assert line in lines, line


# make test installs systemd's tools (PODNET_TEST_STRICT=1): there the test always runs.
@pytest.mark.skipif(shutil.which("systemd-analyze") is None and os.environ.get("PODNET_TEST_STRICT") != "1",
                    reason="systemd-analyze is not installed")
@pytest.mark.parametrize("overrides", [{}, {"podnet_persist_before": [], "podnet_persist_wait": 0,
                                            "podnet_state_dir": "/var/lib/podnet"}])
def test_systemd_analyze_verify_accepts_the_unit(tmp_path, overrides):
    path = tmp_path / UNIT
    path.write_text(render(**overrides))
    out = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert UNIT not in out.stderr, out.stderr


@pytest.mark.skipif(shutil.which("systemctl") is None and os.environ.get("PODNET_TEST_STRICT") != "1",
                    reason="systemctl is not installed")
def test_the_link_the_role_makes_is_the_one_systemctl_enable_makes(tmp_path):
    unit_dir = tmp_path / "etc" / "systemd" / "system"
    unit_dir.mkdir(parents=True)
    (unit_dir / UNIT).write_text(render())
    out = subprocess.run(["systemctl", "--root=%s" % tmp_path, "enable", UNIT], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    link = unit_dir / "multi-user.target.wants" / UNIT
    ours = [e for e in install.entries(want()) if e.key == "link"][0]
    assert (ours.path, ours.target) == ("/etc/systemd/system/multi-user.target.wants/" + UNIT,
                                        "/etc/systemd/system/" + UNIT)
    assert os.readlink(str(link)) == ours.target
    assert sorted(os.listdir(str(unit_dir))) == ["multi-user.target.wants", UNIT]
