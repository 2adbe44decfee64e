# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""What runtimes on libcni >= 1.2 do, held against the CNI SPEC 1.1.

libcni 1.2 is not packaged by Debian 12: ``Runtime12`` (conftest.py) drives
the plugins as libcni 1.2.3 does: ``cniVersions`` negotiation (the highest
listed version libcni implements goes to every plugin of the chain, the
plugins are not asked), GC (``cni.dev/valid-attachments`` and its older
spelling ``cni.dev/attachments``, or neither when the runtime passes no GC
arguments) and STATUS. The SPEC's words these tests hold the plugin to:

* GC: the runtime must send the list of still valid attachments; the plugin
  releases the resources of attachments that are not in it; garbage
  collection is per network; "plugins should generally complete a GC action
  without error". libcni 1.2.3 leaves the list out when its caller passes no
  GC arguments: a plugin that got no list cannot know which attachments are
  stale, so it releases nothing, and succeeds. ``null`` is how Go encodes an
  empty list (a caller with no valid attachment at all).
* STATUS: success means the plugin is ready to service ADD requests; error 50
  means it is not (docs/cni.md: pyroute2 missing, state directory not
  writable or refused, no free address).
* Errors: the error object's cniVersion is the configuration's.
"""
from __future__ import annotations

import os
import re

import pytest

OTHER_SUBNET = "10.252.1.0/24"


def codes(runs):
    """[(plugin type, exit code, error code or None)] of a runtime operation."""
    return [(run[0], run[1], run[2].get("code") if isinstance(run[2], dict) and run[1] else None) for run in runs]


def only(runs):
    """(exit code, output) of an operation that ran one plugin."""
    assert len(runs) == 1, runs
    return runs[0][1], runs[0][2]


def veth_of(result):
    return result["interfaces"][1]["name"]


# ------------------------------------------------------------ cniVersions
def test_negotiation_as_libcni_1_2_3_does_it(runtime):
    negotiate = runtime.negotiate
    assert negotiate({"cniVersion": "1.0.0"}) == "1.0.0"
    assert negotiate({"cniVersion": "1.0.0", "cniVersions": ["1.0.0", "1.1.0"]}) == "1.1.0"
    # Versions above what libcni implements are skipped, whatever the plugins could do.
    assert negotiate({"cniVersion": "0.4.0", "cniVersions": ["0.4.0", "1.0.0", "1.1.0", "1.2.0"]}) == "1.1.0"
    assert negotiate({"cniVersions": ["0.3.1", "1.0.0"]}) == "1.0.0"


def test_the_negotiated_version_reaches_podnet_for_every_verb(node, runtime):
    pod = node.pod()
    conf = node.network([node.podnet()], version="1.0.0", cniVersions=["1.0.0", "1.1.0"])
    [(kind, code, result, err)] = runtime.add(conf, pod)
    assert (kind, code, err) == ("podnet", 0, ""), result
    assert result["cniVersion"] == "1.1.0"
    assert all(isinstance(i.get("mtu"), int) for i in result["interfaces"])  # a 1.1.0 field
    assert codes(runtime.verb("CHECK", conf, pod, prev=result)) == [("podnet", 0, None)]
    assert codes(runtime.status(conf)) == [("podnet", 0, None)]
    assert codes(runtime.verb("DEL", conf, pod, prev=result)) == [("podnet", 0, None)]
    assert node.reservations() == {} and "eth0" not in node.links(pod)


def test_a_chained_plugin_that_stops_at_1_0_0_fails_and_gc_collects_the_attachment(node, runtime, reference_plugins):
    """cniVersions [1.0.0, 1.1.0] with Debian's portmap 1.1.1 (CNI up to 1.0.0): libcni 1.2.3 sends 1.1.0
    to both. podnet wires the container, portmap refuses ADD and DEL (code 1), so the runtime's DEL
    (portmap first: reverse order) never reaches podnet; the GC the runtime sends next collects it."""
    pod = node.pod()
    conf = node.network([node.podnet(), {"type": "portmap", "capabilities": {"portMappings": True}}],
                        version="1.0.0", cniVersions=["1.0.0", "1.1.0"])
    caps = {"portMappings": [{"hostPort": 18082, "containerPort": 80, "protocol": "tcp"}]}
    runs = runtime.add(conf, pod, caps=caps)
    assert codes(runs) == [("podnet", 0, None), ("portmap", 1, 1)], runs
    veth = veth_of(runs[0][2])
    assert codes(runtime.verb("DEL", conf, pod, caps=caps)) == [("portmap", 1, 1)]
    assert veth in node.links() and len(node.reservations()) == 1
    gc = runtime.gc(conf, valid=[])
    assert codes(gc)[0] == ("podnet", 0, None), gc
    assert gc[1][1] != 0  # portmap 1.1.1 knows no GC; libcni goes on and reports it
    assert veth not in node.links() and "eth0" not in node.links(pod) and node.reservations() == {}


# ------------------------------------------------------------ GC
def add(node, runtime, conf, suffix, cid, ifname="eth0"):
    pod = node.pod(suffix)
    code, result = only(runtime.add(conf, pod, cid=cid, ifname=ifname))
    assert code == 0, result
    return pod, result


def test_gc_releases_the_attachments_not_listed_and_only_those_of_its_network(node, runtime):
    conf = node.network([node.podnet()], version="1.1.0")
    other_ipam = {"subnet": OTHER_SUBNET, "dataDir": node.data_dir}
    other = node.network([node.podnet(bridge=node.prefix + "c", ipam=other_ipam)], version="1.1.0",
                         name=node.prefix + "x")
    pod1, first = add(node, runtime, conf, "p1", "c1")
    pod2, second = add(node, runtime, conf, "p2", "c2")
    pod3, third = add(node, runtime, other, "p3", "c3")
    assert codes(runtime.gc(conf, valid=[("c1", "eth0"), ("c9", "eth0")])) == [("podnet", 0, None)]
    assert [o["containerID"] for o in node.reservations().values()] == ["c1"]
    assert veth_of(second) not in node.links() and "eth0" not in node.links(pod2)
    assert veth_of(first) in node.links() and "eth0" in node.links(pod1)
    # An empty list: no attachment of this network is valid any more. The other network keeps its own.
    assert codes(runtime.gc(conf, valid=[])) == [("podnet", 0, None)]
    assert node.reservations() == {} and veth_of(first) not in node.links()
    assert [o["containerID"] for o in node.reservations(other["name"]).values()] == ["c3"]
    assert veth_of(third) in node.links() and "eth0" in node.links(pod3)
    assert codes(runtime.verb("DEL", other, pod3, cid="c3", prev=third)) == [("podnet", 0, None)]


def test_gc_without_a_list_of_valid_attachments_succeeds_and_releases_nothing(node, runtime):
    """libcni 1.2.3 leaves the list out when its caller passes no GC arguments: the plugin cannot tell
    stale attachments from live ones, so it keeps them all."""
    conf = node.network([node.podnet()], version="1.1.0")
    pod, result = add(node, runtime, conf, "p", "c1")
    gc = runtime.gc(conf)
    assert codes(gc) == [("podnet", 0, None)], (
        "GC without cni.dev/valid-attachments must succeed and release nothing; podnet answered %s" % gc[0][2])
    assert [o["containerID"] for o in node.reservations().values()] == ["c1"]
    assert veth_of(result) in node.links() and "eth0" in node.links(pod)


def test_gc_with_null_is_an_empty_list(node, runtime):
    """null is how Go encodes the empty list of a libcni caller that has no valid attachment at all."""
    conf = node.network([node.podnet()], version="1.1.0")
    pod, result = add(node, runtime, conf, "p", "c1")
    assert codes(runtime.gc(conf, valid=None)) == [("podnet", 0, None)]
    assert node.reservations() == {} and veth_of(result) not in node.links() and "eth0" not in node.links(pod)


def test_gc_reads_the_earlier_name_of_the_list(node, runtime):
    """cni.dev/attachments, the name an early text of SPEC 1.1 gave the list (libcni 1.2.3 sends both)."""
    conf = node.network([node.podnet()], version="1.1.0")
    add(node, runtime, conf, "p1", "c1")
    second = add(node, runtime, conf, "p2", "c2")[1]
    assert codes(runtime.gc(conf, valid=[("c1", "eth0")], keys=("cni.dev/attachments",))) == [("podnet", 0, None)]
    assert [o["containerID"] for o in node.reservations().values()] == ["c1"]
    assert veth_of(second) not in node.links()


# ------------------------------------------------------------ STATUS
def test_status_is_success_for_a_usable_network(node, runtime):
    conf = node.network([node.podnet()], version="1.1.0")
    assert codes(runtime.status(conf)) == [("podnet", 0, None)]  # no state yet
    add(node, runtime, conf, "p", "c1")
    assert codes(runtime.status(conf)) == [("podnet", 0, None)]


def unusable_data_dir(node, case):
    """A data directory ADD cannot use, made (where anything is made) in the test's state directory."""
    if case == "a data directory under /proc":
        return "/proc/%s/ipam" % node.prefix
    path = os.path.join(node.state, "bad")
    if case == "a data directory that is a regular file":
        open(path, "w", encoding="utf-8").close()
    elif case == "a data directory that is a symbolic link":
        os.mkdir(path + ".target", 0o700)
        os.symlink(path + ".target", path)
    elif case == "a data directory writable by others":
        os.mkdir(path)
        os.chmod(path, 0o777)
    elif case == "a link planted for the lock":
        os.makedirs(os.path.join(path, node.prefix), 0o700)
        os.symlink(os.path.join(node.state, "elsewhere"), os.path.join(path, node.prefix, "lock"))
    return path


