# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The plugin's entry points: VERSION, check_conflist, and the zipapp as it is built."""
from __future__ import annotations

import importlib.util
import json
import os
import pty
import subprocess
import sys
import zipfile

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.cni import main, protocol


def test_version_needs_nothing_but_the_command():
    code, text = main.run({"CNI_COMMAND": "VERSION"}, lambda: b"")
    assert code == 0
    assert json.loads(text) == {"cniVersion": "1.1.0", "supportedVersions": ["0.3.1", "0.4.0", "1.0.0", "1.1.0"]}


# --------------------------------------------------------- check_conflist
def conflist(**plugin):
    entry = {"type": "podnet", "bridge": "cni0", "ipam": {"subnet": "10.244.1.0/24"}}
    entry.update(plugin)
    return json.dumps({"cniVersion": "1.0.0", "cniVersions": ["1.0.0", "1.1.0"], "name": "podnet",
                       "plugins": [entry, {"type": "portmap"}]})


def test_check_conflist_accepts_the_role_layout():
    line = main.check_conflist(conflist(), need_pyroute2=False)
    assert line == ("network podnet (cniVersion 1.1.0): bridge cni0, subnet 10.244.1.0/24, gateway 10.244.1.1, "
                    "IPAM state in /var/lib/cni/podnet/podnet")


