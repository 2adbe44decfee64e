# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab against the real kernel: build, converge, isolate, repair, tear down.

Labs are named pntk<hex> and live below a temporary root directory, never
below /run/podnet-lab; every one is removed at the end of its test (or
module), also on failure, and the test then checks that no mount and no
file is left. Traffic only goes to addresses inside the lab.
"""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.core.describe import describe_all
from ansible_collections.podnet.mesh.plugins.module_utils.kernel.netns import read_sysctl
from ansible_collections.podnet.mesh.plugins.module_utils.lab import topology
from ansible_collections.podnet.mesh.plugins.module_utils.lab.plan import plan
from ansible_collections.podnet.mesh.plugins.module_utils.lab.session import LabSession, read


def lab_want(root, name, count, state="present"):
    nodes = [{"name": n["name"], "address": n["address"]} for n in topology.generate(count)["nodes"]]
    return topology.validate({"name": name, "root": root, "nodes": nodes, "state": state})


def converge(want):
    """Plan and apply; returns (first plan, second plan, seconds taken by the first)."""
    session = LabSession()
    try:
        start = time.monotonic()
        first = plan(want, read(session, want))
        session.apply(first.actions)
        took = time.monotonic() - start
        second = plan(want, read(session, want))
    finally:
        session.close()
    return first, second, took


def teardown(root, name):
    start = time.monotonic()
    first, second, _took = converge(topology.validate({"name": name, "root": root, "state": "absent"}))
    took = time.monotonic() - start
    assert second.actions == []
    path = os.path.join(root, name)
    with open("/proc/self/mountinfo") as handle:
        left = [line for line in handle if path in line]
    assert left == [], left
    assert not os.path.exists(path)
    return first, took


def in_node(lab, node, *argv, kinds=("net",), check=False, timeout=20):
    options = ["--%s=%s/%s/%s" % ({"mnt": "mount"}.get(k, k), lab, node, k) for k in kinds]
    return subprocess.run(["nsenter"] + options + ["--"] + list(argv), capture_output=True,
                          text=True, timeout=timeout, check=check)


def ping(lab, node, address):
    return in_node(lab, node, "ping", "-c1", "-W2", address).returncode == 0


def own_links():
    """Links of the namespace the tests run in (its /sys may be the machine's)."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        return sorted(m.get_attr("IFLA_IFNAME") for m in ipr.get_links())


@pytest.fixture(scope="module")
def lab3(tmp_path_factory):
    """A three-node lab shared by the tests of this module."""
    root = str(tmp_path_factory.mktemp("lab"))
    name = "pntk" + secrets.token_hex(3)
    links_before = own_links()
    want = lab_want(root, name, 3)
    lab = {"root": root, "name": name, "path": want["path"], "want": want, "took": 0.0}
    try:
        lab["first"], lab["second"], lab["took"] = converge(want)
        yield lab
    finally:
        _first, took = teardown(root, name)
        print("\n3-node lab: build %.2fs, teardown %.2fs" % (lab["took"], took))
    assert own_links() == links_before


def test_build_converges(lab3):
    assert lab3["first"].changed
    assert lab3["second"].actions == [], describe_all(lab3["second"].actions)


def test_nothing_is_added_to_our_own_namespace(lab3):
    assert [n for n in own_links() if n != "lo" and not n.startswith("pnt")] == []


def test_layout(lab3):
    path = lab3["path"]
    for node in ("node1", "node2", "node3"):
        for kind in ("net", "mnt", "uts"):
            assert os.path.ismount(os.path.join(path, node, kind))
    for infra in ("switch", "router", "external"):
        assert os.listdir(os.path.join(path, infra)) == ["net"]


def test_node_sees_itself(lab3):
    out = in_node(lab3["path"], "node1", "sh", "-c", "hostname; ls /sys/class/net; ip -4 route",
                  kinds=("net", "mnt", "uts"), check=True).stdout.split("\n")
    assert out[0] == "node1"
    assert out[1:3] == ["eth0", "lo"]
    assert "default via 192.168.1.1 dev eth0 proto static" in "\n".join(out)


def test_nodes_reach_each_other_the_router_and_the_external_host(lab3):
    path = lab3["path"]
    assert ping(path, "node1", "192.168.1.12")
    assert ping(path, "node3", "192.168.1.11")
    assert ping(path, "node2", "192.168.1.1")
    assert ping(path, "node1", "203.0.113.10")


def test_router_forwards_and_the_external_host_knows_no_pods(lab3):
    path = lab3["path"]
    assert read_sysctl("net/ipv4/ip_forward", path + "/router/net") == "1"
    routes = in_node(path, "external", "ip", "-4", "route", check=True).stdout
    assert "192.168.1.0/24 via 203.0.113.1 dev eth0" in routes
    assert "10.244" not in routes and "default" not in routes


def test_run_netns_is_private_per_node(lab3):
    path = lab3["path"]
    pod = "pntk" + secrets.token_hex(3)
    code = "from pyroute2 import netns; netns.create(%r)" % pod
    in_node(path, "node1", sys.executable, "-c", code, kinds=("net", "mnt"), check=True)
    assert pod in in_node(path, "node1", "ls", "/run/netns", kinds=("mnt",), check=True).stdout
    assert pod not in in_node(path, "node2", "ls", "/run/netns", kinds=("mnt",), check=True).stdout
    assert not os.path.exists(os.path.join("/run/netns", pod))
    # The same pod name on another node is another namespace.
    in_node(path, "node2", sys.executable, "-c", code, kinds=("net", "mnt"), check=True)
    inodes = [in_node(path, node, "stat", "-L", "-c", "%i", "/run/netns/" + pod,
                      kinds=("mnt",), check=True).stdout for node in ("node1", "node2")]
    assert inodes[0] != inodes[1]


def test_a_half_built_node_is_rebuilt(lab3):
    path, want = lab3["path"], lab3["want"]
    subprocess.run(["umount", os.path.join(path, "node2", "uts")], check=True)
    first, second, _took = converge(want)
    assert [a.op for a in first.actions][:2] == ["ns_remove", "ns_create"]
    assert second.actions == []
    assert ping(path, "node1", "192.168.1.12")
    assert in_node(path, "node2", "hostname", kinds=("uts",), check=True).stdout.strip() == "node2"


def test_broken_wiring_is_repaired(lab3):
    path, want = lab3["path"], lab3["want"]
    in_node(path, "node3", "ip", "route", "del", "default", check=True)
    in_node(path, "switch", "ip", "link", "set", "node3", "nomaster", check=True)
    first, second, _took = converge(want)
    assert sorted(a.op for a in first.actions) == ["link_set", "route_add"]
    assert second.actions == []
    assert ping(path, "node3", "203.0.113.10")


def test_check_mode_plan_touches_nothing(tmp_path):
    want = lab_want(str(tmp_path), "pntk" + secrets.token_hex(3), 2)
    session = LabSession()
    try:
        planned = plan(want, read(session, want))
    finally:
        session.close()
    assert planned.changed
    assert not os.path.exists(want["path"])


def _comm(pid):
    with open("/proc/%d/comm" % pid) as handle:
        return handle.read().strip()


def test_teardown_stops_processes_and_leaves_nothing(tmp_path):
    root, name = str(tmp_path), "pntk" + secrets.token_hex(3)
    want = lab_want(root, name, 1)
    try:
        converge(want)
        sleeper = subprocess.Popen(
            ["nsenter", "--net=%s/node1/net" % want["path"], "--mount=%s/node1/mnt" % want["path"],
             "--uts=%s/node1/uts" % want["path"], "--", "sleep", "300"])
        # A process of the node: once it has entered the node's namespaces (nsenter execs sleep then).
        node_net = os.stat("%s/node1/net" % want["path"]).st_ino
        deadline = time.monotonic() + 10
        while os.stat("/proc/%d/ns/net" % sleeper.pid).st_ino != node_net or _comm(sleeper.pid) != "sleep":
            assert time.monotonic() < deadline, "nsenter did not enter node1 in 10 s"
            time.sleep(0.01)
    finally:
        first, _took = teardown(root, name)
    try:
        assert sleeper.wait(timeout=10) != 0
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
    assert first.actions[-1].op == "lab_remove"


def test_half_built_lab_is_torn_down(tmp_path):
    root, name = str(tmp_path), "pntk" + secrets.token_hex(3)
    want = lab_want(root, name, 2)
    session = LabSession()
    try:
        planned = plan(want, read(session, want))
        # Stop right after the namespaces: mounts and files, no wiring.
        upto = [a.op for a in planned.actions].index("bridge_add")
        session.apply(planned.actions[:upto])
        subprocess.run(["umount", os.path.join(want["path"], "node1", "mnt")], check=True)
    finally:
        session.close()
        teardown(root, name)


def test_fifty_nodes(tmp_path):
    root, name = str(tmp_path), "pntk" + secrets.token_hex(3)
    want = lab_want(root, name, 50)
    try:
        first, second, took = converge(want)
        assert second.actions == []
        assert ping(want["path"], "node1", "192.168.1.60")
        assert ping(want["path"], "node50", "203.0.113.10")
    finally:
        _first, down = teardown(root, name)
    print("\n50-node lab: build %.2fs (%d actions), teardown %.2fs"
          % (took, len(first.actions), down))


# ------------------------------------------------------------------ ownership
def test_the_lab_directory_carries_the_marker(lab3):
    with open(os.path.join(lab3["path"], topology.MARKER)) as handle:
        assert handle.read() == topology.MARKER_TEXT


def test_teardown_refuses_a_directory_that_is_no_lab(tmp_path):
    """Files and a mount below <root>/<name>: neither unmounted nor removed."""
    from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ConflictError

    root, name = str(tmp_path), "pntk" + secrets.token_hex(3)
    path = os.path.join(root, name)
    os.makedirs(os.path.join(path, "data"))
    with open(os.path.join(path, "data", "notes.txt"), "w") as handle:
        handle.write("mine\n")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "pntk", os.path.join(path, "data")], check=True)
    try:
        with open(os.path.join(path, "data", "kept"), "w") as handle:
            handle.write("on the mount\n")
        for state in ("absent", "present"):
            w = lab_want(root, name, 1, state=state)
            session = LabSession()
            try:
                with pytest.raises(ConflictError) as err:
                    plan(w, read(session, w))
            finally:
                session.close()
            assert str(err.value).startswith("name: '%s' is a directory that no podnet.mesh lab made" % path)
        assert os.path.exists(os.path.join(path, "data", "kept"))
    finally:
        subprocess.run(["umount", os.path.join(path, "data")], check=True)
    assert os.path.exists(os.path.join(path, "data", "notes.txt"))


