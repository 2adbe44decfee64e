# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The standard-library rtnetlink codec (kernel.rtnl) against pyroute2's message classes.

Every message the CNI plugin's session (kernel.lite) sends is encoded here and by
pyroute2's ifinfmsg, ifaddrmsg and rtmsg from the same fields: the bytes must be
equal. Messages as the kernel sends them, encoded by pyroute2, must decode to
the values pyroute2 reads, and to the same plain dicts kernel.netlink makes of
them. Runs with pyroute2 0.9 (.venv) and 0.7 (.venv-pr07).
"""
from __future__ import annotations

import ast
import errno
import importlib.util
import ipaddress
import os
import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import KernelError
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import Action, Op
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import converge, lite, netlink, rtnl, wire
from ansible_collections.podnet.mesh.tests.helpers.netlink_fakes import FakeSocket
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

PROFILE = settings(max_examples=200, deadline=None, derandomize=True, database=None)
SEQ = 7
CREATE, CHANGE, REPLACE = rtnl.CREATE, rtnl.CHANGE, rtnl.REPLACE
DUMP = rtnl.NLM_F_REQUEST | rtnl.NLM_F_DUMP


def pr(msg_class, msg_type, header_flags, seq=SEQ, **fields):
    """pyroute2's encoding of one message (as kernel.wire.request builds requests)."""
    msg = msg_class()
    msg["header"]["type"] = msg_type
    msg["header"]["flags"] = header_flags
    msg["header"]["sequence_number"] = seq
    for key, value in fields.items():
        msg[key] = value
    msg.encode()
    return bytes(msg.data)


def linkinfo(*attrs):
    return ("IFLA_LINKINFO", {"attrs": list(attrs)})


def info_data(*attrs):
    return ("IFLA_INFO_DATA", {"attrs": list(attrs)})


