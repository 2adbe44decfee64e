# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest

from ansible_collections.podnet.mesh.plugins.module_utils.core import validate as v


@pytest.mark.parametrize("value", ["cni0", "veth-red", "a" * 15, "eth0.100", "br_0"])
def test_ifname_accepts(value):
    assert v.ifname(value, "name") == value


@pytest.mark.parametrize("value, reason", [
    ("a" * 16, "16 bytes long"),
    ("\u00e9" * 8, "16 bytes long"),
    ("", "non-empty"),
    (None, "non-empty"),
    ("a/b", "must not contain"),
    ("a:b", "must not contain"),
    ("a b", "must not contain"),
    (".", "not a valid interface name"),
    ("..", "not a valid interface name"),
    # The kernel reads '%' as a pattern ("eth%d" becomes eth0, eth1 ...): the link would get another name.
    ("eth%d", "must not contain"),
    ("eth0\n", "must not contain"),
    ("eth\x00", "must not contain"),
    ("eth\x7f", "must not contain"),
    ("eth\u00e9", "must not contain"),
    ("\u0661", "must not contain"),
    ("eth\u00a0", "must not contain"),
    ("eth\udcff", "must not contain"),
    ("\ud800" * 6, "18 bytes long"),
    (15, "non-empty string"),
    (["eth0"], "non-empty string"),
])
def test_ifname_refuses(value, reason):
    with pytest.raises(v.ValidationError) as err:
        v.ifname(value, "peer")
    assert str(err.value).startswith("peer: ")
    assert reason in str(err.value)


@pytest.mark.parametrize("value, expected", [
    ("10.244.1.1/24", "10.244.1.1/24"),
    (" 10.244.1.2/24 ", "10.244.1.2/24"),
    ("10.0.0.0/31", "10.0.0.0/31"),
    ("10.0.0.1/32", "10.0.0.1/32"),
    ("fd00::1/64", "fd00::1/64"),
    ("FD00:0::1/64", "fd00::1/64"),
])
def test_interface_address_normalises(value, expected):
    assert v.interface_address(value, "addresses[0]") == expected


@pytest.mark.parametrize("value, reason", [
    ("10.0.0.300/24", "not a valid IP address"),
    ("10.0.0.1", "prefix length"),
    ("10.0.0.0/24", "network address"),
    ("10.0.0.255/24", "broadcast address"),
    ("224.0.0.1/24", "unicast"),
    ("0.0.0.0/0", "network address"),
    ("10.0.0.1/33", "not a valid IP address"),
    (42, "prefix length"),
    ("255.255.255.255/32", "unicast"),
    ("fe80::1%eth0/64", "has a zone"),
    ("::/0", "unicast"),
    ("ff02::1/64", "unicast"),
])
def test_interface_address_refuses(value, reason):
    with pytest.raises(v.ValidationError) as err:
        v.interface_address(value, "addresses[2]")
    assert str(err.value).startswith("addresses[2]: ")
    assert reason in str(err.value)


def test_address_list_names_the_index_and_the_duplicate():
    with pytest.raises(v.ValidationError) as err:
        v.address_list(["10.0.0.1/24", "10.0.1.1/24", "10.0.0.1/16"], "addresses")
    assert str(err.value).startswith("addresses[2]: '10.0.0.1/16'")
    assert "addresses[0]" in str(err.value)


def test_address_list_keeps_order_and_none():
    assert v.address_list(["10.0.1.1/24", "10.0.0.1/24"]) == ["10.0.1.1/24", "10.0.0.1/24"]
    assert v.address_list(None) is None
    with pytest.raises(v.ValidationError):
        v.address_list("10.0.0.1/24")


@pytest.mark.parametrize("value, ok", [
    (None, True), (68, True), (1500, True), (65535, True),
    (67, False), (65536, False), (0, False), (True, False), ("1500", False),
])
def test_mtu(value, ok):
    if ok:
        assert v.mtu(value) == value
    else:
        with pytest.raises(v.ValidationError) as err:
            v.mtu(value, "mtu")
        assert str(err.value).startswith("mtu: ")


@pytest.mark.parametrize("value, ok", [
    ("red", True), ("pod-1.a", True), ("a" * 255, True), ("r\u00f6d", True), ("pod 1", True),
    ("a" * 256, False), ("a/b", False), ("..", False), ("", False),
    ("red\n", False), ("red\x00", False), ("r\ted", False), ("red\r", False), ("\x1b[31mred", False),
    ("red\u2028", False), ("red\u200b", False), ("\udcffred", False), (" red", False), ("red ", False),
    ("\u00e9" * 128, False), (None, False), (5, False),
])
def test_netns_name(value, ok):
    if ok:
        assert v.netns_name(value) == value
    else:
        with pytest.raises(v.ValidationError) as err:
            v.netns_name(value, "netns")
        assert str(err.value).startswith("netns: ")


