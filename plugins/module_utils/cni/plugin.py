# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The verbs of the CNI plugin ``podnet``: ADD, DEL, CHECK, GC and STATUS.

ADD wires a container exactly as the ``pods`` module wires a pod: an
attachment is a ``core.plan.pod.Pod`` that does not own its namespace
(``owns_netns=False``), planned by ``plan_pod`` and removed by
``plan_pod_removal``; the bridge is planned by ``core.plan.links.plan_bridge``.
That is the bridge (created when missing, with the gateway address of each
range set), a veth pair whose peer is born in the container's namespace under
CNI_IFNAME, one address per range set (address family) from the built-in IPAM
(``cni.ipam``) and a default route per family via that family's gateway. The
configuration's range sets (``conf["ranges"]``) drive one code path for every
family. A failed ADD removes the veth it made and releases the addresses it
reserved itself (never one an earlier ADD of the attachment holds).

An attachment is (CNI_CONTAINERID, CNI_IFNAME) in the namespace CNI_NETNS: a
repeat ADD of it in another namespace is refused (ERR_CONFLICT) before
anything changes, and a DEL that names another namespace is not its owner's
and changes nothing (a runtime cleaning up after that refused ADD must not
take the live attachment with it). Creating the bridge tolerates a concurrent
creator (networks that share a bridge): EEXIST means read again and go on
with what is there, if it is a bridge.

Plans run against a session of the shape of ``kernel.netlink.Session`` (ns(),
apply(), applied, close()); the default one is made on first use, so verbs
that need no kernel never import pyroute2.
"""

from __future__ import annotations

import errno
import ipaddress
import socket

from ansible_collections.podnet.mesh.plugins.module_utils.cni import ipam
from ansible_collections.podnet.mesh.plugins.module_utils.cni.protocol import (
    ERR_CHECK, ERR_CONFLICT, ERR_INVALID_CONFIG, ERR_IO, ERR_NOT_AVAILABLE, ERR_UNKNOWN_CONTAINER, CniError,
    format_result, merge_result)
from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ValidationError
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import MAIN_TABLE, Op, host_veth_name, pinned_bridge_mac
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import links as link_plans
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan.pod import Pod, default_metric, plan_pod, plan_pod_removal


def attachment_veth(container_id, ifname):
    """Host end of an attachment's veth: named after (containerID, ifname), so DEL and GC need no state."""
    return host_veth_name("%s/%s" % (container_id, ifname))


def gateway_cidr(item):
    """A range's gateway with the prefix length of its subnet: the bridge's address of that family."""
    return "%s/%d" % (item["gateway"], item["subnet"].prefixlen)


# The default route of each family, as results write its destination.
DEFAULT_DST = {4: "0.0.0.0/0", 6: "::/0"}


def families(conf):
    """The address families of the network's range sets, in their order."""
    return tuple(item["subnet"].version for item in conf["ranges"])


# ------------------------------------------------------------------- planning
# How often ADD reads the bridge again after a concurrent creator's EEXIST.
BRIDGE_ATTEMPTS = 3


def plan_bridge(conf, link):
    """The bridge with the gateway address of every range set added (other addresses and STP left as they are).

    A bridge that holds a gateway with another prefix length is refused
    (ERR_CONFLICT): the containers' connected route and the bridge's would
    disagree, and the default route via the gateway would not work.
    """
    gateways = [gateway_cidr(item) for item in conf["ranges"]]
    addresses = None
    if link is None:
        addresses = gateways
    else:
        held = [ipaddress.ip_interface(a) for a in link["addresses"]]
        missing = []
        for item, cidr in zip(conf["ranges"], gateways):
            for address in held:
                if link.get("kind") == "bridge" and address.ip == item["gateway"] \
                        and address.network.prefixlen != item["subnet"].prefixlen:
                    raise CniError(ERR_CONFLICT, "bridge %s holds the gateway %s as %s, not with the prefix length "
                                                 "/%d of %ssubnet %s; nothing was changed"
                                   % (conf["bridge"], item["gateway"], address.with_prefixlen,
                                      item["subnet"].prefixlen, item["prefix"], item["subnet"]))
            if not any(address.ip == item["gateway"] for address in held):
                missing.append(cidr)
        if missing:
            addresses = list(link["addresses"]) + missing
    # A bridge made here is pinned to the gateways' derived MAC (as the bridge module pins it: from
    # the IPv4 gateway when there is one): it never takes a port's MAC, so deleting a pod never
    # changes the gateway's MAC.
    want = {"name": conf["bridge"], "state": "present", "addresses": addresses, "mtu": conf["mtu"],
            "stp": bool(link["stp"]) if link is not None else False, "up": True,
            "mac": pinned_bridge_mac(gateways) if link is None else None}
    try:
        return link_plans.plan_bridge(want, link)
    except ValidationError as exc:
        raise CniError(ERR_CONFLICT, "bridge %s: %s" % (conf["bridge"], exc.reason))