# ------------------------------------------------------------- encoding
ENCODED = [
    ("dump links", rtnl.dump_request(rtnl.RTM_GETLINK, SEQ), pr(ifinfmsg, rtnl.RTM_GETLINK, DUMP, family=0)),
    ("dump addresses", rtnl.dump_request(rtnl.RTM_GETADDR, SEQ), pr(ifaddrmsg, rtnl.RTM_GETADDR, DUMP, family=0)),
    ("dump IPv4 routes", rtnl.dump_request(rtnl.RTM_GETROUTE, SEQ, socket.AF_INET),
     pr(rtmsg, rtnl.RTM_GETROUTE, DUMP, family=socket.AF_INET)),
    ("dump IPv6 routes", rtnl.dump_request(rtnl.RTM_GETROUTE, SEQ, socket.AF_INET6),
     pr(rtmsg, rtnl.RTM_GETROUTE, DUMP, family=socket.AF_INET6)),
    ("get link by name", rtnl.get_link(SEQ, name="veth0123456789a"),
     pr(ifinfmsg, rtnl.RTM_GETLINK, rtnl.NLM_F_REQUEST, attrs=[("IFLA_IFNAME", "veth0123456789a")])),
    ("get link by index", rtnl.get_link(SEQ, index=42), pr(ifinfmsg, rtnl.RTM_GETLINK, rtnl.NLM_F_REQUEST, index=42)),
    ("new bridge", rtnl.new_bridge(SEQ, "cni0"),
     pr(ifinfmsg, rtnl.RTM_NEWLINK, CREATE, attrs=[("IFLA_IFNAME", "cni0"), linkinfo(("IFLA_INFO_KIND", "bridge"))])),
    ("new bridge with its MAC", rtnl.new_bridge(SEQ, "cni0", "0a:58:0a:f4:01:01"),
     pr(ifinfmsg, rtnl.RTM_NEWLINK, CREATE, attrs=[("IFLA_IFNAME", "cni0"), ("IFLA_ADDRESS", "0a:58:0a:f4:01:01"),
                                                   linkinfo(("IFLA_INFO_KIND", "bridge"))])),
    ("new veth", rtnl.new_veth(SEQ, "veth-red", "veth-red-p"),
     pr(ifinfmsg, rtnl.RTM_NEWLINK, CREATE, attrs=[
         ("IFLA_IFNAME", "veth-red"),
         linkinfo(("IFLA_INFO_KIND", "veth"), info_data(("VETH_INFO_PEER", {"attrs": [("IFLA_IFNAME", "veth-red-p")]})))])),
    ("new veth, peer in a namespace with a MAC", rtnl.new_veth(SEQ, "vethd72e032fedd", "eth0", "0a:58:0a:fa:00:02", 5),
     pr(ifinfmsg, rtnl.RTM_NEWLINK, CREATE, attrs=[
         ("IFLA_IFNAME", "vethd72e032fedd"),
         linkinfo(("IFLA_INFO_KIND", "veth"), info_data(("VETH_INFO_PEER", {"attrs": [
             ("IFLA_IFNAME", "eth0"), ("IFLA_ADDRESS", "0a:58:0a:fa:00:02"), ("IFLA_NET_NS_FD", 5)]})))])),
    ("link up", rtnl.set_link(SEQ, 3, up=True), pr(ifinfmsg, rtnl.RTM_NEWLINK, CHANGE, index=3, flags=1, change=1)),
    ("link down", rtnl.set_link(SEQ, 3, up=False), pr(ifinfmsg, rtnl.RTM_NEWLINK, CHANGE, index=3, flags=0, change=1)),
    ("link mtu", rtnl.set_link(SEQ, 3, mtu=1450),
     pr(ifinfmsg, rtnl.RTM_NEWLINK, CHANGE, index=3, attrs=[("IFLA_MTU", 1450)])),
    ("link master", rtnl.set_link(SEQ, 3, master=2),
     pr(ifinfmsg, rtnl.RTM_NEWLINK, CHANGE, index=3, attrs=[("IFLA_MASTER", 2)])),
    ("link without master", rtnl.set_link(SEQ, 3, master=0),
     pr(ifinfmsg, rtnl.RTM_NEWLINK, CHANGE, index=3, attrs=[("IFLA_MASTER", 0)])),
    ("link MAC", rtnl.set_link(SEQ, 3, address="02:70:6e:c0:a8:01"),
     pr(ifinfmsg, rtnl.RTM_NEWLINK, CHANGE, index=3, attrs=[("IFLA_ADDRESS", "02:70:6e:c0:a8:01")])),
    ("link into a namespace", rtnl.set_link(SEQ, 3, netns_fd=9),
     pr(ifinfmsg, rtnl.RTM_NEWLINK, CHANGE, index=3, attrs=[("IFLA_NET_NS_FD", 9)])),
    ("bridge STP on", rtnl.set_link(SEQ, 2, stp=True),
     pr(ifinfmsg, rtnl.RTM_NEWLINK, CHANGE, index=2, attrs=[
         linkinfo(("IFLA_INFO_KIND", "bridge"), info_data(("IFLA_BR_STP_STATE", 1)))])),
    ("bridge STP off", rtnl.set_link(SEQ, 2, stp=False),
     pr(ifinfmsg, rtnl.RTM_NEWLINK, CHANGE, index=2, attrs=[
         linkinfo(("IFLA_INFO_KIND", "bridge"), info_data(("IFLA_BR_STP_STATE", 0)))])),
    ("link: everything at once", rtnl.set_link(SEQ, 3, up=True, mtu=9000, master=2, address="0a:58:00:00:00:01"),
     pr(ifinfmsg, rtnl.RTM_NEWLINK, CHANGE, index=3, flags=1, change=1, attrs=[
         ("IFLA_MTU", 9000), ("IFLA_MASTER", 2), ("IFLA_ADDRESS", "0a:58:00:00:00:01")])),
    ("hairpin on", rtnl.set_bridge_port(SEQ, 3, True),
     pr(ifinfmsg, rtnl.RTM_NEWLINK, CHANGE, index=3, attrs=[
         linkinfo(("IFLA_INFO_SLAVE_KIND", "bridge"), ("IFLA_INFO_SLAVE_DATA", {"attrs": [("IFLA_BRPORT_MODE", 1)]}))])),
    ("hairpin off", rtnl.set_bridge_port(SEQ, 3, False),
     pr(ifinfmsg, rtnl.RTM_NEWLINK, CHANGE, index=3, attrs=[
         linkinfo(("IFLA_INFO_SLAVE_KIND", "bridge"), ("IFLA_INFO_SLAVE_DATA", {"attrs": [("IFLA_BRPORT_MODE", 0)]}))])),
    ("delete link", rtnl.del_link(SEQ, 3), pr(ifinfmsg, rtnl.RTM_DELLINK, CHANGE, index=3)),
    ("add IPv4 address", rtnl.address_request(rtnl.RTM_NEWADDR, CREATE, SEQ, 3, "10.244.1.2", 24),
     pr(ifaddrmsg, rtnl.RTM_NEWADDR, CREATE, family=socket.AF_INET, prefixlen=24, index=3,
        attrs=[("IFA_LOCAL", "10.244.1.2"), ("IFA_ADDRESS", "10.244.1.2")])),
    ("add IPv4 address with broadcast",
     rtnl.address_request(rtnl.RTM_NEWADDR, CREATE, SEQ, 3, "10.244.1.1", 24, "10.244.1.255"),
     pr(ifaddrmsg, rtnl.RTM_NEWADDR, CREATE, family=socket.AF_INET, prefixlen=24, index=3,
        attrs=[("IFA_LOCAL", "10.244.1.1"), ("IFA_ADDRESS", "10.244.1.1"), ("IFA_BROADCAST", "10.244.1.255")])),
    ("delete IPv4 address", rtnl.address_request(rtnl.RTM_DELADDR, CHANGE, SEQ, 3, "10.244.1.2", 24),
     pr(ifaddrmsg, rtnl.RTM_DELADDR, CHANGE, family=socket.AF_INET, prefixlen=24, index=3,
        attrs=[("IFA_LOCAL", "10.244.1.2"), ("IFA_ADDRESS", "10.244.1.2")])),
    ("add IPv6 address", rtnl.address_request(rtnl.RTM_NEWADDR, CREATE, SEQ, 3, "fd00:10:244:1::2", 64),
     pr(ifaddrmsg, rtnl.RTM_NEWADDR, CREATE, family=socket.AF_INET6, prefixlen=64, index=3,
        attrs=[("IFA_ADDRESS", "fd00:10:244:1::2")])),
    ("add IPv6 address without duplicate address detection",
     rtnl.address_request(rtnl.RTM_NEWADDR, CREATE, SEQ, 3, "fd00:10:244:1::1", 64, nodad=True),
     pr(ifaddrmsg, rtnl.RTM_NEWADDR, CREATE, family=socket.AF_INET6, prefixlen=64, index=3, flags=rtnl.IFA_F_NODAD,
        attrs=[("IFA_ADDRESS", "fd00:10:244:1::1")])),
    ("add default route", rtnl.route_request(rtnl.RTM_NEWROUTE, CREATE, SEQ, socket.AF_INET, 0, 254, 149, 0, 1, 0,
                                             gateway="10.244.1.1", oif=2),
     pr(rtmsg, rtnl.RTM_NEWROUTE, CREATE, family=socket.AF_INET, dst_len=0, table=254, proto=149, scope=0, type=1,
        attrs=[("RTA_TABLE", 254), ("RTA_PRIORITY", 0), ("RTA_GATEWAY", "10.244.1.1"), ("RTA_OIF", 2)])),
    ("replace a route in a big table", rtnl.route_request(rtnl.RTM_NEWROUTE, REPLACE, SEQ, socket.AF_INET, 24, 1000,
                                                          149, 0, 1, 100, dst="10.244.2.0", gateway="192.168.1.12"),
     pr(rtmsg, rtnl.RTM_NEWROUTE, REPLACE, family=socket.AF_INET, dst_len=24, table=0, proto=149, scope=0, type=1,
        attrs=[("RTA_TABLE", 1000), ("RTA_PRIORITY", 100), ("RTA_DST", "10.244.2.0"), ("RTA_GATEWAY", "192.168.1.12")])),
    ("delete IPv6 device route", rtnl.route_request(rtnl.RTM_DELROUTE, CHANGE, SEQ, socket.AF_INET6, 64, 254, 149, 255,
                                                    1, 1024, dst="fd00:1::", oif=4),
     pr(rtmsg, rtnl.RTM_DELROUTE, CHANGE, family=socket.AF_INET6, dst_len=64, table=254, proto=149, scope=255, type=1,
        attrs=[("RTA_TABLE", 254), ("RTA_PRIORITY", 1024), ("RTA_DST", "fd00:1::"), ("RTA_OIF", 4)])),
    # A dual-stack attachment's IPv6 default route: via the bridge's IPv6 gateway, on the container's interface.
    ("add IPv6 default route", rtnl.route_request(rtnl.RTM_NEWROUTE, CREATE, SEQ, socket.AF_INET6, 0, 254, 149, 0, 1,
                                                  1024, gateway="fd00:10:244:1::1", oif=2),
     pr(rtmsg, rtnl.RTM_NEWROUTE, CREATE, family=socket.AF_INET6, dst_len=0, table=254, proto=149, scope=0, type=1,
        attrs=[("RTA_TABLE", 254), ("RTA_PRIORITY", 1024), ("RTA_GATEWAY", "fd00:10:244:1::1"), ("RTA_OIF", 2)])),
    ("add a later attachment's IPv6 default route",
     rtnl.route_request(rtnl.RTM_NEWROUTE, CREATE, SEQ, socket.AF_INET6, 0, 254, 149, 0, 1, 1025,
                        gateway="fd00:10:245:1::1", oif=5),
     pr(rtmsg, rtnl.RTM_NEWROUTE, CREATE, family=socket.AF_INET6, dst_len=0, table=254, proto=149, scope=0, type=1,
        attrs=[("RTA_TABLE", 254), ("RTA_PRIORITY", 1025), ("RTA_GATEWAY", "fd00:10:245:1::1"), ("RTA_OIF", 5)])),
    ("replace IPv6 default route", rtnl.route_request(rtnl.RTM_NEWROUTE, REPLACE, SEQ, socket.AF_INET6, 0, 254, 149,
                                                      0, 1, 1024, gateway="fd00:10:244:1::1", oif=2),
     pr(rtmsg, rtnl.RTM_NEWROUTE, REPLACE, family=socket.AF_INET6, dst_len=0, table=254, proto=149, scope=0, type=1,
        attrs=[("RTA_TABLE", 254), ("RTA_PRIORITY", 1024), ("RTA_GATEWAY", "fd00:10:244:1::1"), ("RTA_OIF", 2)])),
    ("delete IPv6 default route", rtnl.route_request(rtnl.RTM_DELROUTE, CHANGE, SEQ, socket.AF_INET6, 0, 254, 149,
                                                     255, 1, 1024, gateway="fd00:10:244:1::1", oif=2),
     pr(rtmsg, rtnl.RTM_DELROUTE, CHANGE, family=socket.AF_INET6, dst_len=0, table=254, proto=149, scope=255, type=1,
        attrs=[("RTA_TABLE", 254), ("RTA_PRIORITY", 1024), ("RTA_GATEWAY", "fd00:10:244:1::1"), ("RTA_OIF", 2)])),
    ("IPv6 route to a pod prefix via a node", rtnl.route_request(rtnl.RTM_NEWROUTE, CREATE, SEQ, socket.AF_INET6, 64,
                                                                 254, 149, 0, 1, 1024, dst="fd00:10:244:2::",
                                                                 gateway="fd00:192:168:1::12"),
     pr(rtmsg, rtnl.RTM_NEWROUTE, CREATE, family=socket.AF_INET6, dst_len=64, table=254, proto=149, scope=0, type=1,
        attrs=[("RTA_TABLE", 254), ("RTA_PRIORITY", 1024), ("RTA_DST", "fd00:10:244:2::"),
               ("RTA_GATEWAY", "fd00:192:168:1::12")])),
    ("delete IPv6 address", rtnl.address_request(rtnl.RTM_DELADDR, CHANGE, SEQ, 3, "fd00:10:244:1::2", 64),
     pr(ifaddrmsg, rtnl.RTM_DELADDR, CHANGE, family=socket.AF_INET6, prefixlen=64, index=3,
        attrs=[("IFA_ADDRESS", "fd00:10:244:1::2")])),
    ("add the bridge's IPv6 gateway without duplicate address detection",
     rtnl.address_request(rtnl.RTM_NEWADDR, CREATE, SEQ, 5, "fd00:10:244:1::1", 64, nodad=True),
     pr(ifaddrmsg, rtnl.RTM_NEWADDR, CREATE, family=socket.AF_INET6, prefixlen=64, index=5, flags=rtnl.IFA_F_NODAD,
        attrs=[("IFA_ADDRESS", "fd00:10:244:1::1")])),
    ("dump IPv6 addresses", rtnl.dump_request(rtnl.RTM_GETADDR, SEQ, socket.AF_INET6),
     pr(ifaddrmsg, rtnl.RTM_GETADDR, DUMP, family=socket.AF_INET6)),
]


