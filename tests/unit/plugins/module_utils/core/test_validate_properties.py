# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Properties of the validators, for any input at all.

Each validator either returns a normalised value, which is valid input again
and comes back unchanged, or raises ValidationError whose message starts with
the path it was given; never any other exception. Inputs mix values of every
type with text near the valid forms (addresses, networks, names) and mutations
of them (white space, zones, control characters, other scripts). The budget is
fixed and the examples are derived from the test (derandomize), so every run
checks the same cases.
"""
from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.podnet.mesh.plugins.module_utils.core import validate as v

EXAMPLES = 300
PROFILE = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None)

# ---------------------------------------------------------------- strategies
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.binary(max_size=8),
)
anything = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=6), st.integers()), inner, max_size=4)),
    max_leaves=10)

# Text that is odd in the places the validators look at.
odd = st.sampled_from(["", " ", "\n", "\t", "\x00", "\x7f", "%", "%eth0", "/", ":", "\u00e9", "\u0661", "\u00a0",
                       "\u2028", "\u200b", "\udcff", "\ufeff", "..", "."])


@st.composite
def mutated(draw, base):
    """base text with odd text put in at a drawn place (or left alone)."""
    text = draw(base)
    if draw(st.booleans()):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(odd) + text[at:]
    return text


ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
addresses = st.one_of(ipv4, ipv6)
prefixes = st.one_of(st.integers(0, 130).map(str), st.sampled_from(["", "024", "255.255.255.0", "0.0.0.255", "x"]))
cidrs = st.builds(lambda a, p: "%s/%s" % (a, p), addresses, prefixes)
networks = st.one_of(st.ip_addresses(v=4).flatmap(
    lambda a: st.integers(0, 32).map(lambda p: str(ipaddress.ip_network("%s/%d" % (a, p), strict=False)))),
    st.ip_addresses(v=6).flatmap(
        lambda a: st.integers(0, 128).map(lambda p: str(ipaddress.ip_network("%s/%d" % (a, p), strict=False)))))
names = st.text(st.characters(min_codepoint=0, max_codepoint=0x2100), min_size=0, max_size=18)
ascii_names = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), min_size=1, max_size=16)

ifname_inputs = st.one_of(anything, mutated(ascii_names), names, st.sampled_from(["eth0", "cni0", "veth-red", "a" * 15]))
netns_inputs = st.one_of(anything, mutated(names), mutated(st.sampled_from(["red", "pod-1", "r\u00f6d"])))
cidr_inputs = st.one_of(anything, mutated(cidrs), mutated(networks))
address_inputs = st.one_of(anything, mutated(addresses), st.integers(), st.binary(min_size=4, max_size=16))
route_inputs = st.one_of(anything, st.fixed_dictionaries({}, optional={
    "dst": st.one_of(st.just("default"), cidr_inputs), "via": address_inputs,
    "dev": ifname_inputs, "metric": st.one_of(st.integers(-1, 2 ** 33), anything)}))


def refused_or(check, call, value, path):
    """call(value, path) returns a value check accepts, or raises ValidationError naming path."""
    try:
        result = call(value, path)
    except v.ValidationError as exc:
        assert str(exc).startswith(path), str(exc)
        assert exc.path.startswith(path)
        return None
    check(result)
    return result


# ---------------------------------------------------------------- properties
@PROFILE
@given(ifname_inputs)
def test_ifname(value):
    def check(name):
        assert name == value and v.ifname(name, "x") == name
        assert name.isascii() and name.isprintable() and " " not in name and "%" not in name
        assert 1 <= len(name) <= 15 and name not in (".", "..")
    refused_or(check, v.ifname, value, "pods[3].veth")


@PROFILE
@given(netns_inputs)
def test_netns_name(value):
    def check(name):
        assert name == value and v.netns_name(name, "x") == name
        assert name.isprintable() and "/" not in name and len(name.encode("utf-8")) <= 255
    refused_or(check, v.netns_name, value, "pods[0].name")


@PROFILE
@given(cidr_inputs)
def test_interface_address(value):
    def check(normal):
        assert v.interface_address(normal, "x") == normal
        iface = ipaddress.ip_interface(normal)
        assert not iface.ip.is_multicast and not iface.ip.is_unspecified and "%" not in normal
    refused_or(check, v.interface_address, value, "addresses[1]")


@PROFILE
@given(st.one_of(anything, st.lists(cidr_inputs, max_size=4)))
def test_address_list(value):
    def check(normal):
        assert normal is None or v.address_list(normal, "x") == normal
    refused_or(check, v.address_list, value, "addresses")


@PROFILE
@given(cidr_inputs)
def test_network(value):
    def check(normal):
        assert v.network(normal, "x") == normal
        assert str(ipaddress.ip_network(normal)) == normal
    refused_or(check, v.network, value, "source[2]")


@PROFILE
@given(st.one_of(cidr_inputs, mutated(st.ip_addresses(v=4).flatmap(
    lambda a: st.integers(0, 30).map(lambda p: str(ipaddress.ip_network("%s/%d" % (a, p), strict=False)))))))
def test_pod_cidr(value):
    def check(net):
        assert v.pod_cidr(str(net), "x") == net
        low, high = v.POD_CIDR_PREFIXES[net.version]
        assert low <= net.prefixlen <= high
        for block, _what in v.NOT_POD_NETWORKS:
            assert block.version != net.version or not net.overlaps(block)
    refused_or(check, v.pod_cidr, value, "ipam.subnet")


@PROFILE
@given(address_inputs)
def test_ip_address(value):
    def check(ip):
        assert v.ip_address(str(ip), "x") == ip
    refused_or(check, v.ip_address, value, "gateway")


@PROFILE
@given(route_inputs)
def test_route(value):
    def check(normal):
        again = dict((key, normal.get(key)) for key in v.ROUTE_KEYS)
        assert v.route(again, "x", default_family=normal["family"]) == normal
    refused_or(check, v.route, value, "routes[4]")


@PROFILE
@given(st.one_of(anything, st.lists(route_inputs, max_size=4)))
def test_route_list(value):
    def check(normal):
        again = [dict((key, item.get(key)) for key in v.ROUTE_KEYS) for item in normal]
        if all(item["family"] == 4 for item in normal):
            assert v.route_list(again, "x") == normal
    refused_or(check, v.route_list, value, "routes")


@PROFILE
@given(anything)
def test_mtu(value):
    def check(normal):
        assert normal is None or (v.MTU_MIN <= normal <= v.MTU_MAX and v.mtu(normal, "x") == normal)
    refused_or(check, v.mtu, value, "mtu")


@PROFILE
@given(st.one_of(anything, st.integers(-2, 2 ** 32 + 2)))
def test_integer(value):
    def check(normal):
        assert 1 <= normal <= 255 and v.integer(normal, "x", 1, 255) == normal
    refused_or(check, lambda val, path: v.integer(val, path, 1, 255), value, "proto")


@PROFILE
@given(anything)
def test_choice(value):
    def check(normal):
        assert normal in ("auto", "nftables", "iptables")
    refused_or(check, lambda val, path: v.choice(val, ("auto", "nftables", "iptables"), path), value, "backend")


def test_the_properties_run_on_a_fixed_budget():
    """The suite's size: every property above checks EXAMPLES inputs per run."""
    assert PROFILE.max_examples == EXAMPLES and PROFILE.derandomize


@pytest.mark.parametrize("value", ["10.0.0.0/8", "10.244.1.0/24", "fd00:10:244:1::/64", "2001:db8::/32"])
def test_pod_cidr_round_trips(value):
    assert v.pod_cidr(str(v.pod_cidr(value, "x")), "x") == ipaddress.ip_network(value)