def test_a_lab_of_an_earlier_release_is_recognised(tmp_path):
    """No marker, but provably a lab: converged (and marked), then torn down."""
    root, name = str(tmp_path), "pntk" + secrets.token_hex(3)
    want = lab_want(root, name, 1)
    try:
        converge(want)
        os.unlink(os.path.join(want["path"], topology.MARKER))
        first, second, _took = converge(want)
        assert describe_all(first.actions) == ["mark %s as a lab (%s)" % (want["path"], topology.MARKER)]
        assert second.actions == []
        os.unlink(os.path.join(want["path"], topology.MARKER))
    finally:
        first, _took = teardown(root, name)
    assert first.actions[-1].op == "lab_remove"


# ------------------------------------------------------- separate machines
NODE_DIRS = topology.NODE_DIRS + ("/etc/podnet-lab-test", "/usr/local/lib/podnet-lab-test")


def test_system_directories_are_private_per_node(lab3):
    path = lab3["path"]
    name = "pntk" + secrets.token_hex(3)
    script = 'for d in "$@"; do mkdir -p "$d" && echo node1 > "$d/%s"; done' % name
    in_node(path, "node1", "sh", "-c", script, "sh", *NODE_DIRS, kinds=("net", "mnt", "uts"), check=True)
    for directory in NODE_DIRS:
        assert in_node(path, "node1", "cat", "%s/%s" % (directory, name), kinds=("mnt",), check=True).stdout == "node1\n"
        assert in_node(path, "node2", "test", "-e", "%s/%s" % (directory, name), kinds=("mnt",)).returncode == 1
        assert not os.path.exists(os.path.join(directory, name)), directory
    # What a node writes is in its layers; the machine's system directories are hidden.
    assert os.path.exists(os.path.join(path, "node1", "layers", "etc", "upper", "podnet", name))
    assert os.path.exists(os.path.join(path, "node1", "layers", "etc", "upper", "podnet-lab-test", name))
    assert in_node(path, "node2", "ls", "-A", *topology.NODE_DIRS, kinds=("mnt",), check=True).stdout.split() == [
        "%s:" % d for d in sorted(topology.NODE_DIRS)]
    # A node may remove them, as on a machine of its own (a mount point could not be removed).
    in_node(path, "node2", "rmdir", "/usr/local/libexec/podnet", kinds=("mnt",), check=True)
    # /run is the node's own.
    in_node(path, "node1", "touch", "/run/" + name, kinds=("mnt",), check=True)
    assert in_node(path, "node2", "test", "-e", "/run/" + name, kinds=("mnt",)).returncode == 1
    assert not os.path.exists("/run/" + name)


