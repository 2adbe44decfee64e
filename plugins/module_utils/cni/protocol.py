# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The CNI protocol (CNI SPEC 1.1) as the plugin ``podnet`` speaks it: pure, no kernel.

The verb and the attachment come in environment variables (CNI_COMMAND,
CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_PATH), the network configuration
as JSON on standard input; a result or an error goes to standard output as
JSON. Verbs: ADD, DEL, CHECK, VERSION, GC and STATUS, for cniVersion 0.3.1,
0.4.0, 1.0.0 and 1.1.0 (results in the requested version's format).

This file holds the vocabulary (verbs, versions, error codes, ``CniError``),
the parsing of the environment (``parse_env``) and of the network
configuration (``parse_config``), and the results (``parse_result``,
``format_result``, ``merge_result``). The verbs are in ``cni.plugin``, the
entry points in ``cni.main``.

Network configuration (the plugin's entry of a conflist)::

    {"cniVersion": "1.0.0", "name": "podnet", "type": "podnet",
     "bridge": "cni0", "mtu": 1450, "hairpinMode": false,
     "clusterCIDR": "10.244.0.0/16",
     "ipam": {"subnet": "10.244.1.0/24", "gateway": "10.244.1.1",
              "rangeStart": "10.244.1.128", "rangeEnd": "10.244.1.254",
              "dataDir": "/var/lib/cni/podnet"}}

or, dual-stack, with host-local's range sets (one per address family)::

    {..., "clusterCIDRs": ["10.244.0.0/16", "fd00:10:244::/56"],
     "ipam": {"ranges": [[{"subnet": "10.244.1.0/24"}], [{"subnet": "fd00:10:244:1::/64"}]]}}

Only ``name``, ``type``, ``cniVersion`` and ``ipam.subnet`` (or ``ipam.ranges``) are required.

Every input ends in a result or in a ``CniError`` with a SPEC code whose
message names the field: standard input must be one JSON object of UTF-8
text (no byte order mark, no NaN or Infinity, no key twice in one object,
at most MAX_DEPTH levels deep, at most MAX_INPUT bytes), and every field has
the JSON type the SPEC gives it. Values in messages are shown as JSON
(``null``, ``true``, ``[1, 2]``) or, for text, quoted; long ones shortened.
"""

from __future__ import annotations

import codecs
import copy
import ipaddress
import json
import math
import re

from ansible_collections.podnet.mesh.plugins.module_utils.cni.ipam import DEFAULT_DATA_DIR, Pool
from ansible_collections.podnet.mesh.plugins.module_utils.core import validate as v
from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import PodnetError, ValidationError
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import DEFAULT_BRIDGE, pod_gateway

PLUGIN_TYPE = "podnet"
SUPPORTED_VERSIONS = ("0.3.1", "0.4.0", "1.0.0", "1.1.0")
CURRENT_VERSION = "1.1.0"
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "GC", "STATUS")
# The oldest cniVersion that knows a verb.
MIN_VERSION = {"CHECK": "0.4.0", "GC": "1.1.0", "STATUS": "1.1.0"}
# Variables each verb needs (CNI_NETNS is optional for DEL: the namespace may be gone).
REQUIRED_ENV = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"),
    "GC": (),
    "STATUS": (),
}
GC_ATTACHMENTS = "cni.dev/valid-attachments"
# The name an early text of the SPEC gave the same list; libcni sends both.
GC_ATTACHMENTS_OLD = "cni.dev/attachments"

# Error codes of the CNI SPEC ...
ERR_INCOMPATIBLE_VERSION = 1
ERR_UNSUPPORTED_FIELD = 2
ERR_UNKNOWN_CONTAINER = 3
ERR_INVALID_ENV = 4
ERR_IO = 5
ERR_DECODE = 6
ERR_INVALID_CONFIG = 7
ERR_TRY_AGAIN = 11
ERR_NOT_AVAILABLE = 50
# ... and the plugin's own (100 and up).
ERR_CONFLICT = 100        # the host or the container holds something in the way
ERR_NO_ADDRESS = 101      # the pool is exhausted
ERR_KERNEL = 102          # a netlink operation failed (details: the errno name)
ERR_CHECK = 103           # CHECK found the attachment differs from prevResult
ERR_INTERNAL = 999

# The SPEC's pattern of network names and container IDs (ASCII only; used with fullmatch).
NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]*")
# The network name is also the name of its IPAM state directory.
NAME_MAX = 255
# Limits of standard input: its size, and how deeply its JSON nests (a network
# configuration nests a few levels; prevResult, args and runtimeConfig a few more).
MAX_INPUT = 4 * 1024 * 1024
MAX_DEPTH = 64
# Longest rendering of a value in a message.
SHOW_MAX = 80
MAC_RE = re.compile(r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2})+")
U32_MAX = 2 ** 32 - 1

# Result fields that exist only from some cniVersion on.
_V11_INTERFACE_FIELDS = ("mtu", "socketPath", "pciID")
_V11_ROUTE_FIELDS = ("mtu", "advmss", "priority", "table", "scope")


class CniError(PodnetError):
    """An error to report as the SPEC's error JSON."""

    def __init__(self, code, msg, details=""):
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details


def version_key(version):
    return tuple(int(part) for part in version.split("."))


def show(value):
    """A value as a message shows it: text quoted, anything else as JSON; shortened when long."""
    if isinstance(value, str):
        text = repr(value)
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, allow_nan=False, default=str)
        except (TypeError, ValueError, RecursionError):
            text = "a %s" % type(value).__name__
    if len(text) > SHOW_MAX:
        text = text[:SHOW_MAX - 3] + "..."
    return text


def _has_control(text):
    return any(ord(char) < 0x20 or ord(char) == 0x7f for char in text)


# --------------------------------------------------------------- environment
class Request:
    """The attachment named by the CNI_* variables."""

    def __init__(self, command, container_id=None, netns=None, ifname=None, path=None, args=None):
        self.command = command
        self.container_id = container_id
        self.netns = netns
        self.ifname = ifname
        self.path = path
        self.args = args or {}


def parse_command(environ):
    command = environ.get("CNI_COMMAND")
    if not command:
        raise CniError(ERR_INVALID_ENV, "CNI_COMMAND is missing: it names the verb (%s)" % ", ".join(COMMANDS))
    if command not in COMMANDS:
        raise CniError(ERR_INVALID_ENV, "CNI_COMMAND %s is not a CNI verb (%s)" % (show(command), ", ".join(COMMANDS)))
    return command


def parse_env(environ, command):
    """CNI_* variables -> Request; every missing or invalid variable named in one error."""
    problems = []
    required = REQUIRED_ENV[command]
    values = {}
    for var in ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"):
        value = environ.get(var) or None
        if value is None:
            if var in required:
                problems.append("%s is missing" % var)
            continue
        values[var] = value
    cid = values.get("CNI_CONTAINERID")
    if cid is not None and not NAME_RE.fullmatch(cid):
        problems.append("CNI_CONTAINERID %s is invalid: it starts with an ASCII letter or digit, followed by "
                        "letters, digits, '_', '.' or '-'" % show(cid))
    netns = values.get("CNI_NETNS")
    if netns is not None and (not netns.startswith("/") or _has_control(netns)):
        problems.append("CNI_NETNS %s is not an absolute path to a network namespace%s"
                        % (show(netns), " (it holds control characters)" if _has_control(netns) else ""))
    ifname = values.get("CNI_IFNAME")
    if ifname is not None:
        try:
            v.ifname(ifname, "CNI_IFNAME")
        except ValidationError as exc:
            problems.append(message(exc))
    if problems:
        raise CniError(ERR_INVALID_ENV, "invalid CNI environment: " + "; ".join(problems))
    args = {}
    for item in (environ.get("CNI_ARGS") or "").split(";"):
        key, sep, value = item.partition("=")
        if sep and key:
            args[key] = value
    return Request(command, cid, netns, ifname, values.get("CNI_PATH"), args)


# --------------------------------------------------------------- configuration
class _Refused(ValueError):
    """JSON that Python's parser takes and the SPEC's JSON does not."""


def _object(pairs):
    data = {}
    for key, value in pairs:
        if key in data:
            raise _Refused("the key %s appears twice in one object" % show(key))
        data[key] = value
    return data


def _constant(name):
    raise _Refused("%s is not a JSON number" % name)


def _float(text):
    number = float(text)
    if not math.isfinite(number):
        raise _Refused("the number %s is too large" % show(text))
    return number


def _int(text):
    if len(text) > 40:
        raise _Refused("the number %s is too large" % show(text))
    return int(text)


def _depth(data):
    """How deeply data nests (a scalar: 0), counted without recursion."""
    deepest, todo = 0, [(data, 1)]
    while todo:
        node, level = todo.pop()
        if isinstance(node, dict):
            node = node.values()
        elif not isinstance(node, list):
            continue
        deepest = max(deepest, level)
        todo.extend((child, level + 1) for child in node)
    return deepest


def decode(raw, what="the network configuration on stdin"):
    """Bytes (or text) of one JSON object -> dict; anything else is error 6 naming why."""
    def refuse(reason):
        return CniError(ERR_DECODE, "cannot decode %s: %s" % (what, reason))

    if isinstance(raw, bytes):
        if raw.startswith(codecs.BOM_UTF8):
            raise refuse("it starts with a byte order mark (BOM), which JSON text must not have")
        if len(raw) > MAX_INPUT:
            raise refuse("it is larger than %d bytes" % MAX_INPUT)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise refuse("it is not UTF-8 text (byte %d)" % exc.start)
    else:
        text = raw
        if text.startswith("\ufeff"):
            raise refuse("it starts with a byte order mark (BOM), which JSON text must not have")
    if not text.strip():
        raise refuse("it is empty; a JSON object is expected")
    try:
        data = json.loads(text, object_pairs_hook=_object, parse_constant=_constant, parse_float=_float,
                          parse_int=_int)
    except _Refused as exc:
        raise refuse(str(exc))
    except RecursionError:
        raise refuse("it nests more than %d levels deep" % MAX_DEPTH)
    except ValueError as exc:
        raise refuse(str(exc))
    if _depth(data) > MAX_DEPTH:
        raise refuse("it nests more than %d levels deep" % MAX_DEPTH)
    if not isinstance(data, dict):
        raise CniError(ERR_DECODE, "%s must be a JSON object, not %s"
                       % (what[0].upper() + what[1:], _json_type(data)))
    return data


def _json_type(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def invalid(path, value, reason):
    """Error 7 naming the field, its value (left out when missing or null) and why it was refused."""
    if value is None:
        return CniError(ERR_INVALID_CONFIG, "invalid network configuration: %s %s" % (path, reason))
    return CniError(ERR_INVALID_CONFIG, "invalid network configuration: %s: %s %s" % (path, show(value), reason))


def message(exc):
    """A ValidationError's message with its value shown as JSON."""
    if exc.value is None:
        return "%s %s" % (exc.path, exc.reason)
    return "%s: %s %s" % (exc.path, show(exc.value), exc.reason)


def _refused(exc):
    return invalid(exc.path, exc.value, exc.reason)


def config_version(data, command):
    """The configuration's cniVersion, checked against SUPPORTED_VERSIONS and the verb."""
    version = data.get("cniVersion")
    if version is None:
        raise invalid("cniVersion", None, "is required (one of %s)" % ", ".join(SUPPORTED_VERSIONS))
    if not isinstance(version, str):
        raise invalid("cniVersion", version, "must be a version string (one of %s)" % ", ".join(SUPPORTED_VERSIONS))
    if version not in SUPPORTED_VERSIONS:
        raise CniError(ERR_INCOMPATIBLE_VERSION,
                       "cniVersion %s is not supported; podnet supports %s"
                       % (show(version), ", ".join(SUPPORTED_VERSIONS)),
                       "supportedVersions: %s" % ", ".join(SUPPORTED_VERSIONS))
    least = MIN_VERSION.get(command)
    if least is not None and version_key(version) < version_key(least):
        raise CniError(ERR_INCOMPATIBLE_VERSION,
                       "%s needs cniVersion %s or later; the configuration has %s" % (command, least, version))
    return version


def parse_config(data, command):
    """A decoded network configuration -> a plain dict of validated values."""
    version = config_version(data, command)
    name = data.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or len(name) > NAME_MAX:
        raise invalid("name", name, "must be a network name: an ASCII letter or digit, followed by letters, "
                                    "digits, '_', '.' or '-', at most %d in all" % NAME_MAX)
    if not isinstance(data.get("type"), str) or not data["type"]:
        raise invalid("type", data.get("type"), "is required: the plugin's name (%s)" % PLUGIN_TYPE)
    conf = {"version": version, "name": name, "type": data["type"]}
    try:
        bridge = data.get("bridge")
        conf["bridge"] = v.ifname(DEFAULT_BRIDGE if bridge is None else bridge, "bridge")
        conf["mtu"] = v.mtu(data.get("mtu"), "mtu")
    except ValidationError as exc:
        raise _refused(exc)
    for key in ("hairpinMode", "isGateway", "ipMasq"):
        if data.get(key) is not None and not isinstance(data[key], bool):
            raise invalid(key, data[key], "must be true or false")
    conf["hairpin"] = data.get("hairpinMode")
    if data.get("isGateway") is False:
        raise CniError(ERR_UNSUPPORTED_FIELD,
                       "unsupported field isGateway=false: the bridge always holds the gateway address")
    if data.get("ipMasq"):
        raise CniError(ERR_UNSUPPORTED_FIELD,
                       "unsupported field ipMasq=true: podnet does not masquerade; the node_network role "
                       "(podnet.mesh.masquerade) does")
    _parse_ipam(data, conf)
    conf["dns"] = _parse_dns(data.get("dns"), "dns")
    prev = data.get("prevResult")
    conf["prev"] = None if prev is None else parse_result(prev, "prevResult")
    conf["attachments"] = None
    if command == "GC":
        conf["attachments"] = _parse_attachments(data)
    return conf


RANGE_KEYS = ("subnet", "gateway", "rangeStart", "rangeEnd")


def _parse_ipam(data, conf):
    """ipam (and clusterCIDR/clusterCIDRs) -> conf["ranges"]: one range per address family, in order.

    The address ranges come as host-local writes them, ``ipam.ranges``: a list
    of range sets, each a list of ranges {subnet, rangeStart, rangeEnd,
    gateway}; or as the one-range shorthand ``ipam.subnet`` (with rangeStart,
    rangeEnd and gateway beside it). A range set holds one range, and each
    address family has one set at most.
    """
    ipam = data.get("ipam")
    if not isinstance(ipam, dict):
        raise invalid("ipam", ipam, "is required: an object with at least subnet (the node's pod CIDR) or ranges")
    kind = ipam.get("type")
    if kind is not None and not isinstance(kind, str):
        raise invalid("ipam.type", kind, "must be a string (%s, or left out)" % PLUGIN_TYPE)
    if kind is not None and kind != PLUGIN_TYPE:
        raise CniError(ERR_UNSUPPORTED_FIELD,
                       "unsupported field ipam.type=%s: podnet has its own IPAM; leave ipam.type out "
                       "or set it to %r" % (show(kind), PLUGIN_TYPE))
    ranges = []
    if ipam.get("ranges") is None:
        ranges.append(_parse_range(ipam, "ipam", "ipam."))
    else:
        given = [key for key in RANGE_KEYS if ipam.get(key) is not None]
        if given:
            raise invalid("ipam." + given[0], ipam[given[0]],
                          "cannot be given with ipam.ranges: write that range into ipam.ranges (one range set "
                          "per address family), or leave ipam.ranges out")
        sets = ipam["ranges"]
        if not isinstance(sets, list) or not sets:
            raise invalid("ipam.ranges", sets, "must be a non-empty list of range sets (each a list of ranges "
                                               "{subnet, rangeStart, rangeEnd, gateway})")
        for index, items in enumerate(sets):
            path = "ipam.ranges[%d]" % index
            if not isinstance(items, list) or not items:
                raise invalid(path, items, "must be a non-empty list of ranges {subnet, rangeStart, rangeEnd, "
                                           "gateway}")
            if not isinstance(items[0], dict):
                raise invalid(path + "[0]", items[0], "must be an object with at least subnet")
            if len(items) > 1:
                raise CniError(ERR_UNSUPPORTED_FIELD,
                               "unsupported field %s[1]: podnet takes one range per range set (one range set per "
                               "address family, such as one IPv4 and one IPv6 subnet)" % path)
            item = _parse_range(items[0], path + "[0]", path + "[0].")
            for other in ranges:
                if other["subnet"].version == item["subnet"].version:
                    raise invalid(path + "[0].subnet", str(item["subnet"]),
                                  "is a second IPv%d range set (also %s at %s): podnet takes one range set per "
                                  "address family" % (item["subnet"].version, other["subnet"], other["path"]))
            ranges.append(item)
    data_dir = ipam.get("dataDir")
    if data_dir is None:
        data_dir = DEFAULT_DATA_DIR
    if not isinstance(data_dir, str) or not data_dir.startswith("/"):
        raise invalid("ipam.dataDir", data_dir, "must be an absolute path")
    if _has_control(data_dir) or not _encodable(data_dir):
        raise invalid("ipam.dataDir", data_dir, "must be a path of printable UTF-8 text (no NUL, newline or "
                                                "other control characters)")
    clusters = _parse_clusters(data)
    if clusters:
        for item in ranges:
            cluster = next((c for c in clusters if c.version == item["subnet"].version), None)
            if cluster is None or not item["subnet"].subnet_of(cluster):
                raise invalid(item["prefix"] + "subnet", str(item["subnet"]), "is not inside %s %s" % (
                    "clusterCIDR" if "clusterCIDR" in data else "clusterCIDRs",
                    cluster if cluster is not None else "(it has no IPv%d prefix)" % item["subnet"].version))
    conf.update(ranges=ranges, data_dir=data_dir, cluster_cidrs=clusters)


def _parse_range(item, path, prefix):
    """One range {subnet, gateway, rangeStart, rangeEnd} -> {subnet, gateway, range_start, range_end, path, prefix}.

    path names the range in messages, prefix its fields ("ipam." for the shorthand).
    """
    try:
        subnet = v.pod_cidr(item.get("subnet"), prefix + "subnet")
    except ValidationError as exc:
        raise _refused(exc)
    gateway = item.get("gateway")
    if gateway is None:
        gateway = pod_gateway(subnet)
    else:
        try:
            gateway = v.ip_address(gateway, prefix + "gateway")
        except ValidationError as exc:
            raise _refused(exc)
        if gateway.version != subnet.version or gateway not in subnet or gateway == subnet.network_address \
                or (subnet.version == 4 and gateway == subnet.broadcast_address):
            raise invalid(prefix + "gateway", item["gateway"], "is not a host address of %ssubnet %s"
                          % (prefix, subnet))
    bounds = {}
    for key in ("rangeStart", "rangeEnd"):
        if item.get(key) is not None:
            try:
                bounds[key] = v.ip_address(item[key], prefix + key)
            except ValidationError as exc:
                raise _refused(exc)
    try:
        Pool(subnet, gateway, bounds.get("rangeStart"), bounds.get("rangeEnd"))
    except (ValueError, TypeError) as exc:
        raise invalid(path, dict((k, item.get(k)) for k in RANGE_KEYS if item.get(k) is not None),
                      "defines no usable pool: %s" % exc)
    return {"subnet": subnet, "gateway": gateway, "range_start": bounds.get("rangeStart"),
            "range_end": bounds.get("rangeEnd"), "path": path, "prefix": prefix}


def _parse_clusters(data):
    """clusterCIDR (one prefix) or clusterCIDRs (a list, one per address family) -> [networks]; [] for none."""
    one, many = data.get("clusterCIDR"), data.get("clusterCIDRs")
    if one is not None and many is not None:
        raise invalid("clusterCIDRs", many, "cannot be given with clusterCIDR: list every family's prefix in "
                                            "clusterCIDRs")
    if one is not None:
        try:
            return [ipaddress.ip_network(v.network(one, "clusterCIDR"))]
        except ValidationError as exc:
            raise _refused(exc)
    if many is None:
        return []
    if not isinstance(many, list) or not many:
        raise invalid("clusterCIDRs", many, "must be a non-empty list of networks in CIDR form, one per address "
                                            "family")
    clusters = []
    for index, value in enumerate(many):
        path = "clusterCIDRs[%d]" % index
        try:
            cluster = ipaddress.ip_network(v.network(value, path))
        except ValidationError as exc:
            raise _refused(exc)
        for other in clusters:
            if other.version == cluster.version:
                raise invalid(path, value, "is a second IPv%d prefix (also %s): one per address family"
                              % (cluster.version, other))
        clusters.append(cluster)
    return clusters


def _encodable(text):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _parse_dns(value, path):
    """The SPEC's DNS object (nameservers, domain, search, options), its fields' types checked."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(path, value, "must be an object")
    for key in ("nameservers", "search", "options"):
        items = value.get(key)
        if items is None:
            continue
        if not isinstance(items, list):
            raise invalid("%s.%s" % (path, key), items, "must be a list of strings")
        for index, item in enumerate(items):
            if not isinstance(item, str):
                raise invalid("%s.%s[%d]" % (path, key, index), item, "must be a string")
    if value.get("domain") is not None and not isinstance(value["domain"], str):
        raise invalid(path + ".domain", value["domain"], "must be a string")
    return value


def _parse_attachments(data):
    """GC's list of attachments to keep: a set of (containerID, ifname), or None when GC names none.

    Without the list (libcni leaves it out when its caller gives no GC arguments)
    nothing is known to be stale, so GC releases nothing. null is an empty list,
    as Go encodes one (libcni's caller with no valid attachment at all). The
    SPEC's earlier name for the list is read when the current one is missing.
    """
    key = GC_ATTACHMENTS if GC_ATTACHMENTS in data or GC_ATTACHMENTS_OLD not in data else GC_ATTACHMENTS_OLD
    if key not in data:
        return None
    value = data[key]
    if value is None:
        return set()
    if not isinstance(value, list):
        raise invalid(key, value, "must be a list of {containerID, ifname}")
    valid = set()
    for index, item in enumerate(value):
        path = "%s[%d]" % (key, index)
        if not isinstance(item, dict) or not isinstance(item.get("containerID"), str) \
                or not isinstance(item.get("ifname"), str):
            raise invalid(path, item, "must be an object with containerID and ifname (strings)")
        valid.add((item["containerID"], item["ifname"]))
    return valid


# -------------------------------------------------------------------- results
# Fields of result items by JSON type (the SPEC's result types); fields not
# named here are kept as they are.
_RESULT_TEXT = {
    "interfaces": ("name", "mac", "sandbox", "socketPath", "pciID"),
    "ips": ("address", "gateway", "version"),
    "routes": ("dst", "gw"),
}
_RESULT_INT = {
    "interfaces": ("mtu",),
    "ips": ("interface",),
    "routes": ("mtu", "advmss", "priority", "table", "scope"),
}


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_result_item(key, item, where, count):
    """One item of a result's interfaces, ips or routes, checked; a copy in the internal form."""
    for field in _RESULT_TEXT[key]:
        if item.get(field) is not None and not isinstance(item[field], str):
            raise invalid("%s.%s" % (where, field), item[field], "must be a string")
    for field in _RESULT_INT[key]:
        if item.get(field) is not None and (not _is_int(item[field]) or not 0 <= item[field] <= U32_MAX):
            raise invalid("%s.%s" % (where, field), item[field], "must be an integer from 0 to %d" % U32_MAX)
    item = dict(item)
    if key == "interfaces":
        if not item.get("name"):
            raise invalid(where + ".name", item.get("name"), "is required: the interface name")
        if item.get("mac") and not MAC_RE.fullmatch(item["mac"]):
            raise invalid(where + ".mac", item["mac"], "is not a MAC address such as 0a:58:0a:f4:01:02")
    elif key == "ips":
        if item.get("address") is None:
            raise invalid(where + ".address", None, "is required: an address in CIDR form")
        _cidr_field(item, "address", where, ipaddress.ip_interface, "an address")
        _address_field(item, "gateway", where)
        if item.get("version") not in (None, "4", "6"):
            raise invalid(where + ".version", item["version"], "must be \"4\" or \"6\"")
        item.pop("version", None)
        if item.get("interface") is not None and not item["interface"] < count:
            raise invalid(where + ".interface", item["interface"], "is not an index into interfaces")
    else:
        if item.get("dst") is None:
            raise invalid(where + ".dst", None, "is required: a network in CIDR form")
        _cidr_field(item, "dst", where, lambda text: ipaddress.ip_network(text, strict=False), "a network")
        _address_field(item, "gw", where)
    return item


def _cidr_field(item, key, where, parse, what):
    """item[key] must be text that parse() takes as CIDR (no zone); the error names where.key."""
    text = item[key]
    try:
        if "/" not in text or "%" in text:
            raise ValueError(text)
        parse(text)
    except ValueError:
        raise invalid("%s.%s" % (where, key), text, "is not %s in CIDR form" % what)


def _address_field(item, key, where):
    """item[key], when set, must be an IP address; the error names where.key."""
    if item.get(key) is not None:
        try:
            v.ip_address(item[key], "%s.%s" % (where, key))
        except ValidationError as exc:
            raise _refused(exc)


def parse_result(value, path):
    """A result of any supported version -> the internal (1.x) form, every field's type checked."""
    if not isinstance(value, dict):
        raise invalid(path, value, "must be a result object")
    result = {"interfaces": [], "ips": [], "routes": [], "dns": _parse_dns(value.get("dns"), path + ".dns") or {}}
    lists = {}
    for key in ("interfaces", "ips", "routes"):
        items = value.get(key)
        if items is None:
            items = []
        if not isinstance(items, list):
            raise invalid("%s.%s" % (path, key), items, "must be a list")
        lists[key] = items
    for key in ("interfaces", "ips", "routes"):
        for index, item in enumerate(lists[key]):
            where = "%s.%s[%d]" % (path, key, index)
            if not isinstance(item, dict):
                raise invalid(where, item, "must be an object")
            result[key].append(_parse_result_item(key, item, where, len(lists["interfaces"])))
    return result


def _without(items, fields):
    """Copies of the result items, without the fields an older cniVersion does not know."""
    return [dict((key, value) for key, value in item.items() if key not in fields) for item in items]


def format_result(result, version):
    """The internal result in the wire format of cniVersion ``version``."""
    out = {"cniVersion": version}
    old = version_key(version) < (1, 0, 0)
    v11 = version_key(version) >= (1, 1, 0)
    interfaces = _without(result["interfaces"], () if v11 else _V11_INTERFACE_FIELDS)
    ips = []
    for item in result["ips"]:
        item = dict(item)
        if old:
            item["version"] = str(ipaddress.ip_interface(item["address"]).version)
        else:
            item.pop("version", None)
        ips.append(item)
    routes = _without(result["routes"], () if v11 else _V11_ROUTE_FIELDS)
    out.update(interfaces=interfaces, ips=ips, routes=routes, dns=copy.deepcopy(result.get("dns") or {}))
    return out


def merge_result(prev, ours):
    """ours appended to a chained prevResult; our ips' interface indexes shifted to match."""
    if prev is None:
        return ours
    offset = len(prev["interfaces"])
    ips = [dict(ip, interface=ip["interface"] + offset) if ip.get("interface") is not None else ip
           for ip in ours["ips"]]
    return {
        "interfaces": prev["interfaces"] + ours["interfaces"],
        "ips": prev["ips"] + ips,
        "routes": prev["routes"] + ours["routes"],
        "dns": prev.get("dns") or ours.get("dns") or {},
    }


def version_info():
    return {"cniVersion": CURRENT_VERSION, "supportedVersions": list(SUPPORTED_VERSIONS)}
