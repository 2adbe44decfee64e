# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Input validation and normalisation.

Every function here is pure: it takes a value from the module parameters and
either returns a normalised value or raises ValidationError naming the
parameter (with its list index), the value and why it was refused; no input
makes one raise anything else. A normalised value is valid input again and
comes back unchanged. Nothing here touches the kernel, so the whole of a
module's input is checked before its first change.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ValidationError
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import IFNAME_MAX_BYTES

# The smallest MTU IPv4 allows and the largest the kernel stores.
MTU_MIN = 68
MTU_MAX = 65535
NETNS_NAME_MAX_BYTES = 255
# Characters of an interface name besides ASCII letters and digits: the printable
# ASCII ones but '/' and ':' (the kernel refuses them) and '%' (the kernel reads
# "eth%d" as a pattern and picks a free number, so the link gets another name).
IFNAME_REFUSED = "/:%"
# A node's pod network is at most this wide, and never touches these blocks:
# none of them can carry traffic between pods.
POD_CIDR_MIN_PREFIX = 8
# (widest, narrowest) prefix length of a node's pod network per family.
POD_CIDR_PREFIXES = {4: (POD_CIDR_MIN_PREFIX, 30), 6: (32, 120)}
NOT_POD_NETWORKS = (
    (ipaddress.ip_network("0.0.0.0/8"), "the unspecified 'this network' block 0.0.0.0/8"),
    (ipaddress.ip_network("127.0.0.0/8"), "the loopback block 127.0.0.0/8"),
    (ipaddress.ip_network("169.254.0.0/16"), "the link-local block 169.254.0.0/16"),
    (ipaddress.ip_network("224.0.0.0/4"), "the multicast block 224.0.0.0/4"),
    (ipaddress.ip_network("240.0.0.0/4"), "the reserved block 240.0.0.0/4 (with the broadcast address 255.255.255.255)"),
    (ipaddress.ip_network("::/127"), "the unspecified and loopback addresses ::/127"),
    (ipaddress.ip_network("::ffff:0:0/96"), "the IPv4-mapped block ::ffff:0:0/96"),
    (ipaddress.ip_network("fe80::/10"), "the link-local block fe80::/10"),
    (ipaddress.ip_network("ff00::/8"), "the multicast block ff00::/8"),
)
LIMITED_BROADCAST = ipaddress.ip_address("255.255.255.255")


def _text(value, path):
    if not isinstance(value, str) or value == "":
        raise ValidationError(path, value, "must be a non-empty string")
    return value


def _size(value):
    """Bytes of value in UTF-8 (a lone surrogate counts as the 3 bytes it would take)."""
    return len(value.encode("utf-8", "surrogatepass"))


def ifname(value, path="name"):
    """A Linux interface name: 1-15 printable ASCII characters but '/', ':' and '%', not '.' or '..'."""
    value = _text(value, path)
    if _size(value) > IFNAME_MAX_BYTES:
        raise ValidationError(
            path, value,
            "is %d bytes long; Linux interface names are at most %d bytes" % (_size(value), IFNAME_MAX_BYTES))
    if value in (".", ".."):
        raise ValidationError(path, value, "is not a valid interface name")
    for char in value:
        if char in IFNAME_REFUSED or not "!" <= char <= "~":
            raise ValidationError(
                path, value,
                "is not a valid interface name: it must not contain '/', ':', '%', white space, "
                "control characters or characters other than ASCII")
    return value


def netns_name(value, path="netns"):
    """A named network namespace: a file name under /run/netns, of printable characters."""
    value = _text(value, path)
    if value in (".", "..") or "/" in value:
        raise ValidationError(
            path, value, "is not a valid namespace name: it is a file name under /run/netns")
    if not value.isprintable():
        raise ValidationError(
            path, value,
            "is not a valid namespace name: it must not contain control characters (newline, tab, NUL ...) "
            "or other characters that do not print")
    if value != value.strip():
        raise ValidationError(path, value, "is not a valid namespace name: it must not begin or end with a space")
    if _size(value) > NETNS_NAME_MAX_BYTES:
        raise ValidationError(
            path, value, "is longer than %d bytes" % NETNS_NAME_MAX_BYTES)
    return value


def optional_netns(value, path="netns"):
    """None (the namespace the module runs in) or a namespace name."""
    if value is None:
        return None
    return netns_name(value, path)


