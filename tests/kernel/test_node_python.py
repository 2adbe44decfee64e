# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The node side at the oldest versions supported: Python 3.9 with pyroute2 0.7.

The modules run as Ansible runs them on a node, through real ``ansible localhost -c local``
runs whose ``ansible_python_interpreter`` is that Python (``.venv-node-oldest``, made by
``make venv`` from requirements-node-oldest.txt; ``make kernel`` passes it in
PODNET_NODE_PYTHON), against the kernel of the test's own private network namespace: bridge,
pods, pod_route, overlay, masquerade (nftables) and node_info. The CNI plugin is built for the
same interpreter and run as a runtime runs it: ADD, CHECK and DEL of a namespace.

Names start with the test's prefix (pntk...); whatever a test makes is removed after it, also
when it fails.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


from ansible_collections.podnet.mesh.plugins.module_utils.cni import ipam
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import netlink as _netlink
from ansible_collections.podnet.mesh.tests.helpers.namespaces import ns_path, pings
from ansible_collections.podnet.mesh.tests.helpers.runs import once_per_kernel_run

# Here the controller only starts ansible and builds the plugin: what is tested is the node's
# interpreter and its pyroute2, the same in both runs of the kernel suite.
pytestmark = once_per_kernel_run

# .../<root>/ansible_collections/podnet/mesh/plugins/module_utils/kernel/netlink.py
COLLECTION = os.path.abspath(os.path.join(os.path.dirname(_netlink.__file__), "..", "..", ".."))
BUILD = os.path.join(COLLECTION, "roles", "cni", "files", "build_podnet.py")
HOW = ("a Python 3.9 virtual environment with requirements-node-oldest.txt: `make venv` makes .venv-node-oldest "
       "(it needs a python3.9, e.g. `pyenv install 3.9`), and `make kernel` passes it in PODNET_NODE_PYTHON")

SUBNET, GATEWAY = "10.81.1.0/24", "10.81.1.1"
UNDERLAY_IP, PEER_IP = "192.168.81.11", "192.168.81.12"


