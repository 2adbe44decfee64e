# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""rtnetlink messages in the standard library alone: what the CNI plugin sends and reads.

The encoders build the requests of the CNI plugin's netlink session
(``kernel.lite``) byte for byte as pyroute2's message classes (ifinfmsg,
ifaddrmsg, rtmsg) encode the same message; the decoders read the kernel's
answers to the values pyroute2 decodes, for the fields the plugin reads and no
others. tests/unit/plugins/module_utils/kernel/test_rtnl.py holds both
directions against pyroute2 0.7 and 0.9. Sockets, sequence numbers and the
receive loop are ``kernel.wire``'s.

A message is a netlink header (struct nlmsghdr), a fixed part (struct
ifinfomsg, ifaddrmsg or rtmsg) and attributes: a 4-byte header (length,
type), the payload, zero padding to a multiple of 4; nested attributes hold
attributes. The nests sent here (IFLA_LINKINFO, IFLA_INFO_DATA,
VETH_INFO_PEER, IFLA_INFO_SLAVE_DATA) go without NLA_F_NESTED, as pyroute2
sends them: rtnetlink parses them by their type, and only IFLA_PROTINFO of an
AF_BRIDGE request tells old from new by that flag (``nested(...,
flagged=True)``; the plugin sets a port's hairpin mode through
IFLA_INFO_SLAVE_DATA instead).

Links:     RTM_GETLINK, RTM_NEWLINK, RTM_DELLINK (ifinfomsg; IFLA_IFNAME,
           IFLA_ADDRESS, IFLA_MTU, IFLA_MASTER, IFLA_LINK, IFLA_LINK_NETNSID,
           IFLA_NET_NS_FD, IFLA_LINKINFO: kind, bridge STP state, veth peer,
           bridge port hairpin mode)
Addresses: RTM_GETADDR, RTM_NEWADDR, RTM_DELADDR (ifaddrmsg; IFA_ADDRESS,
           IFA_LOCAL, IFA_BROADCAST)
Routes:    RTM_GETROUTE, RTM_NEWROUTE, RTM_DELROUTE (rtmsg; RTA_DST,
           RTA_GATEWAY, RTA_OIF, RTA_PRIORITY, RTA_TABLE)
Namespace ids (RTM_GETNSID) are ``wire.nsid``.
"""

from __future__ import annotations

import socket
import struct

# Message types (linux/rtnetlink.h).
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_SETLINK = 19
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
RTM_NEWROUTE = 24
RTM_DELROUTE = 25
RTM_GETROUTE = 26
# Header flags (linux/netlink.h).
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_ROOT = 0x100
NLM_F_MATCH = 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
# What a change asks for: make a new object (refused with EEXIST when there), replace one, change one.
CREATE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
REPLACE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
CHANGE = NLM_F_REQUEST | NLM_F_ACK
# Attribute type bits (the rest is the type).
NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3fff
# Link attributes (linux/if_link.h).
IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_LINK = 5
IFLA_MASTER = 10
IFLA_PROTINFO = 12
IFLA_LINKINFO = 18
IFLA_NET_NS_FD = 28
IFLA_LINK_NETNSID = 37
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
IFLA_INFO_SLAVE_KIND = 4
IFLA_INFO_SLAVE_DATA = 5
IFLA_BR_STP_STATE = 5
IFLA_BRPORT_MODE = 4
VETH_INFO_PEER = 1
IFF_UP = 0x1
# Address attributes (linux/if_addr.h).
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_BROADCAST = 4
# ifaddrmsg flag: no duplicate address detection (the address is not tentative).
IFA_F_NODAD = 0x02
# Route attributes (linux/rtnetlink.h).
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PRIORITY = 6
RTA_TABLE = 15

_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence number, port id
_NLA = struct.Struct("=HH")          # length, type
_IFINFOMSG = struct.Struct("=BxHiII")  # family, (pad), device type, index, flags, change mask
_IFADDRMSG = struct.Struct("=BBBBI")   # family, prefix length, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")   # family, dst_len, src_len, tos, table, protocol, scope, type, flags
_U32 = struct.Struct("=I")
_S32 = struct.Struct("=i")
HEADER_SIZE = _NLMSGHDR.size
_FAMILY_OF_SIZE = {4: socket.AF_INET, 16: socket.AF_INET6}


# ------------------------------------------------------------------ encoding
def attr(kind, payload=b""):
    """One attribute: header, payload, zero padding to 4 bytes (the length counts no padding)."""
    length = _NLA.size + len(payload)
    return _NLA.pack(length, kind) + payload + b"\0" * (-length & 3)


def nested(kind, *attrs, flagged=False):
    """An attribute holding attributes; flagged sets NLA_F_NESTED."""
    return attr(kind | (NLA_F_NESTED if flagged else 0), b"".join(attrs))


def u8(kind, value):
    return attr(kind, bytes((value,)))


def u32(kind, value):
    return attr(kind, _U32.pack(value))


def string(kind, text):
    """A NUL-terminated string (UTF-8), as the kernel's NLA_STRING and NLA_NUL_STRING take it."""
    return attr(kind, text.encode("utf-8") + b"\0")


