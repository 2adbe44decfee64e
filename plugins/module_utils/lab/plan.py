# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's planner (pure): desired lab + current state -> ordered actions + diff.

Links, addresses and routes are planned with the collection's own planners
(``core.plan.links``, ``core.plan.routes``); the lab adds its own operations:
the lab directory's mount, member namespaces made and removed, stray mounts,
IPv4 (and with ipv6, IPv6) forwarding in the router, and with ipv6 the IPv6
settings of the namespaces that hold lab addresses (no duplicate address
detection, no router advertisements: ``topology.IPV6_CONF``), made before
their links so that links made later inherit them.

Ownership of the lab directory: the lab writes its marker file (``.podnet-lab``)
into the directory when it makes it, and only a marked directory is built on
or torn down. A directory without the marker is taken as a lab of an earlier
release (which wrote none) only when that is provable (``proven_lab``): it is
a mount of itself, the switch, router and external namespace files are mounted
in it, and it holds nothing but member directories of namespace files. Any
other directory is refused by path, before anything changes, except that an
empty one becomes a lab (there is nothing in it to lose).
"""

from __future__ import annotations

import os

from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ConflictError
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import MAIN_TABLE, Op, Plan
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan.links import is_pair, plan_interface_addresses
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan.routes import plan_routes
from ansible_collections.podnet.mesh.plugins.module_utils.core.validate import route_key
from ansible_collections.podnet.mesh.plugins.module_utils.lab.topology import (
    BRIDGE, CONTROLLER, EXTERNAL, INFRA, IPV6_CONF, LAB_PROTO, MARKER, NODE_FILES, ROUTER, SWITCH, current_view,
    members, natural, ns_file, ssh_paths, topology, wanted_view)

# The lab's operations besides core.model.Op's.
SSH_KEY = "lab_ssh_key"        # the lab's SSH client key pair and known_hosts
SSHD_START = "lab_sshd_start"  # the SSH user and sshd inside a node
SSHD_STOP = "lab_sshd_stop"    # sshd of a node stopped (the lab no longer has ssh)
BOOT = "lab_boot"              # a node's enabled boot units run
IPV6_SETTINGS = "lab_ipv6_conf"  # IPv6 on, no DAD, no RAs in a namespace (all, default, its lab links)

FORWARDING = "net/ipv4/ip_forward"
FORWARDING6 = "net/ipv6/conf/all/forwarding"


def plan(want, cur, assume_missing=False):  # pylint: disable=unused-argument
    """Desired lab + current state -> Plan.

    cur: {exists: lab directory exists, mounted: lab directory is a mount,
          shared: that mount propagates (must be made private),
          marked: the lab directory holds the lab's marker file,
          unknown: [what the lab directory holds that no lab holds (relative paths)],
          dirs: [member directories below the lab directory],
          members: {label: [namespace files that are mounted]},
          strays: [paths of other mounts below the lab directory],
          links: {label: {ifname: link}} (namespaces with a mounted net file),
          routes: {label: [routes of table main]},
          forwarding: {label: bool},
          forwarding6: {label: bool} (IPv6; read with ipv6 only),
          ipv6_conf: {label: bool: IPV6_CONF is set everywhere} (read with ipv6 only),
          ssh_key: the lab's SSH key pair exists,
          layered: [member directories holding layers (a node of an earlier release has none)],
          sshd: [nodes with sshd running inside]}
    assume_missing changes nothing: one plan makes every member of the lab it wires.

    A node made (again) boots: after its wiring, sshd is started (with ssh) and
    its enabled boot units run. A node in want["reboot"] is shut down (every
    process inside stopped, its namespaces dropped) and made again; its
    layers (its disk) stay.
    """
    lab = want["path"]
    _check_ownership(want, cur)
    result = Plan(current_view(want, cur), wanted_view(want))
    if want["state"] == "absent":
        _plan_teardown(result, want, cur)
        return result

    mark = "" if not cur["exists"] or cur.get("marked") else " and mark it as a lab (%s)" % MARKER
    if not cur["mounted"]:
        result.add(Op.LAB_MOUNT, None, lab, text="mount %s privately on itself%s" % (lab, mark))
    elif cur["shared"]:
        result.add(Op.LAB_MOUNT, None, lab, text="make the mount %s private%s" % (lab, mark))
    elif mark:
        result.add(Op.LAB_MOUNT, None, lab, text="mark %s as a lab (%s)" % (lab, MARKER))

    wanted = dict(members(want))
    fresh = set()
    links = {}
    # Members that are no longer wanted go first, their switch port before them
    # (the kernel destroys a namespace asynchronously, veths included).
    for stray in cur.get("strays", []):
        result.add(Op.UMOUNT, None, stray, text="unmount %s (not part of the lab)" % stray)
    switch_links = cur["links"].get(SWITCH, {})
    for label in sorted(cur["members"], key=natural):
        if label not in wanted:
            if label in switch_links:
                result.add(Op.LINK_DEL, ns_file(lab, SWITCH), label)
            _remove_member(result, lab, label, cur["members"][label])
    if want.get("ssh") and not cur.get("ssh_key"):
        result.add(SSH_KEY, None, lab, text="make the lab's SSH key %s" % ssh_paths(lab)["key"])
    create = []
    reboot = set(want.get("reboot", ()))
    for label, files in members(want):
        have = set(cur["members"].get(label, ()))
        # A node made by a release without layers shares the machine's files: made again.
        unlayered = files == NODE_FILES and cur.get("layered") is not None and label not in cur["layered"]
        if have == set(files) and label not in reboot and not unlayered:
            links[label] = cur["links"].get(label, {})
            continue
        if label in reboot and have:
            _remove_member(result, lab, label, sorted(have), keep=True,
                           text="shut down node %s (stop its processes, drop its namespaces)" % label)
        elif have or label in cur.get("dirs", ()):
            _remove_member(result, lab, label, sorted(have), keep=True)
        create.append(label)
        fresh.add(label)
        links[label] = {}
    for label in create:
        result.add(Op.NS_CREATE, None, label, path=os.path.join(lab, label),
                   files=list(wanted[label]), root=want["root"],
                   text="create %s %s" % ("node" if wanted[label] == NODE_FILES else "namespace",
                                          os.path.join(lab, label)))

    topo = topology(want)
    for label in sorted(topo["ipv6_conf"], key=natural):
        if label in fresh or not cur.get("ipv6_conf", {}).get(label):
            interfaces = topo["ipv6_conf"][label]
            result.add(IPV6_SETTINGS, None, label, path=ns_file(lab, label), interfaces=list(interfaces),
                       settings=[list(item) for item in IPV6_CONF],
                       text="set IPv6 %s for all, default, %s in %s" % (
                           ", ".join("%s=%s" % item for item in IPV6_CONF), ", ".join(interfaces),
                           ns_file(lab, label)))
    _plan_subnets(result, lab, topo, links)
    readdressed = _plan_wiring(result, lab, topo, links)
    for label, _files in members(want):
        lo = links[label].get("lo")
        if lo is None or not lo["up"]:
            result.add(Op.LINK_SET, ns_file(lab, label), "lo", up=True)
    _plan_routes(result, lab, topo, cur, fresh, readdressed)
    for label in topo["forwarding"]:
        if label in fresh or not cur["forwarding"].get(label):
            result.add(Op.SYSCTL, None, label, path=ns_file(lab, label),
                       key=FORWARDING, value="1",
                       text="enable IPv4 forwarding in %s" % ns_file(lab, label))
    for label in topo["forwarding6"]:
        if label in fresh or not cur.get("forwarding6", {}).get(label):
            result.add(Op.SYSCTL, None, label, path=ns_file(lab, label),
                       key=FORWARDING6, value="1",
                       text="enable IPv6 forwarding in %s" % ns_file(lab, label))
    _plan_boot(result, want, cur, fresh, readdressed)
    return result


def _plan_boot(result, want, cur, fresh, readdressed=()):
    """sshd (started or stopped) and the boot units of nodes made (again).

    A node whose IPv4 address changes (moved to another subnet) gets its sshd
    started again: it listens on the node's address.
    """
    lab = want["path"]
    running = set(cur.get("sshd", ()))
    for node in want["nodes"]:
        label = node["name"]
        ip = node["address"].split("/", 1)[0]
        if want.get("ssh") and label in running and label not in fresh and (label, 4) in readdressed:
            result.add(SSHD_STOP, None, label, path=os.path.join(lab, label),
                       text="stop sshd on node %s (its address changes)" % label)
            running.discard(label)
        if want.get("ssh") and (label in fresh or label not in running):
            result.add(SSHD_START, None, label, path=os.path.join(lab, label), ip=ip, user=want["ssh_user"],
                       key=ssh_paths(lab)["key"],
                       text="start sshd on node %s (%s:22, user %s)" % (label, ip, want["ssh_user"]))
        elif not want.get("ssh") and label in running and label not in fresh:
            result.add(SSHD_STOP, None, label, path=os.path.join(lab, label),
                       text="stop sshd on node %s" % label)
    for node in want["nodes"]:
        label = node["name"]
        if label in fresh:
            result.add(BOOT, None, label, path=os.path.join(lab, label),
                       text="boot node %s (run the units enabled in its /etc/systemd/system)" % label)


def proven_lab(cur):
    """Whether an unmarked lab directory is provably a lab of an earlier release.

    Such a lab is a private mount of itself whose switch, router and external
    namespace files are mounted, and holds nothing but member directories of
    namespace files: tearing it down removes nothing but namespace files.
    """
    members_ = cur["members"]
    return (cur["mounted"] and not cur.get("unknown") and not cur.get("strays")
            and all("net" in members_.get(label, ()) for label in INFRA))


def _check_ownership(want, cur):
    """Refuse (ConflictError naming the path) a lab directory that is no lab of ours."""
    if not cur["exists"] or cur.get("marked") or proven_lab(cur):
        return
    empty = not cur.get("unknown") and not cur.get("dirs") and not cur["mounted"] and not cur.get("strays")
    if empty and want["state"] == "present":
        return  # an empty directory becomes the lab (and is marked): nothing in it to lose
    found = cur.get("unknown") or cur.get("strays") or cur.get("dirs") or []
    raise ConflictError(
        "name", want["path"],
        "is a directory that no podnet.mesh lab made: it has no marker file %s and is not a lab of an "
        "earlier release (a private mount of itself holding only the namespace files of switch, router, "
        "external and nodes%s); it is left alone and nothing was changed"
        % (MARKER, "; it holds %s" % ", ".join(found[:5]) + (", ..." if len(found) > 5 else "") if found else ""))


def _plan_subnets(result, lab, topo, links):
    """The switch's bridges, one per subnet (made, up); those of subnets no longer wanted removed.

    A subnet no longer wanted takes the router's port on it with it (the veth's
    other end, in the router, goes too).
    """
    switch_links = links[SWITCH]
    wanted_ports = set(port for (label, port) in topo["masters"] if label == SWITCH)
    for name in sorted(switch_links, key=natural):
        stale_bridge = name.startswith(BRIDGE + ".") and name not in topo["bridges"]
        stale_port = name.startswith(ROUTER + ".") and name not in wanted_ports
        if stale_bridge or stale_port:
            result.add(Op.LINK_DEL, ns_file(lab, SWITCH), name,
                       text="remove %s %s (a subnet the lab no longer has) in %s" % (
                           "bridge" if stale_bridge else "the router's port", name, ns_file(lab, SWITCH)))
    for name in topo["bridges"]:
        _plan_bridge(result, lab, switch_links.get(name), name)


def _plan_bridge(result, lab, bridge, name=BRIDGE):
    """A bridge of the switch: made (again, if a link of another kind has its name), up."""
    switch_ns = ns_file(lab, SWITCH)
    if bridge is not None and bridge.get("kind") != "bridge":
        result.add(Op.LINK_DEL, switch_ns, name)
        bridge = None
    if bridge is None:
        result.add(Op.BRIDGE_ADD, switch_ns, name)
        bridge = {"up": False}
    if not bridge["up"]:
        result.add(Op.LINK_SET, switch_ns, name, up=True)


def _plan_wiring(result, lab, topo, links):
    """Every veth pair with its MACs, bridge port, addresses and admin state.

    Returns (label, family) of the namespaces that lose an address of that
    family (the kernel drops the routes through it).
    """
    readdressed = set()
    for a_label, a_name, b_label, b_name in topo["veths"]:
        a_ns, b_ns = ns_file(lab, a_label), ns_file(lab, b_label)
        a_link = links[a_label].get(a_name)
        b_link = links[b_label].get(b_name)
        if not is_pair(a_link, b_link, b_ns):
            if a_link is not None:
                result.add(Op.LINK_DEL, a_ns, a_name)
            if b_link is not None:
                result.add(Op.LINK_DEL, b_ns, b_name)
            result.add(Op.VETH_ADD, a_ns, a_name, peer=b_name, peer_ns=b_ns)
            a_link = {"master": None, "up": False, "addresses": [], "mac": None}
            b_link = {"master": None, "up": False, "addresses": [], "mac": None}
        for label, name, link in ((a_label, a_name, a_link), (b_label, b_name, b_link)):
            mac = topo["macs"].get((label, name))
            if mac is not None and link.get("mac") != mac:
                result.add(Op.LINK_SET, ns_file(lab, label), name, mac=mac,
                           text="set MAC %s on %s in namespace %s" % (mac, name, ns_file(lab, label)))
        changes = {}
        master = topo["masters"].get((a_label, a_name))
        if master is not None and a_link["master"] != master:
            changes["master"] = master
        if not a_link["up"]:
            changes["up"] = True
        if changes:
            result.add(Op.LINK_SET, a_ns, a_name, **changes)
        # The first end is up by now: its addresses only. The second end: addresses, then up.
        for label, name, link in ((a_label, a_name, dict(a_link, up=True)), (b_label, b_name, b_link)):
            addresses = plan_interface_addresses(
                {"netns": ns_file(lab, label), "interface": name, "up": True, "state": "present",
                 "addresses": topo["addresses"].get((label, name))},
                {"netns_exists": True, "link": link, "lo": None})
            result.extend(addresses)
            for action in addresses.actions:
                if action.op == Op.ADDR_DEL:
                    readdressed.add((label, 6 if ":" in action.args["address"] else 4))
    return readdressed


def _plan_routes(result, lab, topo, cur, fresh, readdressed):
    """The lab's routes (protocol static), one namespace and address family at a time.

    The lab's namespaces are its own: a route of table main to the same
    destination counts as the lab's whoever made it, and is replaced when its
    gateway differs. Routes of a namespace that was just made are not there;
    those of a family whose address a namespace loses may be gone with it, so
    they are written with replace whatever was read. IPv6 routes of protocol
    static that the lab no longer wants (a lab without ipv6 now) are removed.
    """
    for label in sorted(topo["routes"], key=natural):
        for family in (4, 6):
            wanted = [r for r in topo["routes"][label] if r["family"] == family]
            if not wanted:
                continue
            known = label not in fresh and (label, family) not in readdressed
            have = [r for r in cur["routes"].get(label, []) if r["family"] == family] if known else []
            result.extend(plan_routes(
                {"netns": ns_file(lab, label), "routes": wanted, "purge": False,
                 "state": "present", "proto": LAB_PROTO, "table": MAIN_TABLE,
                 "upsert": (label, family) in readdressed},
                {"netns_exists": True, "ours": dict((route_key(r), r) for r in have), "foreign": {},
                 "connected": None, "links": None}))
        if label in fresh:
            continue
        wanted = set(route_key(r) for r in topo["routes"][label])
        # On a node, only IPv6 routes of protocol static are the lab's for sure (the node's own
        # administrator may add IPv4 ones); the external host and the controller are the lab's.
        families = (4, 6) if label in (EXTERNAL, CONTROLLER) else (6,)
        stale = [r for r in cur["routes"].get(label, [])
                 if r["family"] in families and r.get("proto") == LAB_PROTO and route_key(r) not in wanted]
        if stale:
            result.extend(plan_routes(
                {"netns": ns_file(lab, label), "routes": stale, "purge": False, "state": "absent",
                 "proto": LAB_PROTO, "table": MAIN_TABLE},
                {"netns_exists": True, "ours": dict((route_key(r), r) for r in stale), "foreign": {},
                 "connected": None, "links": None}))


def _remove_member(result, lab, label, files, keep=False, text=None):
    """The member's namespace files unmounted and removed; keep: its layers stay."""
    path = os.path.join(lab, label)
    result.add(Op.NS_REMOVE, None, label, path=path, files=list(files), keep=keep,
               text=text or ("remove the namespaces of %s" % path if keep else "remove %s" % path))


def _plan_teardown(result, want, cur):
    lab = want["path"]
    for stray in cur.get("strays", []):
        result.add(Op.UMOUNT, None, stray, text="unmount %s" % stray)
    for label in sorted(cur["members"], key=natural):
        _remove_member(result, lab, label, cur["members"][label])
    if cur["exists"]:
        result.add(Op.LAB_REMOVE, None, lab, mounted=cur["mounted"], text="remove %s" % lab)