def lab_params(root, name, count, **params):
    nodes = [{"name": n["name"], "address": n["address"]} for n in topology.generate(count)["nodes"]]
    return topology.validate(dict({"name": name, "root": root, "nodes": nodes, "state": "present"}, **params))


UNIT = """[Unit]
Description=lab boot test %(name)s
%(order)s

[Service]
Type=oneshot
Environment=WHAT=%(name)s
ExecStart=/bin/sh -c 'echo ${WHAT} >> /var/lib/podnet/boot.log'
%(extra)s

[Install]
WantedBy=multi-user.target
"""


def install_unit(path, node, name, order="", extra=""):
    """A unit in the node's own /etc/systemd/system, enabled for multi-user.target (from inside the node)."""
    script = ('mkdir -p /etc/systemd/system/multi-user.target.wants && cat > "/etc/systemd/system/$1" && '
              'ln -sfn "/etc/systemd/system/$1" "/etc/systemd/system/multi-user.target.wants/$1"')
    subprocess.run(["nsenter", "--mount=%s/%s/mnt" % (path, node), "--", "sh", "-c", script, "sh", name],
                   input=UNIT % {"name": name, "order": order, "extra": extra}, text=True, check=True)


def inode(path):
    return os.stat(path).st_ino


def test_reboot_gives_a_fresh_network_and_runs_the_boot_units(tmp_path):
    root, name = str(tmp_path), "pntk" + secrets.token_hex(3)
    want = lab_params(root, name, 2)
    path = want["path"]
    try:
        converge(want)
        # Units: b after a (by After=), c before a (by Before=); c adds an address in the node.
        install_unit(path, "node2", "pntk-a.service", order="After=pntk-c.service network-online.target")
        install_unit(path, "node2", "pntk-b.service", order="After=pntk-a.service")
        install_unit(path, "node2", "pntk-c.service", order="Before=pntk-a.service",
                     extra="ExecStartPost=/usr/sbin/ip addr add 192.0.2.7/32 dev lo")
        code = "from pyroute2 import netns; netns.create('pntkpod')"
        in_node(path, "node2", sys.executable, "-c", code, kinds=("net", "mnt"), check=True)
        in_node(path, "node2", "sh", "-c", "echo kept > /etc/podnet/kept; touch /run/gone",
                kinds=("mnt",), check=True)
        in_node(path, "node2", "ip", "link", "add", "pntkv0", "type", "veth", "peer", "name", "pntkv1", check=True)
        before = inode(os.path.join(path, "node2", "net"))
        # Check mode: planned, nothing done.
        rebooting = lab_params(root, name, 2, reboot=["node2"])
        session = LabSession()
        try:
            planned = plan(rebooting, read(session, rebooting))
        finally:
            session.close()
        texts = describe_all(planned.actions)
        assert texts[0].startswith("shut down node node2")
        assert texts[-1].startswith("boot node node2")
        assert planned.after["rebooted"] == ["node2"] and "rebooted" not in planned.before
        assert inode(os.path.join(path, "node2", "net")) == before
        start = time.monotonic()
        first, second, _took = converge(rebooting)
        took = time.monotonic() - start
        assert [a.name for a in first.actions if a.op == "ns_create"] == ["node2"]
        assert inode(os.path.join(path, "node2", "net")) != before
        out = in_node(path, "node2", "sh", "-c", "ls /sys/class/net; ls /run/netns; test -e /run/gone || echo clean;"
                      "cat /etc/podnet/kept /var/lib/podnet/boot.log; ip -4 route; ip -4 -br addr show lo; hostname",
                      kinds=("net", "mnt", "uts"), check=True).stdout
        lines = out.split("\n")
        assert lines[:2] == ["eth0", "lo"], out  # no veth of before, no pod namespace
        assert lines[2] == "clean" and lines[3] == "kept", out
        assert lines[4:7] == ["pntk-c.service", "pntk-a.service", "pntk-b.service"], out
        assert "default via 192.168.1.1 dev eth0 proto static" in out
        assert "192.0.2.7/32" in out and out.strip().endswith("node2")
        assert ping(path, "node1", "192.168.1.12") and ping(path, "node2", "203.0.113.10")
        # Converged lab: a second plan without reboot has nothing to do; with reboot, a reboot again.
        assert plan(want, read(LabSession(), want)).actions == []
        print("\nreboot of one node with 3 units: %.2fs" % took)
    finally:
        teardown(root, name)


