# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab: simulated pod-network nodes on one machine, made of namespaces.

Layout of a lab called NAME under ROOT (default /run/podnet-lab)::

    ROOT/NAME/                 a private bind mount of itself
    ROOT/NAME/<node>/net       the node's network namespace   (nsfs bind mounts,
    ROOT/NAME/<node>/mnt       its mount namespace              made by
    ROOT/NAME/<node>/uts       its UTS namespace (hostname)     unshare(1))
    ROOT/NAME/switch/net       the switch: bridge "switch", one port per node + "router"
    ROOT/NAME/router/net       the nodes' default gateway, forwarding, eth0 on the
                               switch and eth1 towards the external host
    ROOT/NAME/external/net     the "external" host: eth0, a route to the switch
                               network via the router and nothing towards the pods

A node's mount namespace has a private tmpfs on /run/netns (its pods' names
never collide with another node's) and its own sysfs (/sys/class/net shows
the node's links). Nothing is ever added to the namespace the module runs in.

This file has three parts:

* pure functions (no kernel access, unit-tested without root): the node
  pattern used by the inventory plugin (``generate``), validation, the desired
  topology and the planner (desired + current -> ordered actions + diff);
* ``read``: the current state, from /proc/self/mountinfo and netlink;
* ``LabSession``: executes a plan. Namespace files are made by util-linux
  unshare(1), links, addresses and routes by the netlink layer (``_netlink``,
  which accepts a namespace file path wherever it accepts a name), mounts by
  mount(2)/umount2(2) and sysctls by writing /proc/sys from inside the
  namespace (setns(2) on the calling thread, then back).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import time

from ansible_collections.podnet.mesh.plugins.module_utils._module import OperationError
from ansible_collections.podnet.mesh.plugins.module_utils._plan import Plan, is_pair
from ansible_collections.podnet.mesh.plugins.module_utils._setns import InNetns, check, libc
from ansible_collections.podnet.mesh.plugins.module_utils._validate import (
    ValidationError,
    interface_address,
)

DEFAULT_ROOT = "/run/podnet-lab"
DEFAULT_NAME = "podnet"
DEFAULT_GATEWAY = "192.168.1.1/24"
DEFAULT_EXTERNAL = "203.0.113.10/24"
DEFAULT_CLUSTER_CIDR = "10.244.0.0/16"
DEFAULT_POD_PREFIX = 24
DEFAULT_PODS = ("red", "blue")
DEFAULT_NODE_OFFSET = 10
DEFAULT_NAME_PREFIX = "node"

SWITCH, ROUTER, EXTERNAL = "switch", "router", "external"
INFRA = (SWITCH, ROUTER, EXTERNAL)
# The bridge in the switch namespace is called like the namespace.
BRIDGE = SWITCH
# Namespace files: a node has all three, switch/router/external only net.
NODE_FILES = ("net", "mnt", "uts")
NET_FILES = ("net",)
# Routes the lab adds itself (nodes' default route, the external host's route
# back to the switch network) carry the kernel's "static" protocol, like any
# administrator's route: the collection's own protocol (149) marks routes that
# pod_route may purge, and the lab's default route must never be among them.
LAB_PROTO = 4
MAIN_TABLE = 254
# Reserved member names: the infrastructure namespaces, and "lo" (every
# member's name is also the name of its port on the switch).
RESERVED = INFRA + ("lo",)
NODE_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,13}[A-Za-z0-9])?$")
LAB_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SAFE_PATH_RE = re.compile(r"^/[A-Za-z0-9_./@+-]*$")


