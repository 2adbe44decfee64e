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

Only ``name``, ``type``, ``cniVersion`` and ``ipam.subnet`` are required.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
import sys

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

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")

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
        raise CniError(ERR_INVALID_ENV, "CNI_COMMAND %r is not a CNI verb (%s)" % (command, ", ".join(COMMANDS)))
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
    if cid is not None and not NAME_RE.match(cid):
        problems.append("CNI_CONTAINERID %r is invalid: it starts with a letter or digit, followed by "
                        "letters, digits, '_', '.' or '-'" % cid)
    netns = values.get("CNI_NETNS")
    if netns is not None and not netns.startswith("/"):
        problems.append("CNI_NETNS %r is not an absolute path to a network namespace" % netns)
    ifname = values.get("CNI_IFNAME")
    if ifname is not None:
        try:
            v.ifname(ifname, "CNI_IFNAME")
        except ValidationError as exc:
            problems.append(str(exc))
    if problems:
        raise CniError(ERR_INVALID_ENV, "invalid CNI environment: " + "; ".join(problems))
    args = {}
    for item in (environ.get("CNI_ARGS") or "").split(";"):
        key, sep, value = item.partition("=")
        if sep and key:
            args[key] = value
    return Request(command, cid, netns, ifname, values.get("CNI_PATH"), args)


# --------------------------------------------------------------- configuration
def decode(raw):
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise CniError(ERR_DECODE, "cannot decode the network configuration on stdin: %s" % exc)
    if not isinstance(data, dict):
        raise CniError(ERR_DECODE, "the network configuration must be a JSON object, not %s"
                       % type(data).__name__)
    return data


def invalid(path, value, reason):
    return CniError(ERR_INVALID_CONFIG, "invalid network configuration: %s: %r %s" % (path, value, reason))