def mac(kind, text):
    """A MAC address written aa:bb:cc:dd:ee:ff."""
    return attr(kind, bytes(int(part, 16) for part in text.split(":")))


def ip(kind, text):
    """An IPv4 or IPv6 address (its family told by a colon)."""
    return attr(kind, socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text))


def family_of(text):
    """AF_INET or AF_INET6 of an address written as text."""
    return socket.AF_INET6 if ":" in text else socket.AF_INET


def message(msg_type, flags, seq, body, port=0):
    """A whole message: the netlink header before body (the fixed part and the attributes)."""
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), msg_type, flags, seq, port) + body


def ifinfomsg(index=0, flags=0, change=0, family=0, device_type=0):
    return _IFINFOMSG.pack(family, device_type, index, flags, change)


def ifaddrmsg(family, prefixlen, index, flags=0, scope=0):
    return _IFADDRMSG.pack(family, prefixlen, flags, scope, index)


def rtmsg(family, dst_len=0, table=0, proto=0, scope=0, route_type=0, src_len=0, tos=0, flags=0):
    return _RTMSG.pack(family, dst_len, src_len, tos, table, proto, scope, route_type, flags)


def dump_request(msg_type, seq, family=0):
    """RTM_GETLINK, RTM_GETADDR or RTM_GETROUTE for every object (of one address family; 0: all)."""
    if msg_type == RTM_GETLINK:
        body = ifinfomsg(family=family)
    elif msg_type == RTM_GETADDR:
        body = ifaddrmsg(family, 0, 0)
    else:
        body = rtmsg(family)
    return message(msg_type, NLM_F_REQUEST | NLM_F_DUMP, seq, body)


def get_link(seq, name=None, index=0):
    """RTM_GETLINK for one link, by index, or by name when index is 0."""
    return message(RTM_GETLINK, NLM_F_REQUEST, seq,
                   ifinfomsg(index) + (string(IFLA_IFNAME, name) if name is not None and not index else b""))


def linkinfo(kind=None, data=(), slave_kind=None, slave_data=()):
    """IFLA_LINKINFO: the kind and its attributes (IFLA_INFO_DATA), the master's kind and the port's."""
    parts = []
    if kind is not None:
        parts.append(string(IFLA_INFO_KIND, kind))
    if data:
        parts.append(nested(IFLA_INFO_DATA, *data))
    if slave_kind is not None:
        parts.append(string(IFLA_INFO_SLAVE_KIND, slave_kind))
    if slave_data:
        parts.append(nested(IFLA_INFO_SLAVE_DATA, *slave_data))
    return nested(IFLA_LINKINFO, *parts)


def new_bridge(seq, name, address=None):
    """RTM_NEWLINK creating bridge name (refused with EEXIST when the name is taken); address pins its MAC."""
    attrs = [string(IFLA_IFNAME, name)]
    if address:
        attrs.append(mac(IFLA_ADDRESS, address))
    attrs.append(linkinfo("bridge"))
    return message(RTM_NEWLINK, CREATE, seq, ifinfomsg() + b"".join(attrs))