# ------------------------------------------------------------------ pattern
def generate(count, gateway=DEFAULT_GATEWAY, cluster_cidr=DEFAULT_CLUSTER_CIDR,
             pod_prefix=DEFAULT_POD_PREFIX, pods=DEFAULT_PODS, offset=DEFAULT_NODE_OFFSET,
             name_prefix=DEFAULT_NAME_PREFIX):
    """The lab's node pattern for count nodes.

    Node i (1-based) is called name_prefix + i, has the address
    network(gateway) + offset + i (192.168.1.11, .12, ...), the i-th subnet of
    cluster_cidr of length pod_prefix as pod CIDR (10.244.i.0/24) and one pod
    per name in pods, at the 2nd, 3rd, ... address of that CIDR.

    When the nodes do not fit in the gateway's subnet, its prefix is widened
    until they do (192.168.1.1/24 becomes 192.168.1.1/23 for 250 nodes, which
    keeps every address of the smaller lab). Returns {gateway (possibly
    widened, CIDR), prefix, nodes: [{name, address (CIDR), ip, pod_cidr, pods}]}.
    Raises ValueError with a readable message for impossible requests.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError("the node count must be a positive integer, not %r" % (count,))
    if not isinstance(gateway, str) or "/" not in gateway:
        raise ValueError("gateway %r is not an address in CIDR form such as 192.168.1.1/24"
                         % (gateway,))
    gw = ipaddress.ip_interface(gateway)
    if gw.version != 4:
        raise ValueError("gateway %s: the lab is IPv4 only" % gateway)
    cluster = ipaddress.ip_network(cluster_cidr)
    if not cluster.prefixlen <= pod_prefix <= 30:
        raise ValueError("pod prefix /%d must be between the cluster prefix /%d and /30"
                         % (pod_prefix, cluster.prefixlen))
    subnets = 2 ** (pod_prefix - cluster.prefixlen)
    if count > subnets - 1:
        raise ValueError(
            "%d nodes need %d pod CIDRs of /%d after the first, but %s holds only %d"
            % (count, count, pod_prefix, cluster, subnets - 1))
    pod_hosts = 2 ** (32 - pod_prefix) - 3  # minus network, gateway, broadcast
    if len(pods) > pod_hosts:
        raise ValueError("%d pods do not fit in a /%d pod CIDR" % (len(pods), pod_prefix))
    base = int(gw.network.network_address)
    last = ipaddress.IPv4Address(base + offset + count)
    prefix = gw.network.prefixlen
    while True:
        net = ipaddress.ip_interface("%s/%d" % (gw.ip, prefix)).network
        if last in net and last != net.broadcast_address:
            break
        prefix -= 1
        if prefix < 8:
            raise ValueError("%d nodes from %s do not fit in any IPv4 subnet" % (count, gateway))
    nodes = []
    step = 2 ** (32 - pod_prefix)
    for i in range(1, count + 1):
        ip = ipaddress.IPv4Address(base + offset + i)
        if ip == gw.ip:
            raise ValueError("node %d would get the gateway's address %s" % (i, ip))
        pod_net = ipaddress.ip_network("%s/%d" % (
            ipaddress.IPv4Address(int(cluster.network_address) + i * step), pod_prefix))
        nodes.append({
            "name": "%s%d" % (name_prefix, i),
            "ip": str(ip),
            "address": "%s/%d" % (ip, prefix),
            "pod_cidr": str(pod_net),
            "pods": [{"name": pod, "address": str(pod_net.network_address + 2 + j)}
                     for j, pod in enumerate(pods)],
        })
    return {"gateway": "%s/%d" % (gw.ip, prefix), "prefix": prefix, "nodes": nodes}


# --------------------------------------------------------------- validation
def lab_path(root, name):
    return os.path.join(root, name)


def member_name(value, path):
    if not isinstance(value, str) or not NODE_NAME_RE.match(value):
        raise ValidationError(
            path, value,
            "is not a valid node name: 1-15 letters, digits or '-', starting and ending with a "
            "letter or digit (it is the node's hostname and the name of its switch port)")
    if value in RESERVED:
        raise ValidationError(path, value, "is reserved for the lab's own namespaces (%s)"
                              % ", ".join(RESERVED))
    return value


def _ipv4_address(value, path):
    normal = interface_address(value, path)
    iface = ipaddress.ip_interface(normal)
    if iface.version != 4:
        raise ValidationError(path, value, "is not an IPv4 address: the lab is IPv4 only")
    if iface.network.prefixlen > 30:
        raise ValidationError(path, value, "needs a subnet of at least 4 addresses (/30 or shorter)")
    return normal


def external_gateway(external):
    """The router's address on the external link: the first host, or the last if taken."""
    iface = ipaddress.ip_interface(external)
    hosts = list(_first_last_host(iface.network))
    router = hosts[0] if hosts[0] != iface.ip else hosts[1]
    return "%s/%d" % (router, iface.network.prefixlen)


def _first_last_host(net):
    yield net.network_address + 1
    yield net.broadcast_address - 1


