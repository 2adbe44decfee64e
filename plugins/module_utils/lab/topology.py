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
                               (routed lab: a bridge per subnet, switch.2, switch.3, ...,
                               with the router's ports router.2, router.3, ...)
    ROOT/NAME/router/net       the nodes' default gateway, forwarding, eth0 on the
                               switch and eth1 towards the external host
                               (with ipv6: IPv6 beside IPv4 on both, IPv6 forwarding)
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
# With ipv6: the lab's IPv6 network beside its IPv4 one (documentation prefixes, RFC 3849).
DEFAULT_GATEWAY6 = "2001:db8:1::1/64"
DEFAULT_EXTERNAL6 = "2001:db8:113::10/64"
DEFAULT_CLUSTER_CIDR6 = "fd00:10:244::/56"
DEFAULT_POD_PREFIX6 = 64
# The inventory's stacks: the pod network's address families. The lab's own
# network keeps IPv4 in all of them (the nsenter connection, SSH); dual and
# ipv6 add IPv6 to it.
STACKS = ("ipv4", "dual", "ipv6")
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
# The metric the kernel gives an IPv6 route that names none (the lab's IPv6 routes name it,
# so that they read back as planned).
IPV6_METRIC = 1024
# With ipv6, in every namespace with a lab address: IPv6 on, no duplicate address
# detection (every address the lab sets is usable at once; addresses are also added
# with IFA_F_NODAD) and no router advertisements taken. Set for all, default (links
# made later inherit it) and the member's lab interfaces.
IPV6_CONF = (("disable_ipv6", "0"), ("accept_dad", "0"), ("accept_ra", "0"))
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
             name_prefix=DEFAULT_NAME_PREFIX, gateway6=None, cluster_cidr6=None,
             pod_prefix6=DEFAULT_POD_PREFIX6, subnets=1, node_subnets=None):
    """The lab's node pattern for count nodes.

    Node i (1-based) is called name_prefix + i, has the address
    network(gateway) + offset + i (192.168.1.11, .12, ...), the i-th subnet of
    cluster_cidr of length pod_prefix as pod CIDR (10.244.i.0/24) and one pod
    per name in pods, at the 2nd, 3rd, ... address of that CIDR.

    When the nodes do not fit in the gateway's subnet, its prefix is widened
    until they do (192.168.1.1/24 becomes 192.168.1.1/23 for 250 nodes, which
    keeps every address of the smaller lab). Returns {gateway (possibly
    widened, CIDR), prefix, nodes: [{name, address (CIDR), ip, pod_cidr, pods}]}.

    With gateway6 (IPv6 CIDR), node i also has the IPv6 address that reads like
    its IPv4 host number: network(gateway6) + the digits of offset + i read as
    hex (2001:db8:1::11, ::12, ...; ip6, address6), and the result has gateway6.
    With cluster_cidr6, node i also has the i-th subnet of cluster_cidr6 of
    length pod_prefix6 (pod_cidr6: fd00:10:244:<i in hex>::/64) and its pods the
    2nd, 3rd, ... address there (address6).
    Raises ValueError with a readable message for impossible requests.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError("the node count must be a positive integer, not %r" % (count,))
    if not isinstance(gateway, str) or "/" not in gateway:
        raise ValueError("gateway %r is not an address in CIDR form such as 192.168.1.1/24"
                         % (gateway,))
    gw = ipaddress.ip_interface(gateway)
    if gw.version != 4:
        raise ValueError("gateway %s: the lab's switch network is IPv4 (give IPv6 as gateway6)" % gateway)
    pod_nets = _subnets(count, cluster_cidr, pod_prefix, len(pods), 4, "pod CIDRs")
    names = ["%s%d" % (name_prefix, i) for i in range(1, count + 1)]
    where = placement(names, subnets, node_subnets)
    if subnets > 1:
        return _generate_routed(names, where, subnets, gw, offset, pods, pod_nets, gateway6, cluster_cidr6,
                                pod_prefix6, count)
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
    gw6 = _gateway6(gateway6, offset + count) if gateway6 is not None else None
    pod_nets6 = (_subnets(count, cluster_cidr6, pod_prefix6, len(pods), 6, "IPv6 pod prefixes")
                 if cluster_cidr6 is not None else None)
    nodes = []
    for i in range(1, count + 1):
        ip = ipaddress.IPv4Address(base + offset + i)
        if ip == gw.ip:
            raise ValueError("node %d would get the gateway's address %s" % (i, ip))
        pod_net = pod_nets[i - 1]
        node = {
            "name": "%s%d" % (name_prefix, i),
            "ip": str(ip),
            "address": "%s/%d" % (ip, prefix),
            "pod_cidr": str(pod_net),
            "pods": [{"name": pod, "address": str(pod_net.network_address + 2 + j)}
                     for j, pod in enumerate(pods)],
        }
        if gw6 is not None:
            ip6 = ipv6_host(gw6.network, offset + i)
            if ip6 == gw6.ip:
                raise ValueError("node %d would get the IPv6 gateway's address %s" % (i, ip6))
            node.update(ip6=str(ip6), address6="%s/%d" % (ip6, gw6.network.prefixlen))
        if pod_nets6 is not None:
            pod_net6 = pod_nets6[i - 1]
            node["pod_cidr6"] = str(pod_net6)
            for j, pod in enumerate(node["pods"]):
                pod["address6"] = str(pod_net6.network_address + 2 + j)
        nodes.append(node)
    result = {"gateway": "%s/%d" % (gw.ip, prefix), "prefix": prefix, "nodes": nodes, "subnets": []}
    if gw6 is not None:
        result.update(gateway6=str(gw6), subnets6=[])
    return result


def placement(names, subnets=1, node_subnets=None):
    """{node name: subnet number (1-based)}: contiguous blocks of ceil(len(names) / subnets) nodes.

    3 nodes on 2 subnets: node1, node2 on subnet 1, node3 on subnet 2. node_subnets
    ({name: k}) places single nodes elsewhere. Raises ValueError for impossible requests.
    """
    if isinstance(subnets, bool) or not isinstance(subnets, int) or subnets < 1:
        raise ValueError("subnets must be a positive integer, not %r" % (subnets,))
    block = -(-len(names) // subnets) or 1
    where = dict((name, index // block + 1) for index, name in enumerate(names))
    for name, number in sorted((node_subnets or {}).items()):
        if name not in where:
            raise ValueError("node_subnets: %s is not one of the lab's nodes (%s ... %s)"
                             % (name, names[0], names[-1]) if names else "node_subnets: the lab has no nodes")
        try:
            if isinstance(number, bool):
                raise ValueError()
            number = int(number)
        except (TypeError, ValueError):
            raise ValueError("node_subnets: %s=%r is not a subnet number" % (name, number))
        if not 1 <= number <= subnets:
            raise ValueError("node_subnets: %s=%d is not a subnet of the lab (1 to %d)" % (name, number, subnets))
        where[name] = number
    return where


def subnet_networks(gateway, subnets):
    """The router's addresses (CIDR) on subnets 1..subnets: the third octet of gateway's network + k - 1."""
    gw = ipaddress.ip_interface(gateway)
    net = gw.network
    if subnets == 1:
        return [str(gw)]
    if net.prefixlen < 24:
        raise ValueError("%d subnets from gateway %s: a routed lab's subnets are the gateway's network with its "
                         "third octet counted up, which needs a prefix of /24 or longer" % (subnets, gateway))
    octets = net.network_address.packed
    if octets[2] + subnets - 1 > 255:
        raise ValueError("%d subnets from gateway %s do not fit: the third octet would pass 255 (%d.%d.%d.0)"
                         % (subnets, gateway, octets[0], octets[1], octets[2] + subnets - 1))
    host = int(gw.ip) - int(net.network_address)
    return ["%s/%d" % (ipaddress.IPv4Address(int(net.network_address) + ((k - 1) << 8) + host), net.prefixlen)
            for k in range(1, subnets + 1)]


def subnet_networks6(gateway6, subnets):
    """The router's IPv6 addresses (CIDR) on subnets 1..subnets: 2001:db8:1:: ... 2001:db8:k:: (third group)."""
    gw6 = ipaddress.ip_interface(gateway6)
    net = gw6.network
    if subnets == 1:
        return [str(gw6)]
    group = (int(net.network_address) >> 80) & 0xFFFF
    digits = format(group, "x")
    if net.prefixlen < 48 or net.prefixlen > 64 or not digits.isdigit():
        raise ValueError("%d subnets from gateway6 %s: a routed lab's IPv6 subnets count up the third group "
                         "(2001:db8:1::/64, 2001:db8:2::/64, ...), which needs a /48 to /64 whose third group "
                         "reads like a decimal number" % (subnets, gateway6))
    last = int(digits) + subnets - 1
    if last > 9999:
        raise ValueError("%d subnets from gateway6 %s do not fit in the third group" % (subnets, gateway6))
    host = int(gw6.ip) - int(net.network_address)
    base = int(net.network_address) & ~(0xFFFF << 80)
    return ["%s/%d" % (ipaddress.IPv6Address(base | (int(str(int(digits) + k - 1), 16) << 80) | host),
                       net.prefixlen) for k in range(1, subnets + 1)]


