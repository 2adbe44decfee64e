# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Paths that should name a network namespace and name something else: refused, never waited on.

A FIFO opened for reading waits for a writer forever; a directory, a device,
a regular file or a namespace of another kind cannot be entered. The CNI
plugin (CNI_NETNS) and the modules (names under /run/netns) refuse them all
with an error, at once. Every run here is a process of its own with a
timeout, so a regression fails instead of hanging the suite.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.cni import main, protocol
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import netlink
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import netns as _netns

BUILD = os.path.join(os.path.dirname(os.path.abspath(main.__file__)), "..", "..", "..", "roles", "cni", "files",
                     "build_podnet.py")
MODULES = "ansible_collections.podnet.mesh.plugins.modules."
KINDS = ["fifo", "directory", "file", "device", "socket", "mount namespace"]


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("bin") / "podnet")
    subprocess.run([sys.executable, BUILD, path], check=True)
    return path


@pytest.fixture
def odd(tmp_path):
    """Make a path of a kind: everything but a network namespace; all removed at teardown."""
    made, paths = [], []

    def make(kind, where=None):
        path = where or str(tmp_path / kind.replace(" ", "-"))
        paths.append(path)
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "directory":
            os.mkdir(path)
        elif kind == "file":
            with open(path, "w") as handle:
                handle.write("not a namespace\n")
        elif kind == "socket":
            sock = socket.socket(socket.AF_UNIX)
            sock.bind(path)
            made.append(sock)
        elif kind == "device":
            return "/dev/null"
        else:
            return "/proc/%d/ns/mnt" % os.getpid()
        return path

    yield make
    for sock in made:
        sock.close()
    for path in paths:
        if os.path.isdir(path) and not os.path.islink(path):
            os.rmdir(path)
        elif _netns.netns_exists(path):
            subprocess.run(["umount", "--lazy", path], check=False)
            os.unlink(path)
        elif os.path.lexists(path):
            os.unlink(path)


def host_link(name):
    with netlink.Session() as session:
        return session.ns(None).links().get(name)


def run_module(module, args, tmp_path, wrap=()):
    """A module as Ansible runs it, in a process of its own: its JSON result."""
    path = tmp_path / ("%s-args.json" % module)
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    out = subprocess.run(list(wrap) + [sys.executable, "-m", MODULES + module, str(path)], capture_output=True,
                         text=True, timeout=30, check=False)
    assert "Traceback" not in out.stderr, out.stderr
    return json.loads(out.stdout)


# ------------------------------------------------------------------ CNI
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", ["ADD", "CHECK"])
def test_cni_netns_that_is_no_network_namespace_is_error_3_at_once(plugin, odd, prefix, host_links, tmp_path,
                                                                   kind, command):
    bridge = prefix + "b"
    host_links.append(bridge)
    conf = {"cniVersion": "1.1.0", "name": prefix, "type": "podnet", "bridge": bridge,
            "ipam": {"subnet": "10.252.0.0/24", "dataDir": str(tmp_path / "ipam")},
            "prevResult": {"interfaces": [{"name": "eth0"}]}}
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": command, "CNI_CONTAINERID": "c1",
               "CNI_NETNS": odd(kind), "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"}
    out = subprocess.run([sys.executable, plugin], input=json.dumps(conf), env=environ, capture_output=True,
                         text=True, timeout=30, check=False)
    assert out.returncode == 1 and out.stderr == ""
    answer = json.loads(out.stdout)
    assert answer["code"] == protocol.ERR_UNKNOWN_CONTAINER, answer
    assert environ["CNI_NETNS"] in answer["msg"]
    assert host_link(bridge) is None
    assert not os.path.exists(str(tmp_path / "ipam" / prefix)) or not [
        n for n in os.listdir(str(tmp_path / "ipam" / prefix)) if n[0].isdigit()]


def test_cni_del_with_a_fifo_for_netns_succeeds_at_once(plugin, odd, prefix, tmp_path):
    conf = {"cniVersion": "1.1.0", "name": prefix, "type": "podnet", "bridge": prefix + "b",
            "ipam": {"subnet": "10.252.0.0/24", "dataDir": str(tmp_path / "ipam")}}
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c1",
               "CNI_NETNS": odd("fifo"), "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"}
    out = subprocess.run([sys.executable, plugin], input=json.dumps(conf), env=environ, capture_output=True,
                         text=True, timeout=30, check=False)
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")


