# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The whole flow on the lab: playbooks against simulated nodes on this machine.

Every test module gets a lab of its own (a unique name under /run/podnet-lab),
torn down at the end whatever happened. The lab lives entirely in namespaces
it creates; nothing is added to the machine's own network namespace.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys

import pytest

# tests/flow/conftest.py -> the collection root, two directories up.
COLLECTION = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
COLLECTIONS_PATH = os.path.abspath(os.path.join(COLLECTION, "..", "..", ".."))
BIN = os.path.dirname(sys.executable)
LAB_ROOT = "/run/podnet-lab"
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


class Lab:
    def __init__(self, name, nodes=3):
        self.name = name
        self.nodes = nodes

    def playbook(self, playbook, *args, nodes=None, check=True):
        """Run a playbook of the collection on the lab; return (rc, output, recap)."""
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH, ANSIBLE_FORCE_COLOR="0",
                   ANSIBLE_NOCOLOR="1", PODNET_LAB_NODES=str(nodes or self.nodes),
                   ANSIBLE_HOST_KEY_CHECKING="0")
        argv = [os.path.join(BIN, "ansible-playbook"), "-i", os.path.join(COLLECTION, "inventories", "lab"),
                "-e", "podnet_lab_name=%s" % self.name, os.path.join(COLLECTION, "playbooks", playbook)]
        proc = subprocess.run(argv + list(args), env=env, cwd=COLLECTION, capture_output=True, text=True,
                              check=False)
        out = proc.stdout + proc.stderr
        recap = dict((m.group(1), {"ok": int(m.group(2)), "changed": int(m.group(3)),
                                   "unreachable": int(m.group(4)), "failed": int(m.group(5))})
                     for m in RECAP.finditer(out))
        if check and proc.returncode != 0:
            raise AssertionError("%s failed (rc %d):\n%s" % (playbook, proc.returncode, out[-6000:]))
        return proc.returncode, out, recap

    def path(self, node, kind="net"):
        return os.path.join(LAB_ROOT, self.name, node, kind)

    def run(self, node, argv, check=True):
        """A read-only command inside a lab node (network and mount namespace)."""
        cmd = ["nsenter", "--net=%s" % self.path(node), "--mount=%s" % self.path(node, "mnt"), "--"] + argv
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if check and proc.returncode != 0:
            raise AssertionError("%s on %s: %s" % (argv, node, proc.stderr))
        return proc

    def ip_json(self, node, *args):
        return json.loads(self.run(node, ["ip", "-j"] + list(args)).stdout or "[]")


@pytest.fixture(scope="module")
def lab():
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    lab = Lab("pntf" + secrets.token_hex(3))
    try:
        yield lab
    finally:
        lab.playbook("teardown.yml", check=False)
        # Also when the playbook could not run: the lab role alone.
        if os.path.exists(os.path.join(LAB_ROOT, lab.name)):
            subprocess.run([os.path.join(BIN, "ansible"), "localhost", "-c", "local", "-i", "localhost,",
                            "-m", "podnet.mesh.lab", "-a", "name=%s state=absent" % lab.name],
                           env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH), check=False)
