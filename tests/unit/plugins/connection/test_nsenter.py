# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The nsenter connection plugin without namespaces: command lines, files, errors.

subprocess.Popen is replaced by a recorder, and a lab node is a directory
whose namespace files are declared mounted by patching missing_files.
"""
from __future__ import annotations

import subprocess

import pytest

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.playbook.play_context import PlayContext
from ansible_collections.podnet.mesh.plugins.connection import nsenter


class FakePopen:
    """Records each process; answers with returncode/stdout/stderr of the class."""
    calls = []
    returncode = 0
    stdout = b"out"
    stderr = b""

    def __init__(self, argv, stdin=None, stdout=None, stderr=None, env=None):
        self.argv = [a.decode() for a in argv]
        self.env = env
        self.stdin = stdin
        self.stdout_target = stdout
        self.returncode = type(self).returncode
        FakePopen.calls.append(self)

    def communicate(self, data=None):
        self.data = data
        if self.stdin not in (subprocess.PIPE, subprocess.DEVNULL, None):
            self.sent = self.stdin.read()
        if self.stdout_target not in (subprocess.PIPE, None):
            self.stdout_target.write(b"fetched")
            return None, type(self).stderr
        return type(self).stdout, type(self).stderr


@pytest.fixture
def popen(monkeypatch):
    FakePopen.calls = []
    FakePopen.returncode = 0
    FakePopen.stderr = b""
    monkeypatch.setattr(nsenter.subprocess, "Popen", FakePopen)
    return FakePopen


@pytest.fixture
def lab(tmp_path, monkeypatch):
    node = tmp_path / "podnet" / "node1"
    node.mkdir(parents=True)
    for kind in ("net", "mnt", "uts"):
        (node / kind).write_text("")
    monkeypatch.setattr(nsenter, "missing_files", lambda files: [])
    return tmp_path


def connection(root, node="node1", **options):
    conn = nsenter.Connection(PlayContext())
    conn._options.update({
        "remote_addr": node, "lab_root": str(root), "lab_name": "podnet",
        "executable": "/bin/sh", "nsenter_exe": "/usr/bin/nsenter", "pipelining": True,
        "inherit_environment": False,
    })
    conn._options.update(options)
    return conn


def test_command_line_enters_net_mount_and_uts():
    _dir, files = nsenter.node_files("/run/podnet-lab", "podnet", "node2")
    assert nsenter.nsenter_argv("nsenter", files, "/bin/sh", "echo hi") == [
        "nsenter", "--net=/run/podnet-lab/podnet/node2/net",
        "--mount=/run/podnet-lab/podnet/node2/mnt", "--uts=/run/podnet-lab/podnet/node2/uts",
        "--", "/bin/sh", "-c", "echo hi"]


@pytest.mark.parametrize("path, expected", [
    ("/root/.ansible/tmp/x/AnsiballZ_ping.py", "/root/.ansible/tmp/x/AnsiballZ_ping.py"),
    ("relative/file", "/relative/file"),
    ("/a/../b//c", "/b/c"),
])
def test_remote_paths_are_absolute(path, expected):
    assert nsenter.remote_path(path) == expected


def test_class_attributes():
    assert nsenter.Connection.transport == "podnet.mesh.nsenter"
    assert nsenter.Connection.has_pipelining is True


def test_exec_command_is_one_process(lab, popen):
    conn = connection(lab)
    rc, out, err = conn.exec_command("/bin/sh -c 'echo ~'")
    assert (rc, out, err) == (0, b"out", b"")
    assert len(popen.calls) == 1
    call = popen.calls[0]
    assert call.argv == [
        "/usr/bin/nsenter", "--net=%s/podnet/node1/net" % lab, "--mount=%s/podnet/node1/mnt" % lab,
        "--uts=%s/podnet/node1/uts" % lab, "--", "/bin/sh", "-c", "/bin/sh -c 'echo ~'"]
    # No pipelined data: the command gets no stdin to wait on.
    assert call.stdin is subprocess.DEVNULL


def test_pipelined_module_goes_to_stdin(lab, popen):
    conn = connection(lab)
    conn.exec_command("/usr/bin/python3", in_data=b"module source")
    assert popen.calls[0].stdin is subprocess.PIPE
    assert popen.calls[0].data == b"module source"
    assert conn.is_pipelining_enabled()


def test_exit_status_and_stderr_are_passed_back(lab, popen):
    popen.returncode = 3
    popen.stderr = b"boom"
    assert connection(lab).exec_command("false") == (3, b"out", b"boom")


def test_put_file_streams_through_cat(lab, popen, tmp_path):
    source = tmp_path / "src"
    source.write_bytes(b"payload")
    connection(lab).put_file(str(source), "/run/netns/x test")
    call = popen.calls[0]
    assert call.argv[-1] == "cat > '/run/netns/x test'"
    assert call.sent == b"payload"


def test_put_file_of_a_missing_file(lab, popen, tmp_path):
    with pytest.raises(AnsibleFileNotFound):
        connection(lab).put_file(str(tmp_path / "nope"), "/tmp/x")
    assert popen.calls == []


def test_put_file_failure_names_the_node(lab, popen, tmp_path):
    source = tmp_path / "src"
    source.write_bytes(b"")
    popen.returncode = 1
    popen.stderr = b"sh: 1: cannot create /nope/x: Directory nonexistent"
    with pytest.raises(AnsibleError, match="lab node node1: sh: 1: cannot create"):
        connection(lab).put_file(str(source), "/nope/x")


def test_fetch_file_streams_through_cat(lab, popen, tmp_path):
    target = tmp_path / "dst"
    connection(lab).fetch_file("/etc/hostname", str(target))
    assert popen.calls[0].argv[-1] == "cat < /etc/hostname"
    assert target.read_bytes() == b"fetched"


def test_fetch_file_failure(lab, popen, tmp_path):
    popen.returncode = 1
    with pytest.raises(AnsibleError, match="failed to transfer /nope"):
        connection(lab).fetch_file("/nope", str(tmp_path / "dst"))


def test_missing_node_is_a_clear_connection_failure(tmp_path, popen):
    with pytest.raises(AnsibleConnectionFailure) as err:
        connection(tmp_path, node="node7").exec_command("true")
    assert str(err.value).startswith(
        "lab node node7 does not exist under %s/podnet: run the lab role first" % tmp_path)
    assert popen.calls == []


def test_half_made_node_is_reported(tmp_path, popen):
    (tmp_path / "podnet" / "node1").mkdir(parents=True)
    (tmp_path / "podnet" / "node1" / "net").write_text("")
    with pytest.raises(AnsibleConnectionFailure, match=r"incomplete \(net, mnt, uts not mounted\)"):
        connection(tmp_path).exec_command("true")


@pytest.mark.parametrize("node", ["../x", "", "a/b"])
def test_node_names_cannot_escape_the_lab(tmp_path, node):
    with pytest.raises(AnsibleConnectionFailure, match="not a lab node name"):
        connection(tmp_path, node=node).exec_command("true")


def test_missing_files_wants_mounts(tmp_path):
    (tmp_path / "net").write_text("")
    files = [("--net", str(tmp_path / "net")), ("--mount", str(tmp_path / "mnt"))]
    # A plain file shares its directory's device: not a namespace.
    assert nsenter.missing_files(files) == [str(tmp_path / "net"), str(tmp_path / "mnt")]


def test_nsenter_is_looked_up_once_per_connection(lab, popen, monkeypatch):
    looked = []
    monkeypatch.setattr(nsenter, "get_bin_path", lambda name: looked.append(name) or "/sbin/" + name)
    conn = connection(lab, nsenter_exe="nsenter")
    conn.exec_command("true")
    conn.exec_command("true")
    assert looked == ["nsenter"]
    assert popen.calls[1].argv[0] == "/sbin/nsenter"
    conn.close()
    assert not conn.connected if hasattr(conn, "connected") else not conn._connected


def test_node_gets_a_login_environment_not_the_controllers(lab, popen, monkeypatch):
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")
    monkeypatch.setenv("PATH", "/work/.venv/bin:/usr/bin")
    monkeypatch.setenv("LANG", "C.UTF-8")
    connection(lab).exec_command("true")
    env = popen.calls[0].env
    assert env["PATH"] == nsenter.NODE_PATH
    assert env["LANG"] == "C.UTF-8"
    assert "PYTHONUNBUFFERED" not in env
    assert set(env) >= {"HOME", "USER", "LOGNAME", "SHELL"}


def test_controller_environment_on_request(lab, popen):
    connection(lab, inherit_environment=True).exec_command("true")
    assert popen.calls[0].env is None  # inherited


def test_node_environment():
    class User:
        pw_dir, pw_name, pw_shell = "/root", "root", ""
    assert nsenter.node_environment({"TZ": "UTC", "VIRTUAL_ENV": "/v"}, User()) == {
        "TZ": "UTC", "PATH": nsenter.NODE_PATH, "HOME": "/root", "USER": "root",
        "LOGNAME": "root", "SHELL": "/bin/sh"}