@pytest.fixture(scope="module")
def node_python():
    """The node's interpreter: Python 3.9 with pyroute2 0.7.x."""
    python = os.environ.get("PODNET_NODE_PYTHON")
    if not python:
        # make kernel sets it whenever make venv found a Python 3.9 (and says so when it found none).
        pytest.skip("PODNET_NODE_PYTHON is not set: no Python 3.9 on this machine; the node's Python is %s" % HOW)
    if not os.access(python, os.X_OK):
        message = "PODNET_NODE_PYTHON=%s is not executable; the node's Python is %s" % (python, HOW)
        if os.environ.get("PODNET_TEST_STRICT") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    out = subprocess.run([python, "-c", "import json, sys, pyroute2; "
                                        "print(json.dumps([list(sys.version_info[:2]), pyroute2.__version__]))"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, "%s cannot import pyroute2: %s" % (python, out.stderr)
    version, pyroute2_version = json.loads(out.stdout)
    assert version == [3, 9], "%s is Python %s, not 3.9" % (python, version)
    assert pyroute2_version.startswith("0.7."), "%s has pyroute2 %s, not 0.7.x" % (python, pyroute2_version)
    return python


class Node:
    """Modules run through `ansible localhost -c local` with the node's interpreter."""

    def __init__(self, python, cwd):
        self.python = python
        self.cwd = cwd
        self.ansible = os.path.join(os.path.dirname(sys.executable), "ansible")
        root = os.path.abspath(os.path.join(COLLECTION, "..", "..", ".."))
        self.env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=root, ANSIBLE_HOST_KEY_CHECKING="0", ANSIBLE_NOCOLOR="1",
                        ANSIBLE_DEPRECATION_WARNINGS="0")

    def run(self, module, args=None, check=False, extra_vars=None):
        """The module's result; the run must succeed. extra_vars: a file of variables args may name."""
        argv = [self.ansible, "localhost", "-c", "local", "-i", "localhost,", "-m", module,
                "-e", "ansible_python_interpreter=%s" % self.python]
        if extra_vars is not None:
            argv += ["-e", "@" + extra_vars]
        if args is not None:
            argv += ["-a", json.dumps(args)]
        if check:
            argv.append("--check")
        out = subprocess.run(argv, env=self.env, cwd=self.cwd, capture_output=True, text=True, timeout=120, check=False)
        assert out.returncode == 0, out.stdout + out.stderr
        # "localhost | CHANGED => {...}"
        return json.loads(out.stdout[out.stdout.index("{"):])


@pytest.fixture
def node(node_python, tmp_path):
    if not os.path.exists(os.path.join(os.path.dirname(sys.executable), "ansible")):
        pytest.fail("ansible is not installed beside %s" % sys.executable, pytrace=False)
    return Node(node_python, str(tmp_path))


def test_modules_run_with_the_nodes_python(node):
    facts = node.run("ansible.builtin.setup", {"gather_subset": ["!all", "!min", "python"]})["ansible_facts"]
    assert facts["ansible_python"]["executable"] == node.python
    assert facts["ansible_python"]["version"]["major"] == 3 and facts["ansible_python"]["version"]["minor"] == 9


def test_bridge_pods_routes_and_node_info(node, prefix, named_ns, host_links):
    """A node's wiring; the fixtures remove the bridge and the pods' namespaces (their veth pairs with them)."""
    bridge = prefix + "b"
    host_links.append(bridge)
    pods = [named_ns(suffix, create=False) for suffix in ("p1", "p2")]
    bridge_args = {"name": bridge, "addresses": [GATEWAY + "/24"]}
    pods_args = {"bridge": bridge, "pod_cidr": SUBNET, "pods": [{"name": name} for name in pods]}
    route = {"dst": "10.81.2.0/24", "via": "10.81.1.200"}
    predicted = node.run("podnet.mesh.bridge", bridge_args, check=True)
    assert predicted["changed"] is True and predicted["bridge"]["addresses"] == [GATEWAY + "/24"], predicted
    with _netlink.Session() as session:
        assert bridge not in session.ns(None).links(), "check mode made the bridge"
    result = node.run("podnet.mesh.bridge", bridge_args)
    assert result["changed"] is True and result["actions"] == predicted["actions"], result
    assert result["bridge"]["addresses"] == [GATEWAY + "/24"] and result["bridge"]["up"] is True
    assert node.run("podnet.mesh.bridge", bridge_args)["changed"] is False

    result = node.run("podnet.mesh.pods", pods_args)
    assert result["changed"] is True, result
    assert [(p["name"], p["address"], p["gateway"]) for p in result["pods"]] == [
        (pods[0], "10.81.1.2/24", GATEWAY), (pods[1], "10.81.1.3/24", GATEWAY)]
    assert node.run("podnet.mesh.pods", pods_args)["changed"] is False
    assert pings(pods[0], GATEWAY) and pings(pods[0], "10.81.1.3")

    result = node.run("podnet.mesh.pod_route", {"routes": [route]})
    assert result["changed"] is True, result
    assert node.run("podnet.mesh.pod_route", {"routes": [route]})["changed"] is False
    result = node.run("podnet.mesh.pod_route", {"routes": [], "purge": True})
    assert result["changed"] is True and result["routes"] == [], result

    info = node.run("podnet.mesh.node_info")
    assert info["changed"] is False
    assert {"interface": bridge, "address": GATEWAY + "/24"} in info["addresses"]
    assert SUBNET in info["networks"]


def test_overlay(node, prefix, host_links):
    """One VXLAN peer; the fixture removes the device (its entries with it) and the underlay."""
    from pyroute2 import IPRoute

    underlay, vxlan = prefix + "u", prefix + "v"
    host_links.extend([underlay, vxlan])
    with IPRoute() as ipr:
        # An underlay with the node's address: one end of a veth pair (both ends here).
        ipr.link("add", ifname=underlay, kind="veth", peer=prefix + "w")
        index = ipr.link_lookup(ifname=underlay)[0]
        ipr.addr("add", index=index, address=UNDERLAY_IP, prefixlen=24)
        ipr.link("set", index=index, state="up")
    args = {"name": vxlan, "local": UNDERLAY_IP, "peers": [{"node_ip": PEER_IP, "vtep": ["10.81.2.0"]}]}
    result = node.run("podnet.mesh.overlay", args)
    overlay = result["overlay"]
    assert result["changed"] is True and overlay["state"] == "present" and overlay["vni"] == 1, result
    assert overlay["fdb"] == ["0e:58:c0:a8:51:0c dst %s" % PEER_IP]
    assert overlay["neighbours"] == ["10.81.2.0 lladdr 0e:58:c0:a8:51:0c"]
    assert node.run("podnet.mesh.overlay", args)["changed"] is False


def _nft_table():
    """Our IPv4 table as nft prints it, or None."""
    out = subprocess.run(["nft", "list", "table", "ip", "podnet"], capture_output=True, text=True, check=False)
    return out.stdout if out.returncode == 0 else None


def test_masquerade_with_nftables(node):
    assert _nft_table() is None, "table ip podnet exists before the test"
    args = {"source": [SUBNET], "exempt": ["10.81.0.0/16"], "backend": "nftables", "ip_forward": False}
    try:
        result = node.run("podnet.mesh.masquerade", args)
        assert result["changed"] is True and result["backend"] == "nftables", result
        table = _nft_table()
        assert table and "ip saddr %s masquerade" % SUBNET in table, table
        assert node.run("podnet.mesh.masquerade", args)["changed"] is False
        assert node.run("podnet.mesh.masquerade", dict(args, state="absent"))["changed"] is True
        assert _nft_table() is None
    finally:
        if _nft_table() is not None:
            subprocess.run(["nft", "delete", "table", "ip", "podnet"], check=False)


def test_cni_plugin_built_for_the_nodes_python(node_python, prefix, named_ns, host_links, tmp_path):
    plugin = str(tmp_path / "podnet")
    subprocess.run([sys.executable, BUILD, plugin, "--interpreter", node_python], check=True)
    with open(plugin, "rb") as handle:
        assert handle.readline().decode().split() == ["#!" + node_python, "-IS"]
    bridge = prefix + "b"
    host_links.append(bridge)
    pod = named_ns("p")
    conf = {"cniVersion": "1.0.0", "name": prefix, "type": "podnet", "bridge": bridge,
            "ipam": {"subnet": SUBNET, "dataDir": str(tmp_path / "ipam")}}

    def call(command, data):
        environ = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CNI_COMMAND": command,
                   "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin",
                   "CNI_NETNS": ns_path(pod)}
        # The file itself, as a runtime runs it: its shebang names the node's Python.
        out = subprocess.run([plugin], input=json.dumps(data), env=environ, capture_output=True, text=True,
                             timeout=60, check=False)
        assert not out.stderr, out.stderr
        return out.returncode, (json.loads(out.stdout) if out.stdout.strip() else None)

    added = False
    try:
        code, result = call("ADD", conf)
        added = code == 0
        assert code == 0, result
        assert result["ips"][0]["address"] == "10.81.1.2/24" and result["ips"][0]["gateway"] == GATEWAY
        assert pings(pod, GATEWAY)
        assert call("CHECK", dict(conf, prevResult=result)) == (0, None)
        assert call("DEL", conf) == (0, None)
        added = False
        assert ipam.Store(conf["ipam"]["dataDir"], prefix).reservations() == {}
    finally:
        if added:
            call("DEL", conf)