def test_a_failing_boot_unit_fails_loudly_with_its_name_and_output(tmp_path):
    from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ToolError

    root, name = str(tmp_path), "pntk" + secrets.token_hex(3)
    want = lab_params(root, name, 1)
    try:
        converge(want)
        install_unit(want["path"], "node1", "pntk-bad.service",
                     extra="ExecStartPost=/bin/sh -c 'echo broken on $(hostname) >&2; exit 3'")
        with pytest.raises(ToolError) as err:
            converge(lab_params(root, name, 1, reboot=["node1"]))
        message = str(err.value)
        assert "node node1: boot unit pntk-bad.service failed" in message, message
        assert "exited with code 3" in message and "broken on node1" in message, message
    finally:
        teardown(root, name)


def test_ssh_lab_nodes_run_sshd_for_a_sudo_user(tmp_path):
    if not os.access("/usr/sbin/sshd", os.X_OK):
        pytest.skip("needs OpenSSH's sshd (Debian openssh-server)")
    root, name = str(tmp_path), "pntk" + secrets.token_hex(3)
    want = lab_params(root, name, 2, ssh=True)
    path = want["path"]
    try:
        first, second, took = converge(want)
        assert second.actions == [], describe_all(second.actions)
        key = os.path.join(path, ".ssh", "id_ed25519")
        ssh = ["ssh", "-i", key, "-o", "UserKnownHostsFile=%s/.ssh/known_hosts" % path,
               "-o", "StrictHostKeyChecking=accept-new", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]
        for node, ip in (("node1", "192.168.1.11"), ("node2", "192.168.1.12")):
            out = in_node(path, "controller", *ssh, "podnet@" + ip, "hostname; id -un; sudo -n id -u",
                          check=True).stdout.split()
            assert out == [node, "podnet", "0"], out
            listening = in_node(path, node, "ss", "-Hltn", check=True).stdout.split("\n")
            assert [line.split()[3] for line in listening if line] == [ip + ":22"]
        # The user exists on the nodes only.
        assert "podnet:" not in open("/etc/passwd").read()
        # A reboot keeps the host key: the known host still matches.
        converge(lab_params(root, name, 2, ssh=True, reboot=["node1"]))
        out = in_node(path, "controller", *ssh, "-o", "StrictHostKeyChecking=yes", "podnet@192.168.1.11",
                      "sudo -n cat /proc/self/net/dev >/dev/null && echo ok", check=True).stdout
        assert out == "ok\n"
        # ssh off: sshd stopped, controller removed.
        first, second, _took = converge(lab_params(root, name, 2))
        assert second.actions == []
        assert sorted(a.op for a in first.actions if a.op in ("lab_sshd_stop", "ns_remove")) == [
            "lab_sshd_stop", "lab_sshd_stop", "ns_remove"]
        print("\n2-node lab with ssh: build %.2fs" % took)
    finally:
        teardown(root, name)
    processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert not [line for line in processes.split("\n") if path in line]


