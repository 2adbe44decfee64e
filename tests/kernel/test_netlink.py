# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The netlink layer and the planners together, against the real kernel."""
from __future__ import annotations

import errno
import os

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.core import errors
from ansible_collections.podnet.mesh.plugins.module_utils.core import model
from ansible_collections.podnet.mesh.plugins.module_utils.core.describe import describe_all
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import links as link_plan
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import netlink as _netlink
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import netns


def converge(session, planner, want, read):
    """Plan, apply, and return the plan of a second pass (must be empty)."""
    first = planner(want, read())
    session.apply(first.actions)
    return first, planner(want, read())


def test_pyroute2_version_is_supported():
    import pyroute2
    version = getattr(pyroute2, "__version__", "0.7")
    assert tuple(int(x) for x in version.split(".")[:2]) >= (0, 7)


def test_missing_namespace_is_reported_not_created(prefix):
    name = prefix + "none"
    with pytest.raises(errors.KernelError) as err:
        _netlink.Namespace(name)
    assert err.value.code == errno.ENOENT
    assert name in str(err.value)
    assert not os.path.exists(os.path.join("/run/netns", name))


def children():
    """PIDs of this process's child processes."""
    found = set()
    for entry in (e for e in os.listdir("/proc") if e.isdigit()):
        try:
            with open("/proc/%s/stat" % entry) as handle:
                stat = handle.read()
        except (OSError, ValueError):
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == os.getpid():
            found.add(int(entry))
    return found


def test_a_file_that_is_not_a_namespace_is_refused(tmp_path):
    path = str(tmp_path / "not-a-namespace")
    with open(path, "w") as handle:
        handle.write("")
    home = os.readlink("/proc/thread-self/ns/net")
    with pytest.raises(errors.KernelError) as err:
        _netlink.Namespace(path)
    assert err.value.code == errno.EINVAL and path in str(err.value)
    assert os.readlink("/proc/thread-self/ns/net") == home  # the thread stayed where it was


def test_a_namespace_is_opened_in_thread(session, named_ns):
    """No helper process: the socket is made inside the namespace and the thread comes back."""
    name = named_ns("t")
    home = os.readlink("/proc/thread-self/ns/net")
    before = children()
    handle = session.ns(name)
    assert os.readlink("/proc/thread-self/ns/net") == home
    assert children() == before
    assert list(handle.links()) == ["lo"]  # the namespace's own links, not this one's
    assert os.stat("/run/netns/" + name).st_ino != os.stat("/proc/thread-self/ns/net").st_ino


def test_netns_create_and_remove(session, named_ns):
    name = named_ns("n", create=False)
    first, second = converge(session, link_plan.plan_netns, {"name": name, "state": "present"},
                             lambda: netns.netns_exists(name))
    assert [a.op for a in first.actions] == ["netns_add"]
    assert second.actions == []
    assert os.path.ismount(os.path.join("/run/netns", name))
    first, second = converge(session, link_plan.plan_netns, {"name": name, "state": "absent"},
                             lambda: netns.netns_exists(name))
    assert [a.op for a in first.actions] == ["netns_del"]
    assert not os.path.exists(os.path.join("/run/netns", name))


def test_bridge_converges_and_reads_back(session, prefix, host_links):
    name = prefix + "b"
    host_links.append(name)
    want = {"name": name, "state": "present", "addresses": ["10.77.1.1/24", "fd77::1/64"],
            "mtu": 1400, "stp": True, "up": True}

    def read():
        return session.ns(None).links(with_addresses=[name]).get(name)

    first, second = converge(session, link_plan.plan_bridge, want, read)
    assert first.actions[0].op == "bridge_add"
    assert second.actions == [], describe_all(second.actions)
    link = read()
    assert link["kind"] == "bridge"
    assert link["mtu"] == 1400 and link["stp"] is True and link["up"] is True
    assert sorted(link["addresses"]) == ["10.77.1.1/24", "fd77::1/64"]
    # Address list change: one removed, one added, the rest untouched.
    want["addresses"] = ["10.77.1.1/24", "10.77.2.1/24"]
    first, second = converge(session, link_plan.plan_bridge, want, read)
    assert [a.op for a in first.actions] == ["addr_del", "addr_add"]
    assert second.actions == []
    assert sorted(read()["addresses"]) == ["10.77.1.1/24", "10.77.2.1/24"]