def mtu(value, path="mtu"):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(path, value, "must be an integer")
    if not MTU_MIN <= value <= MTU_MAX:
        raise ValidationError(
            path, value, "is out of range: an MTU is between %d and %d" % (MTU_MIN, MTU_MAX))
    return value


def interface_address(value, path="addresses"):
    """An address with its prefix length, e.g. 10.244.1.1/24; returned normalised."""
    if not isinstance(value, str) or "/" not in value:
        raise ValidationError(
            path, value,
            "is not an address with a prefix length (CIDR such as 10.244.1.1/24)")
    _no_scope(value, path)
    try:
        iface = ipaddress.ip_interface(value.strip())
    except ValueError:
        raise ValidationError(
            path, value,
            "is not a valid IP address with a prefix length (CIDR such as 10.244.1.1/24)")
    net = iface.network
    if iface.version == 4 and net.prefixlen < 31:
        if iface.ip == net.network_address:
            raise ValidationError(
                path, value, "is the network address of %s, not a host address" % net)
        if iface.ip == net.broadcast_address:
            raise ValidationError(
                path, value, "is the broadcast address of %s, not a host address" % net)
    if iface.ip.is_multicast or iface.ip.is_unspecified or iface.ip == LIMITED_BROADCAST:
        raise ValidationError(path, value, "is not a unicast host address")
    return str(iface)


def _no_scope(value, path):
    """Refuse an IPv6 zone ('fe80::1%eth0'): the kernel takes the interface separately."""
    if "%" in value:
        raise ValidationError(
            path, value, "has a zone ('%...'); give the address without it (the interface is named separately)")


def address_list(values, path="addresses"):
    """A list of interface addresses, normalised, in order, each IP at most once."""
    if values is None:
        return None
    if not isinstance(values, list):
        raise ValidationError(path, values, "must be a list of CIDRs")
    result = []
    seen = {}
    for index, value in enumerate(values):
        item_path = "%s[%d]" % (path, index)
        normal = interface_address(value, item_path)
        ip = normal.split("/", 1)[0]
        if ip in seen:
            raise ValidationError(
                item_path, value,
                "repeats the address of %s[%d]; an address can be assigned only once"
                % (path, seen[ip]))
        seen[ip] = index
        result.append(normal)
    return result


def mac(value, path="mac"):
    """A unicast Ethernet MAC address, as aa:bb:cc:dd:ee:ff -> lower case."""
    text = _text(value, path)
    parts = text.split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts):
        raise ValidationError(path, value, "is not a MAC address such as 0a:58:0a:f4:01:01")
    text = text.lower()
    if int(parts[0], 16) & 1:
        raise ValidationError(path, value, "is a multicast address; an interface needs a unicast MAC")
    if text == "00:00:00:00:00:00":
        raise ValidationError(path, value, "is the all-zero address; an interface needs a unicast MAC")
    return text


def network(value, path):
    """A network in CIDR form (host bits must be zero), returned normalised."""
    if not isinstance(value, str) or "/" not in value:
        raise ValidationError(path, value, "is not a network in CIDR form such as 10.244.0.0/16")
    _no_scope(value, path)
    try:
        return str(ipaddress.ip_network(value.strip(), strict=True))
    except ValueError as exc:
        raise ValidationError(path, value, "is not a valid network in CIDR form (%s)" % exc)


def pod_cidr(value, path):
    """A node's pod network in CIDR form, of addresses pods can have: IPv4 /8 to /30, IPv6 /32 to /120.

    Refused: networks wider than that and any that touches the unspecified,
    loopback, link-local, multicast or reserved blocks (NOT_POD_NETWORKS).
    """
    net = ipaddress.ip_network(network(value, path))
    low, high = POD_CIDR_PREFIXES[net.version]
    if net.prefixlen > high:
        raise ValidationError(path, value, "must be an IPv%d network of at least %d addresses (at most a /%d)"
                              % (net.version, 2 ** (net.max_prefixlen - high), high))
    if net.prefixlen < low:
        raise ValidationError(
            path, value, "is wider than /%d: a node's IPv%d pod network is at most a /%d" % (low, net.version, low))
    for block, what in NOT_POD_NETWORKS:
        if block.version == net.version and net.overlaps(block):
            raise ValidationError(path, value, "overlaps %s, which cannot hold pod addresses" % what)
    return net