def config_version(data, command):
    """The configuration's cniVersion, checked against SUPPORTED_VERSIONS and the verb."""
    version = data.get("cniVersion")
    if version is None:
        raise invalid("cniVersion", None, "is required (one of %s)" % ", ".join(SUPPORTED_VERSIONS))
    if version not in SUPPORTED_VERSIONS:
        raise CniError(ERR_INCOMPATIBLE_VERSION,
                       "cniVersion %r is not supported; podnet supports %s"
                       % (version, ", ".join(SUPPORTED_VERSIONS)),
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
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise invalid("name", name, "must be a network name: a letter or digit, followed by letters, "
                                    "digits, '_', '.' or '-'")
    if not isinstance(data.get("type"), str) or not data["type"]:
        raise invalid("type", data.get("type"), "is required: the plugin's name (%s)" % PLUGIN_TYPE)
    conf = {"version": version, "name": name, "type": data["type"]}
    try:
        conf["bridge"] = v.ifname(data.get("bridge", DEFAULT_BRIDGE), "bridge")
        conf["mtu"] = v.mtu(data.get("mtu"), "mtu")
    except ValidationError as exc:
        raise invalid(exc.path, exc.value, exc.reason)
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
    dns = data.get("dns")
    if dns is not None and not isinstance(dns, dict):
        raise invalid("dns", dns, "must be an object")
    conf["dns"] = dns
    prev = data.get("prevResult")
    conf["prev"] = None if prev is None else parse_result(prev, "prevResult")
    conf["attachments"] = None
    if command == "GC":
        conf["attachments"] = _parse_attachments(data.get(GC_ATTACHMENTS))
    return conf


def _parse_ipam(data, conf):
    ipam = data.get("ipam")
    if not isinstance(ipam, dict):
        raise invalid("ipam", ipam, "is required: an object with at least subnet (the node's pod CIDR)")
    kind = ipam.get("type")
    if kind is not None and kind != PLUGIN_TYPE:
        raise CniError(ERR_UNSUPPORTED_FIELD,
                       "unsupported field ipam.type=%r: podnet has its own IPAM; leave ipam.type out "
                       "or set it to %r" % (kind, PLUGIN_TYPE))
    try:
        subnet = v.pod_cidr(ipam.get("subnet"), "ipam.subnet")
    except ValidationError as exc:
        raise invalid(exc.path, exc.value, exc.reason)
    gateway = ipam.get("gateway")
    if gateway is None:
        gateway = pod_gateway(subnet)
    else:
        try:
            gateway = v.ip_address(gateway, "ipam.gateway")
        except ValidationError as exc:
            raise invalid(exc.path, exc.value, exc.reason)
        if gateway.version != 4 or gateway not in subnet or gateway in (
                subnet.network_address, subnet.broadcast_address):
            raise invalid("ipam.gateway", ipam["gateway"], "is not a host address of ipam.subnet %s" % subnet)
    bounds = {}
    for key in ("rangeStart", "rangeEnd"):
        if ipam.get(key) is not None:
            try:
                bounds[key] = v.ip_address(ipam[key], "ipam." + key)
            except ValidationError as exc:
                raise invalid(exc.path, exc.value, exc.reason)
    try:
        Pool(subnet, gateway, bounds.get("rangeStart"), bounds.get("rangeEnd"))
    except (ValueError, TypeError) as exc:
        raise invalid("ipam", dict((k, ipam.get(k)) for k in ("subnet", "gateway", "rangeStart", "rangeEnd")
                                   if ipam.get(k) is not None), "defines no usable pool: %s" % exc)
    data_dir = ipam.get("dataDir", DEFAULT_DATA_DIR)
    if not isinstance(data_dir, str) or not data_dir.startswith("/"):
        raise invalid("ipam.dataDir", data_dir, "must be an absolute path")
    cluster = data.get("clusterCIDR")
    if cluster is not None:
        try:
            cluster = ipaddress.ip_network(v.network(cluster, "clusterCIDR"))
        except ValidationError as exc:
            raise invalid(exc.path, exc.value, exc.reason)
        if cluster.version != subnet.version or not subnet.subnet_of(cluster):
            raise invalid("ipam.subnet", str(subnet), "is not inside clusterCIDR %s" % cluster)
    conf.update(subnet=subnet, gateway=gateway, data_dir=data_dir, cluster_cidr=cluster,
                range_start=bounds.get("rangeStart"), range_end=bounds.get("rangeEnd"))


def _parse_attachments(value):
    if value is None:
        raise invalid(GC_ATTACHMENTS, None, "is required for GC: the list of attachments to keep")
    if not isinstance(value, list):
        raise invalid(GC_ATTACHMENTS, value, "must be a list of {containerID, ifname}")
    valid = set()
    for index, item in enumerate(value):
        path = "%s[%d]" % (GC_ATTACHMENTS, index)
        if not isinstance(item, dict) or not isinstance(item.get("containerID"), str) \
                or not isinstance(item.get("ifname"), str):
            raise invalid(path, item, "must be an object with containerID and ifname (strings)")
        valid.add((item["containerID"], item["ifname"]))
    return valid


# -------------------------------------------------------------------- results
def parse_result(value, path):
    """A result of any supported version -> the internal (1.x) form, checked."""
    if not isinstance(value, dict):
        raise invalid(path, value, "must be a result object")
    result = {"interfaces": [], "ips": [], "routes": [], "dns": value.get("dns") or {}}
    for key in ("interfaces", "ips", "routes"):
        items = value.get(key) or []
        if not isinstance(items, list):
            raise invalid("%s.%s" % (path, key), items, "must be a list")
        for index, item in enumerate(items):
            where = "%s.%s[%d]" % (path, key, index)
            if not isinstance(item, dict):
                raise invalid(where, item, "must be an object")
            item = dict(item)
            if key == "interfaces" and not isinstance(item.get("name"), str):
                raise invalid(where + ".name", item.get("name"), "is required: the interface name")
            if key == "ips":
                try:
                    ipaddress.ip_interface(item.get("address"))
                except (TypeError, ValueError):
                    raise invalid(where + ".address", item.get("address"), "is not an address in CIDR form")
                item.pop("version", None)
                index_of = item.get("interface")
                if index_of is not None and (isinstance(index_of, bool) or not isinstance(index_of, int)
                                             or not 0 <= index_of < len(value.get("interfaces") or [])):
                    raise invalid(where + ".interface", index_of, "is not an index into interfaces")
            if key == "routes":
                try:
                    ipaddress.ip_network(item.get("dst"), strict=False)
                except (TypeError, ValueError):
                    raise invalid(where + ".dst", item.get("dst"), "is not a network in CIDR form")
            result[key].append(item)
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


def pyroute2_missing(details=""):
    """The error of a verb that needs pyroute2 when this Python cannot import it."""
    return CniError(ERR_NOT_AVAILABLE, "pyroute2 cannot be imported by %s: install it for this Python "
                                       "('apt-get install python3-pyroute2' or 'pip install pyroute2>=0.7')"
                    % sys.executable, details)