def test_kernel_error_names_operation_and_errno(session, prefix, host_links):
    name = prefix + "d"
    host_links.append(name)
    session.apply([model.Action("veth_add", None, name, {"peer": prefix + "e", "peer_ns": None})])
    action = model.Action("bridge_add", None, name, {})
    with pytest.raises(errors.KernelError) as err:
        session.apply([action])  # a veth has the name: not the bridge that was wanted
    assert err.value.code == errno.EEXIST
    assert str(err.value).startswith("cannot create bridge %s (namespace host): " % name)
    assert str(err.value).endswith("[EEXIST]")


def test_veth_into_namespace_with_master_and_hairpin(session, prefix, named_ns, host_links):
    pod = named_ns("p")
    br, host = prefix + "b", prefix + "v"
    host_links.extend([host, br])
    session.apply([model.Action("bridge_add", None, br, {})])
    want = {"name": host, "peer": "eth0", "netns": pod, "master": br, "mtu": 1450,
            "hairpin": True, "up": True, "state": "present"}

    def read():
        links = session.ns(None).links()
        return {"host": links.get(host), "peer": session.ns(pod).links().get("eth0"),
                "stray_peer": None, "netns_exists": True, "master": links.get(br)}

    first, second = converge(session, link_plan.plan_veth, want, read)
    assert second.actions == [], describe_all(second.actions)
    cur = read()
    assert link_plan.is_pair(cur["host"], cur["peer"], pod)
    assert cur["host"]["master"] == br and cur["host"]["hairpin"] is True
    assert cur["host"]["mtu"] == cur["peer"]["mtu"] == 1450
    assert cur["peer"]["up"] is True


def test_peer_created_but_not_moved_is_moved(session, prefix, named_ns, host_links):
    pod = named_ns("p")
    host = prefix + "v"
    host_links.extend([host, "eth0"])
    session.apply([model.Action("veth_add", None, host, {"peer": "eth0", "peer_ns": None})])
    links = session.ns(None).links()
    stray = links["eth0"]
    cur = {"host": links[host], "peer": None, "stray_peer": stray, "netns_exists": True,
           "master": None}
    want = {"name": host, "peer": "eth0", "netns": pod, "master": None, "mtu": None,
            "hairpin": None, "up": True, "state": "present"}
    plan = link_plan.plan_veth(want, cur)
    assert plan.actions[0].op == "link_move"
    session.apply(plan.actions)
    assert "eth0" not in session.ns(None).links()
    peer = session.ns(pod).links()["eth0"]
    assert link_plan.is_pair(session.ns(None).links()[host], peer, pod)


def test_addresses_in_a_namespace_skip_link_local(session, named_ns):
    pod = named_ns("p")
    ns = session.ns(pod)
    want = {"netns": pod, "interface": "lo", "addresses": ["127.0.0.1/8", "::1/128", "10.78.0.1/32"],
            "up": True, "state": "present"}

    def read():
        links = session.ns(pod).links(with_addresses=["lo"])
        return {"netns_exists": True, "link": links["lo"], "lo": links["lo"]}

    first, second = converge(session, link_plan.plan_interface_addresses, want, read)
    assert second.actions == []
    assert sorted(read()["link"]["addresses"]) == ["10.78.0.1/32", "127.0.0.1/8", "::1/128"]
    assert ns.name == pod


def test_leftover_file_is_replaced_by_a_namespace(session, named_ns):
    name = named_ns("s", create=False)
    path = os.path.join("/run/netns", name)
    os.makedirs("/run/netns", exist_ok=True)
    open(path, "w").close()
    assert netns.netns_state(name) == model.STALE
    first = link_plan.plan_netns({"name": name, "state": "present"}, netns.netns_state(name))
    session.apply(first.actions)
    assert netns.netns_state(name) is True
    assert link_plan.plan_netns({"name": name, "state": "present"}, netns.netns_state(name)).actions == []


