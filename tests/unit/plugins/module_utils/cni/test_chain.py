# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Versions of a plugin chain: each chained plugin asked with VERSION, as a runtime runs it."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.cni import chain, main, protocol

REFERENCE = "/usr/lib/cni"


def fake_plugin(directory, name, versions, code=0, extra=""):
    """An executable answering VERSION with versions (and recording the request it got)."""
    path = os.path.join(str(directory), name)
    answer = json.dumps({"cniVersion": "1.0.0", "supportedVersions": versions}) if versions is not None else "oops"
    with open(path, "w") as handle:
        handle.write("#!%s\nimport json, os, sys\n%s\n"
                     "open(sys.argv[0] + '.request', 'w').write(json.dumps([os.environ.get('CNI_COMMAND'), "
                     "sys.stdin.read()]))\nprint(%r)\nsys.exit(%d)\n" % (sys.executable, extra, answer, code))
    os.chmod(path, 0o755)
    return path


def conflist(*chained, versions=("1.0.0", "1.1.0"), version="1.0.0"):
    return {"cniVersion": version, "cniVersions": list(versions), "name": "podnet",
            "plugins": [{"type": "podnet", "ipam": {"subnet": "10.244.1.0/24"}}] + [{"type": t} for t in chained]}


def test_chain_speaks_what_every_plugin_speaks(tmp_path):
    fake_plugin(tmp_path, "portmap", ["0.3.1", "0.4.0", "1.0.0"])
    fake_plugin(tmp_path, "tuning", ["0.4.0", "1.0.0", "1.1.0"])
    common, asked = chain.chain_versions(conflist("portmap", "tuning")["plugins"], [str(tmp_path)])
    assert common == ["0.4.0", "1.0.0"]
    assert asked[1][0] == "portmap" and asked[2][2] == ["0.4.0", "1.0.0", "1.1.0"]
    request = json.loads((tmp_path / "portmap.request").read_text())
    assert request[0] == "VERSION" and json.loads(request[1]) == {"cniVersion": "1.0.0"}


def test_no_chained_plugin_speaks_all_of_podnets():
    assert chain.chain_versions(conflist()["plugins"], [])[0] == list(protocol.SUPPORTED_VERSIONS)


def test_the_first_directory_with_the_plugin_wins(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    fake_plugin(second, "portmap", ["1.1.0"])
    fake_plugin(first, "portmap", ["1.0.0"])
    assert chain.chain_versions(conflist("portmap")["plugins"], [str(first), str(second)])[0] == ["1.0.0"]


def test_a_version_the_chain_does_not_speak_is_refused_naming_the_plugin(tmp_path):
    fake_plugin(tmp_path, "portmap", ["0.3.1", "0.4.0", "1.0.0"])
    with pytest.raises(protocol.CniError) as err:
        chain.check_chain(conflist("portmap"), [str(tmp_path)])
    assert err.value.code == protocol.ERR_INCOMPATIBLE_VERSION
    assert err.value.msg == (
        "cniVersions[1] '1.1.0' is not spoken by every plugin of the chain (plugins[1] (portmap) speaks 0.3.1, "
        "0.4.0, 1.0.0); a runtime that sends it fails ADD and DEL; the chain speaks 0.3.1, 0.4.0, 1.0.0")
    assert chain.check_chain(conflist("portmap", versions=["1.0.0"]), [str(tmp_path)]) == ["0.3.1", "0.4.0", "1.0.0"]


@pytest.mark.parametrize("setup, message", [
    (None, "plugins[1]: no executable plugin 'portmap' in"),
    (dict(versions=None), "answered VERSION with exit code 0 and 'oops', not a list of supportedVersions"),
    (dict(versions=["1.0.0"], code=1), "answered VERSION with exit code 1"),
])
def test_a_plugin_that_says_nothing_usable_is_refused(tmp_path, setup, message):
    if setup is not None:
        fake_plugin(tmp_path, "portmap", **setup)
    with pytest.raises(protocol.CniError) as err:
        chain.chain_versions(conflist("portmap")["plugins"], [str(tmp_path)])
    assert message in err.value.msg


def test_check_conflist_with_a_cni_path_asks_the_chain(tmp_path):
    fake_plugin(tmp_path, "portmap", ["1.0.0"])
    text = json.dumps(conflist("portmap"))
    assert "the chain speaks" not in main.check_conflist(text)
    with pytest.raises(protocol.CniError):
        main.check_conflist(text, cni_path=[str(tmp_path)])
    summary = main.check_conflist(json.dumps(conflist("portmap", versions=["1.0.0"])), cni_path=[str(tmp_path)])
    assert summary.endswith("; the chain speaks 1.0.0")


def test_the_cli_reports_and_refuses(tmp_path):
    """podnet --chain-versions and --check-conflist --cni-path, as the cni role runs them."""
    fake_plugin(tmp_path, "portmap", ["0.4.0", "1.0.0"])
    path = tmp_path / "list.conflist"
    path.write_text(json.dumps(conflist("portmap")))
    env = dict(os.environ)
    cmd = [sys.executable, "-c", "import sys; from ansible_collections.podnet.mesh.plugins.module_utils.cni.main "
                                 "import main; sys.exit(main())"]
    out = subprocess.run(cmd + ["--chain-versions", str(path), "--cni-path", "/nonexistent:%s" % tmp_path],
                         env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["versions"] == ["0.4.0", "1.0.0"]
    assert report["plugins"] == [{"index": 1, "type": "portmap", "path": str(tmp_path / "portmap"),
                                  "supportedVersions": ["0.4.0", "1.0.0"]}]
    refused = subprocess.run(cmd + ["--check-conflist", str(path), "--cni-path", str(tmp_path)],
                             env=env, capture_output=True, text=True, check=False)
    assert refused.returncode == 1 and "cniVersions[1] '1.1.0' is not spoken" in refused.stderr
    usage = subprocess.run(cmd + ["--chain-versions", str(path)], env=env, capture_output=True, text=True, check=False)
    assert usage.returncode == 2 and "usage" in usage.stderr


@pytest.mark.skipif(not os.access(os.path.join(REFERENCE, "portmap"), os.X_OK), reason="no reference plugins here")
def test_the_reference_portmap_stops_at_1_0_0():
    """containernetworking-plugins as Debian 12 ships them: the reason the role asks the chain."""
    common, _asked = chain.chain_versions(conflist("portmap", "tuning", "bandwidth")["plugins"], [REFERENCE])
    assert "1.0.0" in common and "1.1.0" not in common
