# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""What operators meet on real clusters, on the 3-node lab: each mistake is refused
before any change with a message that names its cause, and each day-2 task of
docs/operations.md works.

The tests of this module share one lab and run in file order. Every playbook run
keeps the roles' state directory and the CNI directories below a directory of the
test (per node), because lab nodes share the machine's file system.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

COLLECTION = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
COLLECTIONS_PATH = os.path.abspath(os.path.join(COLLECTION, "..", "..", ".."))
BIN = os.path.dirname(sys.executable)
LAB_INVENTORY = os.path.join(COLLECTION, "inventories", "lab")
NODES = ("node1", "node2", "node3")
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
ROLES = ("node_network", "mesh_routes", "pods", "cni", "persistence", "verify", "lab")


@pytest.fixture(scope="module")
def work():
    path = tempfile.mkdtemp(prefix="podnet-operations.")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def play(lab, work, playbook, *args, inventories=(LAB_INVENTORY,), check=True):
    """Run a playbook (a name of the collection's, or a path) on the lab: (rc, output, recap)."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH, ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0", PODNET_LAB_NODES=str(lab.nodes))
    if not os.path.isabs(playbook):
        playbook = os.path.join(COLLECTION, "playbooks", playbook)
    node_dir = os.path.join(work, "{{ inventory_hostname }}")
    argv = [os.path.join(BIN, "ansible-playbook")]
    for inventory in inventories:
        argv += ["-i", inventory]
    argv += ["-e", "podnet_lab_name=%s" % lab.name, "-e", json.dumps({
        "podnet_state_dir": node_dir + "/etc/podnet",
        "podnet_cni_bin_dir": node_dir + "/opt/cni/bin",
        "podnet_cni_conf_dir": node_dir + "/etc/cni/net.d",
        "podnet_cni_data_dir": node_dir + "/var/lib/cni/podnet",
        "podnet_persist_program": node_dir + "/usr/local/libexec/podnet/podnet-restore",
        "podnet_persist_unit_dir": node_dir + "/etc/systemd/system"}), playbook]
    proc = subprocess.run(argv + list(args), env=env, cwd=work, capture_output=True, text=True, check=False)
    out = proc.stdout + proc.stderr
    recap = dict((m.group(1), {"ok": int(m.group(2)), "changed": int(m.group(3)), "failed": int(m.group(5))})
                 for m in RECAP.finditer(out))
    if check and proc.returncode != 0:
        raise AssertionError("%s failed (rc %d):\n%s" % (playbook, proc.returncode, out[-6000:]))
    return proc.returncode, out, recap


def on(lab, node, *argv):
    """A command inside a lab node (network and mount namespace); stdout."""
    proc = subprocess.run(["nsenter", "--net=%s" % lab.path(node), "--mount=%s" % lab.path(node, "mnt"), "--"]
                          + list(argv), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssertionError("%s on %s: %s" % (argv, node, proc.stderr))
    return proc.stdout


def links(lab, node):
    return sorted(link["ifname"] for link in lab.ip_json(node, "link", "show"))


def ours(lab, node):
    return sorted(r["dst"] for r in lab.ip_json(node, "route", "show", "proto", "149"))


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)
    return path


def inventory_dir(work, name, config="", group_vars=None):
    """A lab inventory of its own: the lab plugin's file plus group_vars/all.yml."""
    path = os.path.join(work, name)
    write(os.path.join(path, "lab.podnet.yml"), "plugin: podnet.mesh.lab\nnodes: 3\n" + config)
    if group_vars is not None:
        write(os.path.join(path, "group_vars", "all.yml"), group_vars)
    return path


def unchanged(recap):
    return all(recap.get(n, {}).get("changed", 0) == 0 for n in NODES)


