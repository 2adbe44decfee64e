# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""podnet-restore built by roles/cni/files/build_podnet.py --entry node/main.py: what it holds, that it runs."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.node import main
from ansible_collections.podnet.mesh.plugins.module_utils.node import state as node_state
from ansible_collections.podnet.mesh.tests.unit.plugins.module_utils.node.statedoc import DOC

SCRIPT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(main.__file__)), "..", "..", "..", "roles",
                                       "cni", "files", "build_podnet.py"))


def _builder():
    spec = importlib.util.spec_from_file_location("build_podnet", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_program_takes_what_node_main_imports_and_no_ansible():
    build = _builder()
    files = build.closure(build.default_source(), "node/main.py")
    for needed in ("node/main.py", "node/restore.py", "node/state.py", "node/system.py", "core/plan/links.py",
                   "core/plan/nat.py", "core/plan/pod.py", "core/plan/routes.py", "kernel/nat.py", "kernel/netlink.py"):
        assert needed in files
    assert not [f for f in files if f.startswith(("module/", "cni/", "lab/"))]
    # The CNI plugin is what it was.
    assert "node/main.py" not in build.closure(build.default_source())
    assert build.main_source() == build.MAIN


def test_built_program_is_reproducible_and_checks_a_state_file(tmp_path):
    first, second = str(tmp_path / "a"), str(tmp_path / "b")
    for out in (first, second):
        subprocess.run([sys.executable, SCRIPT, out, "--entry", "node/main.py", "--interpreter", "/usr/bin/python3"],
                       check=True)
    with open(first, "rb") as a, open(second, "rb") as b:
        data = a.read()
        assert data == b.read()
    assert data.startswith(b"#!/usr/bin/python3\n") and os.stat(first).st_mode & 0o777 == 0o755
    with zipfile.ZipFile(first) as archive:
        assert b"import node_main" not in archive.read("__main__.py")
        assert archive.read("__main__.py").decode().endswith("sys.exit(entry.main())\n")
    state = tmp_path / "state.json"
    state.write_text(node_state.dumps(DOC))
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    out = subprocess.run([sys.executable, first, "--check-state", str(state), "--skip-pyroute2"], env=clean,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0 and out.stdout.startswith("podnet-restore: ok: state file"), out.stderr
    state.write_text(json.dumps({"version": 1, "routes": {"routes": [{"dst": "10.244.2.1/24", "via": "1.2.3.4"}]}}))
    out = subprocess.run([sys.executable, first, "--check-state", str(state), "--skip-pyroute2"], env=clean,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 2 and "routes.routes[0].dst: '10.244.2.1/24'" in out.stderr
    out = subprocess.run([sys.executable, first, "--help"], env=clean, capture_output=True, text=True, check=False)
    assert out.returncode == 0 and "--wait SECONDS" in out.stdout


@pytest.mark.parametrize("entry, message", [
    ("node/missing.py", "lacks node/missing.py, where the program starts"),
    ("main.py", "entry 'main.py' is no module below module_utils"),
    ("node/main", "entry 'node/main' is no module below module_utils"),
])
def test_a_bad_entry_is_refused(tmp_path, entry, message):
    out = subprocess.run([sys.executable, SCRIPT, str(tmp_path / "x"), "--entry", entry],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 1 and message in out.stderr, out.stderr
    assert os.listdir(str(tmp_path)) == []
