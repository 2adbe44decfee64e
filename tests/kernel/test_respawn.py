# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""A module run by a Python without pyroute2 re-runs under the node's system Python."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.kernel import netlink as _netlink
from ansible_collections.podnet.mesh.tests.helpers.runs import once_per_kernel_run

# The module runs under a Python of its own and then the system's: the same in both runs.
pytestmark = once_per_kernel_run


SYSTEM_PYTHON = "/usr/bin/python3"


def _has_pyroute2(python):
    return subprocess.run([python, "-c", "import pyroute2"], capture_output=True, check=False).returncode == 0


def test_module_respawns_under_system_python(tmp_path, prefix):
    assert _has_pyroute2(SYSTEM_PYTHON), "the node's python3-pyroute2 package is missing"
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    bare_python = str(bare / "bin" / "python")
    assert not _has_pyroute2(bare_python)
    ansible = os.path.join(os.path.dirname(sys.executable), "ansible")
    if not os.path.exists(ansible):
        pytest.skip("ansible is not installed beside this Python")
    # .../<root>/ansible_collections/podnet/mesh/plugins/module_utils/kernel/netlink.py
    collections = os.path.abspath(os.path.join(os.path.dirname(_netlink.__file__), *[".."] * 6))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_HOST_KEY_CHECKING="0")
    name = prefix + "r"

    def bridge(state):
        out = subprocess.run(
            [ansible, "localhost", "-o", "-c", "local", "-i", "localhost,", "-m", "podnet.mesh.bridge",
             "-a", "name=%s addresses=10.79.0.1/24 state=%s" % (name, state),
             "-e", "ansible_python_interpreter=%s" % bare_python],
            env=env, cwd=str(tmp_path), capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stdout + out.stderr
        # One line per host: "localhost | CHANGED => {...}"
        return json.loads(out.stdout[out.stdout.index("{"):])

    try:
        result = bridge("present")
        assert result["changed"] is True
        assert result["bridge"]["addresses"] == ["10.79.0.1/24"]
        assert bridge("present")["changed"] is False
    finally:
        bridge("absent")