# ------------------------------------------------------------------ no lab
def test_a_users_project_using_every_role_lints_clean(work):
    """ansible-lint --profile production on a user's playbook reports nothing from the roles."""
    project = os.path.join(work, "project")
    installed = os.path.join(project, "collections", "ansible_collections", "podnet", "mesh")
    shutil.copytree(COLLECTION, installed, ignore=shutil.ignore_patterns(".git", "tests", ".venv*", ".build"))
    write(os.path.join(project, "site.yml"), "---\n- name: Pod network\n  hosts: podnet_nodes\n"
          "  gather_facts: false\n  roles:\n" + "".join("    - role: podnet.mesh.%s\n" % r for r in ROLES))
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run(["git", "add", "site.yml"], cwd=project, check=True)
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ.get("PATH", ""), ANSIBLE_LINT_NODEPS="1",
               ANSIBLE_LINT_SKIP_SCHEMA_UPDATE="1", ANSIBLE_COLLECTIONS_PATH=os.path.join(project, "collections"))
    proc = subprocess.run([os.path.join(BIN, "ansible-lint"), "--profile", "production", "--offline", "--nocolor",
                           "-f", "pep8", "site.yml"], cwd=project, env=env, capture_output=True, text=True,
                          check=False)
    from_roles = [line for line in proc.stdout.splitlines() if "/roles/" in line]
    assert from_roles == [], "\n".join(from_roles)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_prerequisites_come_before_anything_that_needs_them():
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH, ANSIBLE_NOCOLOR="1")
    out = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", LAB_INVENTORY, "--list-tasks",
                          os.path.join(COLLECTION, "playbooks", "site.yml")], env=env, capture_output=True,
                         text=True, check=True).stdout
    tasks = [line.strip() for line in out.split("play #2")[-1].splitlines()[1:]
             if "TAGS:" in line and "Validating arguments" not in line]
    assert "prerequisites" in tasks[0].lower() and "inventory" in tasks[1], out


# ---------------------------------------------------------------- the lab
def test_a_play_on_more_hosts_than_the_nodes_group_is_refused_before_any_change(lab, work):
    lab.playbook("lab.yml", "--tags", "lab")
    extra = write(os.path.join(work, "part", "hosts.yml"), "part:\n  hosts:\n    node1:\n    node2:\n")
    user_play = write(os.path.join(work, "user.yml"), "---\n- name: Pod network\n  hosts: podnet_nodes\n"
                      "  gather_facts: false\n  roles:\n    - role: podnet.mesh.node_network\n"
                      "    - role: podnet.mesh.mesh_routes\n    - role: podnet.mesh.pods\n")
    rc, out, recap = play(lab, work, user_play, "-e", "podnet_nodes_group=part",
                          inventories=(LAB_INVENTORY, extra), check=False)
    assert rc != 0
    assert ("node3 run this play but are not in group part (podnet_nodes_group='part')" in out), out[-3000:]
    assert unchanged(recap)
    assert all(links(lab, n) == ["eth0", "lo"] for n in NODES)


def test_podnet_nodes_group_naming_no_group_is_refused(lab, work):
    inventory = inventory_dir(work, "nogroup", group_vars="podnet_nodes_group: kube_node\n")
    for playbook in ("site.yml", "verify.yml", "teardown.yml"):
        rc, out, recap = play(lab, work, playbook, inventories=(inventory,), check=False)
        assert rc != 0, (playbook, out[-3000:])
        assert "podnet_nodes_group is 'kube_node', but the inventory has no group of that name" in out, out[-3000:]
    assert all(links(lab, n) == ["eth0", "lo"] for n in NODES)


def test_podnet_nodes_group_from_group_vars_all_is_honoured(lab, work):
    inventory = inventory_dir(work, "mynodes", "group: cluster_nodes\n",
                              group_vars="podnet_nodes_group: cluster_nodes\n")
    rc, out, recap = play(lab, work, "site.yml", inventories=(inventory,))
    assert all(recap[n]["changed"] > 0 for n in NODES), out[-3000:]
    assert ours(lab, "node1") == ["10.244.2.0/24", "10.244.3.0/24"]
    rc, out, recap = play(lab, work, "verify.yml", inventories=(inventory,))
    assert "36 probes passed" in out


def test_warm_run_checks_prerequisites_without_the_package_manager(lab, work):
    rc, out, recap = play(lab, work, "site.yml", "-e", "podnet_install_prerequisites=true")
    assert unchanged(recap), out[-3000:]
    install = out.split("Install the node's prerequisites (only when missing)]", 1)[1].split("TASK", 1)[0]
    assert all("skipping: [%s]" % n in install for n in NODES), install


def test_limit_to_one_node_reads_the_peers_it_needs(lab, work):
    """Without podnet_node_ip, peers outside --limit are read where they are."""
    no_ip = json.dumps({"podnet_node_ip": ""})
    on(lab, "node1", "ip", "route", "del", "10.244.2.0/24")
    rc, out, recap = play(lab, work, "site.yml", "--limit", "node1", "-e", no_ip)
    assert set(recap) == {"node1"} and recap["node1"]["changed"] == 1, out[-3000:]
    assert ours(lab, "node1") == ["10.244.2.0/24", "10.244.3.0/24"]
    via = dict((r["dst"], r["gateway"]) for r in lab.ip_json("node1", "route", "show", "proto", "149"))
    assert via == {"10.244.2.0/24": "192.168.1.12", "10.244.3.0/24": "192.168.1.13"}


