# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The plugin under any environment and any standard input (a fake kernel, no root).

Whatever comes in, one invocation ends with exit code 0, or 1 and one JSON
object on stdout carrying a code of the SPEC (never 999, the internal error),
a message without Python literals (None, True, False) or a traceback. Inputs:
random CNI_* environments with a valid configuration, random bytes, random
JSON, and a valid configuration with random parts replaced, removed or made
odd (wrong JSON types, numbers as strings, huge numbers, odd text). Budgets
are fixed and the examples derived from the test (derandomize), so every run
checks the same cases; IPAM state goes to a fresh temporary directory.
"""
from __future__ import annotations

import copy
import json
import re
import shutil
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.podnet.mesh.plugins.module_utils.cni import main, plugin, protocol
from ansible_collections.podnet.mesh.tests.unit.plugins.module_utils.cni.fake_kernel import (
    CID, NETNS, FakeKernel, FakeSession)

EXAMPLES = 300
PROFILE = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None)
SPEC_CODES = {1, 2, 3, 4, 5, 6, 7, 11, 50, 100, 101, 102, 103}
QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
PYTHON_LITERAL = re.compile(r"\b(None|True|False)\b|Traceback|\bFile \"")

PREV = {"cniVersion": "1.1.0",
        "interfaces": [{"name": "cni0", "mac": "0a:58:0a:f4:01:01"},
                       {"name": "eth0", "mac": "0a:58:0a:f4:01:02", "sandbox": NETNS}],
        "ips": [{"address": "10.244.1.2/24", "gateway": "10.244.1.1", "interface": 1}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.244.1.1"}],
        "dns": {"nameservers": ["10.96.0.10"], "search": ["svc"]}}
BASE = {"cniVersion": "1.1.0", "name": "podnet", "type": "podnet", "bridge": "cni0", "mtu": 1450,
        "hairpinMode": False, "clusterCIDR": "10.244.0.0/16",
        "ipam": {"subnet": "10.244.1.0/24", "gateway": "10.244.1.1", "rangeStart": "10.244.1.2",
                 "rangeEnd": "10.244.1.254", "dataDir": "/set/per/example"},
        "dns": {"nameservers": ["10.96.0.10"]},
        "prevResult": PREV,
        "cni.dev/valid-attachments": [{"containerID": CID, "ifname": "eth0"}]}
# Every place of BASE a mutation may hit (and a few it does not have).
PATHS = [["cniVersion"], ["name"], ["type"], ["bridge"], ["mtu"], ["hairpinMode"], ["isGateway"], ["ipMasq"],
         ["clusterCIDR"], ["dns"], ["dns", "nameservers"], ["dns", "domain"], ["ipam"], ["ipam", "type"],
         ["ipam", "subnet"], ["ipam", "gateway"], ["ipam", "rangeStart"], ["ipam", "rangeEnd"],
         ["ipam", "dataDir"], ["prevResult"], ["prevResult", "interfaces"], ["prevResult", "interfaces", 1],
         ["prevResult", "interfaces", 1, "name"], ["prevResult", "interfaces", 1, "mac"],
         ["prevResult", "interfaces", 1, "sandbox"], ["prevResult", "interfaces", 1, "mtu"],
         ["prevResult", "ips"], ["prevResult", "ips", 0], ["prevResult", "ips", 0, "address"],
         ["prevResult", "ips", 0, "gateway"], ["prevResult", "ips", 0, "interface"],
         ["prevResult", "ips", 0, "version"], ["prevResult", "routes"], ["prevResult", "routes", 0, "dst"],
         ["prevResult", "routes", 0, "gw"], ["prevResult", "dns"], ["prevResult", "dns", "search"],
         ["cni.dev/valid-attachments"], ["cni.dev/valid-attachments", 0],
         ["cni.dev/valid-attachments", 0, "containerID"], ["cni.dev/valid-attachments", 0, "ifname"],
         ["runtimeConfig"], ["args"]]
# The dual-stack shape: range sets and a cluster prefix per family, and a prevResult of both families.
DUAL_BASE = dict(copy.deepcopy(BASE), clusterCIDRs=["10.244.0.0/16", "fd00:10:244::/56"], prevResult=dict(
    copy.deepcopy(PREV),
    ips=PREV["ips"] + [{"address": "fd00:10:244:1::2/64", "gateway": "fd00:10:244:1::1", "interface": 1}],
    routes=PREV["routes"] + [{"dst": "::/0", "gw": "fd00:10:244:1::1", "priority": 1024}]))
del DUAL_BASE["clusterCIDR"]
DUAL_BASE["ipam"] = {"ranges": [[{"subnet": "10.244.1.0/24", "gateway": "10.244.1.1", "rangeStart": "10.244.1.2"}],
                                [{"subnet": "fd00:10:244:1::/64", "rangeEnd": "fd00:10:244:1::ff"}]],
                     "dataDir": "/set/per/example"}
DUAL_PATHS = [["clusterCIDRs"], ["clusterCIDRs", 0], ["clusterCIDRs", 1], ["clusterCIDR"], ["ipam"], ["ipam", "subnet"],
              ["ipam", "ranges"], ["ipam", "ranges", 0], ["ipam", "ranges", 1], ["ipam", "ranges", 1, 0],
              ["ipam", "ranges", 0, 0, "subnet"], ["ipam", "ranges", 1, 0, "subnet"], ["ipam", "ranges", 1, 0, "gateway"],
              ["ipam", "ranges", 0, 0, "rangeStart"], ["ipam", "ranges", 1, 0, "rangeEnd"], ["ipam", "ranges", 2],
              ["prevResult", "ips", 1, "address"], ["prevResult", "ips", 1, "gateway"], ["prevResult", "routes", 1, "dst"],
              ["prevResult", "routes", 1, "gw"], ["prevResult", "routes", 1, "priority"]]

# ---------------------------------------------------------------- strategies
near = st.sampled_from([
    "", " ", "1.1.0", "0.4.0", "2.0.0", "podnet", "host-local", "cni0", "eth0", "eth%d", "\u00e9th0", "cni0\n",
    "10.244.1.0/24", "10.244.1.0/24\n", "0.0.0.0/0", "127.0.0.0/8", "224.0.0.0/24", "169.254.0.0/16",
    "255.255.255.255/32", "10.244.1.1", "10.244.1.0", "10.244.1.255", "10.245.1.1", "fe80::1%eth0", "fd00::/64",
    "1450", "1e999", "NaN", "true", "null", "/tmp", "relative/dir", "/x\u0000y", "0a:58:0a:f4:01:02", "zz",
    "\udcff", "\ufeff", "x" * 300])
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-2 ** 70, 2 ** 70),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12), near)
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.one_of(st.text(max_size=6), near), inner, max_size=3)),
    max_leaves=8)
env_text = st.one_of(st.text(max_size=20), near,
                     st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), min_size=1, max_size=70))


@st.composite
def mutated_configs(draw, base=None, paths=None):
    """BASE (or base) with 1-4 places of PATHS (or paths) replaced by a random JSON value or removed."""
    conf = copy.deepcopy(BASE if base is None else base)
    for _round in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(PATHS if paths is None else paths))
        node = conf
        for key in path[:-1]:
            try:
                node = node[key]
            except (KeyError, IndexError, TypeError):
                node = None
                break
        if not isinstance(node, (dict, list)):
            continue
        key = path[-1]
        if isinstance(node, list) and not (isinstance(key, int) and key < len(node)):
            continue
        if isinstance(node, dict) and draw(st.booleans()) and draw(st.booleans()):
            node.pop(key, None)
        else:
            node[key] = draw(json_values)
    return conf


@st.composite
def raw_texts(draw):
    """Standard input as bytes: a mutated configuration, made odd as text now and then."""
    text = json.dumps(draw(mutated_configs()))
    how = draw(st.sampled_from(["as is", "as is", "as is", "cut", "insert", "bom", "duplicate", "constant"]))
    if how == "cut":
        text = text[:draw(st.integers(0, len(text)))]
    elif how == "insert":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(["[", "{", "\"", ",", "\\", "\x00", "NaN", "1e999", "\ud800"])) + text[at:]
    elif how == "bom":
        text = "\ufeff" + text
    elif how == "duplicate":
        text = text.replace("{", "{\"name\": \"dup\", ", 1)
    elif how == "constant":
        text = text.replace("1450", draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "9" * 50])))
    return text.encode("utf-8", "surrogatepass")


stdin_bytes = st.one_of(st.binary(max_size=64), json_values.map(lambda value: json.dumps(value).encode()),
                        raw_texts(), mutated_configs().map(lambda conf: json.dumps(conf).encode()))
verbs = st.one_of(st.sampled_from(protocol.COMMANDS), st.sampled_from(protocol.COMMANDS),
                  st.sampled_from(["", "add", "ADD\n", "VERSION "]), env_text)
ENV_VARS = ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH", "CNI_ARGS")


@st.composite
def environments(draw):
    """A valid environment for a drawn verb with 0-3 of its variables replaced by odd text or left out."""
    environ = {"CNI_COMMAND": draw(verbs), "CNI_CONTAINERID": CID, "CNI_NETNS": NETNS, "CNI_IFNAME": "eth0",
               "CNI_PATH": "/opt/cni/bin"}
    for var in draw(st.lists(st.sampled_from(ENV_VARS), max_size=3, unique=True)):
        if draw(st.integers(0, 4)) == 0:
            environ.pop(var, None)
        else:
            environ[var] = draw(env_text)
    return environ


# ------------------------------------------------------------------ helpers
def _contained(raw, data_dir):
    """raw with every IPAM dataDir that names a place on this machine moved into data_dir."""
    try:
        conf = json.loads(raw)
    except (ValueError, RecursionError):
        return raw
    if isinstance(conf, dict) and isinstance(conf.get("ipam"), dict):
        place = conf["ipam"].get("dataDir")
        if place is None or (isinstance(place, str) and place.startswith("/")):
            conf["ipam"]["dataDir"] = data_dir
            return json.dumps(conf).encode()
    return raw


def invoke(environ, raw):
    """main.run against a fresh fake kernel and IPAM directory; returns (code, text)."""
    data_dir = tempfile.mkdtemp(prefix="podnet-hostile-")
    try:
        raw = _contained(raw, data_dir)
        kernel = FakeKernel()
        kernel.add_ns()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(plugin, "_link_exists", lambda name: name in kernel.spaces[None])
            return main.run(environ, lambda: raw, lambda: FakeSession(kernel))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def assert_well_formed(code, text):
    """Exit 0 (a result or nothing) or 1 with one SPEC error object, its message free of Python."""
    assert code in (0, 1)
    if text is None:
        assert code == 0
        return None
    out = json.loads(text)
    assert isinstance(out, dict)
    assert out["cniVersion"] in protocol.SUPPORTED_VERSIONS
    if code == 0:
        return out
    assert set(out) <= {"cniVersion", "code", "msg", "details"}
    assert out["code"] in SPEC_CODES, out
    for field in ("msg", "details"):
        assert isinstance(out.get(field, ""), str)
        assert not PYTHON_LITERAL.search(QUOTED.sub("", out.get(field, ""))), out
    assert out["msg"]
    return out


def env(command, **extra):
    base = {"CNI_COMMAND": command, "CNI_CONTAINERID": CID, "CNI_NETNS": NETNS, "CNI_IFNAME": "eth0",
            "CNI_PATH": "/opt/cni/bin"}
    base.update(extra)
    return base


# --------------------------------------------------------------- properties
# The SPEC's patterns, written out here as an oracle independent of the plugin's.
SPEC_ID = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]*\Z", re.ASCII)
LINUX_IFNAME = re.compile(r"[!-~]{1,15}\Z")


@PROFILE
@given(environments())
def test_any_environment(environ):
    code, text = invoke(environ, json.dumps(BASE).encode())
    assert_well_formed(code, text)
    if code == 0 and environ["CNI_COMMAND"] in ("ADD", "CHECK", "DEL"):
        # Taken: so the attachment's names are what the SPEC and the kernel allow.
        assert SPEC_ID.match(environ["CNI_CONTAINERID"]), environ
        ifname = environ["CNI_IFNAME"]
        assert environ.get("CNI_NETNS", "/").startswith("/"), environ
        assert LINUX_IFNAME.match(ifname) and not set(ifname) & set("/:%") and ifname not in (".", ".."), environ


@PROFILE
@given(st.sampled_from(protocol.COMMANDS), stdin_bytes)
def test_any_standard_input(command, raw):
    assert_well_formed(*invoke(env(command), raw))


@PROFILE
@given(st.sampled_from(["ADD", "CHECK", "DEL", "GC"]), mutated_configs())
def test_any_configuration_with_wrong_types(command, conf):
    code, text = invoke(env(command), json.dumps(conf).encode())
    out = assert_well_formed(code, text)
    if code == 1 and out["code"] == protocol.ERR_INVALID_CONFIG:
        assert out["msg"].startswith("invalid network configuration: ")


@PROFILE
@given(st.sampled_from(["ADD", "CHECK", "DEL", "GC", "STATUS"]), mutated_configs(DUAL_BASE, DUAL_PATHS))
def test_any_dual_stack_configuration_with_wrong_types(command, conf):
    code, text = invoke(env(command), json.dumps(conf).encode())
    out = assert_well_formed(code, text)
    if code == 1 and out["code"] == protocol.ERR_INVALID_CONFIG:
        assert out["msg"].startswith("invalid network configuration: ")


def test_the_properties_run_on_a_fixed_budget():
    """The suite's size: every property above checks EXAMPLES inputs per run."""
    assert PROFILE.max_examples == EXAMPLES and PROFILE.derandomize


@pytest.mark.parametrize("base", [BASE, DUAL_BASE], ids=["one family", "dual-stack"])
@pytest.mark.parametrize("command", ["ADD", "CHECK", "DEL", "GC", "STATUS"])
def test_the_base_configuration_is_accepted(command, base):
    """The mutations start from a configuration every verb takes."""
    code, text = invoke(env(command), json.dumps(base).encode())
    out = assert_well_formed(code, text)
    assert code == 0 or (command == "CHECK" and out["code"] == protocol.ERR_CHECK), out