def _generate_routed(names, where, subnets, gw, offset, pods, pod_nets, gateway6, cluster_cidr6, pod_prefix6,
                     count):
    """generate() of a routed lab: node i on subnet where[name], keeping its host number."""
    routers = [ipaddress.ip_interface(a) for a in subnet_networks(str(gw), subnets)]
    routers6 = None
    if gateway6 is not None:
        _gateway6(gateway6, offset + count)
        routers6 = [ipaddress.ip_interface(a) for a in subnet_networks6(gateway6, subnets)]
    pod_nets6 = (_subnets(count, cluster_cidr6, pod_prefix6, len(pods), 6, "IPv6 pod prefixes")
                 if cluster_cidr6 is not None else None)
    nodes = []
    for i, name in enumerate(names, 1):
        k = where[name]
        router = routers[k - 1]
        ip = router.network.network_address + offset + i
        if ip not in router.network or ip == router.network.broadcast_address:
            raise ValueError("node %d (%s) does not fit in subnet %d (%s): host number %d; %d nodes need "
                             "fewer per subnet or a longer subnet" % (i, name, k, router.network, offset + i, count))
        if ip == router.ip:
            raise ValueError("node %d would get the router's address %s on subnet %d" % (i, ip, k))
        pod_net = pod_nets[i - 1]
        node = {"name": name, "subnet": k, "ip": str(ip), "address": "%s/%d" % (ip, router.network.prefixlen),
                "pod_cidr": str(pod_net),
                "pods": [{"name": pod, "address": str(pod_net.network_address + 2 + j)}
                         for j, pod in enumerate(pods)]}
        if routers6 is not None:
            router6 = routers6[k - 1]
            ip6 = ipv6_host(router6.network, offset + i)
            if ip6 == router6.ip:
                raise ValueError("node %d would get the router's IPv6 address %s" % (i, ip6))
            node.update(ip6=str(ip6), address6="%s/%d" % (ip6, router6.network.prefixlen))
        if pod_nets6 is not None:
            node["pod_cidr6"] = str(pod_nets6[i - 1])
            for j, pod in enumerate(node["pods"]):
                pod["address6"] = str(pod_nets6[i - 1].network_address + 2 + j)
        nodes.append(node)
    result = {"gateway": str(routers[0]), "prefix": routers[0].network.prefixlen, "nodes": nodes,
              "subnets": [str(r) for r in routers[1:]]}
    if routers6 is not None:
        result.update(gateway6=str(routers6[0]), subnets6=[str(r) for r in routers6[1:]])
    return result