# ------------------------------------------------------------------ dual stack
IFA_F_TENTATIVE = 0x40
IFA_F_DADFAILED = 0x08
IFA_F_NODAD = 0x02


def lab6_params(root, name, count, **params):
    lab = topology.generate(count, gateway6=topology.DEFAULT_GATEWAY6)
    nodes = [{"name": n["name"], "address": n["address"], "address6": n["address6"]} for n in lab["nodes"]]
    return topology.validate(dict({"name": name, "root": root, "nodes": nodes, "state": "present", "ipv6": True},
                                  **params))


def ping6(lab, node, address):
    return in_node(lab, node, "ping", "-6", "-c1", "-W2", address).returncode == 0


def ipv6_addresses(path):
    """(address, prefix, flags, interface) of every IPv6 address in the namespace file path, read by netlink."""
    from pyroute2 import IPRoute
    from ansible_collections.podnet.mesh.plugins.module_utils.kernel.netns import InNetns

    with InNetns(path):
        ipr = IPRoute()
    try:
        names = dict((m["index"], m.get_attr("IFLA_IFNAME")) for m in ipr.get_links())
        return [(m.get_attr("IFA_ADDRESS"), m["prefixlen"], m.get_attr("IFA_FLAGS") or m["flags"], names[m["index"]])
                for m in ipr.get_addr(family=10)]
    finally:
        ipr.close()


def shared_lab(tmp_path_factory, label, make_params):
    """A lab built once for a module's tests (the body of a module fixture): yields
    {root, name, path, want, first, second, took}; torn down at the end whatever happened."""
    root = str(tmp_path_factory.mktemp("lab"))
    name = "pntk" + secrets.token_hex(3)
    want = make_params(root, name)
    lab = {"root": root, "name": name, "path": want["path"], "want": want, "took": 0.0}
    try:
        lab["first"], lab["second"], lab["took"] = converge(want)
        yield lab
    finally:
        _first, took = teardown(root, name)
        print("\n%s: build %.2fs, teardown %.2fs" % (label, lab["took"], took))


@pytest.fixture(scope="module")
def lab6(tmp_path_factory):
    """A three-node lab with IPv6 beside IPv4, shared by the dual-stack tests."""
    yield from shared_lab(tmp_path_factory, "3-node dual-stack lab", lambda root, name: lab6_params(root, name, 3))


def test_dual_stack_lab_converges(lab6):
    assert lab6["second"].actions == [], describe_all(lab6["second"].actions)
    texts = describe_all(lab6["first"].actions)
    assert "enable IPv6 forwarding in %s/router/net" % lab6["path"] in texts