def validate(params):
    """Module parameters -> want (normalised); ValidationError names what is wrong."""
    state = params.get("state") or "present"
    name = params.get("name")
    if not isinstance(name, str) or not LAB_NAME_RE.match(name):
        raise ValidationError(
            "name", name, "is not a valid lab name: 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit")
    root = params.get("root") or DEFAULT_ROOT
    if not isinstance(root, str) or not SAFE_PATH_RE.match(root) or "/../" in root + "/":
        raise ValidationError(
            "root", root, "must be an absolute path of letters, digits and _ . / @ + - "
            "(without '..')")
    root = os.path.normpath(root)
    if root == "/":
        raise ValidationError("root", root, "must not be /")
    want = {"name": name, "root": root, "path": lab_path(root, name), "state": state}
    if state == "absent":
        want.update(nodes=[], gateway=None, external=None, router_external=None)
        return want

    gateway = _ipv4_address(params.get("gateway") or DEFAULT_GATEWAY, "gateway")
    external = _ipv4_address(params.get("external") or DEFAULT_EXTERNAL, "external")
    switch_net = ipaddress.ip_interface(gateway).network
    external_net = ipaddress.ip_interface(external).network
    if switch_net.overlaps(external_net):
        raise ValidationError(
            "external", external, "overlaps the switch network %s of the gateway" % switch_net)
    nodes = params.get("nodes")
    if nodes is None:
        nodes = []
    if not isinstance(nodes, list):
        raise ValidationError("nodes", nodes, "must be a list of {name, address}")
    result, names, ips = [], {}, {str(ipaddress.ip_interface(gateway).ip): "gateway"}
    for index, node in enumerate(nodes):
        path = "nodes[%d]" % index
        if not isinstance(node, dict):
            raise ValidationError(path, node, "must be a dict with name and address")
        unknown = sorted(set(node) - {"name", "address"})
        if unknown:
            raise ValidationError(path, node, "has unknown key(s) %s; allowed: name, address"
                                  % ", ".join(unknown))
        node_name = member_name(node.get("name"), path + ".name")
        if node_name in names:
            raise ValidationError(path + ".name", node_name,
                                  "is listed twice (also nodes[%d])" % names[node_name])
        names[node_name] = index
        address = node.get("address")
        if address is None:
            raise ValidationError(path + ".address", address,
                                  "is required: the node's address on the switch in CIDR form")
        address = _ipv4_address(address, path + ".address")
        iface = ipaddress.ip_interface(address)
        if iface.network != switch_net:
            raise ValidationError(
                path + ".address", address,
                "is not on the switch network %s (gateway %s); every node must be" %
                (switch_net, gateway))
        if str(iface.ip) in ips:
            raise ValidationError(path + ".address", address,
                                  "is already taken by %s" % ips[str(iface.ip)])
        ips[str(iface.ip)] = "nodes[%d]" % index
        result.append({"name": node_name, "address": address})
    want.update(nodes=result, gateway=gateway, external=external,
                router_external=external_gateway(external))
    return want


# ----------------------------------------------------------------- topology
def members(want):
    """(label, files) of every namespace of the lab, infrastructure first."""
    result = [(label, NET_FILES) for label in INFRA]
    result.extend((node["name"], NODE_FILES) for node in want["nodes"])
    return result


def ns_file(lab, label, kind="net"):
    return os.path.join(lab, label, kind)


def topology(want):
    """The desired wiring: veth pairs, interface addresses, routes, sysctls.

    Labels ('switch', 'node1', ...) name namespaces; the planner turns them
    into namespace file paths.
    """
    gw = ipaddress.ip_interface(want["gateway"])
    switch_net = str(gw.network)
    router_ext = ipaddress.ip_interface(want["router_external"])
    veths = [(SWITCH, ROUTER, ROUTER, "eth0"), (ROUTER, "eth1", EXTERNAL, "eth0")]
    veths.extend((SWITCH, node["name"], node["name"], "eth0") for node in want["nodes"])
    addresses = {(ROUTER, "eth0"): [want["gateway"]], (ROUTER, "eth1"): [want["router_external"]],
                 (EXTERNAL, "eth0"): [want["external"]]}
    routes = {EXTERNAL: [_route(switch_net, str(router_ext.ip))]}
    for node in want["nodes"]:
        addresses[(node["name"], "eth0")] = [node["address"]]
        routes[node["name"]] = [_route("default", str(gw.ip))]
    return {
        "veths": veths,
        "addresses": addresses,
        "macs": dict((key, stable_mac(values[0])) for key, values in addresses.items()),
        "routes": routes,
        "forwarding": [ROUTER],
    }


