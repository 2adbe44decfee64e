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


def _node_ip(name, hv):
    """podnet_node_ip, else the default-route address read by node_info, else from setup facts."""
    ip = hv.get("podnet_node_ip")
    if not ip:
        ip = ((hv.get(NODE_INFO_VAR) or {}).get("default_ipv4") or {}).get("address")
    if not ip:
        ip = ((hv.get("ansible_facts") or {}).get("default_ipv4") or {}).get("address")
    return ip


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
        if not ip:
            problems.append("%s: podnet_node_ip is not set and the node has no IPv4 default route to take it from" % name)
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
                "probe_report": probe_report}