@pytest.mark.parametrize("case", ["a data directory under /proc", "a data directory that is a regular file",
                                  "a data directory that is a symbolic link", "a data directory writable by others",
                                  "a link planted for the lock"])
def test_status_is_50_where_add_would_fail(node, runtime, case):
    ipam = {"subnet": node.subnet, "dataDir": unusable_data_dir(node, case)}
    conf = node.network([node.podnet(ipam=ipam)], version="1.1.0")
    code, out = only(runtime.add(conf, node.pod()))
    assert code == 1 and out["code"] == 5, out
    status = runtime.status(conf)
    assert codes(status) == [("podnet", 1, 50)], (
        "STATUS with %s (ADD fails: %s) must be error 50; podnet answered %s"
        % (case, out["msg"], status[0][2]))


def test_status_is_50_when_no_address_is_free(node, runtime):
    ipam = {"subnet": node.subnet, "dataDir": node.data_dir, "rangeStart": "10.252.0.7", "rangeEnd": "10.252.0.7"}
    conf = node.network([node.podnet(ipam=ipam)], version="1.1.0")
    add(node, runtime, conf, "p1", "c1")
    code, out = only(runtime.add(conf, node.pod("p2"), cid="c2"))
    assert code == 1 and out["code"] == 101, out
    assert codes(runtime.status(conf)) == [("podnet", 1, 50)]


