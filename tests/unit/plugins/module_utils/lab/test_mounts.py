# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab on the file system, without root: mountinfo, unshare commands, processes."""
from __future__ import annotations

import os

from ansible_collections.podnet.mesh.plugins.module_utils.lab import mounts

ROOT = "/run/podnet-lab"
LAB = ROOT + "/t"


# ---------------------------------------------------------------- mountinfo
MOUNTINFO = """\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
42 27 254:0 /run/netns /run/netns rw,relatime shared:1 - ext4 /dev/vda rw
44 27 254:0 /run/podnet-lab/t /run/podnet-lab/t rw,relatime - ext4 /dev/vda rw
69 44 0:4 uts:[4026532318] /run/podnet-lab/t/node1/uts rw - nsfs nsfs rw
70 44 0:4 net:[4026532319] /run/podnet-lab/t/node1/net rw - nsfs nsfs rw
71 44 0:4 mnt:[4026532317] /run/podnet-lab/t/node1/mnt rw - nsfs nsfs rw
72 44 0:4 net:[4026532320] /run/podnet-lab/t/switch/net rw - nsfs nsfs rw
73 44 0:4 net:[4026532321] /run/podnet-lab/t/switch/mnt rw - nsfs nsfs rw
74 44 0:40 / /run/podnet-lab/t/odd\\040dir rw - tmpfs tmpfs rw
75 27 0:4 net:[4026532322] /run/podnet-lab/tt/node1/net rw - nsfs nsfs rw
"""


def test_mountinfo_parsing():
    parsed = mounts.parse_mountinfo(MOUNTINFO)
    assert parsed[1] == {"point": "/run/netns", "root": "/run/netns", "fstype": "ext4", "shared": True}
    state = mounts.lab_mounts(parsed, LAB)
    assert state["mounted"] and not state["shared"]
    assert state["strays"] == [LAB + "/odd dir"]
    assert len(state["files"]) == 5 and LAB + "/node1/net" in state["files"]
    # switch/mnt holds a network namespace: not a valid member file.
    assert mounts.members_from_files(LAB, state["files"], ["node2"]) == {
        "node1": ["mnt", "net", "uts"], "switch": ["net"], "node2": []}


def test_unshare_commands():
    node = mounts.unshare_command(LAB + "/node1", "node1", ["net", "mnt", "uts"], ROOT)
    assert node[:4] == ["unshare", "--net=%s/node1/net" % LAB, "--mount=%s/node1/mnt" % LAB,
                        "--uts=%s/node1/uts" % LAB]
    assert node[4:9] == ["--propagation", "private", "--", "/bin/sh", "-c"]
    assert node[-4:] == ["podnet-lab", "node1", ROOT, LAB + "/node1"]
    assert "mount -t tmpfs" in node[9] and "/run/netns" in node[9]
    for path in ("/etc/podnet", "/etc/cni/net.d", "/etc/systemd/system", "/opt/cni/bin", "/var/lib/cni",
                 "/var/lib/podnet", "/usr/local/libexec/podnet"):
        assert path in node[9]
    assert "for top in /etc /home /opt /usr/local /var/lib; do" in node[9]
    assert mounts.unshare_command(LAB + "/switch", "switch", ["net"], ROOT) == [
        "unshare", "--net=%s/switch/net" % LAB, "--", "true"]


def test_processes_are_found_by_namespace_inode(tmp_path):
    proc = tmp_path / "proc"
    files = {}
    for pid, kinds in (("10", ("net", "mnt", "uts")), ("11", ("net",)), ("self", ("net",))):
        (proc / pid / "ns").mkdir(parents=True)
        for kind in kinds:
            (proc / pid / "ns" / kind).write_text("")
            files[(pid, kind)] = str(proc / pid / "ns" / kind)
    inodes = mounts.namespace_inodes([files[("10", "uts")], str(tmp_path / "missing")])
    assert mounts.processes_in(inodes, str(proc)) == [10]
    assert mounts.processes_in(set(), str(proc)) == []


# ------------------------------------------------------------------- marker
def test_marker_is_written_and_recognised(tmp_path):
    lab = str(tmp_path / "lab")
    assert not mounts.is_marked(lab)
    mounts.write_marker(lab)
    assert mounts.is_marked(lab)
    (tmp_path / "lab" / ".podnet-lab").write_text("something else\n")
    assert not mounts.is_marked(lab)


def test_what_no_lab_holds_is_listed(tmp_path):
    lab = tmp_path / "lab"
    (lab / "node1").mkdir(parents=True)
    for kind in ("net", "mnt", "uts"):
        (lab / "node1" / kind).write_text("")
    (lab / "switch").mkdir()
    (lab / "switch" / "net").write_text("")
    mounts.write_marker(str(lab))
    assert mounts.unknown_entries(str(lab)) == []
    (lab / "notes.txt").write_text("mine")
    (lab / "node1" / "home").mkdir()
    (lab / "switch" / "link").symlink_to("/etc")
    (lab / "net").symlink_to(lab / "switch")
    assert mounts.unknown_entries(str(lab)) == ["net", "node1/home", "notes.txt", "switch/link"]


def test_a_nodes_layers_and_the_ssh_directory_belong_to_the_lab(tmp_path):
    lab = tmp_path / "lab"
    (lab / "node1" / "layers" / "etc" / "upper").mkdir(parents=True)
    (lab / "node1" / "net").write_text("")
    (lab / ".ssh").mkdir()
    mounts.write_marker(str(lab))
    assert mounts.unknown_entries(str(lab)) == []
    (lab / "node1" / "disk").mkdir()
    (lab / ".other").mkdir()
    (lab / ".other" / "x").write_text("")
    assert mounts.unknown_entries(str(lab)) == [".other/x", "node1/disk"]


def test_processes_never_include_this_process_nor_its_parents(tmp_path):
    proc = tmp_path / "proc"
    me, parent = os.getpid(), os.getppid()
    for pid, ppid in ((me, parent), (parent, 1), (77, 1)):
        (proc / str(pid) / "ns").mkdir(parents=True)
        (proc / str(pid) / "ns" / "net").write_text("")
        (proc / str(pid) / "stat").write_text("%d (x y) S %d 0 0\n" % (pid, ppid))
    assert mounts.ancestors(proc=str(proc)) == [me, parent]
    inodes = mounts.namespace_inodes([str(proc / str(pid) / "ns" / "net") for pid in (me, parent, 77)])
    assert mounts.processes_in(inodes, str(proc)) == [77]


def test_sshd_processes_by_network_namespace(tmp_path):
    proc = tmp_path / "proc"
    for pid, comm in (("20", "sshd"), ("21", "bash"), ("22", "sshd")):
        (proc / pid / "ns").mkdir(parents=True)
        (proc / pid / "comm").write_text(comm + "\n")
        (proc / pid / "ns" / "net").write_text(pid)
    inodes = mounts.namespace_inodes([str(proc / "20" / "ns" / "net"), str(proc / "21" / "ns" / "net")])
    found = mounts.sshd_processes(inodes, str(proc))
    assert sorted(found.values()) == [[20]]
