# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""podnet.mesh.boot_restore with the real program (built as the persistence role builds it), into tmp_path."""
from __future__ import annotations

import json
import os
import sys

import pytest

from ansible_collections.podnet.mesh.plugins.modules import boot_restore
from ansible_collections.podnet.mesh.tests.helpers.module_runner import run_main, stub_exits
from ansible_collections.podnet.mesh.tests.unit.plugins.module_utils.node.statedoc import DOC, doc
from ansible_collections.podnet.mesh.tests.unit.plugins.module_utils.node.test_build import _builder


@pytest.fixture(scope="module")
def program():
    build = _builder()
    return build.encode(build.program_bytes(interpreter=sys.executable, entry="node/main.py"))


@pytest.fixture
def run(monkeypatch, tmp_path, program):
    stub_exits(monkeypatch)
    (tmp_path / "tmp").mkdir()

    def call(**kw):
        args = {"program": program, "node_state": DOC, "interpreter": sys.executable,
                "program_path": str(tmp_path / "libexec/podnet-restore"),
                "state_file": str(tmp_path / "etc/podnet/state.json"), "unit_dir": str(tmp_path / "systemd"),
                "_ansible_tmpdir": str(tmp_path / "tmp"), "_ansible_diff": True}
        args.update(kw)
        return run_main(boot_restore.main, dict((k, v) for k, v in args.items() if v is not None))
    return call


def listing(root):
    return sorted(os.path.relpath(os.path.join(d, n), root) for d, dirs, files in os.walk(root)
                  for n in dirs + files if not d.startswith(str(root / "tmp")) and n != "tmp")


def test_check_mode_predicts_the_run_and_a_second_run_changes_nothing(run, tmp_path):
    kind, check = run(_ansible_check_mode=True)
    assert kind == "exit" and check["changed"] is True and listing(tmp_path) == []
    kind, real = run()
    assert kind == "exit" and real["actions"] == check["actions"] and real["boot_restore"] == check["boot_restore"]
    assert json.loads((tmp_path / "etc/podnet/state.json").read_text()) == DOC
    assert (tmp_path / "etc/podnet/state.json").read_text() == json.dumps(DOC, indent=2, sort_keys=True) + "\n"
    # The installed program reads the state it was installed with.
    assert os.system("%s %s --check-state %s >/dev/null" % (
        sys.executable, tmp_path / "libexec/podnet-restore", tmp_path / "etc/podnet/state.json")) == 0
    kind, again = run()
    assert again["changed"] is False and again["actions"] == [] and "diff" in again and again["diff"] == []


def test_diff_shows_the_state_files_text_before_and_after(run):
    run()
    _kind, result = run(node_state=doc(node="node9"))
    assert result["changed"] is True and len(result["diff"]) == 1
    assert '"node": "node1"' in result["diff"][0]["before"] and '"node": "node9"' in result["diff"][0]["after"]


def test_absent_removes_what_present_installed(run, tmp_path):
    run()
    kind, result = run(state="absent", program=None, node_state=None)
    assert kind == "exit" and result["changed"] is True and len(result["actions"]) == 4
    assert [p for p in listing(tmp_path) if not os.path.isdir(tmp_path / p)] == []
    assert run(state="absent", program=None, node_state=None)[1]["changed"] is False


@pytest.mark.parametrize("kw, message", [
    ({"node_state": doc(bridge={"name": "cni0", "addresses": ["10.244.1.1"]})}, "node_state.bridge.addresses[0]: "),
    ({"node_state": doc(version=2)}, "node_state.version: 2 is not a shape this program reads"),
    ({"node_state": {"version": 1, "colour": "red"}}, "node_state.colour: 'red' is not part of the state file"),
    ({"program": "bm90IGEgcHJvZ3JhbQ=="}, "program: '20 characters' is not a program"),
    ({"program": None}, "program: null is required with state=present"),
    ({"state_file": "etc/state.json"}, "state_file: 'etc/state.json' must be an absolute path"),
    ({"unit": "podnet/restore.service"}, "unit: 'podnet/restore.service' must be a unit file name"),
    ({"before": ["kubelet service"]}, "before[0]: 'kubelet service' must be a unit name without spaces"),
    ({"wait": -1}, "wait: -1 must not be negative"),
    ({"interpreter": "/nonexistent/python3"}, "interpreter: '/nonexistent/python3' is no executable on the node"),
    ({"interpreter": "/bin/false"}, "interpreter: '/bin/false' cannot run podnet-restore on this state: exit status 1"),
])
def test_bad_input_names_the_option_and_changes_nothing(run, tmp_path, kw, message):
    for check in (True, False):
        kind, result = run(_ansible_check_mode=check, **kw)
        assert kind == "fail" and result["changed"] is False, result
        assert result["msg"].startswith(message), result["msg"]
    assert listing(tmp_path) == []