@pytest.mark.parametrize("mine, theirs", [case[1:] for case in ENCODED], ids=[case[0] for case in ENCODED])
def test_requests_are_pyroute2s_bytes(mine, theirs):
    assert mine == theirs


def test_flagged_nest_sets_nla_f_nested():
    data = rtnl.nested(rtnl.IFLA_PROTINFO, rtnl.u8(rtnl.IFLA_BRPORT_MODE, 1), flagged=True)
    assert struct.unpack_from("=HH", data) == (12, rtnl.IFLA_PROTINFO | rtnl.NLA_F_NESTED)
    assert rtnl.parse_attrs(data, 0)[rtnl.IFLA_PROTINFO] == rtnl.u8(rtnl.IFLA_BRPORT_MODE, 1)


# ---------------------------------------------------------- strategies
ifnames = st.text(st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="/:%"),
                  min_size=1, max_size=15)
macs = st.binary(min_size=6, max_size=6).map(lambda b: ":".join("%02x" % x for x in b))
u32s = st.integers(min_value=0, max_value=2 ** 32 - 1)
indexes = st.integers(min_value=1, max_value=2 ** 31 - 1)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
addresses = st.one_of(ipv4, ipv6)


@PROFILE
@given(name=ifnames, peer=ifnames, mac=st.none() | macs, fd=st.none() | st.integers(0, 2 ** 31 - 1),
       seq=u32s)