def new_veth(seq, name, peer, peer_address=None, peer_netns_fd=None):
    """RTM_NEWLINK creating veth name; its peer (VETH_INFO_PEER: an ifinfomsg and attributes) is
    born in the namespace of file descriptor peer_netns_fd (None: beside it), with peer_address as MAC."""
    peer_attrs = [string(IFLA_IFNAME, peer)]
    if peer_address:
        peer_attrs.append(mac(IFLA_ADDRESS, peer_address))
    if peer_netns_fd is not None:
        peer_attrs.append(u32(IFLA_NET_NS_FD, peer_netns_fd))
    info = linkinfo("veth", [attr(VETH_INFO_PEER, ifinfomsg() + b"".join(peer_attrs))])
    return message(RTM_NEWLINK, CREATE, seq, ifinfomsg() + string(IFLA_IFNAME, name) + info)


def set_link(seq, index, up=None, mtu=None, master=None, address=None, stp=None, netns_fd=None):
    """RTM_NEWLINK changing link index: admin state (up True/False), MTU, master (ifindex, 0: none),
    MAC address, STP of a bridge, its namespace (netns_fd); None leaves a value as it is."""
    attrs = []
    if mtu is not None:
        attrs.append(u32(IFLA_MTU, mtu))
    if master is not None:
        attrs.append(u32(IFLA_MASTER, master))
    if address:
        attrs.append(mac(IFLA_ADDRESS, address))
    if netns_fd is not None:
        attrs.append(u32(IFLA_NET_NS_FD, netns_fd))
    if stp is not None:
        attrs.append(linkinfo("bridge", [u32(IFLA_BR_STP_STATE, 1 if stp else 0)]))
    flags, change = (0, 0) if up is None else (IFF_UP if up else 0, IFF_UP)
    return message(RTM_NEWLINK, CHANGE, seq, ifinfomsg(index, flags, change) + b"".join(attrs))


def set_bridge_port(seq, index, hairpin):
    """RTM_NEWLINK setting the hairpin mode of bridge port index (IFLA_BRPORT_MODE in IFLA_INFO_SLAVE_DATA)."""
    info = linkinfo(slave_kind="bridge", slave_data=[u8(IFLA_BRPORT_MODE, 1 if hairpin else 0)])
    return message(RTM_NEWLINK, CHANGE, seq, ifinfomsg(index) + info)


def del_link(seq, index):
    return message(RTM_DELLINK, CHANGE, seq, ifinfomsg(index))


def address_request(msg_type, flags, seq, index, address, prefixlen, broadcast=None, nodad=False):
    """RTM_NEWADDR or RTM_DELADDR of address/prefixlen on link index.

    IPv4 carries IFA_LOCAL and IFA_ADDRESS (both the address), IPv6 IFA_ADDRESS
    alone, as pyroute2 and iproute2 send them; broadcast adds IFA_BROADCAST;
    nodad sets IFA_F_NODAD in the header (an IPv6 address usable at once).
    """
    family = family_of(address)
    attrs = []
    if family == socket.AF_INET:
        attrs.append(ip(IFA_LOCAL, address))
    attrs.append(ip(IFA_ADDRESS, address))
    if broadcast:
        attrs.append(ip(IFA_BROADCAST, broadcast))
    header = ifaddrmsg(family, prefixlen, index, IFA_F_NODAD if nodad else 0)
    return message(msg_type, flags, seq, header + b"".join(attrs))


def route_request(msg_type, flags, seq, family, dst_len, table, proto, scope, route_type, priority,
                  dst=None, gateway=None, oif=None):
    """RTM_NEWROUTE or RTM_DELROUTE; the table goes in RTA_TABLE and, when below 256, in rtm_table."""
    attrs = [u32(RTA_TABLE, table), u32(RTA_PRIORITY, priority)]
    if dst is not None:
        attrs.append(ip(RTA_DST, dst))
    if gateway is not None:
        attrs.append(ip(RTA_GATEWAY, gateway))
    if oif is not None:
        attrs.append(u32(RTA_OIF, oif))
    fixed = rtmsg(family, dst_len, table if table < 256 else 0, proto, scope, route_type)
    return message(msg_type, flags, seq, fixed + b"".join(attrs))


# ------------------------------------------------------------------ decoding
def parse_attrs(data, offset, end=None):
    """{type: payload bytes} of the attributes in data[offset:end] (type without its flag bits).

    A truncated attribute ends the walk; of an attribute given twice the last counts.
    """
    end = len(data) if end is None else end
    found = {}
    while offset + 4 <= end:
        length, kind = _NLA.unpack_from(data, offset)
        if length < 4 or offset + length > end:
            break
        found[kind & NLA_TYPE_MASK] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return found