def test_recreated_peer_keeps_the_mac_given_by_its_address(session, prefix, named_ns, host_links):
    pod = named_ns("p")
    host = prefix + "v"
    host_links.append(host)
    want = {"name": host, "peer": "eth0", "netns": pod, "master": None, "mtu": None, "hairpin": None,
            "up": True, "state": "present", "peer_mac": model.pod_mac("10.244.3.2/24")}

    def read():
        return {"host": session.ns(None).links().get(host), "peer": session.ns(pod).links().get("eth0"),
                "stray_peer": None, "netns_exists": True, "master": None}

    session.apply(link_plan.plan_veth(want, read()).actions)
    assert session.ns(pod).links()["eth0"]["mac"] == "0a:58:0a:f4:03:02"
    session.apply([model.Action("link_del", None, host, {})])  # the pair is lost by hand
    assert read()["peer"] is None
    session.apply(link_plan.plan_veth(want, read()).actions)
    assert session.ns(pod).links()["eth0"]["mac"] == "0a:58:0a:f4:03:02"


def test_reading_only_named_links_matches_the_full_read(session, prefix, host_links):
    br, host, peer = prefix + "b", prefix + "v", prefix + "p"
    host_links.extend([host, br])
    session.apply([model.Action("bridge_add", None, br, {}),
                   model.Action("veth_add", None, host, {"peer": peer, "peer_ns": None}),
                   model.Action("link_set", None, host, {"master": br}),
                   model.Action("addr_add", None, br, {"address": "10.253.9.1/24"})])
    handle = session.ns(None)
    full = handle.links(with_addresses=[br])
    some = handle.links(with_addresses=[br], only=[host, br, prefix + "none"])
    assert sorted(some) == sorted([host, br])
    assert some[host] == full[host] and some[host]["master"] == br
    assert some[br] == full[br] and some[br]["addresses"] == ["10.253.9.1/24"]
    # The master is named even when the bridge itself was not asked for.
    assert handle.links(only=[host])[host]["master"] == br
    assert handle.links(only=[prefix + "none"]) == {}


def test_reads_agree_with_pyroute2s_own(session, prefix, host_links):
    """The plain dumps decode to what pyroute2's IPRoute reports."""
    br = prefix + "b"
    host_links.append(br)
    session.apply([model.Action("bridge_add", None, br, {}),
                   model.Action("addr_add", None, br, {"address": "10.253.8.1/24"}),
                   model.Action("link_set", None, br, {"up": True})])
    handle = session.ns(None)
    links = handle.links(with_addresses=[br])
    ipr = handle.ipr
    names = dict((m["index"], m.get_attr("IFLA_IFNAME")) for m in ipr.get_links())
    assert sorted(links) == sorted(names.values())
    for msg in ipr.get_links():
        assert _netlink.link_state(msg, names) == dict(links[msg.get_attr("IFLA_IFNAME")], addresses=[])
    assert links[br]["addresses"] == ["10.253.8.1/24"]
    theirs = sorted((m.get_attr("RTA_DST"), m["dst_len"]) for m in ipr.get_routes(family=2, table=254))
    ours = sorted((r["dst"].split("/")[0], int(r["dst"].split("/")[1])) for r in handle.routes(254, (4,))
                  if r["dst"] != "default")
    assert ours == theirs and ("10.253.8.0", 24) in ours


def test_creating_what_a_concurrent_run_made_meanwhile_goes_on(session, prefix, named_ns, host_links):
    """A plan made before another run created the same objects: EEXIST, read again, what is there is wanted."""
    pod = named_ns("p")
    br, host = prefix + "b", prefix + "v"
    host_links.extend([br, host])
    actions = [model.Action("bridge_add", None, br, {}),
               model.Action("addr_add", None, br, {"address": "10.77.9.1/24"}),
               model.Action("veth_add", None, host, {"peer": "eth0", "peer_ns": pod}),
               model.Action("netns_add", None, pod, {})]
    session.apply(actions[:3])
    with _netlink.Session() as other:
        other.apply(actions)
    assert other.applied == actions
    link = session.ns(None).links(with_addresses=[br])[br]
    assert link["kind"] == "bridge" and link["addresses"] == ["10.77.9.1/24"]