def test_renamed_bridge_replaces_the_old_one(lab, work):
    rc, out, recap = play(lab, work, "site.yml", "-e", "podnet_bridge=podbr0")
    for node in NODES:
        assert "cni0" not in links(lab, node) and "podbr0" in links(lab, node)
    rc, out, recap = play(lab, work, "verify.yml", "-e", "podnet_bridge=podbr0")
    assert "36 probes passed" in out
    rc, out, recap = play(lab, work, "site.yml")  # and back
    assert all("podbr0" not in links(lab, n) for n in NODES)
    rc, out, recap = play(lab, work, "verify.yml")
    assert "36 probes passed" in out


def test_another_holder_of_the_gateway_address_is_refused_naming_it(lab, work):
    on(lab, "node2", "ip", "link", "add", "handmade", "type", "veth", "peer", "name", "handmade-peer")
    try:
        on(lab, "node2", "ip", "addr", "add", "10.244.2.1/24", "dev", "handmade")
        rc, out, recap = play(lab, work, "site.yml", "-e", "podnet_bridge=podbr0", check=False)
        assert rc != 0 and "node2: handmade (not a bridge, addresses 10.244.2.1/24) holds the pod gateway" in out
        assert unchanged(recap) and "cni0" in links(lab, "node2")
    finally:
        on(lab, "node2", "ip", "link", "del", "handmade")


def test_a_foreign_masquerade_of_pod_traffic_is_refused_then_removed_on_request(lab, work):
    rule = ["-s", "10.244.0.0/16", "-j", "MASQUERADE"]
    on(lab, "node1", "iptables", "-t", "nat", "-A", "POSTROUTING", *rule)
    rc, out, recap = play(lab, work, "site.yml", check=False)
    assert rc != 0 and "'-A POSTROUTING -s 10.244.0.0/16 -j MASQUERADE'" in out, out[-3000:]
    assert "podnet_foreign_masquerade" in out and unchanged(recap)
    rc, out, recap = play(lab, work, "site.yml", "-v", "-e", "podnet_foreign_masquerade=remove")
    assert "delete 1 foreign rule(s) from iptables nat POSTROUTING: -s 10.244.0.0/16 -j MASQUERADE" in out
    assert "-A POSTROUTING -s 10.244.0.0/16 -j MASQUERADE" not in on(lab, "node1", "iptables-save", "-t", "nat")
    rc, out, recap = play(lab, work, "verify.yml")
    assert "36 probes passed" in out


def test_migration_from_the_hand_made_setup(lab, work):
    """docs/operations.md: a node built by hand as in the design notes, taken over."""
    rc, out, recap = play(lab, work, "teardown.yml", "--limit", "node3")
    node = "node3"
    for argv in (["ip", "link", "add", "cni0", "type", "bridge"], ["ip", "link", "set", "cni0", "up"],
                 ["ip", "addr", "add", "10.244.3.1/24", "dev", "cni0"],
                 ["ip", "route", "add", "10.244.1.0/24", "via", "192.168.1.11"],
                 ["iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "10.244.0.0/16", "!", "-d", "10.244.0.0/16",
                  "-j", "MASQUERADE"]):
        on(lab, node, *argv)
    # The hand-made route to node1's pods is refused by name; the doc says to delete it.
    rc, out, recap = play(lab, work, "site.yml", check=False)
    assert rc != 0 and "routes[0].dst: '10.244.1.0/24' already has a route" in out, out[-3000:]
    assert "podnet.mesh did not create (10.244.1.0/24 via 192.168.1.11 dev eth0 metric 0, protocol 3)" in out
    on(lab, node, "ip", "route", "del", "10.244.1.0/24", "proto", "boot")
    rc, out, recap = play(lab, work, "site.yml")
    assert ours(lab, node) == ["10.244.1.0/24", "10.244.2.0/24"]
    assert "cni0" in links(lab, node)  # the hand-made bridge, taken over
    rc, out, recap = play(lab, work, "verify.yml")
    assert "36 probes passed" in out
    # The design notes' rule (with its cluster exemption) was harmless and left alone: delete it now.
    on(lab, node, "iptables", "-t", "nat", "-D", "POSTROUTING", "-s", "10.244.0.0/16", "!", "-d", "10.244.0.0/16",
       "-j", "MASQUERADE")
    rc, out, recap = play(lab, work, "verify.yml")
    assert "36 probes passed" in out


