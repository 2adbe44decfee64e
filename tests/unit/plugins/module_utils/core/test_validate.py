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
    ("red", True), ("pod-1.a", True), ("a" * 255, True),
    ("a" * 256, False), ("a/b", False), ("..", False), ("", False),
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


@pytest.mark.parametrize("value", ["10.244.1.0/16", "10.244.0.0", "nope/8"])
def test_network_refuses(value):
    with pytest.raises(v.ValidationError) as err:
        v.network(value, "source[0]")
    assert str(err.value).startswith("source[0]: ")


def test_choice():
    assert v.choice("auto", ("auto", "nftables"), "backend") == "auto"
    with pytest.raises(v.ValidationError) as err:
        v.choice("pf", ("auto", "nftables"), "backend")
    assert "must be one of auto, nftables" in str(err.value)
