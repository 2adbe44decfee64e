# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The node state file: what the roles decided for one node, as the boot-time restore reads it (pure).

The persistence role writes it (``/etc/podnet/state.json`` by default); the
``podnet-restore`` program reads it at boot and makes the node so again. Shape,
version 1 (docs/persistence.md)::

    {"version": 1,
     "node": "node1",                                   # informational
     "kernel": {"modules": ["br_netfilter"], "sysctls": {"net.bridge.bridge-nf-call-iptables": "1"}},
     "bridge": {"name": "cni0", "addresses": ["10.244.1.1/24"], "mac": null, "mtu": null},
     "masquerade": {"state": "present", "source": ["10.244.0.0/16"], "exempt": ["10.244.0.0/16"],
                    "out_interface": null, "backend": "auto", "forward": true, "ip_forward": true,
                    "foreign": "fail"},
     "routes": {"routes": [{"dst": "10.244.2.0/24", "via": "192.168.1.12"}], "purge": true,
                "proto": 149, "table": 254},
     "pods": {"bridge": "cni0", "pod_cidr": "10.244.1.0/24", "mtu": null,
              "pods": [{"name": "red", "address": "10.244.1.2/24", "veth": "veth-red", "interface": "eth0"}]}}

A dual-stack node's pods section has ``pod_cidrs`` (one prefix per family) instead
of ``pod_cidr``, and its pods ``addresses`` (one per family).