def test_dual_stack_addresses_are_usable_at_once(lab6):
    """Every IPv6 address of the lab's namespaces, link-local ones too: not tentative, no failed DAD."""
    path = lab6["path"]
    expected = {"node1": {("2001:db8:1::11", 64, "eth0")}, "node3": {("2001:db8:1::13", 64, "eth0")},
                "router": {("2001:db8:1::1", 64, "eth0"), ("2001:db8:113::1", 64, "eth1")},
                "external": {("2001:db8:113::10", 64, "eth0")}}
    for label, wanted in expected.items():
        found = ipv6_addresses(os.path.join(path, label, "net"))
        assert {(a, p, i) for a, p, _f, i in found if not a.startswith("fe80:") and i != "lo"} == wanted, found
        for address, _prefix, flags, _ifname in found:
            assert not flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED), (label, address, hex(flags))
            if not address.startswith("fe80:") and address != "::1":
                assert flags & IFA_F_NODAD, (label, address, hex(flags))
        for key in ("all/accept_dad", "default/accept_dad", "eth0/accept_dad", "all/accept_ra", "eth0/accept_ra"):
            assert read_sysctl("net/ipv6/conf/" + key, os.path.join(path, label, "net")) == "0", (label, key)


def test_dual_stack_node_reaches_the_router_and_the_external_host_over_ipv6(lab6):
    path = lab6["path"]
    assert read_sysctl("net/ipv6/conf/all/forwarding", path + "/router/net") == "1"
    assert ping6(path, "node1", "2001:db8:1::1")
    assert ping6(path, "node1", "2001:db8:1::12")
    assert ping6(path, "node2", "2001:db8:113::10")
    # IPv4 is there as before.
    assert ping(path, "node3", "203.0.113.10")
    routes = in_node(path, "node1", "ip", "-6", "route", "show", "default", check=True).stdout
    assert "default via 2001:db8:1::1 dev eth0 proto static metric 1024" in routes


def test_dual_stack_external_host_knows_the_switch_and_no_pods(lab6):
    path = lab6["path"]
    routes = in_node(path, "external", "ip", "-6", "route", check=True).stdout
    assert "2001:db8:1::/64 via 2001:db8:113::1 dev eth0 proto static" in routes
    assert "default" not in routes and "fd00" not in routes
    for probe in ("fd00:10:244::1", "fd00:10:244:1::2", "fd00:10:244:ff::3"):
        out = in_node(path, "external", "ip", "-6", "route", "get", probe).stderr
        assert "unreachable" in out.lower() or "network is unreachable" in out.lower(), (probe, out)
    routes4 = in_node(path, "external", "ip", "-4", "route", check=True).stdout
    assert "10.244" not in routes4 and "default" not in routes4


def test_dual_stack_reboot_restores_the_ipv6_address_and_default_route(lab6):
    path = lab6["path"]
    before = inode(os.path.join(path, "node2", "net"))
    first, _second, _took = converge(lab6_params(lab6["root"], lab6["name"], 3, reboot=["node2"]))
    assert inode(os.path.join(path, "node2", "net")) != before
    assert [a.name for a in first.actions if a.op == "ns_create"] == ["node2"]
    out = in_node(path, "node2", "sh", "-c", "ip -6 -br addr show dev eth0; ip -6 route show default",
                  check=True).stdout
    assert "2001:db8:1::12/64" in out and "default via 2001:db8:1::1 dev eth0 proto static" in out, out
    assert all(not f & IFA_F_TENTATIVE for _a, _p, f, _i in ipv6_addresses(os.path.join(path, "node2", "net")))
    assert ping6(path, "node2", "2001:db8:113::10")
    assert plan(lab6["want"], read(LabSession(), lab6["want"])).actions == []


def test_a_lab_gains_ipv6_and_loses_it_again(tmp_path):
    root, name = str(tmp_path), "pntk" + secrets.token_hex(3)
    want4 = lab_params(root, name, 2)
    path = want4["path"]
    try:
        converge(want4)
        first, second, _took = converge(lab6_params(root, name, 2))
        assert second.actions == [], describe_all(second.actions)
        assert not [a for a in first.actions if a.op in ("ns_create", "ns_remove")]
        # The lab's own IPv6 addresses are usable at once. The kernel's link-local ones were
        # made a moment ago with the lab (before it had IPv6, so with duplicate address
        # detection): the router needs its own to resolve node addresses for forwarded traffic.
        for label in ("router", "node1", "node2", "external"):
            address = os.path.join(path, label, "net")
            assert not [a for a, _p, f, _i in ipv6_addresses(address) if not a.startswith("fe80:") and f & IFA_F_TENTATIVE]
            deadline = time.monotonic() + 5
            while [a for a, _p, f, _i in ipv6_addresses(address) if f & IFA_F_TENTATIVE] and time.monotonic() < deadline:
                time.sleep(0.1)
        assert ping6(path, "node1", "2001:db8:113::10") and ping(path, "node2", "203.0.113.10")
        first, second, _took = converge(want4)
        assert second.actions == [], describe_all(second.actions)
        assert not [t for t in describe_all(first.actions) if t.startswith(("replace route", "add route"))]
        for label in ("node1", "external"):
            assert in_node(path, label, "ip", "-6", "route", "show", "proto", "static", check=True).stdout == ""
        assert [a for a, _p, _f, i in ipv6_addresses(path + "/node1/net") if not a.startswith("fe80:") and i != "lo"] == []
        assert ping(path, "node2", "203.0.113.10")
    finally:
        teardown(root, name)


