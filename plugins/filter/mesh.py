# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters that turn the inventory into the pod network's plan."""

from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError

from ansible_collections.podnet.mesh.plugins.module_utils.core import model

try:
    import jmespath
except ImportError:
    jmespath = None


# The registered result of podnet.mesh.node_info (the mesh_routes role reads it into this variable).
NODE_INFO_VAR = "podnet_node_info"
# The variable naming the inventory group of the nodes, and its default.
GROUP_VAR = "podnet_nodes_group"
DEFAULT_GROUP = "podnet_nodes"


def _hosts(names):
    return ", ".join(names)


def nodes_group_problems(groups, group=DEFAULT_GROUP, play_hosts=None, limit=None):
    """Everything wrong with the nodes group, and with a play meant to run on it.

    groups: the magic variable groups; group: podnet_nodes_group; play_hosts:
    ansible_play_hosts_all of the play (None: only the group is checked); limit:
    ansible_limit (None when the run has no --limit). Hosts of the group that are
    outside the play are fine under --limit; hosts of the play outside the group
    never are.
    """
    if not isinstance(group, str) or not group:
        return ["%s %r must be the name of the inventory group of the pod network's nodes" % (GROUP_VAR, group)]
    if group not in groups:
        known = sorted(g for g in groups if g not in ("all", "ungrouped"))
        return ["%s is %r, but the inventory has no group of that name (groups: %s); set %s for all hosts "
                "(group_vars/all.yml, or -e %s=GROUP) to the group of the pod network's nodes"
                % (GROUP_VAR, group, _hosts(known) or "none", GROUP_VAR, GROUP_VAR)]
    members = list(groups[group])
    if not members:
        return ["%s is %r, but group %s has no hosts" % (GROUP_VAR, group, group)]
    if play_hosts is None:
        return []
    problems = []
    strangers = [h for h in play_hosts if h not in members]
    if strangers:
        problems.append(
            "%s run this play but are not in group %s (%s=%r): the pod network is built on that group's hosts "
            "only, so run the play on group %s, or set %s to the group the play runs on"
            % (_hosts(strangers), group, GROUP_VAR, group, group, GROUP_VAR))
    missing = [h for h in members if h not in play_hosts]
    if missing and not limit:
        problems.append(
            "%s are in group %s (%s=%r) but not in this play: run the play on the whole group (a subset with "
            "--limit is fine), or take them out of the group" % (_hosts(missing), group, GROUP_VAR, group))
    return problems


def _node_ip(name, hv):
    """podnet_node_ip, else the default-route address read by node_info, else from setup facts."""
    ip = hv.get("podnet_node_ip")
    if not ip:
        ip = ((hv.get(NODE_INFO_VAR) or {}).get("default_ipv4") or {}).get("address")
    if not ip:
        ip = ((hv.get("ansible_facts") or {}).get("default_ipv4") or {}).get("address")
    return ip


def _was_read(hv):
    """Whether node_info read the node (or network facts were gathered)."""
    info = hv.get(NODE_INFO_VAR) or {}
    if "networks" in info or "default_ipv4" in info:
        return True
    facts = hv.get("ansible_facts") or {}
    return "default_ipv4" in facts or "interfaces" in facts


def _node_networks(hv):
    """Directly connected networks of a node: from node_info, else from gathered network facts."""
    info = hv.get(NODE_INFO_VAR) or {}
    if info.get("networks"):
        return [ipaddress.ip_network(net, strict=False) for net in info["networks"]]
    facts = hv.get("ansible_facts") or {}
    nets = []
    for name in facts.get("interfaces") or []:
        iface = facts.get(name.replace("-", "_")) or {}
        for entry in [iface.get("ipv4")] + list(iface.get("ipv4_secondaries") or []):
            if entry and entry.get("network") and entry.get("netmask"):
                nets.append(ipaddress.ip_network("%s/%s" % (entry["network"], entry["netmask"]), strict=False))
    return nets


def mesh_problems(nodes, hostvars, cluster_cidr=None):
    """Everything wrong with the cluster inventory, one readable line per problem."""
    problems = []
    try:
        cluster = ipaddress.ip_network(str(cluster_cidr)) if cluster_cidr else None
    except ValueError:
        return ["podnet_cluster_cidr %r is not a network in CIDR form" % cluster_cidr]
    cidrs, ips = {}, {}
    for name in nodes:
        hv = hostvars[name]
        raw = hv.get("podnet_pod_cidr")
        if raw is None or raw == "":
            problems.append("%s: podnet_pod_cidr is required for host %s (its pod CIDR, e.g. 10.244.1.0/24)"
                            % (name, name))
            continue
        try:
            cidr = ipaddress.ip_network(str(raw))
        except ValueError:
            problems.append("%s: podnet_pod_cidr %r is not a network in CIDR form" % (name, raw))
            continue
        if cluster is not None and not cidr.subnet_of(cluster):
            problems.append("%s: podnet_pod_cidr %s is not inside podnet_cluster_cidr %s" % (name, cidr, cluster))
        for other, ocidr in cidrs.items():
            if cidr.overlaps(ocidr):
                problems.append("%s and %s: pod CIDRs %s and %s overlap" % (other, name, ocidr, cidr))
        cidrs[name] = cidr
        ip = _node_ip(name, hv)
        if not ip and not _was_read(hv):
            problems.append(
                "%s: podnet_node_ip is not set and the node's addresses could not be read (it is outside --limit, "
                "unreachable or failed): set podnet_node_ip for %s, or run on it too" % (name, name))
            continue
        if not ip:
            problems.append("%s: podnet_node_ip is not set and the node has no IPv4 default route to take it from"
                            % name)
            continue
        try:
            ip = ipaddress.ip_address(str(ip).split("/", 1)[0])
        except ValueError:
            problems.append("%s: podnet_node_ip %r is not an IP address" % (name, hv.get("podnet_node_ip")))
            continue
        if ip in ips:
            problems.append("%s and %s: both have node IP %s" % (ips[ip], name, ip))
        else:
            ips[ip] = name
    # host-gw needs every peer on a directly connected subnet.
    for name in nodes:
        nets = _node_networks(hostvars[name])
        if not nets:
            continue
        for peer, ip in ((p, i) for i, p in ips.items() if p != name):
            if not any(ip in net for net in nets if net.version == ip.version):
                problems.append(
                    "%s: peer %s (node IP %s) is not on a directly connected subnet of %s (%s); host-gw "
                    "routing needs layer-2 adjacency" % (name, peer, ip, name, ", ".join(str(n) for n in nets)))
    return problems


