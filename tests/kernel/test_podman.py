# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""A real container runtime wires containers through the plugin the cni role installed.

The cni role (run by ansible-playbook against localhost) installs the plugin
and its conflist into temporary directories; podman, with its CNI network
backend pointed at them, starts two containers on that network; they ping
each other and the gateway; removing them releases their addresses.

Nothing of the machine's own configuration is used or changed: podman reads a
containers.conf written here (CONTAINERS_CONF), keeps images and containers in
temporary storage (vfs), runs with runc and cgroupfs, and the whole test runs
in the private network namespace of the kernel suite, so the bridge lives
there. A container's root file system is a directory holding a static
busybox (no image registry is needed).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.cni import ipam, plugin
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import netlink
from ansible_collections.podnet.mesh.tests.helpers.runs import once_per_kernel_run

PODMAN = shutil.which("podman")
BUSYBOX = "/bin/busybox"
SUBNET = "10.252.7.0/24"
GATEWAY = "10.252.7.1"
# Limits podman would otherwise copy from root's (too high for runc here).
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]

# podman runs the CNI plugin: nothing here uses the controller's pyroute2.
pytestmark = [once_per_kernel_run,
              pytest.mark.skipif(PODMAN is None, reason="podman is not installed (Debian: apt-get install podman)")]

PLAYBOOK = """\
- name: Install the podnet CNI plugin for the test runtime
  hosts: localhost
  gather_facts: false
  roles:
    - podnet.mesh.cni
"""

CONTAINERS_CONF = """\
[network]
network_backend = "cni"
cni_plugin_dirs = ["{bin}"]
network_config_dir = "{conf}"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{tmp}/events.log"
"""


def collections_path():
    # .../<root>/ansible_collections/podnet/mesh/plugins/module_utils/cni/plugin.py
    return os.path.abspath(os.path.join(os.path.dirname(plugin.__file__), *[".."] * 6))


def run_role(tmp, extra):
    playbook = tmp / "cni.yml"
    playbook.write_text(PLAYBOOK)
    ansible = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(), ANSIBLE_HOST_KEY_CHECKING="0",
               ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-local"), ANSIBLE_REMOTE_TEMP=str(tmp / "ansible-remote"))
    extra = dict(extra, ansible_python_interpreter=sys.executable, ansible_connection="local")
    out = subprocess.run([ansible, "-i", "localhost,", str(playbook), "-e", json.dumps(extra)],
                         env=env, cwd=str(tmp), capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


class Podman:
    def __init__(self, tmp, short):
        """short: a directory with a short path (podman wants its runroot under 50 characters)."""
        self.env = dict(os.environ, CONTAINERS_CONF=str(tmp / "containers.conf"))
        self.base = [PODMAN, "--root", os.path.join(short, "root"), "--runroot", os.path.join(short, "run"),
                     "--tmpdir", os.path.join(short, "tmp"), "--storage-driver", "vfs"]

    def __call__(self, *args, check=True):
        out = subprocess.run(self.base + list(args), env=self.env, capture_output=True, text=True, timeout=120,
                             check=False)
        if check:
            assert out.returncode == 0, "podman %s: %s%s" % (" ".join(args), out.stdout, out.stderr)
        return out


def rootfs(path):
    for sub in ("bin", "etc", "proc", "sys", "dev", "tmp"):
        (path / sub).mkdir(parents=True)
    shutil.copy2(BUSYBOX, str(path / "bin" / "busybox"))
    for applet in ("sh", "ping", "ip", "sleep", "cat"):
        os.symlink("busybox", str(path / "bin" / applet))
    return str(path)


def test_podman_containers_on_the_podnet_network_reach_each_other(tmp_path, prefix, host_links):
    assert os.path.exists(BUSYBOX), "a static busybox is needed for the container root (apt-get install busybox-static)"
    network, bridge = prefix, prefix + "b"
    host_links.append(bridge)
    bin_dir, conf_dir, data_dir = tmp_path / "bin", tmp_path / "net.d", tmp_path / "ipam"
    run_role(tmp_path, {
        "podnet_pod_cidr": SUBNET, "podnet_cluster_cidr": "10.252.0.0/16", "podnet_bridge": bridge,
        "podnet_cni_network_name": network, "podnet_cni_bin_dir": str(bin_dir),
        "podnet_cni_conf_dir": str(conf_dir), "podnet_cni_data_dir": str(data_dir),
    })
    assert os.access(str(bin_dir / "podnet"), os.X_OK)
    (tmp_path / "containers.conf").write_text(CONTAINERS_CONF.format(bin=bin_dir, conf=conf_dir, tmp=tmp_path))
    short = tempfile.mkdtemp(prefix="pntp")
    os.mkdir(os.path.join(short, "tmp"))
    podman = Podman(tmp_path, short)
    root = rootfs(tmp_path / "rootfs")
    store = ipam.Store(str(data_dir), network)
    names = [prefix + "c1", prefix + "c2"]
    try:
        assert network in podman("network", "ls", "--format", "{{.Name}}").stdout.split()
        ids = [podman("run", "-d", "--name", name, "--network", network, *ULIMITS, "--rootfs", root,
                      "sleep", "600").stdout.strip() for name in names]
        addresses = [podman("inspect", "--format", "{{(index .NetworkSettings.Networks \"%s\").IPAddress}}"
                            % network, name).stdout.strip() for name in names]
        assert len(set(addresses)) == 2 and all(a.startswith("10.252.7.") for a in addresses), addresses
        # The IPAM state names podman's container IDs.
        owners = store.reservations()
        assert sorted(owners) == sorted(addresses)
        assert sorted(o["containerID"] for o in owners.values()) == sorted(ids)
        # Traffic: each container pings the other and the gateway (the bridge).
        for name, other in ((names[0], addresses[1]), (names[1], addresses[0])):
            for target in (other, GATEWAY):
                out = podman("exec", name, "ping", "-c1", "-W2", target, check=False)
                assert out.returncode == 0, "%s cannot reach %s: %s%s" % (name, target, out.stdout, out.stderr)
        with netlink.Session() as session:
            links = session.ns(None).links()
        ports = [plugin.attachment_veth(cid, "eth0") for cid in ids]
        assert all(links[p]["master"] == bridge for p in ports)
        podman("rm", "-f", "-t", "0", *names)
        assert store.reservations() == {}
        with netlink.Session() as session:
            links = session.ns(None).links()
        assert not any(p in links for p in ports)
    finally:
        podman("rm", "-f", "-t", "0", *names, check=False)
        shutil.rmtree(short, ignore_errors=True)
