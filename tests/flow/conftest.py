# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The whole flow on the lab: playbooks against simulated nodes on this machine.

Every test module gets a lab of its own (a unique name under /run/podnet-lab),
torn down at the end whatever happened. The lab lives entirely in namespaces
it creates; nothing is added to the machine's own network namespace.

A lab with ssh (``Lab(..., ssh=True)``) runs sshd on its nodes; once its
controller namespace exists, playbooks run inside it and reach the nodes over
SSH. ``bin`` picks the ansible-core (the directory of its ansible-playbook).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time

import pytest

# tests/flow/conftest.py -> the collection root, two directories up.
COLLECTION = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
COLLECTIONS_PATH = os.path.abspath(os.path.join(COLLECTION, "..", "..", ".."))
BIN = os.path.dirname(sys.executable)
LAB_ROOT = "/run/podnet-lab"
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


class Lab:
    def __init__(self, name, nodes=3, ssh=False, bin=BIN, inventory="lab"):
        self.name = name
        self.inventory = inventory  # a directory under inventories/
        self.env = {}  # more environment for the inventory plugin (PODNET_LAB_NODE_SUBNETS ...)
        self.nodes = nodes
        self.ssh = ssh
        self.bin = bin
        self.seconds = {}  # playbook run label -> seconds, for the report

    def playbook(self, playbook, *args, nodes=None, check=True):
        """Run a playbook of the collection on the lab; return (rc, output, recap)."""
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH, ANSIBLE_FORCE_COLOR="0",
                   ANSIBLE_NOCOLOR="1", PODNET_LAB_NODES=str(nodes or self.nodes),
                   ANSIBLE_HOST_KEY_CHECKING="0", **self.env)
        argv = [os.path.join(self.bin, "ansible-playbook"), "-i", os.path.join(COLLECTION, "inventories", self.inventory),
                "-e", "podnet_lab_name=%s" % self.name, os.path.join(COLLECTION, "playbooks", playbook)]
        if self.ssh:
            # The inventory names the lab's SSH files after its lab_name option.
            env.update(PODNET_LAB_SSH="1", PODNET_LAB_NAME=self.name)
            env.pop("ANSIBLE_HOST_KEY_CHECKING")  # the inventory's accept-new applies
            if os.path.exists(self.path("controller")):
                # The nodes' addresses are reachable from the lab's controller namespace only.
                argv = ["nsenter", "--net=%s" % self.path("controller"), "--"] + argv
        start = time.monotonic()
        proc = subprocess.run(argv + list(args), env=env, cwd=COLLECTION, capture_output=True, text=True,
                              check=False)
        self.seconds[" ".join((playbook,) + tuple(args))] = time.monotonic() - start
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


def remove(lab):
    """Tear the lab down: teardown.yml, then (also when the playbook could not run) the lab module alone.

    A lab with ssh whose controller namespace is gone has no node to reach: the module alone.
    """
    if not lab.ssh or os.path.exists(lab.path("controller")):
        lab.playbook("teardown.yml", check=False)
    if os.path.exists(os.path.join(LAB_ROOT, lab.name)):
        subprocess.run([os.path.join(BIN, "ansible"), "localhost", "-c", "local", "-i", "localhost,",
                        "-e", "ansible_python_interpreter=%s" % sys.executable,
                        "-m", "podnet.mesh.lab", "-a", "name=%s state=absent" % lab.name],
                       env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH), check=False)


@pytest.fixture(scope="module")
def lab():
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    lab = Lab("pntf" + secrets.token_hex(3))
    try:
        yield lab
    finally:
        remove(lab)


# The dual-stack and IPv6-only labs: inventory -> (the pod CIDRs of node2 and node3 that
# node1 routes to, probes verify runs: 6 pods, each to 5 pods and 1 external host, per family).
STACKS = {
    "lab-dualstack": (["10.244.2.0/24", "10.244.3.0/24", "fd00:10:244:2::/64", "fd00:10:244:3::/64"], 72),
    "lab-ipv6": (["fd00:10:244:2::/64", "fd00:10:244:3::/64"], 36),
}


@pytest.fixture(scope="module", params=sorted(STACKS))
def stack_lab(request):
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    lab = Lab("pntd" + secrets.token_hex(3), inventory=request.param)
    lab.routes, lab.probes = STACKS[request.param]
    try:
        yield lab
    finally:
        remove(lab)


@pytest.fixture(scope="module")
def routed_lab():
    """The routed lab: node1 and node2 on 192.168.1.0/24, node3 on 192.168.2.0/24, a router between."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    lab = Lab("pntr" + secrets.token_hex(3), inventory="lab-routed")
    try:
        yield lab
    finally:
        lab.env = {}
        remove(lab)


# ------------------------------------------------------------- over SSH
HOME = os.path.dirname(os.path.dirname(BIN))


def venvs():
    """(label, bin directory) of the ansible-cores to test with."""
    listed = os.environ.get("PODNET_FLOW_SSH_VENVS")
    if listed:
        dirs = [d for d in listed.split(":") if d]
    else:
        # The lowest supported ansible-core and the newest this machine's Pythons allow
        # (.venv-core-newest needs Python >= 3.12; without it, the test run's own).
        newest = os.path.join(HOME, ".venv-core-newest")
        dirs = [os.path.join(HOME, ".venv-core217"), newest if os.path.isdir(newest) else os.path.dirname(BIN)]
    seen, result = set(), []
    for directory in dirs:
        directory = os.path.abspath(directory)
        if directory not in seen:
            seen.add(directory)
            result.append((os.path.basename(directory), os.path.join(directory, "bin")))
    return result


def core_version(bindir):
    proc = subprocess.run([os.path.join(bindir, "ansible-playbook"), "--version"], capture_output=True, text=True,
                          check=False)
    return proc.stdout.split("\n", 1)[0].strip() if proc.returncode == 0 else None


@pytest.fixture(scope="module", params=venvs(), ids=lambda v: v[0])
def ssh_lab(request):
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    label, bindir = request.param
    # make test installs all of it (PODNET_TEST_STRICT=1): there a missing piece fails.
    missing = pytest.fail if os.environ.get("PODNET_TEST_STRICT") == "1" else pytest.skip
    if not os.access(os.path.join(bindir, "ansible-playbook"), os.X_OK):
        missing("no ansible-playbook in %s" % bindir)
    if not os.access("/usr/sbin/sshd", os.X_OK) or not os.access("/usr/bin/sudo", os.X_OK):
        missing("needs sshd and sudo on the machine (Debian openssh-server, sudo)")
    lab = Lab("pnts" + secrets.token_hex(3), ssh=True, bin=bindir)
    lab.version = core_version(bindir)
    try:
        yield lab
    finally:
        remove(lab)
        print("\n%s (%s) over SSH: %s" % (label, lab.version, ", ".join(
            "%s %.1fs" % (run, seconds) for run, seconds in lab.seconds.items())))
        assert not os.path.exists(os.path.join(LAB_ROOT, lab.name))
        processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
        assert not [line for line in processes.split("\n") if lab.name in line]
