# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The boot-time restore's files, planned and written (real files under tmp_path)."""
from __future__ import annotations

import base64
import os
import zlib

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ConflictError, ValidationError
from ansible_collections.podnet.mesh.plugins.module_utils.node import install

PROGRAM = b"#!/usr/bin/python3\nprint('restore')\n"


def want(root, **kw):
    result = {"program_path": str(root / "libexec/podnet-restore"), "program": PROGRAM,
              "state_file": str(root / "etc/podnet/state.json"), "state_text": '{"version": 1}\n',
              "interpreter": "/usr/bin/python3", "unit_dir": str(root / "systemd"),
              "unit": "podnet-restore.service", "before": ["containerd.service"], "wait": 60}
    result.update(kw)
    return result


def converge(root, state="present", systemd=False, **kw):
    items = install.entries(want(root, **kw))
    current = install.read(items, sd_booted=str(root / ("booted" if systemd else "nowhere")))
    actions = install.plan(state, items, current)
    reloads = []
    install.apply(actions, lambda: reloads.append(1))
    return [a.describe() for a in actions], reloads, items, current


def test_a_fresh_install_makes_directories_then_files_in_an_order_the_unit_can_rely_on(tmp_path):
    done, _reloads, _items, _current = converge(tmp_path)

    def short(line):
        words = line.split(" ")
        return words[0] + " " + os.path.relpath(words[-1] if words[0] in ("create", "remove") else words[1], tmp_path)
    assert [short(line) for line in done] == [
        "create libexec", "write libexec/podnet-restore", "create etc", "create etc/podnet",
        "write etc/podnet/state.json", "create systemd", "write systemd/podnet-restore.service",
        "create systemd/multi-user.target.wants", "link systemd/multi-user.target.wants/podnet-restore.service"]
    assert os.stat(tmp_path / "libexec/podnet-restore").st_mode & 0o7777 == 0o755
    assert os.stat(tmp_path / "etc/podnet/state.json").st_mode & 0o7777 == 0o644
    link = tmp_path / "systemd/multi-user.target.wants/podnet-restore.service"
    assert os.readlink(link) == str(tmp_path / "systemd/podnet-restore.service")
    unit = (tmp_path / "systemd/podnet-restore.service").read_text()
    assert "ExecStart=/usr/bin/python3 %s --state %s --wait 60\n" % (
        tmp_path / "libexec/podnet-restore", tmp_path / "etc/podnet/state.json") in unit
    assert "Before=containerd.service\n" in unit and "WantedBy=multi-user.target\n" in unit
    assert converge(tmp_path)[0] == []
    assert not [n for n in os.listdir(tmp_path / "etc/podnet") if n.startswith(".podnet-")]


def test_only_what_differs_changes(tmp_path):
    converge(tmp_path)
    os.chmod(tmp_path / "libexec/podnet-restore", 0o700)
    link = tmp_path / "systemd/multi-user.target.wants/podnet-restore.service"
    os.unlink(link)
    os.symlink("/elsewhere", link)
    done, _reloads, _items, _current = converge(tmp_path, state_text='{"version": 1, "node": "n1"}\n')
    assert done == ["set the mode of %s to 0755" % (tmp_path / "libexec/podnet-restore"),
                    "write %s (29 bytes, mode 0644)" % (tmp_path / "etc/podnet/state.json"),
                    "link %s to %s" % (link, tmp_path / "systemd/podnet-restore.service")]
    assert (tmp_path / "etc/podnet/state.json").read_text() == '{"version": 1, "node": "n1"}\n'


def test_systemd_is_reloaded_only_when_it_runs_and_the_unit_or_its_link_changed(tmp_path):
    (tmp_path / "booted").mkdir()
    assert converge(tmp_path, systemd=True)[1] == [1]
    assert converge(tmp_path, systemd=True, state_text='{"version": 1, "node": "n2"}\n')[1] == []
    done, reloads, _items, _current = converge(tmp_path, systemd=True, wait=5)
    assert done[-1] == "reload systemd's units" and reloads == [1]
    assert converge(tmp_path, systemd=False, before=["kubelet.service"])[1] == []
    assert converge(tmp_path, "absent", systemd=True)[1] == [1]


def test_absent_removes_the_four_link_first_and_leaves_what_is_no_file(tmp_path):
    converge(tmp_path)
    os.unlink(tmp_path / "etc/podnet/state.json")
    (tmp_path / "etc/podnet/state.json").mkdir()
    done, _reloads, items, current = converge(tmp_path, "absent")
    assert [os.path.relpath(line.split(" ", 1)[1], tmp_path) for line in done] == [
        "systemd/multi-user.target.wants/podnet-restore.service", "systemd/podnet-restore.service",
        "libexec/podnet-restore"]
    assert (tmp_path / "etc/podnet/state.json").is_dir()
    assert install.views(items, current, "absent")[1]["state_file"] == "a directory"
    assert converge(tmp_path, "absent")[0] == []


@pytest.mark.parametrize("key, option", [("state_file", "state_file"), ("link", "unit")])
def test_a_directory_where_a_file_or_the_link_goes_is_refused_naming_the_option(tmp_path, key, option):
    items = install.entries(want(tmp_path))
    path = [e.path for e in items if e.key == key][0]
    os.makedirs(path)
    with pytest.raises(ConflictError) as err:
        install.plan("present", items, install.read(items))
    assert str(err.value).startswith("%s: %r is a directory" % (option, path))


def test_diffs_show_the_texts_of_the_state_file_and_the_unit_and_a_digest_of_the_program(tmp_path):
    items = install.entries(want(tmp_path))
    diffs = install.diffs(items, install.read(items), "present")
    assert [d["before"] for d in diffs] == ["", "", "", ""]
    assert diffs[1]["after"] == '{"version": 1}\n' and diffs[2]["after"].startswith("# Installed by podnet.mesh")
    assert diffs[0]["after"] == "sha256 %s, mode 0755\n" % install.sha256(PROGRAM)
    converge(tmp_path)
    diffs = install.diffs(items, install.read(items), "absent")
    assert diffs[1] == {"before_header": items[1].path, "after_header": items[1].path,
                        "before": '{"version": 1}\n', "after": ""}


def test_the_program_is_decoded_or_refused_naming_the_option():
    text = base64.b64encode(zlib.compress(PROGRAM)).decode()
    assert install.decode_program(text) == PROGRAM
    for bad, reason in [("not base64!", "is not a program as build_podnet.py --encode writes it"),
                        (base64.b64encode(b"plain").decode(), "is not a program as build_podnet.py"),
                        (base64.b64encode(zlib.compress(b"PK\x03\x04")).decode(), "decodes to no program")]:
        with pytest.raises(ValidationError) as err:
            install.decode_program(bad)
        assert str(err.value).startswith("program: '%d characters' %s" % (len(bad), reason))