def ipv6_host(network, number):
    """The address of network whose last digits read like number: (2001:db8:1::/64, 11) -> 2001:db8:1::11."""
    return network.network_address + int(str(number), 16)


def _gateway6(gateway6, last_number):
    if not isinstance(gateway6, str) or "/" not in gateway6:
        raise ValueError("gateway6 %r is not an address in CIDR form such as 2001:db8:1::1/64" % (gateway6,))
    try:
        gw6 = ipaddress.ip_interface(gateway6)
    except ValueError:
        raise ValueError("gateway6 %r is not an address in CIDR form such as 2001:db8:1::1/64" % (gateway6,))
    if gw6.version != 6:
        raise ValueError("gateway6 %s is not an IPv6 address" % gateway6)
    if ipv6_host(gw6.network, last_number) not in gw6.network:
        raise ValueError("the nodes' IPv6 addresses (up to %s::%s) do not fit in %s: use a /64"
                         % (str(gw6.network.network_address).rstrip(":"), last_number, gw6.network))
    return gw6


def _subnets(count, cidr, prefix, pods, version, what):
    """The pod subnets of nodes 1..count: the 1st, 2nd, ... subnet of length prefix in cidr."""
    try:
        cluster = ipaddress.ip_network(cidr)
    except (TypeError, ValueError):
        raise ValueError("%r is not a network in CIDR form" % (cidr,))
    if cluster.version != version:
        raise ValueError("%s is not an IPv%d network" % (cidr, version))
    bits = cluster.max_prefixlen
    if not cluster.prefixlen <= prefix <= bits - 2:
        raise ValueError("pod prefix /%d must be between the cluster prefix /%d and /%d"
                         % (prefix, cluster.prefixlen, bits - 2))
    subnets = 2 ** (prefix - cluster.prefixlen)
    if count > subnets - 1:
        raise ValueError(
            "%d nodes need %d %s of /%d after the first, but %s holds only %d"
            % (count, count, what, prefix, cluster, subnets - 1))
    hosts = 2 ** (bits - prefix) - (3 if version == 4 else 2)  # network, gateway (, broadcast)
    if pods > hosts:
        raise ValueError("%d pods do not fit in a /%d pod CIDR" % (pods, prefix))
    step = 2 ** (bits - prefix)
    base = int(cluster.network_address)
    network = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
    return [network((base + i * step, prefix)) for i in range(1, count + 1)]


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
        raise ValidationError(path, value, "is not an IPv4 address: the lab's IPv4 side (IPv6 goes in %s6)"
                              % path.split(".")[-1])
    if iface.network.prefixlen > 30:
        raise ValidationError(path, value, "needs a subnet of at least 4 addresses (/30 or shorter)")
    return normal