def test_optional_netns():
    assert v.optional_netns(None) is None
    assert v.optional_netns("red") == "red"


@pytest.mark.parametrize("value, expected", [
    ("10.244.0.0/16", "10.244.0.0/16"), ("fd00::/8", "fd00::/8"),
])
def test_network(value, expected):
    assert v.network(value, "source[0]") == expected


@pytest.mark.parametrize("value", ["10.244.1.0/16", "10.244.0.0", "nope/8", "fe80::%eth0/64", 10, None])
def test_network_refuses(value):
    with pytest.raises(v.ValidationError) as err:
        v.network(value, "source[0]")
    assert str(err.value).startswith("source[0]: ")


def test_choice():
    assert v.choice("auto", ("auto", "nftables"), "backend") == "auto"
    with pytest.raises(v.ValidationError) as err:
        v.choice("pf", ("auto", "nftables"), "backend")
    assert "must be one of auto, nftables" in str(err.value)


@pytest.mark.parametrize("value", ["10.244.1.0/24", "10.0.0.0/8", "192.168.0.0/30", "100.64.0.0/10", "172.16.0.0/12",
                                   "198.18.0.0/15", "203.0.113.0/24"])
def test_pod_cidr_accepts(value):
    assert str(v.pod_cidr(value, "pod_cidr")) == value


@pytest.mark.parametrize("value, reason", [
    ("0.0.0.0/0", "wider than /8"),
    ("10.0.0.0/7", "wider than /8"),
    ("128.0.0.0/1", "wider than /8"),
    ("0.0.0.0/8", "overlaps the unspecified"),
    ("0.0.0.0/30", "overlaps the unspecified"),
    ("127.0.0.0/8", "overlaps the loopback block"),
    ("127.0.0.0/30", "overlaps the loopback block"),
    ("169.254.0.0/16", "overlaps the link-local block"),
    ("169.254.169.252/30", "overlaps the link-local block"),
    ("224.0.0.0/8", "overlaps the multicast block"),
    ("239.255.255.252/30", "overlaps the multicast block"),
    ("240.0.0.0/8", "overlaps the reserved block"),
    ("255.255.255.252/30", "overlaps the reserved block"),
    ("10.244.1.0/31", "at least 4 addresses"),
    ("fd00::/122", "must be an IPv6 network of at least 256 addresses (at most a /120)"),
    ("fd00::/16", "is wider than /32: a node's IPv6 pod network is at most a /32"),
    ("fe80::/64", "overlaps the link-local block fe80::/10"),
    ("ff02::/64", "overlaps the multicast block"),
    ("::ffff:10.0.0.0/120", "overlaps the IPv4-mapped block"),
    ("::/64", "overlaps the unspecified and loopback addresses"),
    ("10.244.1.1/24", "host bits set"),
    (None, "is not a network in CIDR form"),
    (24, "is not a network in CIDR form"),
])
def test_pod_cidr_refuses(value, reason):
    with pytest.raises(v.ValidationError) as err:
        v.pod_cidr(value, "pod_cidr")
    assert str(err.value).startswith("pod_cidr: ")
    assert reason in str(err.value)


@pytest.mark.parametrize("value, reason", [
    (167772161, "is not an IP address"),       # a number would be taken as 10.0.0.1
    (b"\x0a\x00\x00\x01", "is not an IP address"),  # and four bytes too
    ("fe80::1%eth0", "has a zone"),
    (None, "is not an IP address"),
    ("10.0.0.1/24", "is not an IP address"),
])
def test_ip_address_refuses(value, reason):
    with pytest.raises(v.ValidationError) as err:
        v.ip_address(value, "via")
    assert str(err.value).startswith("via: ") and reason in str(err.value)


def test_route_with_keys_of_mixed_types_names_them():
    with pytest.raises(v.ValidationError) as err:
        v.route({1: "x", "dst": "default", "via": "10.0.0.1", "weight": 2}, "routes[0]")
    assert "has unknown key(s) 1, weight" in str(err.value)


def test_choice_of_an_unhashable_value_is_refused():
    with pytest.raises(v.ValidationError) as err:
        v.choice(["auto"], frozenset(["auto"]), "backend")
    assert str(err.value).startswith("backend: ")