def test_any_veth_is_pyroute2s_bytes(name, peer, mac, fd, seq):
    peer_attrs = [("IFLA_IFNAME", peer)] + ([("IFLA_ADDRESS", mac)] if mac else []) \
        + ([("IFLA_NET_NS_FD", fd)] if fd is not None else [])
    theirs = pr(ifinfmsg, rtnl.RTM_NEWLINK, CREATE, seq, attrs=[
        ("IFLA_IFNAME", name),
        linkinfo(("IFLA_INFO_KIND", "veth"), info_data(("VETH_INFO_PEER", {"attrs": peer_attrs})))])
    assert rtnl.new_veth(seq, name, peer, mac, fd) == theirs


@PROFILE
@given(index=indexes, up=st.none() | st.booleans(), mtu=st.none() | st.integers(68, 65535),
       master=st.none() | st.integers(0, 2 ** 31 - 1), mac=st.none() | macs, seq=u32s)
def test_any_link_change_is_pyroute2s_bytes(index, up, mtu, master, mac, seq):
    attrs = [(k, v) for k, v in (("IFLA_MTU", mtu), ("IFLA_MASTER", master), ("IFLA_ADDRESS", mac)) if v is not None]
    fields = {} if up is None else {"flags": 1 if up else 0, "change": 1}
    theirs = pr(ifinfmsg, rtnl.RTM_NEWLINK, CHANGE, seq, index=index, attrs=attrs, **fields)
    assert rtnl.set_link(seq, index, up=up, mtu=mtu, master=master, address=mac) == theirs


@PROFILE
@given(address=addresses, data=st.data(), index=indexes, broadcast=st.none() | ipv4, delete=st.booleans())
def test_any_address_is_pyroute2s_bytes(address, data, index, broadcast, delete):
    v6 = ":" in address
    prefixlen = data.draw(st.integers(0, 128 if v6 else 32))
    broadcast = None if v6 else broadcast
    msg_type, flags = (rtnl.RTM_DELADDR, CHANGE) if delete else (rtnl.RTM_NEWADDR, CREATE)
    attrs = ([] if v6 else [("IFA_LOCAL", address)]) + [("IFA_ADDRESS", address)] \
        + ([("IFA_BROADCAST", broadcast)] if broadcast else [])
    theirs = pr(ifaddrmsg, msg_type, flags, family=socket.AF_INET6 if v6 else socket.AF_INET, prefixlen=prefixlen,
                index=index, attrs=attrs)
    assert rtnl.address_request(msg_type, flags, SEQ, index, address, prefixlen, broadcast) == theirs