def stable_mac(address):
    """A locally administered MAC from an IPv4 address: 02:70:6e + its last three bytes.

    A node (or the router) that is made again keeps its MAC, so the ARP caches
    of its neighbours stay right.
    """
    packed = ipaddress.ip_interface(address).ip.packed
    return "02:70:6e:%02x:%02x:%02x" % tuple(bytearray(packed[1:]))


def _route(dst, via):
    return {"dst": dst, "family": 4, "via": via, "dev": None, "metric": 0}


# ------------------------------------------------------------------ planner
def current_view(want, cur):
    """What the lab is now, for diff mode and for reporting."""
    if not cur["exists"]:
        return {"name": want["name"], "path": want["path"], "state": "absent"}
    nodes = []
    for label in sorted(cur["members"], key=_natural):
        if label in INFRA:
            continue
        nodes.append(" ".join([label] + _addresses(cur, label, "eth0")))
    view = {"name": want["name"], "path": want["path"], "state": "present", "nodes": nodes}
    # Addresses are read only when the lab is to be present.
    for key, label in (("gateway", ROUTER), ("external", EXTERNAL)):
        address = _first(_addresses(cur, label, "eth0"))
        if address is not None:
            view[key] = address
    return view


def wanted_view(want):
    if want["state"] == "absent":
        return {"name": want["name"], "path": want["path"], "state": "absent"}
    return {
        "name": want["name"], "path": want["path"], "state": "present",
        "gateway": want["gateway"], "external": want["external"],
        "nodes": ["%s %s" % (n["name"], n["address"])
                  for n in sorted(want["nodes"], key=lambda n: _natural(n["name"]))],
    }


def render(want, cur, predicted):
    """The lab object a module returns: from want in check mode, else as read back."""
    lab = want["path"]
    result = {"name": want["name"], "path": lab}
    if want["state"] == "absent":
        result["state"] = "absent" if predicted or not cur["exists"] else "present"
        return result
    if predicted:
        nodes = [(n["name"], n["address"]) for n in want["nodes"]]
        gateway, external = want["gateway"], want["external"]
    else:
        nodes = [(label, _first(_addresses(cur, label, "eth0")))
                 for label in sorted(cur["members"], key=_natural) if label not in INFRA]
        gateway = _first(_addresses(cur, ROUTER, "eth0"))
        external = _first(_addresses(cur, EXTERNAL, "eth0"))
    result.update({
        "state": "present", "gateway": gateway, "external": external,
        "nodes": [dict([("name", name), ("address", address)]
                       + [(kind, ns_file(lab, name, kind)) for kind in NODE_FILES])
                  for name, address in nodes],
        "namespaces": dict((label, ns_file(lab, label)) for label in INFRA),
    })
    return result


def _first(values):
    return values[0] if values else None


def _addresses(cur, label, ifname):
    link = cur["links"].get(label, {}).get(ifname)
    return list(link["addresses"]) if link else []


