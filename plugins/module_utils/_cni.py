# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The CNI plugin ``podnet`` (CNI SPEC 1.1): protocol, verbs and wiring.

The plugin speaks the CNI protocol: the verb and the attachment come in
environment variables (CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME,
CNI_PATH), the network configuration as JSON on standard input; a result or
an error goes to standard output as JSON, and the exit code is 0 on success
and 1 on error. Verbs: ADD, DEL, CHECK, VERSION, GC and STATUS, for
cniVersion 0.3.1, 0.4.0, 1.0.0 and 1.1.0 (results in the requested
version's format).

ADD wires a container exactly as the modules wire a pod, with the same
planners and the same netlink layer: the bridge (created when missing, with
the gateway, the first address of the subnet), a veth pair whose peer is
born in the container's namespace under CNI_IFNAME, the address from the
built-in IPAM (``_ipam``) and a default route via the gateway. A failed ADD
removes the veth it made and releases the address it reserved.

Network configuration (the plugin's entry of a conflist)::

    {"cniVersion": "1.0.0", "name": "podnet", "type": "podnet",
     "bridge": "cni0", "mtu": 1450, "hairpinMode": false,
     "clusterCIDR": "10.244.0.0/16",
     "ipam": {"subnet": "10.244.1.0/24", "gateway": "10.244.1.1",
              "rangeStart": "10.244.1.128", "rangeEnd": "10.244.1.254",
              "dataDir": "/var/lib/cni/podnet"}}

Only ``name``, ``type``, ``cniVersion`` and ``ipam.subnet`` are required.
pyroute2 is loaded only by the verbs that talk to the kernel, so VERSION,
STATUS and input errors answer quickly.
"""

from __future__ import annotations

import copy
import errno
import hashlib
import importlib.util
import ipaddress
import json
import os
import re
import socket
import sys
import traceback

from ansible_collections.podnet.mesh.plugins.module_utils import _ipam
from ansible_collections.podnet.mesh.plugins.module_utils import _plan
from ansible_collections.podnet.mesh.plugins.module_utils import _validate as v
from ansible_collections.podnet.mesh.plugins.module_utils._validate import ValidationError

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

DEFAULT_BRIDGE = "cni0"
# Routes the plugin adds carry the collection's routing protocol number.
ROUTE_PROTO = 149
MAIN_TABLE = 254
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")
NETLINK_MODULE = "ansible_collections.podnet.mesh.plugins.module_utils._netlink"

# Result fields that exist only from some cniVersion on.
_V11_INTERFACE_FIELDS = ("mtu", "socketPath", "pciID")
_V11_ROUTE_FIELDS = ("mtu", "advmss", "priority", "table", "scope")


class CniError(Exception):
    """An error to report as the SPEC's error JSON."""

    def __init__(self, code, msg, details=""):
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details


def _version_key(version):
    return tuple(int(part) for part in version.split("."))


def host_veth_name(container_id, ifname):
    """Host end of an attachment's veth: 'veth' + 11 hex digits of a hash of it."""
    digest = hashlib.sha256(("%s/%s" % (container_id, ifname)).encode("utf-8")).hexdigest()
    return "veth" + digest[:11]


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


def _invalid(path, value, reason):
    return CniError(ERR_INVALID_CONFIG, "invalid network configuration: %s: %r %s" % (path, value, reason))


def config_version(data, command):
    """The configuration's cniVersion, checked against SUPPORTED_VERSIONS and the verb."""
    version = data.get("cniVersion")
    if version is None:
        raise _invalid("cniVersion", None, "is required (one of %s)" % ", ".join(SUPPORTED_VERSIONS))
    if version not in SUPPORTED_VERSIONS:
        raise CniError(ERR_INCOMPATIBLE_VERSION,
                       "cniVersion %r is not supported; podnet supports %s"
                       % (version, ", ".join(SUPPORTED_VERSIONS)),
                       "supportedVersions: %s" % ", ".join(SUPPORTED_VERSIONS))
    least = MIN_VERSION.get(command)
    if least is not None and _version_key(version) < _version_key(least):
        raise CniError(ERR_INCOMPATIBLE_VERSION,
                       "%s needs cniVersion %s or later; the configuration has %s" % (command, least, version))
    return version


def parse_config(data, command):
    """A decoded network configuration -> a plain dict of validated values."""
    version = config_version(data, command)
    name = data.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise _invalid("name", name, "must be a network name: a letter or digit, followed by letters, "
                                     "digits, '_', '.' or '-'")
    if not isinstance(data.get("type"), str) or not data["type"]:
        raise _invalid("type", data.get("type"), "is required: the plugin's name (%s)" % PLUGIN_TYPE)
    conf = {"version": version, "name": name, "type": data["type"]}
    try:
        conf["bridge"] = v.ifname(data.get("bridge", DEFAULT_BRIDGE), "bridge")
        conf["mtu"] = v.mtu(data.get("mtu"), "mtu")
    except ValidationError as exc:
        raise _invalid(exc.path, exc.value, exc.reason)
    for key in ("hairpinMode", "isGateway", "ipMasq"):
        if data.get(key) is not None and not isinstance(data[key], bool):
            raise _invalid(key, data[key], "must be true or false")
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
        raise _invalid("dns", dns, "must be an object")
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
        raise _invalid("ipam", ipam, "is required: an object with at least subnet (the node's pod CIDR)")
    kind = ipam.get("type")
    if kind is not None and kind != PLUGIN_TYPE:
        raise CniError(ERR_UNSUPPORTED_FIELD,
                       "unsupported field ipam.type=%r: podnet has its own IPAM; leave ipam.type out "
                       "or set it to %r" % (kind, PLUGIN_TYPE))
    try:
        subnet = ipaddress.ip_network(v.network(ipam.get("subnet"), "ipam.subnet"))
    except ValidationError as exc:
        raise _invalid(exc.path, exc.value, exc.reason)
    if subnet.version != 4 or subnet.prefixlen > 30:
        raise _invalid("ipam.subnet", ipam["subnet"], "must be an IPv4 network of at least 4 addresses")
    gateway = ipam.get("gateway")
    if gateway is None:
        gateway = next(subnet.hosts())
    else:
        try:
            gateway = v.ip_address(gateway, "ipam.gateway")
        except ValidationError as exc:
            raise _invalid(exc.path, exc.value, exc.reason)
        if gateway.version != 4 or gateway not in subnet or gateway in (
                subnet.network_address, subnet.broadcast_address):
            raise _invalid("ipam.gateway", ipam["gateway"], "is not a host address of ipam.subnet %s" % subnet)
    bounds = {}
    for key in ("rangeStart", "rangeEnd"):
        if ipam.get(key) is not None:
            try:
                bounds[key] = v.ip_address(ipam[key], "ipam." + key)
            except ValidationError as exc:
                raise _invalid(exc.path, exc.value, exc.reason)
    try:
        _ipam.Pool(subnet, gateway, bounds.get("rangeStart"), bounds.get("rangeEnd"))
    except (ValueError, TypeError) as exc:
        raise _invalid("ipam", dict((k, ipam.get(k)) for k in ("subnet", "gateway", "rangeStart", "rangeEnd")
                                    if ipam.get(k) is not None), "defines no usable pool: %s" % exc)
    data_dir = ipam.get("dataDir", _ipam.DEFAULT_DATA_DIR)
    if not isinstance(data_dir, str) or not data_dir.startswith("/"):
        raise _invalid("ipam.dataDir", data_dir, "must be an absolute path")
    cluster = data.get("clusterCIDR")
    if cluster is not None:
        try:
            cluster = ipaddress.ip_network(v.network(cluster, "clusterCIDR"))
        except ValidationError as exc:
            raise _invalid(exc.path, exc.value, exc.reason)
        if cluster.version != subnet.version or not subnet.subnet_of(cluster):
            raise _invalid("ipam.subnet", str(subnet), "is not inside clusterCIDR %s" % cluster)
    conf.update(subnet=subnet, gateway=gateway, data_dir=data_dir, cluster_cidr=cluster,
                range_start=bounds.get("rangeStart"), range_end=bounds.get("rangeEnd"))


def _parse_attachments(value):
    if value is None:
        raise _invalid(GC_ATTACHMENTS, None, "is required for GC: the list of attachments to keep")
    if not isinstance(value, list):
        raise _invalid(GC_ATTACHMENTS, value, "must be a list of {containerID, ifname}")
    valid = set()
    for index, item in enumerate(value):
        path = "%s[%d]" % (GC_ATTACHMENTS, index)
        if not isinstance(item, dict) or not isinstance(item.get("containerID"), str) \
                or not isinstance(item.get("ifname"), str):
            raise _invalid(path, item, "must be an object with containerID and ifname (strings)")
        valid.add((item["containerID"], item["ifname"]))
    return valid


# -------------------------------------------------------------------- results
def parse_result(value, path):
    """A result of any supported version -> the internal (1.x) form, checked."""
    if not isinstance(value, dict):
        raise _invalid(path, value, "must be a result object")
    result = {"interfaces": [], "ips": [], "routes": [], "dns": value.get("dns") or {}}
    for key in ("interfaces", "ips", "routes"):
        items = value.get(key) or []
        if not isinstance(items, list):
            raise _invalid("%s.%s" % (path, key), items, "must be a list")
        for index, item in enumerate(items):
            where = "%s.%s[%d]" % (path, key, index)
            if not isinstance(item, dict):
                raise _invalid(where, item, "must be an object")
            item = dict(item)
            if key == "interfaces" and not isinstance(item.get("name"), str):
                raise _invalid(where + ".name", item.get("name"), "is required: the interface name")
            if key == "ips":
                try:
                    ipaddress.ip_interface(item.get("address"))
                except (TypeError, ValueError):
                    raise _invalid(where + ".address", item.get("address"), "is not an address in CIDR form")
                item.pop("version", None)
                index_of = item.get("interface")
                if index_of is not None and (isinstance(index_of, bool) or not isinstance(index_of, int)
                                             or not 0 <= index_of < len(value.get("interfaces") or [])):
                    raise _invalid(where + ".interface", index_of, "is not an index into interfaces")
            if key == "routes":
                try:
                    ipaddress.ip_network(item.get("dst"), strict=False)
                except (TypeError, ValueError):
                    raise _invalid(where + ".dst", item.get("dst"), "is not a network in CIDR form")
            result[key].append(item)
    return result


def format_result(result, version):
    """The internal result in the wire format of cniVersion ``version``."""
    out = {"cniVersion": version}
    old = _version_key(version) < (1, 0, 0)
    v11 = _version_key(version) >= (1, 1, 0)
    interfaces = []
    for item in result["interfaces"]:
        item = dict(item)
        if not v11:
            for key in _V11_INTERFACE_FIELDS:
                item.pop(key, None)
        interfaces.append(item)
    ips = []
    for item in result["ips"]:
        item = dict(item)
        if old:
            item["version"] = str(ipaddress.ip_interface(item["address"]).version)
        else:
            item.pop("version", None)
        ips.append(item)
    routes = []
    for item in result["routes"]:
        item = dict(item)
        if not v11:
            for key in _V11_ROUTE_FIELDS:
                item.pop(key, None)
        routes.append(item)
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


# ------------------------------------------------------------------- planning
def gateway_cidr(conf):
    return "%s/%d" % (conf["gateway"], conf["subnet"].prefixlen)


def plan_bridge(conf, link):
    """The bridge with the gateway address added (other addresses and STP left as they are)."""
    addresses = None
    if link is None:
        addresses = [gateway_cidr(conf)]
    elif not any(ipaddress.ip_interface(a).ip == conf["gateway"] for a in link["addresses"]):
        addresses = list(link["addresses"]) + [gateway_cidr(conf)]
    want = {"name": conf["bridge"], "state": "present", "addresses": addresses, "mtu": conf["mtu"],
            "stp": bool(link["stp"]) if link is not None else False, "up": True}
    try:
        return _plan.plan_bridge(want, link)
    except ValidationError as exc:
        raise CniError(ERR_CONFLICT, "bridge %s: %s" % (conf["bridge"], exc.reason))


def plan_attach(conf, req, address, host_links, container_links, container_routes, container_nets):
    """Actions wiring one attachment: veth (peer born in the container), address, default route.

    host_links: links of the host namespace (the bridge must be among them);
    container_*: the container namespace as read before any change.
    """
    ifname, netns = req.ifname, req.netns
    veth = host_veth_name(req.container_id, ifname)
    cidr = "%s/%d" % (address, conf["subnet"].prefixlen)
    bridge = host_links.get(conf["bridge"])
    veth_plan = _plan.plan_veth(
        {"name": veth, "peer": ifname, "netns": netns, "master": conf["bridge"], "mtu": conf["mtu"],
         "hairpin": conf["hairpin"], "up": True, "state": "present", "peer_mac": _plan.pod_mac(cidr)},
        {"host": host_links.get(veth), "peer": container_links.get(ifname), "stray_peer": None,
         "netns_exists": True, "master": bridge})
    # The peer is born by this plan: up (plan_veth brings it up), no address yet.
    born = {"name": ifname, "kind": "veth", "up": True, "addresses": []}
    addr_plan = _plan.plan_interface_addresses(
        {"netns": netns, "interface": ifname, "addresses": [cidr], "up": True, "state": "present"},
        {"netns_exists": True, "link": born, "lo": None})
    ours, foreign = {}, {}
    for route in container_routes:
        (ours if route["proto"] == ROUTE_PROTO else foreign)[v.route_key(route)] = route
    route = v.route({"dst": "default", "via": str(conf["gateway"]), "dev": ifname}, "routes[0]")
    route_plan = _plan.plan_routes(
        {"netns": netns, "routes": [route], "purge": False, "state": "present", "proto": ROUTE_PROTO,
         "table": MAIN_TABLE},
        {"netns_exists": True, "ours": ours, "foreign": foreign,
         "connected": list(container_nets) + [ipaddress.ip_interface(cidr).network],
         "links": set(container_links) | {ifname}})
    return veth_plan.actions + addr_plan.actions + route_plan.actions


def plan_detach(host_veth, host_link):
    """Actions removing an attachment: deleting the host end removes its peer too."""
    if host_link is None or host_link.get("kind") != "veth":
        return []
    return _plan.plan_veth(
        {"name": host_veth, "peer": "", "netns": None, "master": None, "mtu": None, "hairpin": None,
         "up": True, "state": "absent"},
        {"host": host_link, "peer": None}).actions


# ---------------------------------------------------------------- the verbs
def _default_session():
    from ansible_collections.podnet.mesh.plugins.module_utils import _netlink
    if not _netlink.HAS_PYROUTE2:
        raise CniError(ERR_NOT_AVAILABLE, "pyroute2 cannot be imported by %s: %s" % (
            sys.executable, _pyroute2_hint()), _netlink.PYROUTE2_IMPORT_ERROR or "")
    return _netlink.Session()


def _pyroute2_hint():
    return "install it for this Python ('apt-get install python3-pyroute2' or 'pip install pyroute2>=0.7')"


def _link_exists(name):
    """Whether a link of that name is in this process's namespace, without netlink."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


class Plugin:
    """One invocation: the validated configuration, the request and the IPAM store."""

    def __init__(self, conf, req, session_factory=None):
        self.conf = conf
        self.req = req
        self.session_factory = session_factory or _default_session
        self.pool = _ipam.Pool(conf["subnet"], conf["gateway"], conf["range_start"], conf["range_end"])
        self.store = _ipam.Store(conf["data_dir"], conf["name"])

    def run(self):
        return getattr(self, "cmd_" + self.req.command.lower())()

    def _open_netns(self, session, path):
        try:
            return session.ns(path)
        except Exception as exc:  # pylint: disable=broad-except
            if getattr(exc, "code", None) in (errno.ENOENT, errno.EINVAL):
                raise CniError(ERR_UNKNOWN_CONTAINER,
                               "the container's network namespace %s does not exist" % path, str(exc))
            raise

    # --------------------------------------------------------------- ADD
    def cmd_add(self):
        conf, req = self.conf, self.req
        session = self.session_factory()
        try:
            container = self._open_netns(session, req.netns)
            container_links = container.links()
            if req.ifname in container_links:
                raise CniError(ERR_CONFLICT,
                               "interface %s already exists in the container's network namespace %s; "
                               "nothing was changed" % (req.ifname, req.netns))
            container_routes = container.routes(MAIN_TABLE, families=(4,))
            container_nets = container.networks()
            with self.store.locked():
                address = self.store.reserve(self.pool, req.container_id, req.ifname)[0]
                try:
                    host_links = self._ensure_bridge(session)
                except BaseException:
                    self.store.release_ip(address)
                    raise
            start = len(session.applied)
            try:
                session.apply(plan_attach(conf, req, address, host_links, container_links,
                                          container_routes, container_nets))
                return format_result(merge_result(conf["prev"], self._read_result(session, container, address)),
                                     conf["version"])
            except BaseException:
                self._rollback(session, session.applied[start:])
                with self.store.locked():
                    self.store.release(req.container_id, req.ifname)
                raise
        finally:
            session.close()

    def _ensure_bridge(self, session):
        """Bridge up with the gateway address; returns the host's links afterwards."""
        host = session.ns(None)
        # Only the bridge and this attachment's veth: the cost stays flat with many pods.
        wanted = [self.conf["bridge"], host_veth_name(self.req.container_id, self.req.ifname)]
        links = host.links(with_addresses=wanted[:1], only=wanted)
        plan = plan_bridge(self.conf, links.get(self.conf["bridge"]))
        if plan.changed:
            session.apply(plan.actions)
            links = host.links(with_addresses=wanted[:1], only=wanted)
        return links

    def _rollback(self, session, applied):
        """Undo what a failed ADD did: delete the veth (its peer goes with it)."""
        veth = host_veth_name(self.req.container_id, self.req.ifname)
        if not any(a.op == "veth_add" for a in applied):
            return
        try:
            session.apply(plan_detach(veth, session.ns(None).links(only=[veth]).get(veth)))
        except Exception:  # pylint: disable=broad-except
            pass

    def _read_result(self, session, container, address):
        conf, req = self.conf, self.req
        host = session.ns(None).links(only=[conf["bridge"], host_veth_name(req.container_id, req.ifname)])
        inside = container.links()
        bridge, veth, iface = host[conf["bridge"]], host[host_veth_name(req.container_id, req.ifname)], \
            inside[req.ifname]
        gateway = str(conf["gateway"])
        return {
            "interfaces": [
                {"name": bridge["name"], "mac": bridge["mac"], "mtu": bridge["mtu"]},
                {"name": veth["name"], "mac": veth["mac"], "mtu": veth["mtu"]},
                {"name": iface["name"], "mac": iface["mac"], "mtu": iface["mtu"], "sandbox": req.netns},
            ],
            "ips": [{"address": "%s/%d" % (address, conf["subnet"].prefixlen), "gateway": gateway,
                     "interface": 2}],
            "routes": [{"dst": "0.0.0.0/0", "gw": gateway}],
            "dns": conf["dns"] or {},
        }

    # --------------------------------------------------------------- DEL
    def cmd_del(self):
        req = self.req
        veth = host_veth_name(req.container_id, req.ifname)
        # A gone namespace took the pair with it: then no netlink is needed at all.
        if _link_exists(veth):
            self._delete_veth(veth)
        with self.store.locked():
            self.store.release(req.container_id, req.ifname)
        return None

    def _delete_veth(self, veth, session=None):
        own = session is None
        session = session or self.session_factory()
        try:
            actions = plan_detach(veth, session.ns(None).links(only=[veth]).get(veth))
            try:
                session.apply(actions)
            except Exception as exc:  # pylint: disable=broad-except
                # Gone in between (its namespace was deleted): that is what DEL wants.
                if getattr(exc, "code", None) != errno.ENODEV:
                    raise
        finally:
            if own:
                session.close()

    # ------------------------------------------------------------- CHECK
    def cmd_check(self):
        conf, req, prev = self.conf, self.req, self.conf["prev"]
        if prev is None:
            raise CniError(ERR_INVALID_CONFIG, "invalid network configuration: CHECK needs prevResult, "
                                               "the result of the ADD to check")
        session = self.session_factory()
        try:
            container = self._open_netns(session, req.netns)
            self._check(session, container, prev)
        finally:
            session.close()
        return None

    def _check(self, session, container, prev):
        conf, req = self.conf, self.req
        where = "in the container's namespace %s" % req.netns

        def fail(msg):
            raise CniError(ERR_CHECK, "CHECK %s/%s: %s" % (req.container_id, req.ifname, msg))

        index = None
        for i, item in enumerate(prev["interfaces"]):
            if item["name"] == req.ifname and item.get("sandbox") in (None, "", req.netns):
                index = i
        if index is None:
            fail("prevResult lists no interface %s with sandbox %s" % (req.ifname, req.netns))
        listed = prev["interfaces"][index]
        link = container.links(with_addresses=[req.ifname]).get(req.ifname)
        if link is None:
            fail("interface %s does not exist %s" % (req.ifname, where))
        if link["kind"] != "veth":
            fail("interface %s %s is a %s, not a veth" % (req.ifname, where, link["kind"]))
        if listed.get("mac") and listed["mac"].lower() != (link["mac"] or "").lower():
            fail("interface %s has MAC %s, prevResult says %s" % (req.ifname, link["mac"], listed["mac"]))
        if conf["mtu"] is not None and link["mtu"] != conf["mtu"]:
            fail("interface %s has MTU %s, the configuration says %s" % (req.ifname, link["mtu"], conf["mtu"]))
        if not link["up"]:
            fail("interface %s %s is down" % (req.ifname, where))
        veth = host_veth_name(req.container_id, req.ifname)
        host = session.ns(None).links(only=[veth]).get(veth)
        if host is None or not _plan.is_pair(host, link, req.netns):
            fail("the host end %s of %s is missing or is not its peer" % (veth, req.ifname))
        if host["master"] != conf["bridge"]:
            fail("the host end %s is a port of %s, not of bridge %s" % (veth, host["master"], conf["bridge"]))
        have = set(ipaddress.ip_interface(a) for a in link["addresses"])
        reserved = set(self.store.owned_by(req.container_id, req.ifname))
        for ip in prev["ips"]:
            if ip.get("interface") != index:
                continue
            address = ipaddress.ip_interface(ip["address"])
            if address not in have:
                fail("address %s of prevResult is not on %s %s (it has %s)" % (
                    address, req.ifname, where, ", ".join(sorted(str(a) for a in have)) or "none"))
            if address.ip in self.pool and str(address.ip) not in reserved:
                fail("address %s is not reserved for this attachment in the IPAM state %s"
                     % (address.ip, self.store.dir))
        routes = container.routes(MAIN_TABLE)
        for route in prev["routes"]:
            dst = ipaddress.ip_network(route["dst"], strict=False)
            key = "default" if dst.prefixlen == 0 else str(dst)
            gateway = route.get("gw")
            if not any(r["dst"] == key and r["family"] == dst.version
                       and (gateway is None or r["via"] == str(ipaddress.ip_address(gateway)))
                       for r in routes):
                fail("route %s%s of prevResult is missing %s" % (
                    route["dst"], " via %s" % gateway if gateway else "", where))

    # ---------------------------------------------------------------- GC
    def cmd_gc(self):
        with self.store.locked():
            stale = self.store.stale(self.conf["attachments"])
            session = None
            try:
                for ip in sorted(stale, key=ipaddress.ip_address):
                    owner = stale[ip]
                    if owner["containerID"] and owner["ifname"]:
                        veth = host_veth_name(owner["containerID"], owner["ifname"])
                        if _link_exists(veth):
                            session = session or self.session_factory()
                            self._delete_veth(veth, session)
                    self.store.release_ip(ip)
            finally:
                if session is not None:
                    session.close()
        return None

    # ------------------------------------------------------------ STATUS
    def cmd_status(self):
        if importlib.util.find_spec("pyroute2") is None:
            raise CniError(ERR_NOT_AVAILABLE, "pyroute2 cannot be imported by %s: %s" % (
                sys.executable, _pyroute2_hint()))
        parent = self.store.dir if os.path.isdir(self.store.dir) else self.conf["data_dir"]
        while not os.path.isdir(parent) and parent != "/":
            parent = os.path.dirname(parent)
        if not os.access(parent, os.W_OK | os.X_OK):
            raise CniError(ERR_NOT_AVAILABLE, "the IPAM state directory %s is not writable" % parent)
        free = self.store.free_count(self.pool)
        if free <= 0:
            raise CniError(ERR_NOT_AVAILABLE, "no free address in %s: all %d addresses are reserved"
                           % (self.pool.describe(), self.pool.size))
        return None


# -------------------------------------------------------------- entry points
def _as_cni_error(exc):
    """Any exception -> CniError with the most fitting code."""
    if isinstance(exc, CniError):
        return exc
    if isinstance(exc, ValidationError):
        return CniError(ERR_CONFLICT, str(exc))
    if isinstance(exc, _ipam.PoolExhausted):
        return CniError(ERR_NO_ADDRESS, str(exc))
    if isinstance(exc, _ipam.LockTimeout):
        return CniError(ERR_TRY_AGAIN, str(exc))
    netlink = sys.modules.get(NETLINK_MODULE)
    if netlink is not None and isinstance(exc, netlink.NetlinkOpError):
        return CniError(ERR_KERNEL, str(exc), errno.errorcode.get(exc.code or 0, ""))
    if isinstance(exc, OSError):
        return CniError(ERR_IO, "I/O error: %s" % exc)
    return CniError(ERR_INTERNAL, "internal error: %s: %s" % (type(exc).__name__, exc),
                    traceback.format_exc(limit=5))


def error_json(err, version):
    out = {"cniVersion": version, "code": err.code, "msg": err.msg}
    if err.details:
        out["details"] = err.details
    return out


def run(environ, read_stdin, session_factory=None):
    """One plugin invocation -> (exit code, text for stdout or None).

    read_stdin: a callable returning the bytes of standard input (only
    called by verbs that take a configuration).
    """
    version = CURRENT_VERSION
    try:
        command = parse_command(environ)
        if command == "VERSION":
            return 0, json.dumps(version_info())
        req = parse_env(environ, command)
        try:
            raw = read_stdin()
        except OSError as exc:
            raise CniError(ERR_IO, "cannot read the network configuration from stdin: %s" % exc)
        data = decode(raw)
        if data.get("cniVersion") in SUPPORTED_VERSIONS:
            version = data["cniVersion"]
        conf = parse_config(data, command)
        out = Plugin(conf, req, session_factory).run()
        return 0, None if out is None else json.dumps(out)
    except Exception as exc:  # pylint: disable=broad-except
        return 1, json.dumps(error_json(_as_cni_error(exc), version))


def check_conflist(text, need_pyroute2=True):
    """Validate a network configuration list for podnet; returns a summary line.

    Raises CniError like the plugin would for the same configuration.
    """
    data = decode(text)
    versions = data.get("cniVersions")
    if versions is not None and not isinstance(versions, list):
        raise _invalid("cniVersions", versions, "must be a list of versions")
    candidates = [x for x in (versions or []) if x in SUPPORTED_VERSIONS]
    version = max(candidates, key=_version_key) if candidates else data.get("cniVersion")
    plugins = data.get("plugins")
    if not isinstance(plugins, list) or not plugins:
        raise _invalid("plugins", plugins, "must be a non-empty list of plugin configurations")
    found = []
    for index, plugin in enumerate(plugins):
        if not isinstance(plugin, dict):
            raise _invalid("plugins[%d]" % index, plugin, "must be an object")
        if plugin.get("type") != PLUGIN_TYPE:
            continue
        conf = dict(plugin, name=data.get("name"), cniVersion=version)
        found.append(parse_config(conf, "ADD"))
    if not found:
        raise _invalid("plugins", [p.get("type") for p in plugins], "has no plugin of type %s" % PLUGIN_TYPE)
    if need_pyroute2 and importlib.util.find_spec("pyroute2") is None:
        raise CniError(ERR_NOT_AVAILABLE, "pyroute2 cannot be imported by %s: %s" % (sys.executable, _pyroute2_hint()))
    conf = found[0]
    return "network %s (cniVersion %s): bridge %s, subnet %s, gateway %s, IPAM state in %s" % (
        conf["name"], conf["version"], conf["bridge"], conf["subnet"], conf["gateway"],
        os.path.join(conf["data_dir"], conf["name"]))


USAGE = """usage: podnet                       CNI plugin (CNI_COMMAND etc. in the environment)
       podnet --check-conflist FILE [--skip-pyroute2]
                                    validate a network configuration list (FILE - : stdin)
"""


def _cli(args):
    if args and args[0] == "--check-conflist" and len(args) in (2, 3):
        if len(args) == 3 and args[2] != "--skip-pyroute2":
            sys.stderr.write(USAGE)
            return 2
        try:
            if args[1] == "-":
                text = sys.stdin.buffer.read()
            else:
                with open(args[1], "rb") as handle:
                    text = handle.read()
            sys.stdout.write("ok: %s\n" % check_conflist(text, need_pyroute2=len(args) == 2))
            return 0
        except OSError as exc:
            sys.stderr.write("podnet: cannot read %s: %s\n" % (args[1], exc))
        except CniError as exc:
            sys.stderr.write("podnet: %s: %s\n" % ("conflist on stdin" if args[1] == "-" else args[1], exc.msg))
        return 1
    sys.stderr.write(USAGE)
    return 2


def main(argv=None):
    argv = sys.argv if argv is None else argv
    if len(argv) > 1:
        return _cli(argv[1:])
    code, text = run(os.environ, sys.stdin.buffer.read)
    if text:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    return code