@PROFILE
@given(data=st.data(), v6=st.booleans(), table=st.integers(1, 2 ** 32 - 1), proto=st.integers(0, 255),
       metric=u32s, oif=st.none() | indexes, op=st.sampled_from([(rtnl.RTM_NEWROUTE, CREATE),
                                                                (rtnl.RTM_NEWROUTE, REPLACE),
                                                                (rtnl.RTM_DELROUTE, CHANGE)]))
def test_any_route_is_pyroute2s_bytes(data, v6, table, proto, metric, oif, op):
    family = socket.AF_INET6 if v6 else socket.AF_INET
    addr = ipv6 if v6 else ipv4
    dst_len = data.draw(st.integers(0, 128 if v6 else 32))
    dst = data.draw(addr) if dst_len else None
    gateway = data.draw(st.none() | addr)
    scope = data.draw(st.sampled_from([0, 253, 255]))
    attrs = [("RTA_TABLE", table), ("RTA_PRIORITY", metric)]
    attrs += [(k, v) for k, v in (("RTA_DST", dst), ("RTA_GATEWAY", gateway), ("RTA_OIF", oif)) if v is not None]
    theirs = pr(rtmsg, op[0], op[1], family=family, dst_len=dst_len, table=table if table < 256 else 0, proto=proto,
                scope=scope, type=1, attrs=attrs)
    mine = rtnl.route_request(op[0], op[1], SEQ, family, dst_len, table, proto, scope, 1, metric, dst=dst,
                              gateway=gateway, oif=oif)
    assert mine == theirs


# ------------------------------------------------------------- decoding
def kernel_link(index, flags=0, attrs=()):
    """An RTM_NEWLINK as the kernel sends it, encoded by pyroute2."""
    return pr(ifinfmsg, rtnl.RTM_NEWLINK, 0, index=index, flags=flags, change=0, attrs=list(attrs))


def pyroute2_decoded(msg_class, data):
    msg = msg_class(data)
    msg.decode()
    return msg


NAMES = {2: "cni0", 7: "br-other"}
LINKS = [
    ("a bridge with STP", kernel_link(2, 0x1003, [
        ("IFLA_IFNAME", "cni0"), ("IFLA_TXQLEN", 1000), ("IFLA_MTU", 1450),
        ("IFLA_ADDRESS", "0a:58:0a:f4:01:01"), ("IFLA_BROADCAST", "ff:ff:ff:ff:ff:ff"),
        linkinfo(("IFLA_INFO_KIND", "bridge"), info_data(("IFLA_BR_FORWARD_DELAY", 1500), ("IFLA_BR_STP_STATE", 1)))])),
    ("a bridge without STP", kernel_link(2, 0x1002, [
        ("IFLA_IFNAME", "cni0"), ("IFLA_MTU", 1500), ("IFLA_ADDRESS", "0a:58:0a:f4:01:01"),
        linkinfo(("IFLA_INFO_KIND", "bridge"), info_data(("IFLA_BR_STP_STATE", 0)))])),
    ("a veth port with hairpin, peer elsewhere", kernel_link(5, 0x11043, [
        ("IFLA_IFNAME", "veth-red"), ("IFLA_MTU", 1450), ("IFLA_MASTER", 2), ("IFLA_LINK", 2),
        ("IFLA_LINK_NETNSID", 0), ("IFLA_ADDRESS", "52:2e:18:47:f1:fa"),
        linkinfo(("IFLA_INFO_KIND", "veth"), ("IFLA_INFO_SLAVE_KIND", "bridge"),
                 ("IFLA_INFO_SLAVE_DATA", {"attrs": [("IFLA_BRPORT_STATE", 3), ("IFLA_BRPORT_MODE", 1)]}))])),
    ("a veth port without hairpin, master unknown", kernel_link(6, 0x1003, [
        ("IFLA_IFNAME", "veth-blue"), ("IFLA_MTU", 1500), ("IFLA_MASTER", 9), ("IFLA_LINK", 12),
        linkinfo(("IFLA_INFO_KIND", "veth"), ("IFLA_INFO_SLAVE_KIND", "bridge"),
                 ("IFLA_INFO_SLAVE_DATA", {"attrs": [("IFLA_BRPORT_MODE", 0)]}))])),
    ("a pod's eth0", kernel_link(2, 0x11043, [
        ("IFLA_IFNAME", "eth0"), ("IFLA_MTU", 1450), ("IFLA_LINK", 5), ("IFLA_LINK_NETNSID", 3),
        ("IFLA_ADDRESS", "0a:58:0a:f4:01:02"), linkinfo(("IFLA_INFO_KIND", "veth"))])),
    ("loopback, no link info", kernel_link(1, 0x10049, [("IFLA_IFNAME", "lo"), ("IFLA_MTU", 65536),
                                                        ("IFLA_ADDRESS", "00:00:00:00:00:00")])),
    ("a bond port of kind dummy", kernel_link(8, 0, [
        ("IFLA_IFNAME", "d0"), ("IFLA_MASTER", 7), linkinfo(("IFLA_INFO_KIND", "dummy"))])),
]