def choice(value, choices, path):
    try:
        known = value in choices
    except TypeError:  # an unhashable value and a set of choices
        known = False
    if not known:
        raise ValidationError(path, value, "must be one of %s" % ", ".join(choices))
    return value


# Routes ----------------------------------------------------------------------
# Metric the kernel gives a route that names none: 0 for IPv4, 1024 for IPv6.
DEFAULT_METRIC = {4: 0, 6: 1024}
ROUTE_KEYS = ("dst", "via", "dev", "metric", "onlink")
U32_MAX = 2 ** 32 - 1


def ip_address(value, path):
    """An IP address given as text (not a number, not bytes); returned as an ipaddress object."""
    if not isinstance(value, str):
        raise ValidationError(path, value, "is not an IP address")
    _no_scope(value, path)
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        raise ValidationError(path, value, "is not an IP address")


def route(value, path, default_family=4, next_hop=True):
    """One route {dst, via, dev, metric, onlink} -> normalised dict with its family.

    dst is a network in CIDR form (host bits zero) or 'default'; via, when
    given, must be of the same address family; a route needs via or dev
    unless next_hop is False (routes named only to be removed). onlink (with
    via and dev): the gateway is on dev whatever the connected networks say
    (the key is there only when true).
    """
    if not isinstance(value, dict):
        raise ValidationError(path, value, "must be a dict with dst and via and/or dev")
    unknown = sorted((str(key) for key in value if key not in ROUTE_KEYS))
    if unknown:
        raise ValidationError(
            path, value, "has unknown key(s) %s; allowed: %s" % (", ".join(unknown), ", ".join(ROUTE_KEYS)))
    dst, via, dev, metric, onlink = (value.get(k) for k in ROUTE_KEYS)
    if onlink is not None and not isinstance(onlink, bool):
        raise ValidationError(path + ".onlink", onlink, "must be true or false")
    if onlink and (via is None or dev is None):
        raise ValidationError(path + ".onlink", onlink,
                              "needs via and dev: the gateway is taken to be on that link without a route to it")
    if via is not None:
        via = ip_address(via, path + ".via")
    if dev is not None:
        dev = ifname(dev, path + ".dev")
    if via is None and dev is None and next_hop:
        raise ValidationError(path, value, "needs via (a gateway) or dev (an interface)")
    if dst is None:
        raise ValidationError(path + ".dst", dst, "is required: a CIDR or 'default'")
    if dst == "default":
        family = via.version if via is not None else default_family
        net = ipaddress.ip_network("0.0.0.0/0" if family == 4 else "::/0")
    else:
        net = ipaddress.ip_network(network(dst, path + ".dst"))
        family = net.version
    if via is not None and via.version != family:
        raise ValidationError(
            path + ".via", str(via),
            "is an IPv%d address but dst %s is IPv%d: the families must agree"
            % (via.version, "default" if dst == "default" else net, family))
    if metric is None:
        metric = DEFAULT_METRIC[family]
    else:
        metric = integer(metric, path + ".metric", 0, U32_MAX)
    result = {
        "dst": "default" if net.prefixlen == 0 else str(net),
        "family": family,
        "via": None if via is None else str(via),
        "dev": dev,
        "metric": metric,
    }
    if onlink:
        result["onlink"] = True
    return result


def route_key(r):
    return (r["family"], r["dst"], r["metric"])


def route_list(values, path="routes", next_hop=True):
    """Routes in order; each (dst, metric) at most once."""
    if values is None:
        return []
    if not isinstance(values, list):
        raise ValidationError(path, values, "must be a list of routes")
    result, seen = [], {}
    for index, value in enumerate(values):
        item = route(value, "%s[%d]" % (path, index), next_hop=next_hop)
        key = route_key(item)
        if key in seen:
            raise ValidationError(
                "%s[%d].dst" % (path, index), item["dst"],
                "is listed twice (also %s[%d]) with metric %d; a destination takes one route per metric"
                % (path, seen[key], item["metric"]))
        seen[key] = index
        result.append(item)
    return result


def integer(value, path, low, high):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(path, value, "must be an integer from %d to %d" % (low, high))
    return value