def attachment(conf, container_id, ifname, netns=None, addresses=None):
    """One attachment as a pod that shares its namespace with the runtime's other attachments.

    addresses: the IPAM's address of each range set (without prefix, in the
    sets' order), for ADD; None for removal.
    """
    cidrs = [] if addresses is None else [
        "%s/%d" % (address, item["subnet"].prefixlen) for item, address in zip(conf["ranges"], addresses)]
    return Pod(netns=netns, veth=attachment_veth(container_id, ifname), interface=ifname, addresses=cidrs,
               gateways=[str(item["gateway"]) for item in conf["ranges"]], bridge=conf["bridge"], mtu=conf["mtu"],
               hairpin=conf["hairpin"], owns_netns=False)


def plan_attach(conf, req, addresses, host_links, container_links, container_routes, container_nets):
    """Actions wiring one attachment: veth (peer born in the container), addresses, a default route per family.

    host_links: links of the host namespace (the bridge must be among them);
    container_*: the container namespace as read before any change.
    """
    pod = attachment(conf, req.container_id, req.ifname, req.netns, addresses)
    cur = {"netns_exists": True, "host": host_links.get(pod.veth), "links": container_links,
           "routes": container_routes, "networks": container_nets, "bridge": host_links.get(conf["bridge"])}
    return plan_pod(pod, cur).actions


def plan_detach(conf, container_id, ifname, host_link):
    """Actions removing an attachment: deleting the host end removes its peer too."""
    pod = attachment(conf, container_id, ifname)
    return plan_pod_removal(pod, {"netns_exists": False, "host": host_link, "links": {}}).actions