@pytest.mark.parametrize("data", [case[1] for case in LINKS], ids=[case[0] for case in LINKS])
def test_links_decode_to_netlinks_dicts(data):
    msg = pyroute2_decoded(ifinfmsg, data)
    mine = rtnl.decode_link(data)
    assert (mine["name"], mine["mtu"], mine["mac"], mine["index"]) == (
        msg.get_attr("IFLA_IFNAME"), msg.get_attr("IFLA_MTU"), msg.get_attr("IFLA_ADDRESS"), msg["index"])
    assert lite.link_state(mine, NAMES) == netlink.link_state(msg, NAMES)


@PROFILE
@given(index=indexes, flags=u32s, name=ifnames, mtu=u32s, mac=macs, master=st.none() | indexes,
       link=st.none() | indexes, netnsid=st.none() | st.integers(-1, 2 ** 31 - 1),
       kind=st.none() | st.sampled_from(["bridge", "veth", "dummy", "vxlan"]), stp=st.none() | st.integers(0, 2),
       port=st.none() | st.integers(0, 1))
def test_any_link_decodes_to_netlinks_dict(index, flags, name, mtu, mac, master, link, netnsid, kind, stp, port):
    attrs = [("IFLA_IFNAME", name), ("IFLA_MTU", mtu), ("IFLA_ADDRESS", mac)]
    attrs += [(k, v) for k, v in (("IFLA_MASTER", master), ("IFLA_LINK", link), ("IFLA_LINK_NETNSID", netnsid))
              if v is not None]
    info = []
    if kind is not None:
        info.append(("IFLA_INFO_KIND", kind))
        if kind == "bridge" and stp is not None:
            info.append(info_data(("IFLA_BR_STP_STATE", stp)))
    if port is not None:
        info += [("IFLA_INFO_SLAVE_KIND", "bridge"), ("IFLA_INFO_SLAVE_DATA", {"attrs": [("IFLA_BRPORT_MODE", port)]})]
    if info:
        attrs.append(linkinfo(*info))
    data = kernel_link(index, flags, attrs)
    assert lite.link_state(rtnl.decode_link(data), NAMES) == netlink.link_state(pyroute2_decoded(ifinfmsg, data), NAMES)


def kernel_address(family, prefixlen, scope, index, attrs):
    return pr(ifaddrmsg, rtnl.RTM_NEWADDR, 0, family=family, prefixlen=prefixlen, scope=scope, index=index,
              attrs=list(attrs))


ADDRESSES = [
    ("IPv4", kernel_address(socket.AF_INET, 24, 0, 3, [
        ("IFA_ADDRESS", "10.244.1.2"), ("IFA_LOCAL", "10.244.1.2"), ("IFA_BROADCAST", "10.244.1.255"),
        ("IFA_LABEL", "eth0"), ("IFA_FLAGS", 0x80)])),
    ("IPv4 point to point", kernel_address(socket.AF_INET, 32, 0, 3, [
        ("IFA_ADDRESS", "192.0.2.9"), ("IFA_LOCAL", "192.0.2.1")])),
    ("IPv6", kernel_address(socket.AF_INET6, 64, 0, 3, [("IFA_ADDRESS", "fd00:10:244:1::2"), ("IFA_FLAGS", 0x80)])),
    ("IPv6 link-local", kernel_address(socket.AF_INET6, 64, 253, 3, [("IFA_ADDRESS", "fe80::858:aff:fefa:2")])),
    # A pod's IPv6 address added without DAD: IFA_F_NODAD in the header and in IFA_FLAGS, with its lifetimes.
    ("IPv6 without DAD", pr(ifaddrmsg, rtnl.RTM_NEWADDR, 0, family=socket.AF_INET6, prefixlen=64, flags=0x82,
                            scope=0, index=3, attrs=[("IFA_ADDRESS", "fd00:10:244:1::2"), ("IFA_FLAGS", 0x82),
                                                     ("IFA_CACHEINFO", {"ifa_preferred": 0xffffffff,
                                                                        "ifa_valid": 0xffffffff,
                                                                        "cstamp": 100, "tstamp": 100})])),
]


@pytest.mark.parametrize("data", [case[1] for case in ADDRESSES], ids=[case[0] for case in ADDRESSES])
def test_addresses_decode_as_netlink_reads_them(data):
    msg = pyroute2_decoded(ifaddrmsg, data)
    mine = rtnl.decode_address(data)
    assert (mine["index"], mine["address"], mine["local"]) == (
        msg["index"], msg.get_attr("IFA_ADDRESS"), msg.get_attr("IFA_LOCAL"))
    assert lite._address(mine) == netlink._address(msg)


@PROFILE
@given(address=addresses, local=st.none() | ipv4, data=st.data(), scope=st.sampled_from([0, 200, 253, 254]),
       index=indexes)
def test_any_address_decodes_as_netlink_reads_it(address, local, data, scope, index):
    v6 = ":" in address
    prefixlen = data.draw(st.integers(0, 128 if v6 else 32))
    attrs = [("IFA_ADDRESS", address)] + ([("IFA_LOCAL", local)] if local and not v6 else [])
    raw = kernel_address(socket.AF_INET6 if v6 else socket.AF_INET, prefixlen, scope, index, attrs)
    msg = pyroute2_decoded(ifaddrmsg, raw)
    assert lite._address(rtnl.decode_address(raw)) == netlink._address(msg)
    assert rtnl.decode_address(raw)["index"] == msg["index"]


def kernel_route(family, dst_len, table, proto, scope, route_type, attrs):
    return pr(rtmsg, rtnl.RTM_NEWROUTE, 0, family=family, dst_len=dst_len, table=table, proto=proto, scope=scope,
              type=route_type, attrs=list(attrs))


