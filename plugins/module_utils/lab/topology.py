# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab as wanted (pure: no kernel access, unit-tested without root).

Layout of a lab called NAME under ROOT (default /run/podnet-lab)::

    ROOT/NAME/                 a private bind mount of itself
    ROOT/NAME/.podnet-lab      the marker: this directory is a lab, made by podnet.mesh
    ROOT/NAME/<node>/net       the node's network namespace   (nsfs bind mounts,
    ROOT/NAME/<node>/mnt       its mount namespace              made by
    ROOT/NAME/<node>/uts       its UTS namespace (hostname)     unshare(1))
    ROOT/NAME/switch/net       the switch: bridge "switch", one port per node + "router"
    ROOT/NAME/router/net       the nodes' default gateway, forwarding, eth0 on the
                               switch and eth1 towards the external host
    ROOT/NAME/external/net     the "external" host: eth0, a route to the switch
                               network via the router and nothing towards the pods
    ROOT/NAME/controller/net   with ssh only: an address on the switch network, where
                               ansible-playbook runs to reach the nodes' sshd
    ROOT/NAME/.ssh/            with ssh only: the client key, known_hosts, control sockets
    ROOT/NAME/<node>/layers/   copy-on-write layers (overlayfs) over the machine's /etc,
                               /home, /opt, /usr/local and /var/lib: the node's disk