def mesh_routes(nodes, hostvars, me):
    """Routes from node me to every other node's pod CIDR via that node's IP."""
    data = [{"name": n, "dst": hostvars[n].get("podnet_pod_cidr"), "via": _node_ip(n, hostvars[n])}
            for n in nodes if n != me]
    for item in data:
        if not item["dst"] or not item["via"]:
            raise AnsibleFilterError("mesh_routes: node %s lacks podnet_pod_cidr or podnet_node_ip" % item["name"])
        item["via"] = str(item["via"]).split("/", 1)[0]
    if jmespath is not None:
        return jmespath.search("[].{dst: dst, via: via}", data)
    return [{"dst": d["dst"], "via": d["via"]} for d in data]


def pod_gateway(cidr, with_prefix=True):
    """First address of a pod CIDR: the bridge address and the pods' gateway."""
    try:
        net = ipaddress.ip_network(str(cidr))
    except ValueError as exc:
        raise AnsibleFilterError("pod_gateway: %r is not a network in CIDR form (%s)" % (cidr, exc))
    first = model.pod_gateway(net)
    return "%s/%d" % (first, net.prefixlen) if with_prefix else str(first)


def stale_bridges(node_info, bridge, gateway):
    """Interfaces other than the bridge that hold the pod gateway address (from node_info).

    Returns [{interface, addresses, only}], only: the gateway is the interface's one IPv4
    address (what the bridge module leaves on a pod bridge). A node with two holders of
    the gateway address sends pod traffic to whichever route the kernel prefers.
    """
    try:
        gw = ipaddress.ip_interface(str(gateway))
    except ValueError as exc:
        raise AnsibleFilterError("stale_bridges: %r is not an address in CIDR form (%s)" % (gateway, exc))
    held = {}
    for entry in (node_info or {}).get("addresses") or []:
        held.setdefault(entry.get("interface"), []).append(entry.get("address"))
    found = []
    for name, addresses in held.items():
        if name == bridge:
            continue
        ours = [a for a in addresses if _same_interface(a, gw)]
        if ours:
            v4 = [a for a in addresses if ":" not in str(a)]
            found.append({"interface": name, "addresses": addresses, "only": v4 == ours})
    return found


def _same_interface(address, gw):
    try:
        return ipaddress.ip_interface(str(address)) == gw
    except ValueError:
        return False


def probe_report(nodes, hostvars, result_var="podnet_verify_check"):
    """A connectivity matrix a person can read at a glance, plus the failing pairs.

    Rows are source pods, columns destination pods and then external hosts;
    '.' is a pass, 'X' a failure, 'N' a NATed pod-to-pod connection, '-' self.
    """
    rows, pods, failures, externals = {}, [], [], []
    for node in nodes:
        result = hostvars[node].get(result_var) or {}
        for pod in result.get("pods", []):
            pods.append(("%s@%s" % (pod["name"], node), pod["address"] or "no address"))
        for res in result.get("results", []):
            src = "%s@%s" % (res["src"], node)
            mark = "." if res["ok"] else ("N" if res.get("nat") else "X")
            rows.setdefault(src, {})[res["dst_address"]] = mark
            if res["kind"] == "external" and res["dst_address"] not in externals:
                externals.append(res["dst_address"])
        failures.extend("%s: %s" % (node, line) for line in result.get("failures", []))
    columns = [pod[1] for pod in pods] + externals
    width = max([len(pod[0]) for pod in pods] + [4])
    header = " " * width + " | " + " ".join("%-3d" % (i + 1) for i in range(len(pods)))
    if externals:
        header += " | " + " ".join(externals)
    lines = [header]
    for index, (name, address) in enumerate(pods):
        marks = []
        for column in columns[:len(pods)]:
            marks.append("-  " if column == address else "%-3s" % rows.get(name, {}).get(column, "X"))
        line = "%-*s | %s" % (width, name, " ".join(marks))
        if externals:
            line += " | " + " ".join("%-*s" % (len(e), rows.get(name, {}).get(e, "X")) for e in externals)
        lines.append(line + "   %d=%s" % (index + 1, address))
    total = sum(len(r) for r in rows.values())
    lines.append("%d probes, %d failed ('.' ok, 'X' failed, 'N' NATed, '-' self)" % (total, len(failures)))
    return {"lines": lines, "failures": failures, "probes": total}


class FilterModule:
    def filters(self):
        return {"mesh_routes": mesh_routes, "mesh_problems": mesh_problems, "pod_gateway": pod_gateway,
                "probe_report": probe_report, "nodes_group_problems": nodes_group_problems,
                "stale_bridges": stale_bridges}