def _natural(text):
    """Sort key: node2 before node10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def plan(want, cur):
    """Desired lab + current state -> Plan.

    cur: {exists: lab directory exists, mounted: lab directory is a mount,
          shared: that mount propagates (must be made private),
          members: {label: [namespace files that are mounted]},
          strays: [paths of other mounts below the lab directory],
          links: {label: {ifname: link}} (namespaces with a mounted net file),
          routes: {label: [routes of table main]},
          forwarding: {label: bool}}
    """
    lab = want["path"]
    plan_ = Plan(current_view(want, cur), wanted_view(want))
    if want["state"] == "absent":
        _plan_teardown(plan_, want, cur)
        return plan_

    if not cur["mounted"]:
        plan_.add("lab_mount", None, lab, text="mount %s privately on itself" % lab)
    elif cur["shared"]:
        plan_.add("lab_mount", None, lab, text="make the mount %s private" % lab)

    wanted = dict(members(want))
    fresh = set()
    links = {}
    # Members that are no longer wanted go first, their switch port before them
    # (the kernel destroys a namespace asynchronously, veths included).
    for stray in cur.get("strays", []):
        plan_.add("umount", None, stray, text="unmount %s (not part of the lab)" % stray)
    switch_links = cur["links"].get(SWITCH, {})
    for label in sorted(cur["members"], key=_natural):
        if label not in wanted:
            if label in switch_links:
                plan_.add("link_del", ns_file(lab, SWITCH), label)
            _remove_member(plan_, lab, label, cur["members"][label])
    create = []
    for label, files in members(want):
        have = set(cur["members"].get(label, ()))
        if have == set(files):
            links[label] = cur["links"].get(label, {})
            continue
        if have or label in cur.get("dirs", ()):
            _remove_member(plan_, lab, label, sorted(have))
        create.append(label)
        fresh.add(label)
        links[label] = {}
    for label in create:
        plan_.add("ns_create", None, label, path=os.path.join(lab, label),
                  files=list(wanted[label]), root=want["root"],
                  text="create %s %s" % ("node" if wanted[label] == NODE_FILES else "namespace",
                                         os.path.join(lab, label)))

    topo = topology(want)
    switch_ns = ns_file(lab, SWITCH)
    bridge = links[SWITCH].get(BRIDGE)
    if bridge is not None and bridge.get("kind") != "bridge":
        plan_.add("link_del", switch_ns, BRIDGE)
        bridge = None
    if bridge is None:
        plan_.add("bridge_add", switch_ns, BRIDGE)
        bridge = {"up": False}
    if not bridge["up"]:
        plan_.add("link_set", switch_ns, BRIDGE, up=True)

    readdressed = set()
    for a_label, a_name, b_label, b_name in topo["veths"]:
        a_ns, b_ns = ns_file(lab, a_label), ns_file(lab, b_label)
        a_link = links[a_label].get(a_name)
        b_link = links[b_label].get(b_name)
        if not is_pair(a_link, b_link, b_ns):
            if a_link is not None:
                plan_.add("link_del", a_ns, a_name)
            if b_link is not None:
                plan_.add("link_del", b_ns, b_name)
            plan_.add("veth_add", a_ns, a_name, peer=b_name, peer_ns=b_ns)
            a_link = {"master": None, "up": False, "addresses": [], "mac": None}
            b_link = {"master": None, "up": False, "addresses": [], "mac": None}
        for label, name, link in ((a_label, a_name, a_link), (b_label, b_name, b_link)):
            mac = topo["macs"].get((label, name))
            if mac is not None and link.get("mac") != mac:
                plan_.add("link_mac", ns_file(lab, label), name, address=mac,
                          text="set MAC %s on %s in namespace %s" % (mac, name, ns_file(lab, label)))
        changes = {}
        if a_label == SWITCH and a_link["master"] != BRIDGE:
            changes["master"] = BRIDGE
        if not a_link["up"]:
            changes["up"] = True
        if changes:
            plan_.add("link_set", a_ns, a_name, **changes)
        for label, name, link in ((a_label, a_name, a_link), (b_label, b_name, b_link)):
            wanted_addresses = topo["addresses"].get((label, name))
            if wanted_addresses is not None:
                have = list(link["addresses"])
                for address in have:
                    if address not in wanted_addresses:
                        plan_.add("addr_del", ns_file(lab, label), name, address=address)
                        # The kernel drops routes through a deleted address.
                        readdressed.add(label)
                for address in wanted_addresses:
                    if address not in have:
                        plan_.add("addr_add", ns_file(lab, label), name, address=address)
        if not b_link["up"]:
            plan_.add("link_set", b_ns, b_name, up=True)

    for label, _files in members(want):
        lo = links[label].get("lo")
        if lo is None or not lo["up"]:
            plan_.add("link_set", ns_file(lab, label), "lo", up=True)

    for label in sorted(topo["routes"], key=_natural):
        have = {} if label in fresh else dict(
            (r["dst"], r) for r in cur["routes"].get(label, []) if r["metric"] == 0)
        for route in topo["routes"][label]:
            current = have.get(route["dst"])
            if label in readdressed:
                op = "route_replace"  # there or not, after the address change
            elif current is None:
                op = "route_add"
            elif current["via"] != route["via"]:
                op = "route_replace"
            else:
                continue
            plan_.add(op, ns_file(lab, label), route["dst"], route=route, table=MAIN_TABLE,
                      proto=LAB_PROTO)

    for label in topo["forwarding"]:
        if label in fresh or not cur["forwarding"].get(label):
            plan_.add("sysctl", None, label, path=ns_file(lab, label),
                      key="net/ipv4/ip_forward", value="1",
                      text="enable IPv4 forwarding in %s" % ns_file(lab, label))
    return plan_


def _remove_member(plan_, lab, label, files):
    path = os.path.join(lab, label)
    plan_.add("ns_remove", None, label, path=path, files=list(files),
              text="remove %s" % path)


def _plan_teardown(plan_, want, cur):
    lab = want["path"]
    for stray in cur.get("strays", []):
        plan_.add("umount", None, stray, text="unmount %s" % stray)
    for label in sorted(cur["members"], key=_natural):
        _remove_member(plan_, lab, label, cur["members"][label])
    if cur["exists"]:
        plan_.add("lab_remove", None, lab, mounted=cur["mounted"], text="remove %s" % lab)


# ---------------------------------------------------------------- mountinfo
def _unescape(field):
    """Undo mountinfo's octal escapes (\\040 for a space, ...)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text):
    """Mounts as dicts {point, root, fstype, shared} in mount order."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 7:
            continue
        sep = fields.index("-")
        optional = fields[6:sep]
        mounts.append({
            "point": _unescape(fields[4]),
            "root": _unescape(fields[3]),
            "fstype": fields[sep + 1],
            "shared": any(o.startswith("shared:") for o in optional),
        })
    return mounts


def lab_mounts(mounts, lab):
    """From parsed mountinfo: {mounted, shared, files: {path: ns type}, strays: [path]}.

    The last mount on a point is the visible one. files holds namespace
    files (nsfs mounts) below the lab directory; strays any other mount below it.
    """
    prefix = lab.rstrip("/") + "/"
    state = {"mounted": False, "shared": False, "files": {}, "strays": []}
    below = {}
    for mount in mounts:
        point = mount["point"]
        if point == lab:
            state["mounted"] = True
            state["shared"] = mount["shared"]
        elif point.startswith(prefix):
            below[point] = mount
    for point, mount in below.items():
        if mount["fstype"] == "nsfs":
            state["files"][point] = mount["root"].split(":", 1)[0]
        else:
            state["strays"].append(point)
    state["strays"].sort(reverse=True)
    return state


def members_from_files(lab, files, dirs=()):
    """{label: [kinds]} of namespace files mounted in the expected places."""
    result = {}
    prefix = lab.rstrip("/") + "/"
    for path, nstype in files.items():
        rest = path[len(prefix):].split("/")
        if len(rest) != 2 or rest[1] not in NODE_FILES or rest[1] != nstype:
            continue
        result.setdefault(rest[0], []).append(rest[1])
    for label in dirs:
        result.setdefault(label, [])
    return dict((label, sorted(kinds)) for label, kinds in result.items())


# --------------------------------------------------------------------- read
def read(session, want):
    """Current state of the lab (see plan() for the shape)."""
    lab = want["path"]
    exists = os.path.isdir(lab)
    with open("/proc/self/mountinfo") as handle:
        mounts = lab_mounts(parse_mountinfo(handle.read()), lab)
    dirs = []
    if exists:
        dirs = sorted(d for d in os.listdir(lab) if os.path.isdir(os.path.join(lab, d)))
    cur = {
        "exists": exists or mounts["mounted"],
        "mounted": mounts["mounted"],
        "shared": mounts["shared"],
        "strays": list(mounts["strays"]),
        "dirs": dirs,
        "members": members_from_files(lab, mounts["files"], dirs),
        "links": {},
        "routes": {},
        "forwarding": {},
    }
    if want["state"] == "absent":
        return cur
    wanted = dict(members(want))
    for label, kinds in cur["members"].items():
        if "net" not in kinds or label not in wanted or set(kinds) != set(wanted[label]):
            continue
        ns = session.ns(ns_file(lab, label))
        cur["links"][label] = ns.links(with_addresses=["eth0", "eth1"])
        if label in (EXTERNAL,) or label not in INFRA:
            cur["routes"][label] = ns.routes(MAIN_TABLE, families=(4,))
        if label == ROUTER:
            cur["forwarding"][label] = read_sysctl(ns_file(lab, label), "net/ipv4/ip_forward") == "1"
    return cur


# ------------------------------------------------------------------ kernel
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 0x2


def mount(source, target, fstype, flags):
    check(libc().mount(source and source.encode(), target.encode(),
                       fstype and fstype.encode(), flags, None),
          "mount %s" % target)


def umount(target, lazy=False):
    check(libc().umount2(target.encode(), MNT_DETACH if lazy else 0), "umount %s" % target)


def read_sysctl(netns, key):
    with InNetns(netns):
        with open(os.path.join("/proc/sys", key)) as handle:
            return handle.read().strip()


def write_sysctl(netns, key, value):
    with InNetns(netns):
        with open(os.path.join("/proc/sys", key), "w") as handle:
            handle.write(value)


# The node's own view, set up inside its new namespaces: hostname; the copies
# of the machine's named network namespaces and of every lab's namespace files
# unmounted (lazily, with their submounts) so that this node does not keep
# them alive; a private tmpfs on /run/netns for its pods; sysfs of its own
# network namespace on /sys.
NODE_SETUP = r"""
set -e
printf '%s\n' "$1" > /proc/sys/kernel/hostname
umount -R -l /run/netns 2>/dev/null || true
for dir in "$2"/*/; do umount -R -l "$dir" 2>/dev/null || true; done
mkdir -p /run/netns
mount -t tmpfs -o mode=0755,size=4m podnet-lab-netns /run/netns
mount -t sysfs sysfs /sys
"""
# Node and infrastructure namespaces made at once (unshare processes).
CREATE_PARALLEL = 64


def unshare_command(path, label, files, root, unshare="unshare"):
    """argv that makes the namespace files of one member below path."""
    argv = [unshare] + ["--%s=%s" % ({"mnt": "mount"}.get(k, k), os.path.join(path, k))
                        for k in files]
    if "mnt" in files:
        argv += ["--propagation", "private", "--", "/bin/sh", "-c", NODE_SETUP,
                 "podnet-lab", label, root]
    else:
        argv += ["--", "true"]
    return argv


def namespace_inodes(paths):
    """{(st_dev, st_ino)} of mounted namespace files (to find processes inside)."""
    found = set()
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        found.add((st.st_dev, st.st_ino))
    return found


def processes_in(inodes, proc="/proc"):
    """PIDs whose net, mnt or uts namespace is one of inodes."""
    pids = []
    if not inodes:
        return pids
    for entry in os.listdir(proc):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        for kind in NODE_FILES:
            try:
                st = os.stat(os.path.join(proc, entry, "ns", kind))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in inodes:
                pids.append(int(entry))
                break
    return pids


def stop_processes(pids, grace=1.0):
    """SIGTERM, wait up to grace seconds, then SIGKILL what is left."""
    if not pids:
        return
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = [p for p in alive if _alive(p)]
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            # A zombie has exited already; it holds no namespace any more.
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def unmount_all(path):
    """Unmount everything mounted on path (stacked mounts too); lazily if busy."""
    for _attempt in range(16):
        try:
            umount(path)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOENT):
                return  # not (or no longer) a mount point
            if exc.errno != errno.EBUSY:
                raise LabError("cannot unmount %s: %s" % (path, exc.strerror), exc.errno)
            try:
                umount(path, lazy=True)
            except OSError as lazy:
                raise LabError("cannot unmount %s: %s" % (path, lazy.strerror), lazy.errno)
    raise LabError("cannot unmount %s: still mounted after 16 unmounts" % path, errno.EBUSY)


def remove_tree(path):
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise LabError("cannot remove %s: %s" % (exc.filename or path, exc.strerror), exc.errno)


class LabError(OperationError):
    """A lab operation failed; str() is the message (code: errno or None)."""


def netlink_session():
    """A _netlink.Session that only opens lab namespace files (absolute paths).

    The namespace the module runs in is refused: the lab never changes it.
    """
    from ansible_collections.podnet.mesh.plugins.module_utils import _netlink

    class LabNetlinkSession(_netlink.Session):
        def ns(self, name=None):
            if name is None or not name.startswith("/"):
                raise _netlink.NetlinkOpError(
                    "open namespace %s" % name, name, errno.EINVAL,
                    "the lab only works in its own namespace files")
            if name not in self._handles:
                self._handles[name] = _netlink.Namespace(name)
            return self._handles[name]

    return LabNetlinkSession()


class LabSession:
    """Executes lab plans: lab operations here, link operations via _netlink.

    Reads go through ns(path), which opens (once) a netlink handle in a
    namespace file. pyroute2 is only needed when there is netlink work:
    teardown runs without it.
    """

    def __init__(self, netlink_factory=None, unshare="unshare"):
        self._factory = netlink_factory
        self._netlink = None
        self.unshare = unshare
        self.applied = []

    def _session(self):
        if self._netlink is None:
            self._netlink = (self._factory or netlink_session)()
        return self._netlink

    def ns(self, path):
        return self._session().ns(path)

    def close(self):
        if self._netlink is not None:
            self._netlink.close()
            self._netlink = None

    def apply(self, actions):
        # Processes still inside namespaces that go away (a probe left running,
        # a shell) would keep them alive: stop them first, in one pass over /proc.
        doomed = [os.path.join(a.args["path"], kind)
                  for a in actions if a.op == "ns_remove" for kind in a.args["files"]]
        if doomed:
            stop_processes(processes_in(namespace_inodes(doomed)))
        pending = []
        for action in actions:
            if action.op == "ns_create":
                pending.append(action)
                continue
            self._create(pending)
            handler = getattr(self, "_" + action.op, None)
            if handler is not None:
                handler(action)
            else:
                self._netlink_op(action)
            self.applied.append(action)
        self._create(pending)

    def _netlink_op(self, action):
        from ansible_collections.podnet.mesh.plugins.module_utils import _netlink
        session = self._session()
        try:
            session.apply([action])
        except _netlink.NetlinkOpError as exc:
            # A link the kernel removed meanwhile with its namespace (or veth
            # peer) is as deleted as we wanted it.
            if action.op == "link_del" and exc.code == errno.ENODEV:
                return
            raise
        finally:
            del session.applied[:]

    # ------------------------------------------------------------ lab ops
    def _lab_mount(self, action):
        path = action.name
        try:
            os.makedirs(path, mode=0o755, exist_ok=True)
            with open("/proc/self/mountinfo") as handle:
                state = lab_mounts(parse_mountinfo(handle.read()), path)
            if not state["mounted"]:
                mount(path, path, None, MS_BIND)
            mount(None, path, None, MS_PRIVATE)
        except OSError as exc:
            raise LabError("cannot mount the lab directory %s privately on itself: %s"
                           % (path, exc.strerror or exc), exc.errno)

    def _create(self, pending):
        """Make the namespace files of several members at once."""
        if not pending:
            return
        batch, rest = pending[:CREATE_PARALLEL], pending[CREATE_PARALLEL:]
        procs = []
        try:
            for action in batch:
                path = action.args["path"]
                os.makedirs(path, mode=0o755, exist_ok=True)
                for kind in action.args["files"]:
                    open(os.path.join(path, kind), "a").close()
                argv = unshare_command(path, action.name, action.args["files"],
                                       action.args["root"], self.unshare)
                procs.append((action, subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE)))
        except OSError as exc:
            for _action, proc in procs:
                proc.wait()
            raise LabError("cannot create the namespaces of %s: %s"
                           % (pending[len(procs)].args["path"], exc.strerror or exc), exc.errno)
        failed = []
        for action, proc in procs:
            out, err = proc.communicate()
            if proc.returncode != 0:
                failed.append("%s: %s" % (action.args["path"],
                                          (err or out).decode("utf-8", "replace").strip()))
            else:
                self.applied.append(action)
        if failed:
            raise LabError("cannot create lab namespaces (unshare): %s" % "; ".join(failed))
        del pending[:]
        if rest:
            pending.extend(rest)
            self._create(pending)

    def _ns_remove(self, action):
        path = action.args["path"]
        for kind in action.args["files"]:
            name = os.path.join(path, kind)
            if self._netlink is not None:
                self._netlink.forget(name)
            unmount_all(name)
        remove_tree(path)

    def _umount(self, action):
        unmount_all(action.name)

    def _lab_remove(self, action):
        unmount_all(action.name)
        remove_tree(action.name)

    def _link_mac(self, action):
        ns = self.ns(action.ns)
        ns.call(action.args["text"], ns.ipr.link, "set", index=ns.index(action.name),
                address=action.args["address"])

    def _sysctl(self, action):
        try:
            write_sysctl(action.args["path"], action.args["key"], action.args["value"])
        except OSError as exc:
            raise LabError("cannot set %s=%s in %s: %s" % (
                action.args["key"], action.args["value"], action.args["path"],
                exc.strerror or exc), exc.errno)
