# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""podnet-restore's command line: output lines, JSON, exit status, the state check. Fake sessions, no kernel."""
from __future__ import annotations

import json

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ValidationError
from ansible_collections.podnet.mesh.plugins.module_utils.node import main, restore
from ansible_collections.podnet.mesh.plugins.module_utils.node import state as node_state
from ansible_collections.podnet.mesh.tests.unit.plugins.module_utils.node.statedoc import DOC
from ansible_collections.podnet.mesh.tests.unit.plugins.module_utils.node.test_restore import (
    FakeSession, fresh, reading, recorded)


class Closing(FakeSession):
    closed = False

    def close(self):
        self.closed = True


@pytest.fixture
def state_file(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(node_state.dumps(DOC))
    return str(path)


def run(argv, monkeypatch, cur, refusals=None):
    reading(monkeypatch, cur, refusals)
    made = {restore.SYSTEM: Closing(), restore.NAT: Closing(), restore.NETLINK: Closing()}
    status = main.run(main.parser().parse_args(argv), make_sessions=lambda: made)
    assert all(s.closed for s in made.values())
    return status, made


def test_a_restore_prints_each_change_then_a_summary(monkeypatch, capsys, state_file):
    status, made = run(["--state", state_file], monkeypatch, fresh())
    out = capsys.readouterr().out.splitlines()
    assert status == 0
    assert out[0] == "podnet-restore: masquerade: create nftables table ip podnet (4 rules)"
    assert "podnet-restore: routes: add route 10.244.2.0/24 via 192.168.1.12 metric 0" in out
    count = sum(len(s.applied) for s in made.values())
    assert out[-1] == "podnet-restore: restored node1: %d changes" % count and len(out) == count + 1
    status, made = run(["--state", state_file], monkeypatch, recorded())
    assert status == 0 and capsys.readouterr().out == "podnet-restore: restored node1: no change\n"


def test_check_says_what_would_be_done(monkeypatch, capsys, state_file):
    status, made = run(["--state", state_file, "--check"], monkeypatch, fresh())
    out = capsys.readouterr().out.splitlines()
    assert status == 0 and all(s.applied == [] for s in made.values())
    assert out[0] == "podnet-restore: masquerade: would create nftables table ip podnet (4 rules)"
    assert out[-1].startswith("podnet-restore: checked node1: ") and out[-1].endswith(" changes would be made")


def test_json_and_a_failed_concern(monkeypatch, capsys, state_file):
    refusal = ValidationError("routes[0].via", "192.168.1.12", "is not on a directly connected subnet")
    status, made = run(["--state", state_file, "--json"], monkeypatch, fresh(), {"routes": [refusal]})
    report = json.loads(capsys.readouterr().out)
    assert status == 1 and report["failed"] is True and report["changed"] is True
    assert report["summary"].endswith("; failed: routes")
    routes = [c for c in report["concerns"] if c["concern"] == "routes"][0]
    assert routes == {"concern": "routes", "changed": False, "actions": [], "warnings": [], "attempts": 1,
                      "error": "routes[0].via: '192.168.1.12' is not on a directly connected subnet"}


def test_a_failed_concern_is_named_on_stderr(monkeypatch, capsys, state_file):
    refusal = ValidationError("routes[0].via", "192.168.1.12", "is not on a directly connected subnet")
    status, made = run(["--state", state_file], monkeypatch, fresh(), {"routes": [refusal]})
    captured = capsys.readouterr()
    assert status == 1
    assert captured.err == ("podnet-restore: routes: failed: routes[0].via: '192.168.1.12' is not on a directly "
                            "connected subnet\n")
    assert captured.out.splitlines()[-1].endswith("; failed: routes")


def test_an_unusable_state_file_is_exit_2(monkeypatch, capsys, tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"version": 7}))
    assert main.run(main.parser().parse_args(["--state", str(path)]), make_sessions=None) == 2
    assert "cannot use the state file %s: version: 7 is not a shape" % path in capsys.readouterr().err
    assert main.run(main.parser().parse_args(["--state", str(tmp_path / "none")]), make_sessions=None) == 2
    assert "No such file or directory" in capsys.readouterr().err


def test_check_state(capsys, state_file, tmp_path):
    assert main.main(["--check-state", state_file, "--skip-pyroute2"]) == 0
    assert capsys.readouterr().out == ("podnet-restore: ok: state file %s (version 1, node node1): "
                                       "kernel, masquerade, bridge, routes, pods\n" % state_file)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 1, "bridge": {"name": "cni0", "addresses": ["10.244.1.1"]}}))
    assert main.main(["--check-state", str(bad), "--skip-pyroute2"]) == 2
    assert "bridge.addresses[0]: '10.244.1.1'" in capsys.readouterr().err


def test_pyroute2_missing_is_said(monkeypatch, capsys, state_file):
    from ansible_collections.podnet.mesh.plugins.module_utils.kernel import pyroute2_parts
    monkeypatch.setattr(pyroute2_parts, "HAS_PYROUTE2", False)
    assert main.main(["--check-state", state_file]) == 1
    assert "pyroute2 cannot be imported by" in capsys.readouterr().err


def test_negative_wait_is_refused(capsys):
    with pytest.raises(SystemExit) as err:
        main.main(["--wait", "-1"])
    assert err.value.code == 2 and "--wait must not be negative" in capsys.readouterr().err


def test_the_runner_runs_commands_in_the_c_locale():
    runner = main.Runner()
    assert runner.which("sh")
    rc, out, err = runner.run(["sh", "-c", "echo $LC_ALL; cat"], data="in")
    assert (rc, out) == (0, "C\nin")
    assert runner.run(["/nonexistent/tool"])[0] == 127