def test_br_netfilter_option_sets_bridge_nf_call(lab, work):
    knobs = ["/proc/sys/net/bridge/bridge-nf-call-iptables", "/proc/sys/net/bridge/bridge-nf-call-ip6tables"]
    if not os.path.isdir("/proc/sys/net/bridge"):
        pytest.skip("br_netfilter is not loaded on this machine and lab nodes cannot load modules")
    for node in NODES:
        on(lab, node, "sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=0",
           "net.bridge.bridge-nf-call-ip6tables=0")
    rc, out, recap = play(lab, work, "site.yml", "-e", "podnet_bridge_nf_call=true")
    assert all(recap[n]["changed"] >= 1 for n in NODES)
    assert all(on(lab, n, "cat", *knobs).split() == ["1", "1"] for n in NODES)
    rc, out, recap = play(lab, work, "site.yml", "-e", "podnet_bridge_nf_call=true")
    assert unchanged(recap)


def test_add_and_remove_a_node(lab, work):
    """docs/operations.md: the node count is the inventory; routes follow it."""
    lab.nodes = 4
    try:
        lab.playbook("lab.yml", "--tags", "lab", nodes=4)
        rc, out, recap = play(lab, work, "site.yml")
        assert ours(lab, "node4") == ["10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"]
        assert "10.244.4.0/24" in ours(lab, "node1")
        rc, out, recap = play(lab, work, "verify.yml")
        assert "64 probes passed" in out
        rc, out, recap = play(lab, work, "teardown.yml", "--limit", "node4")
    finally:
        lab.nodes = 3
    lab.playbook("lab.yml", "--tags", "lab")
    rc, out, recap = play(lab, work, "site.yml")
    assert all("10.244.4.0/24" not in ours(lab, n) for n in NODES)


def test_upgrade_keeps_a_converged_node_unchanged(lab, work):
    """docs/operations.md: after installing a new release, site.yml --check --diff shows what it would do."""
    rc, out, recap = play(lab, work, "site.yml", "--check", "--diff")
    assert unchanged(recap), out[-3000:]


def test_teardown_without_podnet_pod_cidr_is_refused_before_any_change(lab, work):
    rc, out, recap = play(lab, work, "teardown.yml", "-e", json.dumps({"podnet_pod_cidr": None}), check=False)
    assert rc != 0 and "podnet_pod_cidr (or podnet_pod_cidrs) is required for host node1, host node2, host node3" in out, out[-3000:]
    assert unchanged(recap) and all("cni0" in links(lab, n) for n in NODES)


def test_teardown_removes_the_cni_plugin_and_restores_ip_forward(lab, work):
    cni_play = write(os.path.join(work, "cni.yml"), "---\n- name: CNI\n  hosts: podnet_nodes\n"
                     "  gather_facts: false\n  roles:\n    - role: podnet.mesh.cni\n")
    play(lab, work, cni_play)
    for node in NODES:
        lock = os.path.join(work, node, "var/lib/cni/podnet/podnet/lock")
        write(lock, "")
        assert os.path.exists(os.path.join(work, node, "opt/cni/bin/podnet"))
        assert on(lab, node, "cat", "/proc/sys/net/ipv4/ip_forward").strip() == "1"
        with open(os.path.join(work, node, "etc/podnet/ip_forward.before")) as handle:
            assert handle.read() == "0\n"
    rc, out, recap = play(lab, work, "teardown.yml", "--limit", "podnet_nodes")
    for node in NODES:
        assert links(lab, node) == ["eth0", "lo"] and ours(lab, node) == []
        assert on(lab, node, "cat", "/proc/sys/net/ipv4/ip_forward").strip() == "0"
        left = [os.path.join(d, f) for d, _dirs, files in os.walk(os.path.join(work, node)) for f in files]
        assert left == [], left
        assert not os.path.exists(os.path.join(work, node, "etc/podnet"))
    rc, out, recap = play(lab, work, "teardown.yml", "--limit", "podnet_nodes")
    assert unchanged(recap), out[-3000:]