def _ipv6_address(value, path):
    normal = interface_address(value, path)
    iface = ipaddress.ip_interface(normal)
    if iface.version != 6:
        raise ValidationError(path, value, "is not an IPv6 address")
    if iface.ip.is_link_local:
        raise ValidationError(path, value, "is link-local: the lab needs global (or unique local) addresses")
    if iface.network.prefixlen > 126:
        raise ValidationError(path, value, "needs a subnet of at least 4 addresses (/126 or shorter)")
    if iface.ip == iface.network.network_address:
        raise ValidationError(path, value, "is the subnet-router anycast address of %s, not a host address"
                              % iface.network)
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
        want.update(nodes=[], gateway=None, external=None, routers=[], routers6=[], router_external=None, ssh=False,
                    ssh_user=None, controller=None, reboot=[], ipv6=False, gateway6=None,
                    external6=None, router_external6=None)
        return want

    gateway = _ipv4_address(params.get("gateway") or DEFAULT_GATEWAY, "gateway")
    external = _ipv4_address(params.get("external") or DEFAULT_EXTERNAL, "external")
    routers = [gateway] + _router_addresses(params.get("subnets"), "subnets", _ipv4_address)
    external_net = ipaddress.ip_interface(external).network
    _check_subnets(routers, "gateway", "subnets", external_net, "external", external)
    ipv6 = bool(params.get("ipv6"))
    gateway6 = external6 = None
    routers6 = []
    if ipv6:
        gateway6 = _ipv6_address(params.get("gateway6") or DEFAULT_GATEWAY6, "gateway6")
        external6 = _ipv6_address(params.get("external6") or DEFAULT_EXTERNAL6, "external6")
        routers6 = [gateway6] + _router_addresses(params.get("subnets6"), "subnets6", _ipv6_address)
        _check_subnets(routers6, "gateway6", "subnets6", ipaddress.ip_interface(external6).network,
                       "external6", external6)
        if len(routers6) != len(routers):
            raise ValidationError("subnets6", params.get("subnets6"),
                                  "must list one IPv6 router address per subnet of subnets (%d), not %d"
                                  % (len(routers) - 1, len(routers6) - 1))
    elif params.get("subnets6"):
        raise ValidationError("subnets6", params.get("subnets6"), "is IPv6, but the lab has no IPv6 (ipv6: false)")
    nodes = params.get("nodes")
    if nodes is None:
        nodes = []
    if not isinstance(nodes, list):
        raise ValidationError("nodes", nodes, "must be a list of {name, address}")
    result, names = [], {}
    ips = dict((str(ipaddress.ip_interface(a).ip), "gateway" if k == 0 else "subnets[%d]" % (k - 1))
               for k, a in enumerate(routers))
    ips.update((str(ipaddress.ip_interface(a).ip), "gateway6" if k == 0 else "subnets6[%d]" % (k - 1))
               for k, a in enumerate(routers6))
    for index, node in enumerate(nodes):
        path = "nodes[%d]" % index
        if not isinstance(node, dict):
            raise ValidationError(path, node, "must be a dict with name and address")
        unknown = sorted(set(node) - {"name", "address", "address6"})
        if unknown:
            raise ValidationError(path, node, "has unknown key(s) %s; allowed: name, address, address6"
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
        subnet = _node_address(address, path + ".address", routers, ips, index)
        entry = {"name": node_name, "address": address}
        if len(routers) > 1:
            entry["subnet"] = subnet
        address6 = node.get("address6")
        if ipv6:
            if address6 is None:
                raise ValidationError(path + ".address6", address6,
                                      "is required with ipv6: the node's IPv6 address on the switch in CIDR form")
            address6 = _ipv6_address(address6, path + ".address6")
            subnet6 = _node_address(address6, path + ".address6", routers6, ips, index)
            if subnet6 != subnet:
                raise ValidationError(path + ".address6", address6,
                                      "is on subnet %d (%s) but the node's address %s on subnet %d: a node has "
                                      "both on one subnet" % (subnet6, routers6[subnet6 - 1], address, subnet))
            entry["address6"] = address6
        elif address6 is not None:
            raise ValidationError(path + ".address6", address6,
                                  "is an IPv6 address, but the lab has no IPv6 (ipv6: false)")
        result.append(entry)
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
    want.update(nodes=result, gateway=gateway, external=external, routers=routers, routers6=routers6,
                router_external=external_gateway(external), ssh=ssh, ssh_user=user,
                controller=controller, reboot=sorted(set(reboot), key=natural), ipv6=ipv6,
                gateway6=gateway6, external6=external6,
                router_external6=external_gateway(external6) if ipv6 else None)
    return want


def _node_address(address, path, routers, ips, index):
    """A node's address (IPv4 or IPv6): on one of the lab's subnets and nobody else's; its subnet (1-based)."""
    iface = ipaddress.ip_interface(address)
    found = [k for k, router in enumerate(routers, 1) if iface.network == ipaddress.ip_interface(router).network]
    if not found:
        six = "6" if iface.version == 6 else ""
        raise ValidationError(
            path, address,
            "is not on the switch network %s (gateway%s %s)%s; every node must be" % (
                ipaddress.ip_interface(routers[0]).network, six, routers[0],
                "".join(", nor on %s (subnets%s[%d])" % (ipaddress.ip_interface(r).network, six, k)
                        for k, r in enumerate(routers[1:]))))
    if str(iface.ip) in ips:
        raise ValidationError(path, address, "is already taken by %s" % ips[str(iface.ip)])
    ips[str(iface.ip)] = "nodes[%d]" % index
    return found[0]


def _router_addresses(value, path, check):
    """The router's addresses on the lab's further subnets (module option subnets or subnets6)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValidationError(path, value, "must be a list of the router's addresses in CIDR form")
    return [check(item, "%s[%d]" % (path, k)) for k, item in enumerate(value)]


def _check_subnets(routers, first, rest, external_net, external_path, external):
    """The subnets are distinct, and none overlaps the external network."""
    nets = []
    for k, router in enumerate(routers):
        path = first if k == 0 else "%s[%d]" % (rest, k - 1)
        net = ipaddress.ip_interface(router).network
        for j, other in enumerate(nets):
            if net.overlaps(other):
                raise ValidationError(path, router, "overlaps the lab's subnet %s (%s)" % (
                    other, first if j == 0 else "%s[%d]" % (rest, j - 1)))
        nets.append(net)
        if net.overlaps(external_net):
            raise ValidationError(external_path, external, "overlaps the switch%s network %s of %s" % (
                "'s IPv6" if net.version == 6 else "", net, path))


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


def subnet_bridge(k):
    """The bridge of subnet k (1-based) in the switch namespace: switch, switch.2, switch.3, ..."""
    return BRIDGE if k == 1 else "%s.%d" % (BRIDGE, k)


def router_port(k):
    """(the router's switch port, its interface in the router) on subnet k: (router, eth0), (router.2, eth2), ..."""
    return (ROUTER, "eth0") if k == 1 else ("%s.%d" % (ROUTER, k), "eth%d" % k)


def router_interfaces(want):
    """The router's lab interfaces: eth0 (subnet 1), eth1 (external), eth2, eth3, ... (subnets 2, 3, ...)."""
    return ["eth0", "eth1"] + [router_port(k)[1] for k in range(2, len(want.get("routers") or [None]) + 1)]


def topology(want):
    """The desired wiring: bridges, veth pairs, interface addresses and MACs, routes, forwarding.

    Labels ('switch', 'node1', ...) name namespaces; the planner turns them
    into namespace file paths. A veth is (label, name, peer label, peer name);
    masters maps the switch's ports to their bridge. Every subnet is a bridge
    of its own in the switch namespace (subnet_bridge): a node's port is on its
    subnet's bridge, the router has a port (and an address) on every one, so
    nodes of different subnets are not layer-2 adjacent and the router
    forwards between them. A node's default route is via its subnet's router
    address. With ipv6, the router, the external host and every node get their
    IPv6 address beside the IPv4 one, the nodes an IPv6 default route via the
    router, the external host routes back to the subnets' IPv6 networks (and
    none to any pod prefix), the router IPv6 forwarding; ipv6_conf lists the
    namespaces (and their lab interfaces) where IPV6_CONF is set.
    """
    routers = want.get("routers") or [want["gateway"]]
    routers6 = want.get("routers6") or ([want["gateway6"]] if want.get("ipv6") else [])
    router_ext = ipaddress.ip_interface(want["router_external"])
    ipv6 = want.get("ipv6")
    veths = [(SWITCH, ROUTER, ROUTER, "eth0"), (ROUTER, "eth1", EXTERNAL, "eth0")]
    masters = {(SWITCH, ROUTER): BRIDGE}
    addresses = {(ROUTER, "eth0"): [routers[0]], (ROUTER, "eth1"): [want["router_external"]],
                 (EXTERNAL, "eth0"): [want["external"]]}
    for k in range(2, len(routers) + 1):
        port, ifname = router_port(k)
        veths.append((SWITCH, port, ROUTER, ifname))
        masters[(SWITCH, port)] = subnet_bridge(k)
        addresses[(ROUTER, ifname)] = [routers[k - 1]]
    veths.extend((SWITCH, node["name"], node["name"], "eth0") for node in want["nodes"])
    routes = {EXTERNAL: [_route(str(ipaddress.ip_interface(r).network), str(router_ext.ip)) for r in routers]}
    if ipv6:
        for k, router6 in enumerate(routers6, 1):
            addresses[(ROUTER, router_port(k)[1])].append(router6)
        addresses[(ROUTER, "eth1")].append(want["router_external6"])
        addresses[(EXTERNAL, "eth0")].append(want["external6"])
        via6 = str(ipaddress.ip_interface(want["router_external6"]).ip)
        routes[EXTERNAL].extend(_route(str(ipaddress.ip_interface(r).network), via6) for r in routers6)
    if want.get("ssh"):
        # On subnet 1; the other subnets through the router.
        veths.append((SWITCH, CONTROLLER, CONTROLLER, "eth0"))
        masters[(SWITCH, CONTROLLER)] = BRIDGE
        addresses[(CONTROLLER, "eth0")] = [want["controller"]]
        gw_ip = str(ipaddress.ip_interface(routers[0]).ip)
        routes[CONTROLLER] = [_route(str(ipaddress.ip_interface(r).network), gw_ip) for r in routers[1:]]
    for node in want["nodes"]:
        k = node.get("subnet") or 1
        masters[(SWITCH, node["name"])] = subnet_bridge(k)
        addresses[(node["name"], "eth0")] = [node["address"]]
        routes[node["name"]] = [_route("default", str(ipaddress.ip_interface(routers[k - 1]).ip))]
        if ipv6:
            addresses[(node["name"], "eth0")].append(node["address6"])
            routes[node["name"]].append(_route("default", str(ipaddress.ip_interface(routers6[k - 1]).ip)))
    ipv6_conf = {}
    if ipv6:
        ipv6_conf = dict([(ROUTER, router_interfaces(want)), (EXTERNAL, ["eth0"])]
                         + [(node["name"], ["eth0"]) for node in want["nodes"]])
    return {
        "bridges": [subnet_bridge(k) for k in range(1, len(routers) + 1)],
        "veths": veths,
        "masters": masters,
        "addresses": addresses,
        # A node (or the router) made again keeps its MAC, so the ARP caches
        # of its neighbours stay right. (The first address is the IPv4 one.)
        "macs": dict((key, derived_mac(values[0], LAB_MAC_PREFIX)) for key, values in addresses.items()),
        "routes": routes,
        "forwarding": [ROUTER],
        "forwarding6": [ROUTER] if ipv6 else [],
        "ipv6_conf": ipv6_conf,
    }


def _route(dst, via):
    family = 6 if ":" in via else 4
    return {"dst": dst, "family": family, "via": via, "dev": None, "metric": IPV6_METRIC if family == 6 else 0}


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
    for key, label, version in (("gateway", ROUTER, 4), ("external", EXTERNAL, 4),
                                ("gateway6", ROUTER, 6), ("external6", EXTERNAL, 6)):
        address = _first(_addresses(cur, label, "eth0", version))
        if address is not None:
            view[key] = address
    subnets = _router_subnets(cur)
    if subnets:
        view["subnets"] = subnets
    return view


def _router_subnets(cur, version=None):
    """The router's addresses on subnets 2, 3, ... as read (interfaces eth2, eth3, ...)."""
    found = []
    names = sorted((n for n in cur["links"].get(ROUTER, {}) if re.match(r"^eth([2-9]|[1-9][0-9]+)$", n)),
                   key=natural)
    for name in names:
        found.extend(_addresses(cur, ROUTER, name, version))
    return found


def wanted_view(want):
    """What the lab is to be, for diff mode."""
    if want["state"] == "absent":
        return {"name": want["name"], "path": want["path"], "state": "absent"}
    view = {
        "name": want["name"], "path": want["path"], "state": "present",
        "gateway": want["gateway"], "external": want["external"],
        "nodes": [" ".join([n["name"], n["address"]] + ([n["address6"]] if "address6" in n else []))
                  for n in sorted(want["nodes"], key=lambda n: natural(n["name"]))],
        "ssh": want["ssh"],
    }
    if want.get("ipv6"):
        view.update(gateway6=want["gateway6"], external6=want["external6"])
    if len(want.get("routers") or ()) > 1:
        view["subnets"] = list(want["routers"][1:]) + list((want.get("routers6") or [])[1:])
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
    ipv6 = want.get("ipv6")
    if predicted:
        nodes = [(n["name"], n["address"], n.get("address6")) for n in want["nodes"]]
        gateway, external = want["gateway"], want["external"]
        gateway6, external6 = want.get("gateway6"), want.get("external6")
        subnets, subnets6 = list((want.get("routers") or [])[1:]), list((want.get("routers6") or [])[1:])
    else:
        nodes = [(label, _first(_addresses(cur, label, "eth0", 4)), _first(_addresses(cur, label, "eth0", 6)))
                 for label in sorted(cur["members"], key=natural) if label not in NOT_NODES]
        gateway = _first(_addresses(cur, ROUTER, "eth0", 4))
        external = _first(_addresses(cur, EXTERNAL, "eth0", 4))
        gateway6 = _first(_addresses(cur, ROUTER, "eth0", 6))
        external6 = _first(_addresses(cur, EXTERNAL, "eth0", 6))
        subnets, subnets6 = _router_subnets(cur, 4), _router_subnets(cur, 6)
    result.update({
        "state": "present", "gateway": gateway, "external": external,
        "nodes": [dict([("name", name), ("address", address)]
                       + ([("address6", address6)] if ipv6 else [])
                       + [(kind, ns_file(lab, name, kind)) for kind in NODE_FILES])
                  for name, address, address6 in nodes],
        "namespaces": dict((label, ns_file(lab, label)) for label in INFRA),
        "rebooted": list(want["reboot"]),
        "ssh": None,
        "subnets": subnets,
    })
    if ipv6:
        result.update(gateway6=gateway6, external6=external6, subnets6=subnets6)
    if want["ssh"]:
        paths = ssh_paths(lab)
        result["ssh"] = {"user": want["ssh_user"], "controller": want["controller"],
                         "controller_net": ns_file(lab, CONTROLLER), "key": paths["key"],
                         "known_hosts": paths["known_hosts"], "control_dir": paths["control_dir"]}
    return result


def _first(values):
    return values[0] if values else None


def _addresses(cur, label, ifname, version=None):
    """The addresses of a member's link (of one IP version, or all)."""
    link = cur["links"].get(label, {}).get(ifname)
    if not link:
        return []
    return [a for a in link["addresses"] if version is None or (":" in a) == (version == 6)]