def netlink_route(msg):
    """The fields kernel.netlink.Namespace.routes reads of a route message."""
    attrs = dict((nla[0], nla[1]) for nla in msg["attrs"])
    return {"family": msg["family"], "dst_len": msg["dst_len"], "table": attrs.get("RTA_TABLE") or msg["table"],
            "proto": msg["proto"], "scope": msg["scope"], "type": msg["type"], "dst": attrs.get("RTA_DST"),
            "gateway": attrs.get("RTA_GATEWAY"), "oif": attrs.get("RTA_OIF"), "priority": attrs.get("RTA_PRIORITY")}


ROUTES = [
    ("default via", kernel_route(socket.AF_INET, 0, 254, 149, 0, 1, [
        ("RTA_TABLE", 254), ("RTA_GATEWAY", "10.244.1.1"), ("RTA_OIF", 2)])),
    ("connected", kernel_route(socket.AF_INET, 24, 254, 2, 253, 1, [
        ("RTA_TABLE", 254), ("RTA_DST", "10.244.1.0"), ("RTA_PREFSRC", "10.244.1.2"), ("RTA_OIF", 2)])),
    ("blackhole in a big table", kernel_route(socket.AF_INET, 16, 252, 149, 0, 6, [
        ("RTA_TABLE", 1000), ("RTA_DST", "10.244.0.0"), ("RTA_PRIORITY", 20)])),
    ("IPv6 with metric", kernel_route(socket.AF_INET6, 64, 254, 149, 0, 1, [
        ("RTA_TABLE", 254), ("RTA_DST", "fd00:1::"), ("RTA_PRIORITY", 1024), ("RTA_GATEWAY", "fe80::1"),
        ("RTA_OIF", 4)])),
    ("no RTA_TABLE", kernel_route(socket.AF_INET, 8, 255, 2, 254, 2, [("RTA_DST", "127.0.0.0")])),
    # A container's IPv6 routes as the kernel dumps them: ours (default via the gateway), the connected
    # prefix and the link-local one (protocol kernel, RTA_PREF), the multicast one of table local.
    ("IPv6 default via the gateway", kernel_route(socket.AF_INET6, 0, 254, 149, 0, 1, [
        ("RTA_TABLE", 254), ("RTA_PRIORITY", 1024), ("RTA_GATEWAY", "fd00:10:244:1::1"), ("RTA_OIF", 2),
        ("RTA_PREF", 0)])),
    ("IPv6 connected", kernel_route(socket.AF_INET6, 64, 254, 2, 0, 1, [
        ("RTA_TABLE", 254), ("RTA_DST", "fd00:10:244:1::"), ("RTA_PRIORITY", 256), ("RTA_OIF", 2), ("RTA_PREF", 0)])),
    ("IPv6 link-local prefix", kernel_route(socket.AF_INET6, 64, 254, 2, 0, 1, [
        ("RTA_TABLE", 254), ("RTA_DST", "fe80::"), ("RTA_PRIORITY", 256), ("RTA_OIF", 2)])),
    ("IPv6 multicast in table local", kernel_route(socket.AF_INET6, 8, 255, 2, 0, 5, [
        ("RTA_TABLE", 255), ("RTA_DST", "ff00::"), ("RTA_PRIORITY", 256), ("RTA_OIF", 2)])),
]


@pytest.mark.parametrize("data", [case[1] for case in ROUTES], ids=[case[0] for case in ROUTES])
def test_routes_decode_as_netlink_reads_them(data):
    assert rtnl.decode_route(data) == netlink_route(pyroute2_decoded(rtmsg, data))


@PROFILE
@given(data=st.data(), v6=st.booleans(), table=st.integers(0, 2 ** 32 - 1), proto=st.integers(0, 255),
       route_type=st.integers(0, 11), metric=st.none() | u32s, oif=st.none() | indexes)
def test_any_route_decodes_as_netlink_reads_it(data, v6, table, proto, route_type, metric, oif):
    family = socket.AF_INET6 if v6 else socket.AF_INET
    addr = ipv6 if v6 else ipv4
    dst_len = data.draw(st.integers(0, 128 if v6 else 32))
    attrs = [("RTA_TABLE", table)]
    attrs += [(k, v) for k, v in (("RTA_DST", data.draw(addr) if dst_len else None),
                                  ("RTA_GATEWAY", data.draw(st.none() | addr)), ("RTA_OIF", oif),
                                  ("RTA_PRIORITY", metric)) if v is not None]
    raw = kernel_route(family, dst_len, table if table < 256 else 252, proto, 0, route_type, attrs)
    assert rtnl.decode_route(raw) == netlink_route(pyroute2_decoded(rtmsg, raw))


def test_a_truncated_attribute_ends_the_walk():
    data = rtnl.u32(rtnl.IFLA_MTU, 1500) + struct.pack("=HH", 40, rtnl.IFLA_IFNAME) + b"eth0"
    assert rtnl.parse_attrs(data, 0) == {rtnl.IFLA_MTU: struct.pack("=I", 1500)}