@pytest.mark.parametrize("text, message", [
    (conflist(ipam={"subnet": "10.244.1.0/33"}), "ipam.subnet: '10.244.1.0/33' is not a valid network"),
    (json.dumps({"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "bridge"}]}), "has no plugin of type podnet"),
    (json.dumps({"cniVersion": "1.0.0", "name": "x"}), "configuration: plugins must be a non-empty list"),
    ("{", "cannot decode the network configuration list"),
    ("\ufeff" + conflist(), "byte order mark"),
    (json.dumps({"cniVersion": "1.0.0", "cniVersions": "1.0.0", "name": "x", "plugins": []}),
     "cniVersions: '1.0.0' must be a list of versions"),
    (json.dumps({"cniVersion": "1.0.0", "cniVersions": [1.0], "name": "x", "plugins": []}),
     "cniVersions[0]: 1.0 must be a version string"),
    (json.dumps({"cniVersion": "1.0.0", "cniVersions": [["1.0.0"]], "name": "x", "plugins": []}),
     "cniVersions[0]: [\"1.0.0\"] must be a version string"),
    (json.dumps({"cniVersion": "1.0.0", "name": "x", "plugins": {"type": "podnet"}}),
     "plugins: {\"type\": \"podnet\"} must be a non-empty list"),
    (json.dumps({"cniVersion": "1.0.0", "name": "x", "plugins": [None]}), "plugins[0] must be an object"),
    (json.dumps({"cniVersion": "1.0.0", "name": None, "plugins": [{"type": "podnet", "ipam": {}}]}),
     "configuration: name must be a network name"),
])
def test_check_conflist_refuses(text, message):
    with pytest.raises(protocol.CniError) as err:
        main.check_conflist(text, need_pyroute2=False)
    assert message in err.value.msg


# ------------------------------------------------------ standard streams
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("bin") / "podnet")
    subprocess.run([sys.executable, _build_script(), path], check=True)
    return path


def _spawn(built, environ, close=(), **kwargs):
    """The plugin in a process whose descriptors in close are closed at its start."""
    def closing():
        for fd in close:
            os.close(fd)
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    clean.update(environ)
    return subprocess.run([sys.executable, built] + kwargs.pop("args", []), env=clean, preexec_fn=closing,
                          capture_output=kwargs.pop("capture_output", True), timeout=20, check=False, **kwargs)


def test_closed_stdout_keeps_the_exit_code_and_says_so_in_one_line(built):
    for environ, code in (({"CNI_COMMAND": "VERSION"}, 0), ({"CNI_COMMAND": "ADD"}, 1)):
        out = _spawn(built, environ, close=(1,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                     input=b"{}", capture_output=False)
        assert out.returncode == code
        lines = out.stderr.decode().splitlines()
        assert len(lines) == 1 and lines[0].startswith("podnet: cannot write the "), lines


def test_broken_stdout_keeps_the_exit_code_and_says_so_in_one_line(built):
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        out = _spawn(built, {"CNI_COMMAND": "VERSION"}, stdout=write_end, stderr=subprocess.PIPE,
                     capture_output=False)
    finally:
        os.close(write_end)
    assert out.returncode == 0
    assert out.stderr.decode().splitlines() == ["podnet: cannot write the result to standard output: it is closed"]


def test_closed_stdin_is_error_5(built):
    out = _spawn(built, {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0",
                         "CNI_PATH": "/opt/cni/bin"}, close=(0,), stdin=subprocess.DEVNULL)
    assert out.returncode == 1 and out.stderr == b""
    answer = json.loads(out.stdout)
    assert answer["code"] == 5 and "standard input is closed" in answer["msg"]


def test_a_terminal_on_stdin_is_refused_at_once(built):
    primary, secondary = pty.openpty()
    try:
        out = _spawn(built, {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0",
                             "CNI_PATH": "/opt/cni/bin"}, stdin=secondary)
    finally:
        os.close(primary)
        os.close(secondary)
    assert out.returncode == 1 and out.stderr == b""
    assert json.loads(out.stdout)["code"] == 5 and "terminal" in json.loads(out.stdout)["msg"]


@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
def test_check_conflist_never_waits_on_what_is_no_file(built, tmp_path, kind):
    path = str(tmp_path / kind)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        os.mkdir(path)
    else:
        path = "/dev/zero"
    out = _spawn(built, {}, args=["--check-conflist", path, "--skip-pyroute2"])
    assert out.returncode == 1 and out.stdout == b""
    assert out.stderr.decode().splitlines() == ["podnet: cannot read %s: not a regular file" % path]


def test_check_conflist_on_a_closed_stdout_still_answers_with_its_code(built, tmp_path):
    conf = tmp_path / "10-podnet.conflist"
    conf.write_text(conflist())
    out = _spawn(built, {}, args=["--check-conflist", str(conf), "--skip-pyroute2"], close=(1,),
                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, capture_output=False)
    assert out.returncode == 0 and len(out.stderr.decode().splitlines()) == 1


# ------------------------------------------------------------------ build
def _build_script():
    here = os.path.dirname(os.path.abspath(main.__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "..", "roles", "cni", "files", "build_podnet.py"))


def test_built_plugin_is_reproducible_and_speaks_cni(tmp_path):
    script = _build_script()
    first, second = str(tmp_path / "a"), str(tmp_path / "b")
    for out in (first, second):
        subprocess.run([sys.executable, script, out, "--interpreter", "/usr/bin/python3"], check=True)
    with open(first, "rb") as a, open(second, "rb") as b:
        data = a.read()
        assert data == b.read()
    assert data.startswith(b"#!/usr/bin/python3 -IS\n")
    assert os.stat(first).st_mode & 0o777 == 0o755
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    out = subprocess.run([sys.executable, first], env=dict(clean, CNI_COMMAND="VERSION"),
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0 and json.loads(out.stdout)["supportedVersions"][-1] == "1.1.0"
    out = subprocess.run([sys.executable, first], env=dict(clean, CNI_COMMAND="ADD"), input="{}",
                         capture_output=True, text=True, check=False)
    assert out.returncode == 1 and json.loads(out.stdout)["code"] == 4
    conf = tmp_path / "10-podnet.conflist"
    conf.write_text(conflist())
    out = subprocess.run([sys.executable, first, "--check-conflist", str(conf), "--skip-pyroute2"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0 and out.stdout.startswith("ok: network podnet"), out.stderr
    conf.write_text(conflist(ipam={"subnet": "nope"}))
    out = subprocess.run([sys.executable, first, "--check-conflist", str(conf), "--skip-pyroute2"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 1 and "ipam.subnet: 'nope'" in out.stderr
    assert len(out.stderr.splitlines()) == 1


def _builder():
    spec = importlib.util.spec_from_file_location("build_podnet", _build_script())
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_build_takes_what_main_imports_and_no_more(tmp_path):
    build = _builder()
    files = build.closure(build.default_source())
    assert files == sorted(files)
    for needed in ("cni/main.py", "cni/plugin.py", "cni/protocol.py", "cni/ipam.py", "core/errors.py",
                   "core/model.py", "core/validate.py", "core/plan/pod.py", "core/plan/links.py",
                   "core/plan/routes.py", "kernel/lite.py", "kernel/rtnl.py", "kernel/converge.py", "kernel/netns.py"):
        assert needed in files
    assert not [f for f in files if f.startswith("module/") or f.endswith("nat.py")
                or f in ("kernel/netlink.py", "kernel/changes.py", "kernel/pyroute2_parts.py")]
    out = build.build(str(tmp_path / "podnet"))
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
    root = "ansible_collections/podnet/mesh/plugins/module_utils/"
    for package in ("ansible_collections", "ansible_collections/podnet", root + "cni", root + "core",
                    root + "core/plan", root + "kernel"):
        assert package + "/__init__.py" in names
    assert sorted(n[len(root):] for n in names if n.startswith(root) and n.endswith(".py")
                  and not n.endswith("__init__.py")) == files
    assert all(n[:-3] + ".pyc" in names for n in names if n.startswith(root) and n.endswith(".py")
               and not n.endswith("__init__.py"))


@pytest.mark.parametrize("line, message", [
    ("from ansible.module_utils.basic import AnsibleModule",
     "line 2 imports ansible.module_utils.basic: the plugin carries no Ansible code"),
    ("def later():\n    import ansible.module_utils.common",
     "line 3 imports ansible.module_utils.common: the plugin carries no Ansible code"),
    ("from ansible_collections.other.coll.plugins.module_utils import x",
     "line 2 imports ansible_collections.other.coll.plugins.module_utils, which is not part of"),
    ("from ansible_collections.podnet.mesh.plugins.module_utils.core import missing",
     "line 2 imports missing from ansible_collections.podnet.mesh.plugins.module_utils.core, which is no file"),
])
def test_build_refuses_what_the_plugin_cannot_carry(tmp_path, line, message):
    build = _builder()
    source = tmp_path / "module_utils"
    (source / "cni").mkdir(parents=True)
    (source / "core").mkdir()
    (source / "cni" / "main.py").write_text(
        "from ansible_collections.podnet.mesh.plugins.module_utils.core import helper\n")
    (source / "core" / "helper.py").write_text("import json\n" + line + "\n")
    with pytest.raises(build.BuildError) as err:
        build.build(str(tmp_path / "podnet"), str(source))
    assert "module_utils/core/helper.py " + message in str(err.value)
    out = subprocess.run([sys.executable, _build_script(), str(tmp_path / "podnet"), "--source", str(source)],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 1 and "build_podnet: module_utils/core/helper.py " + message in out.stderr
    assert os.listdir(str(tmp_path)) == ["module_utils"]


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
@pytest.mark.parametrize("environ", [
    {"CNI_COMMAND": "ADD", "CNI_PATH": "/opt/cni/bin"},
    {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "-bad", "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"},
    {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0",
     "CNI_PATH": "/opt/cni/bin", "_conf": {"ipam": {}}},
])
def test_an_error_is_in_the_configurations_version(environ, version):
    """Errors of a refused environment or configuration carry the cniVersion the configuration declared."""
    environ = dict(environ)
    conf = {"cniVersion": version, "name": "podnet", "type": "podnet", "ipam": {"subnet": "10.244.1.0/24"}}
    conf.update(environ.pop("_conf", {}))
    code, text = main.run(environ, lambda: json.dumps(conf).encode())
    out = json.loads(text)
    assert code == 1 and out["code"] in (4, 7), out
    assert out["cniVersion"] == version
    assert "None" not in out["msg"]