def test_fifty_nodes_dual_stack(tmp_path):
    root, name = str(tmp_path), "pntk" + secrets.token_hex(3)
    want = lab6_params(root, name, 50)
    try:
        first, second, took = converge(want)
        assert second.actions == []
        assert ping6(want["path"], "node1", "2001:db8:1::60")
        assert ping6(want["path"], "node50", "2001:db8:113::10")
    finally:
        _first, down = teardown(root, name)
    print("\n50-node dual-stack lab: build %.2fs (%d actions), teardown %.2fs" % (took, len(first.actions), down))


# ------------------------------------------------------------- the routed lab
def routed_params(root, name, count, subnets, node_subnets=None, ipv6=False, **params):
    """The module's parameters of a routed lab, as the inventory plugin makes them."""
    lab = topology.generate(count, subnets=subnets, node_subnets=node_subnets,
                            gateway6=topology.DEFAULT_GATEWAY6 if ipv6 else None)
    keys = ("name", "address", "address6") if ipv6 else ("name", "address")
    nodes = [dict((k, n[k]) for k in keys) for n in lab["nodes"]]
    values = {"name": name, "root": root, "nodes": nodes, "state": "present", "subnets": lab["subnets"]}
    if ipv6:
        values.update(ipv6=True, subnets6=lab["subnets6"])
    return topology.validate(dict(values, **params))


@pytest.fixture(scope="module")
def routed(tmp_path_factory):
    """Three nodes on two subnets with IPv6 beside IPv4: node1, node2 on subnet 1, node3 on subnet 2."""
    links_before = own_links()
    yield from shared_lab(tmp_path_factory, "3-node routed lab",
                          lambda root, name: routed_params(root, name, 3, 2, ipv6=True))
    assert own_links() == links_before


def connected(path, node, family="-4"):
    """The networks node has a connected (proto kernel) route to."""
    out = in_node(path, node, "ip", family, "route", "show", "proto", "kernel", check=True).stdout
    return sorted(line.split()[0] for line in out.splitlines() if line.strip())


def test_routed_lab_converges_with_one_bridge_per_subnet(routed):
    path = routed["path"]
    assert routed["second"].actions == [], describe_all(routed["second"].actions)
    bridges = in_node(path, "switch", "ip", "-br", "link", "show", "type", "bridge", check=True).stdout
    assert sorted(line.split()[0] for line in bridges.splitlines()) == ["switch", "switch.2"]
    ports = in_node(path, "switch", "bridge", "link", check=True).stdout
    assert "node3" in ports and "master switch.2" in [line for line in ports.splitlines() if line.split()[1].startswith("node3")][0]
    out = in_node(path, "node3", "sh", "-c", "ip -br addr show dev eth0; ip route show default; "
                  "ip -6 route show default", check=True).stdout
    assert "192.168.2.13/24" in out and "2001:db8:2::13/64" in out, out
    assert "default via 192.168.2.1 dev eth0 proto static" in out and "default via 2001:db8:2::1 dev eth0" in out, out
    assert read_sysctl("net/ipv4/ip_forward", os.path.join(path, "router", "net")) == "1"


def test_routed_nodes_of_different_subnets_are_not_layer2_adjacent(routed):
    path = routed["path"]
    assert connected(path, "node1") == ["192.168.1.0/24"]
    assert connected(path, "node3") == ["192.168.2.0/24"]
    assert "2001:db8:2::/64" not in connected(path, "node1", "-6")
    # Across the router: the TTL drops by one on the way.
    out = in_node(path, "node1", "ping", "-c1", "-W2", "192.168.2.13").stdout
    assert " ttl=63 " in out, out
    assert ping(path, "node1", "192.168.1.12") and ping6(path, "node1", "2001:db8:2::13")
    assert ping(path, "node3", "192.168.1.11")


def test_routed_external_host_is_reachable_from_every_subnet_and_knows_no_pods(routed):
    path = routed["path"]
    for node in ("node1", "node3"):
        assert ping(path, node, "203.0.113.10") and ping6(path, node, "2001:db8:113::10")
    routes = in_node(path, "external", "sh", "-c", "ip route; ip -6 route", check=True).stdout
    for net in ("192.168.1.0/24", "192.168.2.0/24", "2001:db8:1::/64", "2001:db8:2::/64"):
        assert "%s via" % net in routes, routes
    assert "10.244" not in routes and "fd00" not in routes