# ---------------------------------------------------------------- the verbs
def _default_session():
    """kernel.lite's Session (netlink on the standard library alone); imported here, so that verbs
    without netlink never load it."""
    # pylint: disable=import-outside-toplevel
    from ansible_collections.podnet.mesh.plugins.module_utils.kernel import lite
    return lite.Session()


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
        self.pools = [ipam.Pool(item["subnet"], item["gateway"], item["range_start"], item["range_end"])
                      for item in conf["ranges"]]
        self.store = ipam.Store(conf["data_dir"], conf["name"])

    def run(self):
        try:
            return getattr(self, "cmd_" + self.req.command.lower())()
        except ipam.StateError as exc:
            raise CniError(ERR_NOT_AVAILABLE if self.req.command == "STATUS" else ERR_IO, str(exc))

    def _open_netns(self, session, path):
        try:
            return session.ns(path)
        except Exception as exc:  # pylint: disable=broad-except
            if getattr(exc, "code", None) in (errno.ENOENT, errno.EINVAL):
                raise CniError(ERR_UNKNOWN_CONTAINER,
                               "the container's network namespace %s does not exist" % path, str(exc))
            raise

    @property
    def veth(self):
        return attachment_veth(self.req.container_id, self.req.ifname)

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
            container_routes = container.routes(MAIN_TABLE, families=families(conf), links=container_links)
            container_nets = container.networks()
            host = session.ns(None)
            with self.store.locked():
                # Read and plan before any change: a bridge in the way refuses the ADD as it is.
                host_links = self._host_links(host)
                bridge = plan_bridge(conf, host_links.get(conf["bridge"]))
                reservations = self._reserve(host_links)
                try:
                    host_links = self._ensure_bridge(session, host, host_links, bridge)
                except BaseException:
                    self._forget(reservations)
                    raise
            addresses = [r.address for r in reservations]
            start = len(session.applied)
            try:
                session.apply(plan_attach(conf, req, addresses, host_links, container_links,
                                          container_routes, container_nets))
                # The metric each default route got: the planner's, from the same reading.
                metrics = [default_metric(container_routes, req.ifname, version) for version in families(conf)]
                return format_result(merge_result(conf["prev"], self._read_result(session, container, addresses,
                                                                                  metrics)),
                                     conf["version"])
            except BaseException:
                self._rollback(session, session.applied[start:])
                if any(r.new for r in reservations):
                    with self.store.locked():
                        self._forget(reservations)
                raise
        finally:
            session.close()

    def _reserve(self, host_links):
        """The attachment's address of each range set: its own again, or new ones (all or none).

        A duplicate in another namespace is refused.
        """
        req = self.req
        try:
            reservations = self.store.reserve_all(self.pools, req.container_id, req.ifname, req.netns)
        except ipam.DuplicateAttachment as exc:
            raise CniError(ERR_CONFLICT, "%s; nothing was changed" % exc)
        legacy = [r for r in reservations if r.legacy]
        if legacy:
            # Written before namespaces were recorded: a host end that is there belongs to a live
            # attachment whose interface is not in this namespace (ADD checked that above).
            if self.veth in host_links:
                self._forget(reservations)
                raise CniError(ERR_CONFLICT,
                               "container %s already has interface %s with address %s (host end %s) outside the "
                               "network namespace %s; an ADD of the same attachment is refused (duplicate "
                               "allocation): DEL it first; nothing was changed"
                               % (req.container_id, req.ifname, ", ".join(str(r.address) for r in legacy),
                                  self.veth, req.netns))
            for reservation in legacy:
                self.store.adopt(reservation.address, req.container_id, req.ifname, req.netns)
        return reservations

    def _forget(self, reservations):
        """Undo reserve() for a failed ADD: only addresses this ADD reserved are released."""
        for reservation in reservations:
            if reservation.new:
                self.store.release_ip(reservation.address, (self.req.container_id, self.req.ifname))

    def _host_links(self, host):
        # Only the bridge and this attachment's veth: the cost stays flat with many pods.
        wanted = [self.conf["bridge"], self.veth]
        return host.links(with_addresses=wanted[:1], only=wanted)

    def _ensure_bridge(self, session, host, links, plan):
        """Apply the bridge's plan; returns the host's links afterwards.

        EEXIST comes from a concurrent creator (another network on the same
        bridge): read again and plan again from what is there now, which
        refuses a link of another kind or the gateway with another prefix.
        """
        attempts = 0
        while plan.changed:
            try:
                session.apply(plan.actions)
            except Exception as exc:  # pylint: disable=broad-except
                attempts += 1
                if getattr(exc, "code", None) != errno.EEXIST or attempts >= BRIDGE_ATTEMPTS:
                    raise
                links = self._host_links(host)
                plan = plan_bridge(self.conf, links.get(self.conf["bridge"]))
                continue
            return self._host_links(host)
        return links

    def _rollback(self, session, applied):
        """Undo what a failed ADD did: delete the veth (its peer goes with it)."""
        if not any(a.op == Op.VETH_ADD for a in applied):
            return
        veth = self.veth
        try:
            session.apply(plan_detach(self.conf, self.req.container_id, self.req.ifname,
                                      session.ns(None).links(only=[veth]).get(veth)))
        except Exception:  # pylint: disable=broad-except
            pass

    def _read_result(self, session, container, addresses, metrics):
        """The result: interfaces as the kernel holds them, an address and a default route per range set.

        metrics: each default route's metric, reported as its priority when it is not 0
        (an IPv6 route's is 1024 or more: the kernel gives IPv6 routes no metric 0).
        """
        conf, req, veth = self.conf, self.req, self.veth
        host = session.ns(None).links(only=[conf["bridge"], veth])
        inside = container.links()
        bridge, host_end, iface = host[conf["bridge"]], host[veth], inside[req.ifname]
        ips, routes = [], []
        for item, address, metric in zip(conf["ranges"], addresses, metrics):
            gateway = str(item["gateway"])
            ips.append({"address": "%s/%d" % (address, item["subnet"].prefixlen), "gateway": gateway,
                        "interface": 2})
            routes.append(dict({"dst": DEFAULT_DST[item["subnet"].version], "gw": gateway},
                               **({"priority": metric} if metric else {})))
        return {
            "interfaces": [
                {"name": bridge["name"], "mac": bridge["mac"], "mtu": bridge["mtu"]},
                {"name": host_end["name"], "mac": host_end["mac"], "mtu": host_end["mtu"]},
                {"name": iface["name"], "mac": iface["mac"], "mtu": iface["mtu"], "sandbox": req.netns},
            ],
            "ips": ips,
            "routes": routes,
            "dns": conf["dns"] or {},
        }

    # --------------------------------------------------------------- DEL
    def cmd_del(self):
        """Remove the attachment's veth and release its addresses (every family); a repeated DEL reads and changes nothing.

        Runtimes send DEL twice (containerd: when the sandbox stops and when it
        is removed): the second finds no veth and no reservation, so it takes
        neither netlink nor the lock.
        """
        req = self.req
        held = [owner for owner in self.store.reservations().values()
                if (owner["containerID"], owner["ifname"]) == (req.container_id, req.ifname)]
        if req.netns is not None and held and not any(
                owner["netns"] is None or ipam.same_netns(owner["netns"], req.netns) for owner in held):
            # The attachment lives in another namespace: this DEL is not its owner's.
            return None
        # A gone namespace took the pair with it: then no netlink is needed at all.
        if _link_exists(self.veth):
            self._delete_veth(req.container_id, req.ifname)
        if held or self.store.has_leftovers():
            with self.store.locked():
                self.store.release(req.container_id, req.ifname, req.netns)
        return None

    def _delete_veth(self, container_id, ifname, session=None):
        own = session is None
        session = session or self.session_factory()
        veth = attachment_veth(container_id, ifname)
        try:
            actions = plan_detach(self.conf, container_id, ifname, session.ns(None).links(only=[veth]).get(veth))
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
        req, prev = self.req, self.conf["prev"]
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
        inside = container.links(with_addresses=[req.ifname])
        link = inside.get(req.ifname)
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
        veth = self.veth
        host = session.ns(None).links(only=[veth]).get(veth)
        if host is None or not link_plans.is_pair(host, link, req.netns):
            fail("the host end %s of %s is missing or is not its peer" % (veth, req.ifname))
        if host["master"] != conf["bridge"]:
            fail("the host end %s is %s, not of bridge %s" % (
                veth, "a port of %s" % host["master"] if host["master"] else "no bridge's port", conf["bridge"]))
        have = set(ipaddress.ip_interface(a) for a in link["addresses"])
        reserved = set(self.store.owned_by(req.container_id, req.ifname, req.netns))
        for ip in prev["ips"]:
            if ip.get("interface") != index:
                continue
            address = ipaddress.ip_interface(ip["address"])
            if address not in have:
                fail("address %s of prevResult is not on %s %s (it has %s)" % (
                    address, req.ifname, where, ", ".join(sorted(str(a) for a in have)) or "none"))
            if any(address.ip in pool for pool in self.pools) and str(address.ip) not in reserved:
                fail("address %s is not reserved for this attachment in the IPAM state %s"
                     % (address.ip, self.store.dir))
        routes = container.routes(MAIN_TABLE, links=inside)
        gateways = set(item["gateway"] for item in conf["ranges"])
        for route in prev["routes"]:
            dst = ipaddress.ip_network(route["dst"], strict=False)
            key = "default" if dst.prefixlen == 0 else str(dst)
            gateway = route.get("gw")
            gateway = None if gateway is None else ipaddress.ip_address(gateway)
            # A route via one of this network's gateways is one ADD set: it must be on this interface.
            dev = req.ifname if gateway in gateways else None
            found = [r for r in routes if r["dst"] == key and r["family"] == dst.version
                     and (gateway is None or (r["via"] is not None and ipaddress.ip_address(r["via"]) == gateway))]
            if not found:
                fail("route %s%s of prevResult is missing %s" % (
                    route["dst"], " via %s" % gateway if gateway else "", where))
            if dev is not None and not any(r["dev"] == dev for r in found):
                fail("route %s via %s of prevResult is on %s, not on %s %s" % (
                    route["dst"], gateway, ", ".join(sorted(set(str(r["dev"]) for r in found))), dev, where))

    # ---------------------------------------------------------------- GC
    def cmd_gc(self):
        """Release what no valid attachment owns; entries that name no owner stay (nothing proves them free).

        A GC that lists no valid attachments at all (the list left out) proves
        nothing stale: it releases nothing.
        """
        if self.conf["attachments"] is None or not self.store.exists():
            return None
        with self.store.locked():
            stale = self.store.stale(self.conf["attachments"])
            session = None
            try:
                for ip in sorted(stale, key=ipam.address_key):
                    owner = (stale[ip]["containerID"], stale[ip]["ifname"])
                    if _link_exists(attachment_veth(*owner)):
                        session = session or self.session_factory()
                        self._delete_veth(owner[0], owner[1], session)
                    self.store.release_ip(ip, owner)
            finally:
                if session is not None:
                    session.close()
        return None

    # ------------------------------------------------------------ STATUS
    def cmd_status(self):
        """Ready when an ADD would find what it needs: its state directory usable, a free address in every range set.

        Every reason it is not is error 50 (the plugin cannot serve ADD), as the SPEC defines STATUS.
        """
        try:
            self.store.check_writable()
            reservations = self.store.reservations()
        except CniError:
            raise
        except ipam.StateError as exc:
            raise CniError(ERR_NOT_AVAILABLE, str(exc))
        except OSError as exc:
            raise CniError(ERR_NOT_AVAILABLE, "the IPAM state in %s cannot be read: %s"
                           % (self.store.dir, exc.strerror or exc))
        full = [pool.exhausted(reservations) for pool in self.pools if pool.taken(reservations) >= pool.size]
        if full:
            raise CniError(ERR_NOT_AVAILABLE, "; ".join(full))
        return None