# ------------------------------------------------------------ errors
@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0"])
def test_errors_carry_the_cniversion_of_the_configuration(node, runtime, version):
    conf = node.network([node.podnet()], version=version)
    plugin_conf = runtime.plugin_conf(conf, conf["plugins"][0], version)
    answers = {
        # A runtime that sends no namespace (libcni sets CNI_NETNS empty), a container ID the SPEC refuses.
        "ADD without CNI_NETNS": runtime.exec("podnet", "ADD", plugin_conf, cid="c1", ifname="eth0"),
        "DEL of an invalid container ID": runtime.exec("podnet", "DEL", plugin_conf, cid="-c1", ifname="eth0"),
        "ADD into a namespace that does not exist": runtime.exec("podnet", "ADD", plugin_conf, cid="c1",
                                                                 netns="/run/netns/%sgone" % node.prefix,
                                                                 ifname="eth0"),
    }
    found = dict((what, (answer[0], answer[1]["code"], answer[1]["cniVersion"])) for what, answer in answers.items())
    assert found == {"ADD without CNI_NETNS": (1, 4, version), "DEL of an invalid container ID": (1, 4, version),
                     "ADD into a namespace that does not exist": (1, 3, version)}


PYTHON_LITERAL = re.compile(r"\b(None|True|False)\b|\[Errno \d+\]")


def test_messages_show_no_python_literals(node, runtime):
    conf = node.network([node.podnet()], version="1.1.0")
    pod, result = add(node, runtime, conf, "p", "c1")
    veth = veth_of(result)
    messages = {}

    def check(what):
        code, out = only(runtime.verb("CHECK", conf, pod, prev=result))
        assert code == 1 and out["code"] == 103, (what, out)
        messages[what] = out["msg"] + " " + out.get("details", "")

    node.ip("link", "set", veth, "nomaster")
    check("CHECK, the host end on no bridge")
    node.ip("link", "set", veth, "master", node.bridge)
    node.ip("link", "set", "eth0", "down", ns=pod)
    check("CHECK, the interface down")
    node.ip("link", "set", "eth0", "address", "0a:58:0a:fc:00:98", ns=pod)
    check("CHECK, another MAC")
    node.ip("link", "set", "eth0", "address", result["interfaces"][2]["mac"], "up", ns=pod)
    node.ip("addr", "flush", "dev", "eth0", ns=pod)
    check("CHECK, the address gone")
    out = only(runtime.add(conf, pod))[1]
    messages["ADD again"] = out["msg"] + " " + out.get("details", "")
    literal = dict((what, msg) for what, msg in messages.items() if PYTHON_LITERAL.search(msg))
    assert literal == {}, "messages that show Python literals: %s" % literal
    assert codes(runtime.verb("DEL", conf, pod, prev=result)) == [("podnet", 0, None)]