A node's mount namespace has a private tmpfs on /run (so /run/netns: its
pods' names never collide with another node's), its own sysfs (/sys/class/net
shows the node's links) and copy-on-write layers over the machine's /etc,
/home, /opt, /usr/local and /var/lib, kept across a reboot, so that whatever
a task writes there stays on the node. Its system directories (NODE_DIRS)
start empty, whatever the machine has there. Nothing is ever added to the namespace the module runs in.

Here: the node pattern of the inventory plugin (``generate``), validation of
the module's parameters, the lab's members and their desired wiring
(``topology``), and the views of a lab (diff mode, the returned object).
"""

from __future__ import annotations

import ipaddress
import os
import re

from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ValidationError
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import derived_mac
from ansible_collections.podnet.mesh.plugins.module_utils.core.validate import interface_address

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
# With ssh: the namespace ansible-playbook runs in to reach the nodes over SSH.
CONTROLLER = "controller"
# Members that are not nodes.
NOT_NODES = INFRA + (CONTROLLER,)
# A node's own system directories: empty on a new node (the machine's are hidden),
# in the node's layers like everything it writes below LAYERED.
NODE_DIRS = ("/etc/podnet", "/etc/cni/net.d", "/etc/systemd/system", "/opt/cni/bin", "/var/lib/cni",
             "/var/lib/podnet", "/usr/local/libexec/podnet")
# Machine directories a node sees through a copy-on-write layer of its own
# (below ROOT/NAME/<node>/layers/<dir>/upper): what a task changes there stays on the node.
LAYERED = ("/etc", "/home", "/opt", "/usr/local", "/var/lib")
# What a node's directory holds besides namespace files.
NODE_LAYERS = "layers"
# The lab's SSH client files (a name no member can have).
SSH_DIR = ".ssh"
SSH_KEY = "id_ed25519"
SSH_KNOWN_HOSTS = "known_hosts"
SSH_CONTROL_DIR = "cp"
DEFAULT_SSH_USER = "podnet"
# The user's ids inside the nodes (their /etc/passwd is the node's own).
SSH_UID = 4200
USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,30}$")
# The bridge in the switch namespace is called like the namespace.
BRIDGE = SWITCH
# The marker file the lab writes into its directory when it makes it: only a
# directory holding it (or one provably made by an earlier release, see
# lab.plan) is ever torn down.
MARKER = ".podnet-lab"
MARKER_TEXT = "podnet.mesh lab: this directory and everything below it belong to the lab\n"
# Namespace files: a node has all three, switch/router/external only net.
NODE_FILES = ("net", "mnt", "uts")
NET_FILES = ("net",)
# Routes the lab adds itself (nodes' default route, the external host's route
# back to the switch network) carry the kernel's "static" protocol, like any
# administrator's route: the collection's own protocol (149) marks routes that
# pod_route may purge, and the lab's default route must never be among them.
LAB_PROTO = 4
# Addressed lab interfaces get this prefix + the last three bytes of their IPv4 address.
LAB_MAC_PREFIX = b"\x02\x70\x6e"
# Reserved member names: the infrastructure namespaces, and "lo" (every
# member's name is also the name of its port on the switch).
RESERVED = NOT_NODES + ("lo",)
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
    """A node name (hostname and switch port name), or ValidationError."""
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
    net = iface.network
    first, last = net.network_address + 1, net.broadcast_address - 1
    router = first if first != iface.ip else last
    return "%s/%d" % (router, net.prefixlen)


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
        want.update(nodes=[], gateway=None, external=None, router_external=None, ssh=False,
                    ssh_user=None, controller=None, reboot=[])
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
    ssh = bool(params.get("ssh"))
    user = params.get("ssh_user") or DEFAULT_SSH_USER
    if not isinstance(user, str) or not USER_RE.match(user) or user == "root":
        raise ValidationError("ssh_user", user, "is not a valid user name for the nodes: 1-31 lower-case letters, "
                                                "digits, '_' or '-', starting with a letter or '_', not root")
    controller = None
    if ssh:
        controller = controller_address(gateway)
        if str(ipaddress.ip_interface(controller).ip) in ips:
            raise ValidationError("ssh", ssh, "needs the controller's address %s, which %s has"
                                  % (controller, ips[str(ipaddress.ip_interface(controller).ip)]))
    reboot = params.get("reboot") or []
    if not isinstance(reboot, list):
        raise ValidationError("reboot", reboot, "must be a list of node names")
    for index, node_name in enumerate(reboot):
        if node_name not in names:
            raise ValidationError("reboot[%d]" % index, node_name, "is not one of the lab's nodes")
    want.update(nodes=result, gateway=gateway, external=external,
                router_external=external_gateway(external), ssh=ssh, ssh_user=user,
                controller=controller, reboot=sorted(set(reboot), key=natural))
    return want


def controller_address(gateway):
    """The controller's address on the switch: the last host address of the switch network."""
    net = ipaddress.ip_interface(gateway).network
    return "%s/%d" % (net.broadcast_address - 1, net.prefixlen)


def ssh_paths(lab):
    """{dir, key, known_hosts, control_dir} of the lab's SSH client files."""
    base = os.path.join(lab, SSH_DIR)
    return {"dir": base, "key": os.path.join(base, SSH_KEY),
            "known_hosts": os.path.join(base, SSH_KNOWN_HOSTS),
            "control_dir": os.path.join(base, SSH_CONTROL_DIR)}


# ----------------------------------------------------------------- topology
def members(want):
    """(label, files) of every namespace of the lab, infrastructure first."""
    result = [(label, NET_FILES) for label in INFRA]
    if want.get("ssh"):
        result.append((CONTROLLER, NET_FILES))
    result.extend((node["name"], NODE_FILES) for node in want["nodes"])
    return result


def ns_file(lab, label, kind="net"):
    """The namespace file of kind (net, mnt, uts) of a member of the lab at path lab."""
    return os.path.join(lab, label, kind)


def topology(want):
    """The desired wiring: veth pairs, interface addresses and MACs, routes, forwarding.

    Labels ('switch', 'node1', ...) name namespaces; the planner turns them
    into namespace file paths. A veth is (label, name, peer label, peer name).
    """
    gw = ipaddress.ip_interface(want["gateway"])
    switch_net = str(gw.network)
    router_ext = ipaddress.ip_interface(want["router_external"])
    veths = [(SWITCH, ROUTER, ROUTER, "eth0"), (ROUTER, "eth1", EXTERNAL, "eth0")]
    veths.extend((SWITCH, node["name"], node["name"], "eth0") for node in want["nodes"])
    addresses = {(ROUTER, "eth0"): [want["gateway"]], (ROUTER, "eth1"): [want["router_external"]],
                 (EXTERNAL, "eth0"): [want["external"]]}
    routes = {EXTERNAL: [_route(switch_net, str(router_ext.ip))]}
    if want.get("ssh"):
        veths.append((SWITCH, CONTROLLER, CONTROLLER, "eth0"))
        addresses[(CONTROLLER, "eth0")] = [want["controller"]]
    for node in want["nodes"]:
        addresses[(node["name"], "eth0")] = [node["address"]]
        routes[node["name"]] = [_route("default", str(gw.ip))]
    return {
        "veths": veths,
        "addresses": addresses,
        # A node (or the router) made again keeps its MAC, so the ARP caches
        # of its neighbours stay right.
        "macs": dict((key, derived_mac(values[0], LAB_MAC_PREFIX)) for key, values in addresses.items()),
        "routes": routes,
        "forwarding": [ROUTER],
    }


def _route(dst, via):
    return {"dst": dst, "family": 4, "via": via, "dev": None, "metric": 0}


# -------------------------------------------------------------------- views
def natural(text):
    """Sort key: node2 before node10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def current_view(want, cur):
    """What the lab is now, for diff mode and for reporting."""
    if not cur["exists"]:
        return {"name": want["name"], "path": want["path"], "state": "absent"}
    nodes = []
    for label in sorted(cur["members"], key=natural):
        if label in NOT_NODES:
            continue
        nodes.append(" ".join([label] + _addresses(cur, label, "eth0")))
    view = {"name": want["name"], "path": want["path"], "state": "present", "nodes": nodes,
            "ssh": CONTROLLER in cur["members"]}
    # Addresses are read only when the lab is to be present.
    for key, label in (("gateway", ROUTER), ("external", EXTERNAL)):
        address = _first(_addresses(cur, label, "eth0"))
        if address is not None:
            view[key] = address
    return view


def wanted_view(want):
    """What the lab is to be, for diff mode."""
    if want["state"] == "absent":
        return {"name": want["name"], "path": want["path"], "state": "absent"}
    view = {
        "name": want["name"], "path": want["path"], "state": "present",
        "gateway": want["gateway"], "external": want["external"],
        "nodes": ["%s %s" % (n["name"], n["address"])
                  for n in sorted(want["nodes"], key=lambda n: natural(n["name"]))],
        "ssh": want["ssh"],
    }
    if want["reboot"]:
        view["rebooted"] = list(want["reboot"])
    return view


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
                 for label in sorted(cur["members"], key=natural) if label not in NOT_NODES]
        gateway = _first(_addresses(cur, ROUTER, "eth0"))
        external = _first(_addresses(cur, EXTERNAL, "eth0"))
    result.update({
        "state": "present", "gateway": gateway, "external": external,
        "nodes": [dict([("name", name), ("address", address)]
                       + [(kind, ns_file(lab, name, kind)) for kind in NODE_FILES])
                  for name, address in nodes],
        "namespaces": dict((label, ns_file(lab, label)) for label in INFRA),
        "rebooted": list(want["reboot"]),
        "ssh": None,
    })
    if want["ssh"]:
        paths = ssh_paths(lab)
        result["ssh"] = {"user": want["ssh_user"], "controller": want["controller"],
                         "controller_net": ns_file(lab, CONTROLLER), "key": paths["key"],
                         "known_hosts": paths["known_hosts"], "control_dir": paths["control_dir"]}
    return result


def _first(values):
    return values[0] if values else None


def _addresses(cur, label, ifname):
    link = cur["links"].get(label, {}).get(ifname)
    return list(link["addresses"]) if link else []