def _text(payload):
    return payload.split(b"\0", 1)[0].decode("utf-8", "replace")


def _u32(payload):
    return _U32.unpack_from(payload)[0]


def _address_text(payload):
    family = _FAMILY_OF_SIZE.get(len(payload))
    return socket.inet_ntop(family, payload) if family else None


def _mac_text(payload):
    return ":".join("%02x" % b for b in payload)


def decode_link(data):
    """An RTM_NEWLINK message (header first) as a dict of what the plugin reads.

    index, flags (ifi_flags), name, mac, mtu, master, link, link_netnsid (None when
    absent), kind (IFLA_INFO_KIND), stp (a bridge's STP state as a bool, None for
    other kinds) and hairpin (a bridge port's mode as a bool, None when the link
    is no bridge port).
    """
    _family, _type, index, flags, _change = _IFINFOMSG.unpack_from(data, HEADER_SIZE)
    found = parse_attrs(data, HEADER_SIZE + _IFINFOMSG.size)
    link = {"index": index, "flags": flags, "name": None, "mac": None, "mtu": None, "master": None,
            "link": None, "link_netnsid": None, "kind": None, "stp": None, "hairpin": None}
    for key, kind, decode in _LINK_ATTRS:
        payload = found.get(kind)
        if payload is not None:
            link[key] = decode(payload)
    info = found.get(IFLA_LINKINFO)
    if info is not None:
        info = parse_attrs(info, 0)
        kind = info.get(IFLA_INFO_KIND)
        link["kind"] = None if kind is None else _text(kind)
        data_attrs = info.get(IFLA_INFO_DATA)
        if link["kind"] == "bridge" and data_attrs is not None:
            stp = parse_attrs(data_attrs, 0).get(IFLA_BR_STP_STATE)
            link["stp"] = bool(stp is not None and _u32(stp))
        slave_kind = info.get(IFLA_INFO_SLAVE_KIND)
        slave_data = info.get(IFLA_INFO_SLAVE_DATA)
        if slave_kind is not None and _text(slave_kind) == "bridge" and slave_data is not None:
            mode = parse_attrs(slave_data, 0).get(IFLA_BRPORT_MODE)
            link["hairpin"] = bool(mode and mode[0])
    return link


_LINK_ATTRS = (
    ("name", IFLA_IFNAME, _text),
    ("mac", IFLA_ADDRESS, _mac_text),
    ("mtu", IFLA_MTU, _u32),
    ("master", IFLA_MASTER, _u32),
    ("link", IFLA_LINK, _u32),
    ("link_netnsid", IFLA_LINK_NETNSID, lambda payload: _S32.unpack_from(payload)[0]),
)


def decode_address(data):
    """An RTM_NEWADDR message as a dict: family, prefixlen, scope, index, address (IFA_ADDRESS), local (IFA_LOCAL)."""
    family, prefixlen, _flags, scope, index = _IFADDRMSG.unpack_from(data, HEADER_SIZE)
    found = parse_attrs(data, HEADER_SIZE + _IFADDRMSG.size)
    address, local = found.get(IFA_ADDRESS), found.get(IFA_LOCAL)
    return {"family": family, "prefixlen": prefixlen, "scope": scope, "index": index,
            "address": None if address is None else _address_text(address),
            "local": None if local is None else _address_text(local)}


def decode_route(data):
    """An RTM_NEWROUTE message as a dict: family, dst_len, table (RTA_TABLE, else rtm_table), proto,
    scope, type, dst, gateway, oif and priority (None when absent)."""
    family, dst_len, _src, _tos, table, proto, scope, route_type, _flags = _RTMSG.unpack_from(data, HEADER_SIZE)
    found = parse_attrs(data, HEADER_SIZE + _RTMSG.size)
    dst, gateway, oif, priority = (found.get(k) for k in (RTA_DST, RTA_GATEWAY, RTA_OIF, RTA_PRIORITY))
    table_attr = found.get(RTA_TABLE)
    return {"family": family, "dst_len": dst_len, "table": (_u32(table_attr) if table_attr else 0) or table,
            "proto": proto, "scope": scope, "type": route_type,
            "dst": None if dst is None else _address_text(dst),
            "gateway": None if gateway is None else _address_text(gateway),
            "oif": None if oif is None else _u32(oif),
            "priority": None if priority is None else _u32(priority)}