def test_boot_restore_installs_a_program_the_nodes_python_runs(node, tmp_path):
    """The module under Python 3.9, and the check it makes with the new program under the same Python."""
    encoded = subprocess.run([sys.executable, BUILD, "-", "--entry", "node/main.py", "--interpreter", node.python,
                              "--encode"], capture_output=True, text=True, check=True).stdout.strip()
    program = str(tmp_path / "program.json")
    with open(program, "w") as handle:
        json.dump({"restore_program": encoded}, handle)
    state = {"version": 1, "node": "n1", "bridge": {"name": "cni0", "addresses": [GATEWAY + "/24"]}}
    args = {"program": "{{ restore_program }}", "node_state": state, "interpreter": node.python,
            "program_path": str(tmp_path / "root/podnet-restore"), "state_file": str(tmp_path / "root/state.json"),
            "unit_dir": str(tmp_path / "root/systemd")}
    predicted = node.run("podnet.mesh.boot_restore", args, check=True, extra_vars=program)
    assert predicted["changed"] is True and not os.path.exists(tmp_path / "root"), predicted
    result = node.run("podnet.mesh.boot_restore", args, extra_vars=program)
    assert result["actions"] == predicted["actions"], result
    out = subprocess.run([node.python, str(tmp_path / "root/podnet-restore"), "--check-state",
                          str(tmp_path / "root/state.json")], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert node.run("podnet.mesh.boot_restore", args, extra_vars=program)["changed"] is False