# ------------------------------------------------------- the kernel layer
@pytest.mark.parametrize("kind", KINDS)
def test_kernel_layer_refuses_what_is_no_network_namespace(odd, kind):
    path = odd(kind)
    assert _netns.netns_exists(path) is False
    assert _netns.netns_state(path) is False
    words = {"fifo": "a FIFO", "directory": "a directory", "file": "not of nsfs", "device": "a character device",
             "socket": "a socket", "mount namespace": "a mount namespace"}[kind]
    assert _netns.netns_problem(path) == "%s is not a network namespace: %s" % (path, words) \
        or words in _netns.netns_problem(path)
    with pytest.raises(OSError) as err:
        with _netns.InNetns(path):
            pass
    assert err.value.errno == 22 and words in str(err.value)
    with netlink.Session() as session:
        with pytest.raises(netlink.KernelError):
            session.ns(path)


def test_kernel_layer_opens_network_namespaces(named_ns):
    name = named_ns("a")
    assert _netns.netns_exists(name) and _netns.netns_state(name) is True
    assert _netns.netns_exists("/proc/self/ns/net") and _netns.netns_problem("/proc/%d/ns/net" % os.getpid()) is None
    fd = _netns.open_netns(_netns.netns_path(name))
    os.close(fd)
    with netlink.Session() as session:
        assert "lo" in session.ns(name).links()


# ---------------------------------------------------------------- modules
@pytest.mark.parametrize("kind", ["fifo", "file"])
def test_netns_module_clears_a_leftover_fifo_or_file_and_makes_the_namespace(odd, prefix, tmp_path, kind):
    name = prefix + "s"
    path = _netns.netns_path(name)
    odd(kind, where=path)
    assert _netns.netns_state(name) == "stale"
    result = run_module("netns", {"name": name}, tmp_path)
    assert result["changed"] is True and result["netns"]["exists"] is True, result
    assert _netns.netns_exists(name)
    assert run_module("netns", {"name": name, "state": "absent"}, tmp_path)["changed"] is True
    assert not os.path.lexists(path)


def test_pods_module_clears_a_pods_leftover_file_both_ways(odd, prefix, tmp_path, host_links):
    """A file left under /run/netns by a removal cut short between unmount and unlink.

    state=absent removes it (a change: the file was there); state=present
    removes it and makes the pod's namespace in its place.
    """
    bridge, name = prefix + "b", prefix + "p"
    host_links.append(bridge)
    with netlink.Session() as session:
        session.ns(None).ipr.link("add", ifname=bridge, kind="bridge")
    path = _netns.netns_path(name)
    args = {"pods": [{"name": name}], "bridge": bridge, "pod_cidr": "10.254.0.0/24"}
    odd("file", where=path)
    assert run_module("pods", dict(args, state="absent", _ansible_check_mode=True), tmp_path)["changed"] is True
    assert os.path.lexists(path)  # check mode touched nothing
    result = run_module("pods", dict(args, state="absent"), tmp_path)
    assert result["changed"] is True and not os.path.lexists(path), result
    assert run_module("pods", dict(args, state="absent"), tmp_path)["changed"] is False
    odd("file", where=path)
    result = run_module("pods", args, tmp_path)
    assert result["changed"] is True and _netns.netns_exists(name), result
    assert run_module("pods", args, tmp_path)["changed"] is False
    result = run_module("pods", dict(args, state="absent"), tmp_path)
    assert result["changed"] is True and not os.path.lexists(path), result


@pytest.mark.parametrize("module, args", [
    ("netns_addr", {"interface": "eth0", "addresses": ["10.252.0.2/24"]}),
    ("pod_route", {"routes": [{"dst": "default", "dev": "lo"}]}),
])
@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_modules_refuse_a_fifo_or_directory_for_a_namespace(odd, prefix, tmp_path, module, args, kind):
    name = prefix + "f"
    odd(kind, where=_netns.netns_path(name))
    result = run_module(module, dict(args, netns=name), tmp_path)
    assert result.get("failed") is True and result["changed"] is False, result
    assert name in result["msg"]
    assert os.path.exists(_netns.netns_path(name))  # not touched


def test_modules_never_wait_on_a_fifo_mounted_where_a_namespace_should_be(odd, prefix, tmp_path):
    """A FIFO of another file system bind-mounted on /run/netns/<name> is a mount point, as a namespace is.

    The mounts live in a mount namespace of the module's process alone.
    """
    name = prefix + "m"
    target = _netns.netns_path(name)
    odd("file", where=target)
    scratch = odd("directory")
    wrap = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount -t tmpfs podnet "$1" && mkfifo "$1/fifo" && mount --bind "$1/fifo" "$2" && shift 2 && exec "$@"',
            "sh", scratch, target]
    result = run_module("netns_addr", {"netns": name, "interface": "eth0", "addresses": ["10.252.0.2/24"]},
                        tmp_path, wrap=wrap)
    assert result.get("failed") is True and name in result["msg"], result