Each section but ``kernel`` holds the options of the module the role calls
(bridge, masquerade, overlay, pod_route, pods), is optional (absent or null: that
concern is not restored) and is checked by the same validation as the module's,
so a state file the restore accepts is one the modules would accept. A bridge
without ``mac`` is pinned to the MAC the bridge module derives from its first
IPv4 address (its first IPv6 address on an IPv6-only node). ``kernel`` holds the kernel modules to load and the sysctls to set
that no module of the collection manages (the node_network role sets them with
commands, e.g. for ``podnet_bridge_nf_call``); ``net.ipv4.ip_forward`` is the
masquerade section's ``ip_forward``. Unknown keys are
refused: a later shape gets a new version number, and a file of a version this
reader does not know is refused as a whole, naming it.
"""

from __future__ import annotations

import json

from ansible_collections.podnet.mesh.plugins.module_utils.core import validate as v
from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ValidationError
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import (
    DEFAULT_BRIDGE, MAIN_TABLE, POD_INTERFACE, ROUTE_PROTO, pinned_bridge_mac)
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import nat as nat_plan
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import overlay as overlay_plan
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import pod as pod_plan

# The shape this code writes and reads.
VERSION = 1
DEFAULT_PATH = "/etc/podnet/state.json"
# The state file is small; anything much bigger is not one.
MAX_SIZE = 16 * 1024 * 1024
# The concerns, in the order the restore makes them: kernel modules and sysctls, NAT
# and forwarding (no packet leaves a pod unmasqueraded), the bridge the pods join,
# the overlay device the mesh's routes to non-adjacent peers go through, the mesh, the pods.
CONCERNS = ("kernel", "masquerade", "bridge", "overlay", "routes", "pods")

_TOP = ("version", "node") + CONCERNS
_KERNEL = ("modules", "sysctls")
_BRIDGE = ("name", "addresses", "mac", "mtu")
_MASQUERADE = ("state", "source", "exempt", "out_interface", "backend", "forward", "ip_forward", "foreign")
_ROUTES = ("routes", "purge", "proto", "table")
_OVERLAY = ("name", "vni", "port", "local", "dev", "mac", "mtu", "peers", "purge", "state")
_ROUTE = v.ROUTE_KEYS
_PODS = ("bridge", "pod_cidr", "pod_cidrs", "gateway", "mtu", "hairpin", "proto", "pods")
_POD = ("name", "address", "addresses", "veth", "interface")


def _section(doc, path, keys):
    """A dict with only the known keys; a ValidationError naming the first unknown one."""
    if not isinstance(doc, dict):
        raise ValidationError(path, doc, "must be an object")
    for key in doc:
        if key not in keys:
            raise ValidationError("%s.%s" % (path, key), doc[key],
                                  "is not part of the state file shape %d (known: %s)" % (VERSION, ", ".join(keys)))
    return doc


def _bool(value, path, default):
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ValidationError(path, value, "must be true or false")
    return value


def _list(value, path):
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValidationError(path, value, "must be a list")
    return value


def _module_name(value, path):
    if not isinstance(value, str) or not value or len(value) > 64 or value.startswith("-") or not all(
            c.isalnum() or c in "_-" for c in value):
        raise ValidationError(path, value, "is not a kernel module name")
    return value


def _sysctl_key(value, path):
    parts = value.replace("/", ".").split(".") if isinstance(value, str) else []
    if len(parts) < 2 or not all(p and all(c.isalnum() or c in "_-" for c in p) for p in parts):
        raise ValidationError(path, value, "is not a sysctl name such as net.ipv4.ip_forward")
    return ".".join(parts)


def kernel_want(doc, path="kernel"):
    """The kernel section -> {modules: [names], sysctls: [(name, value)]} in the order given."""
    doc = _section(doc, path, _KERNEL)
    modules = [_module_name(m, "%s.modules[%d]" % (path, i)) for i, m in enumerate(_list(doc.get("modules"), path + ".modules"))]
    sysctls = doc.get("sysctls") or {}
    if not isinstance(sysctls, dict):
        raise ValidationError(path + ".sysctls", sysctls, "must be an object of sysctl names and values")
    wanted = []
    for key in sysctls:
        value = sysctls[key]
        item = "%s.sysctls.%s" % (path, key)
        if isinstance(value, bool) or not isinstance(value, (int, str)) or "\n" in str(value) or str(value) == "":
            raise ValidationError(item, value, "must be a value written to the sysctl: a number or one line of text")
        wanted.append((_sysctl_key(key, item), str(value)))
    return {"modules": modules, "sysctls": wanted}


def bridge_want(doc, path="bridge"):
    """The bridge section -> the want of core.plan.links.plan_bridge (the bridge module's validate).

    No mac: the one the bridge module pins, derived from the first IPv4 address.
    """
    doc = _section(doc, path, _BRIDGE)
    addresses = v.address_list(_list(doc.get("addresses"), path + ".addresses"), path + ".addresses")
    if doc.get("mac") is not None:
        mac = v.mac(doc["mac"], path + ".mac")
    else:
        mac = pinned_bridge_mac(addresses)
    return {
        "name": v.ifname(doc.get("name") or DEFAULT_BRIDGE, path + ".name"),
        "addresses": addresses,
        "mac": mac,
        "mtu": v.mtu(doc.get("mtu"), path + ".mtu"),
        "stp": False,
        "up": True,
        "state": "present",
    }


def masquerade_want(doc, path="masquerade"):
    """The masquerade section -> the want of core.plan.nat.plan (the masquerade module's validate)."""
    doc = _section(doc, path, _MASQUERADE)
    params = dict(doc)
    for key in ("forward", "ip_forward"):
        params[key] = _bool(doc.get(key), "%s.%s" % (path, key), True)
    try:
        return nat_plan.validate(params)
    except ValidationError as exc:
        raise ValidationError("%s.%s" % (path, exc.path), exc.value, exc.reason)


def overlay_want(doc, path="overlay"):
    """The overlay section -> the want of core.plan.overlay.plan_overlay (the overlay module's validate)."""
    doc = _section(doc, path, _OVERLAY)
    params = {"name": doc.get("name"), "vni": doc.get("vni", overlay_plan.DEFAULT_VNI),
              "port": doc.get("port", overlay_plan.DEFAULT_PORT), "local": doc.get("local"), "dev": doc.get("dev"),
              "mac": doc.get("mac"), "mtu": doc.get("mtu"), "peers": _list(doc.get("peers"), path + ".peers"),
              "purge": _bool(doc.get("purge"), path + ".purge", True), "state": doc.get("state") or "present"}
    v.choice(params["state"], ("present", "absent"), path + ".state")
    try:
        return overlay_plan.validate(params)
    except ValidationError as exc:
        raise ValidationError("%s.%s" % (path, exc.path), exc.value, exc.reason)


def routes_want(doc, path="routes"):
    """The routes section -> the want of core.plan.routes.plan_routes (the pod_route module's validate)."""
    doc = _section(doc, path, _ROUTES)
    routes = []
    for index, item in enumerate(_list(doc.get("routes"), path + ".routes")):
        item = _section(item, "%s.routes[%d]" % (path, index), _ROUTE)
        routes.append(dict((k, item.get(k)) for k in _ROUTE))
    return {
        "netns": None,
        "routes": v.route_list(routes, path + ".routes"),
        "purge": _bool(doc.get("purge"), path + ".purge", True),
        "proto": v.integer(doc.get("proto", ROUTE_PROTO), path + ".proto", 1, 255),
        "table": v.integer(doc.get("table", MAIN_TABLE), path + ".table", 1, 2 ** 32 - 1),
        "state": "present",
    }


def pods_want(doc, path="pods"):
    """The pods section -> the want of core.plan.pod.plan_pods (the pods module's validate)."""
    doc = _section(doc, path, _PODS)
    pods = []
    for index, item in enumerate(_list(doc.get("pods"), path + ".pods")):
        pods.append(dict(_section(item, "%s.pods[%d]" % (path, index), _POD)))
        pods[-1].setdefault("interface", POD_INTERFACE)
    params = {"pods": pods, "bridge": doc.get("bridge") or DEFAULT_BRIDGE, "pod_cidr": doc.get("pod_cidr"),
              "pod_cidrs": doc.get("pod_cidrs"), "gateway": doc.get("gateway"), "mtu": doc.get("mtu"), "hairpin": doc.get("hairpin"),
              "proto": doc.get("proto", ROUTE_PROTO), "state": "present"}
    if params["hairpin"] is not None:
        params["hairpin"] = _bool(params["hairpin"], path + ".hairpin", None)
    params["proto"] = v.integer(params["proto"], path + ".proto", 1, 255)
    try:
        return pod_plan.validate(params)
    except ValidationError as exc:
        raise ValidationError("%s.%s" % (path, exc.path), exc.value, exc.reason)


WANTS = {"kernel": kernel_want, "bridge": bridge_want, "masquerade": masquerade_want, "overlay": overlay_want,
         "routes": routes_want, "pods": pods_want}


class NodeState:
    """A checked state file: version, node, and the want of each concern it holds (by name)."""

    def __init__(self, version, node, wants, document):
        self.version = version
        self.node = node
        self.wants = wants
        self.document = document

    @property
    def concerns(self):
        """The concerns the file holds, in the order they are restored."""
        return [c for c in CONCERNS if c in self.wants]


def parse(document):
    """A decoded state document -> NodeState; ValidationError (path, value, reason) if it is no valid one."""
    _section(document, "state", _TOP)
    version = document.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValidationError("version", version, "must be the state file's shape version, an integer")
    if version != VERSION:
        raise ValidationError("version", version, "is not a shape this program reads (it reads version %d); "
                              "install the podnet-restore of the release that wrote the file" % VERSION)
    node = document.get("node")
    if node is not None and not isinstance(node, str):
        raise ValidationError("node", node, "must be a string")
    wants = {}
    for concern in CONCERNS:
        if document.get(concern) is not None:
            wants[concern] = WANTS[concern](document[concern], concern)
    return NodeState(version, node, wants, document)


def loads(text):
    """State file text -> NodeState; ValidationError if it is no JSON object or no valid state."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ValidationError("state", text[:40] + ("..." if len(text) > 40 else ""), "is not JSON (%s)" % exc)
    return parse(document)


def load(path):
    """The state file at path -> NodeState. OSError if it cannot be read, ValidationError if it is no valid state."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_SIZE + 1)
    if len(data) > MAX_SIZE:
        raise ValidationError("state", path, "is larger than %d bytes, no state file" % MAX_SIZE)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError("state", path, "is not UTF-8 text (%s)" % exc)
    return loads(text)


def dumps(document):
    """A state document as the roles write it: sorted keys, two-space indent, a final newline."""
    return json.dumps(document, indent=2, sort_keys=True) + "\n"