def test_routed_node_moves_to_the_other_subnet_in_place_and_back(routed):
    path, root, name = routed["path"], routed["root"], routed["name"]
    node3 = os.path.join(path, "node3", "net")
    before = inode(node3)
    # Something of the node's own, which a move leaves alone.
    in_node(path, "node3", "ip", "link", "add", "cni0", "type", "bridge", check=True)
    moved = routed_params(root, name, 3, 2, node_subnets={"node3": 1}, ipv6=True)
    first, second, _took = converge(moved)
    assert second.actions == [], describe_all(second.actions)
    assert inode(node3) == before
    assert not [a for a in first.actions if a.op in ("ns_create", "ns_remove", "veth_add")], describe_all(first.actions)
    out = in_node(path, "node3", "sh", "-c", "ip -br addr show dev eth0; ip route show default; ip -6 route show "
                  "default; ip -br link show cni0", check=True).stdout
    assert "192.168.1.13/24" in out and "2001:db8:1::13/64" in out and "192.168.2.13" not in out, out
    assert "default via 192.168.1.1 dev eth0" in out and "default via 2001:db8:1::1 dev eth0" in out and "cni0" in out
    assert connected(path, "node3") == ["192.168.1.0/24"]
    out = in_node(path, "node1", "ping", "-c1", "-W2", "192.168.1.13").stdout
    assert " ttl=64 " in out, out
    assert ping(path, "node3", "203.0.113.10")
    # And back.
    first, second, _took = converge(routed["want"])
    assert second.actions == [], describe_all(second.actions)
    assert connected(path, "node3") == ["192.168.2.0/24"]
    assert ping(path, "node1", "192.168.2.13") and ping6(path, "node3", "2001:db8:1::11")
    in_node(path, "node3", "ip", "link", "del", "cni0", check=True)


def test_routed_reboot_restores_the_node_on_its_subnet(routed):
    path = routed["path"]
    first, _second, _took = converge(dict(routed["want"], reboot=["node3"]))
    assert [a.name for a in first.actions if a.op == "ns_create"] == ["node3"]
    out = in_node(path, "node3", "sh", "-c", "ip -br addr show dev eth0; ip route show default", check=True).stdout
    assert "192.168.2.13/24" in out and "default via 192.168.2.1" in out, out
    assert ping(path, "node3", "192.168.1.11")


def test_routed_lab_with_ssh_controller_reaches_every_subnet(tmp_path):
    root, name = str(tmp_path), "pntk" + secrets.token_hex(3)
    want = routed_params(root, name, 3, 2)
    try:
        converge(want)
        # The controller namespace alone (sshd needs more than this test): routes to the other subnets.
        with_ssh = dict(want, ssh=True, controller=topology.controller_address(want["gateway"]))
        session = LabSession()
        try:
            actions = [a for a in plan(with_ssh, read(session, with_ssh)).actions
                       if a.op not in ("lab_sshd_start", "lab_ssh_key")]
            session.apply(actions)
        finally:
            session.close()
        assert ping(want["path"], "controller", "192.168.2.13") and ping(want["path"], "controller", "192.168.1.11")
        # Back to one subnet: node3 moves, the second bridge, the router's port and the routes to it go.
        first, second, _took = converge(lab_params(root, name, 3))
        assert second.actions == [], describe_all(second.actions)
        assert in_node(want["path"], "switch", "ip", "-br", "link", "show", "type", "bridge",
                       check=True).stdout.split()[0] == "switch"
        assert "switch.2" not in in_node(want["path"], "switch", "ip", "-br", "link", check=True).stdout
        assert "192.168.2.0" not in in_node(want["path"], "external", "ip", "route", check=True).stdout
        assert ping(want["path"], "node1", "192.168.1.13")
    finally:
        teardown(root, name)


def test_fifty_nodes_on_five_subnets(tmp_path):
    root, name = str(tmp_path), "pntk" + secrets.token_hex(3)
    want = routed_params(root, name, 50, 5, ipv6=True)
    try:
        first, second, took = converge(want)
        assert second.actions == [], describe_all(second.actions)
        assert ping(want["path"], "node1", "192.168.5.60") and ping6(want["path"], "node50", "2001:db8:1::11")
        assert ping(want["path"], "node25", "203.0.113.10")
    finally:
        _first, down = teardown(root, name)
    print("\n50-node routed lab (5 subnets): build %.2fs (%d actions), teardown %.2fs" % (took, len(first.actions), down))