# --------------------------------------------------- acknowledgements
def error_answer(seq, code, request, message=None, capped=False):
    """An NLMSG_ERROR answer to request; message as the kernel's extended acknowledgement."""
    echoed = request[:16] if capped else request
    tlvs = rtnl.string(wire.NLMSGERR_ATTR_MSG, message) if message else b""
    flags = (wire.NLM_F_CAPPED if capped else 0) | (wire.NLM_F_ACK_TLVS if message else 0)
    body = struct.pack("=i", -code) + echoed + tlvs
    return struct.pack("=IHHII", 16 + len(body), wire.NLMSG_ERROR, flags, seq, 0) + body


@pytest.mark.parametrize("capped", [True, False])
def test_a_refusal_carries_the_kernels_message(capped):
    request = rtnl.new_bridge(4, "cni0")
    sock = FakeSocket([error_answer(4, errno.EINVAL, request, "Attribute failed policy validation", capped)])
    with pytest.raises(OSError) as err:
        wire.ack(sock, request, 4)
    assert err.value.errno == errno.EINVAL
    assert err.value.strerror == "Invalid argument (Attribute failed policy validation)"
    assert sock.sent == [request]


def test_an_acknowledgement_is_success_and_other_answers_are_skipped():
    request = rtnl.del_link(5, 3)
    late = error_answer(4, errno.EEXIST, b"\0" * 16, capped=True)
    assert wire.ack(FakeSocket([late + error_answer(5, 0, request, capped=True)]), request, 5) is None
    with pytest.raises(OSError) as err:
        wire.ack(FakeSocket([error_answer(5, errno.ENODEV, request)]), request, 5)
    assert (err.value.errno, err.value.strerror) == (errno.ENODEV, os.strerror(errno.ENODEV))


def test_the_session_refuses_to_make_namespaces():
    with pytest.raises(KernelError) as err:
        lite.Session().apply([Action(Op.NETNS_ADD, None, "red", {})])
    assert err.value.code == errno.EOPNOTSUPP
    assert str(err.value).startswith("cannot create namespace red: ")


def test_every_netlink_op_has_a_handler():
    """The CNI plugin's session runs every op of a pod's plan; the overlay's are the modules' alone."""
    from ansible_collections.podnet.mesh.plugins.module_utils.kernel import changes
    overlay_ops = {Op.VXLAN_ADD, Op.FDB_ADD, Op.FDB_DEL, Op.NEIGH_REPLACE, Op.NEIGH_DEL}
    assert set(lite.HANDLERS) == set(changes.HANDLERS) - overlay_ops
    assert set(converge.ALREADY_THERE) == set(changes.ALREADY_THERE) - {Op.NETNS_ADD}


# ------------------------------------------------ the plugin's files
def _build_module():
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "..", "..", "..", "..", "roles", "cni", "files", "build_podnet.py")
    spec = importlib.util.spec_from_file_location("build_podnet", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_plugin_carries_no_pyroute2():
    build = _build_module()
    source = build.default_source()
    files = build.closure(source)
    assert "kernel/lite.py" in files and "kernel/rtnl.py" in files
    assert not set(files) & {"kernel/netlink.py", "kernel/changes.py", "kernel/pyroute2_parts.py"}
    for rel in files:
        with open(os.path.join(source, rel)) as handle:
            tree = ast.parse(handle.read())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not [n for n in names if n.split(".")[0] == "pyroute2"], rel


def test_ipv4_text_is_what_ipaddress_writes():
    # Routes and addresses are compared as text with the planners' ipaddress output.
    for text in ("10.244.1.0", "0.0.0.0", "255.255.255.255"):
        assert rtnl._address_text(socket.inet_pton(socket.AF_INET, text)) == str(ipaddress.ip_address(text))


@PROFILE
@given(address=st.ip_addresses(v=6).filter(lambda ip: ip not in ipaddress.ip_network("::/96")
                                           and ip not in ipaddress.ip_network("::ffff:0:0/96")))
def test_ipv6_text_is_what_ipaddress_writes(address):
    # Routes and addresses are compared as text with the planners' ipaddress output, and the IPAM names
    # its files by that text. Only ::/96 and ::ffff:0:0/96 (IPv4-compatible and -mapped, never a pod
    # prefix: the validators refuse them) read differently, dotted.
    assert rtnl._address_text(address.packed) == str(address)


def test_ipv6_routes_read_as_netlink_reads_them_in_a_namespace_of_both_families():
    """lite's routes() of both families: the dicts kernel.netlink makes of the same messages."""
    dumps = {socket.AF_INET: [case[1] for case in ROUTES if case[1][16] == socket.AF_INET],
             socket.AF_INET6: [case[1] for case in ROUTES if case[1][16] == socket.AF_INET6]}
    namespace = lite.Namespace.__new__(lite.Namespace)
    namespace._dump = lambda operation, msg_type, family=0: dumps[family]
    links = {"eth0": {"ifindex": 2}, "net1": {"ifindex": 4}}
    routes = namespace.routes(254, families=(4, 6), links=links)
    assert [(r["family"], r["dst"], r["via"], r["dev"], r["metric"]) for r in routes] == [
        (4, "default", "10.244.1.1", "eth0", 0),
        (4, "10.244.1.0/24", None, "eth0", 0),
        (6, "fd00:1::/64", "fe80::1", "net1", 1024),
        (6, "default", "fd00:10:244:1::1", "eth0", 1024),
        (6, "fd00:10:244:1::/64", None, "eth0", 256),
        (6, "fe80::/64", None, "eth0", 256)]
