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


def _prefix_list(hv, plural, singular):
    """The prefixes of plural (a list, or one prefix as text), else of the singular shorthand; [] when neither is set."""
    value = hv.get(plural)
    if value is None or value == "" or value == []:
        value = hv.get(singular)
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value]
    return [str(value)]


def prefixes(plural, singular=None):
    """A list variable with its one-value shorthand -> the list: plural when set (a list, or one
    value as text), else [singular]; [] when neither is set. podnet_pod_cidrs | prefixes(podnet_pod_cidr)."""
    return _prefix_list({"p": plural, "s": singular}, "p", "s")


def pod_cidrs(hv):
    """A node's pod CIDRs (podnet_pod_cidrs, else [podnet_pod_cidr]) as written: one per family, any order."""
    return _prefix_list(hv or {}, "podnet_pod_cidrs", "podnet_pod_cidr")


def cluster_cidrs(hv):
    """The cluster's prefixes (podnet_cluster_cidrs, else [podnet_cluster_cidr]) as written."""
    return _prefix_list(hv or {}, "podnet_cluster_cidrs", "podnet_cluster_cidr")


def pod_gateways(cidrs, with_prefix=True):
    """The gateway of each pod CIDR of a list (the bridge's addresses), in the same order."""
    if isinstance(cidrs, str):
        cidrs = [cidrs]
    return [pod_gateway(cidr, with_prefix) for cidr in cidrs or []]


def _node_ip(name, hv, family=4):
    """A node's address of family: from podnet_node_ips / podnet_node_ip, else the default-route
    address node_info read, else the one of setup facts; None when there is none."""
    listed = _prefix_list(hv, "podnet_node_ips", "podnet_node_ip")
    for text in listed:
        if _family(text) == family:
            return text
    key = "default_ipv%d" % family
    ip = ((hv.get(NODE_INFO_VAR) or {}).get(key) or {}).get("address")
    if not ip:
        ip = ((hv.get("ansible_facts") or {}).get(key) or {}).get("address")
    return ip


def _family(text):
    """4 or 6 for an address (a prefix length ignored); None for anything that is no address."""
    try:
        return ipaddress.ip_address(str(text).split("/", 1)[0]).version
    except ValueError:
        return None


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
        for entry in iface.get("ipv6") or []:
            if entry.get("scope") == "global" and entry.get("address") and entry.get("prefix"):
                nets.append(ipaddress.ip_network("%s/%s" % (entry["address"], entry["prefix"]), strict=False))
    return nets


def _names(hv, plural, singular):
    """How a variable is named in a message: the plural when it is set, else the singular."""
    return plural if hv.get(plural) not in (None, "", []) else singular


def _cluster_prefixes(cluster_cidr):
    """podnet_cluster_cidrs (a list, or one prefix) -> ({family: network}, problems)."""
    values = cluster_cidr if isinstance(cluster_cidr, (list, tuple)) else ([cluster_cidr] if cluster_cidr else [])
    found, problems = {}, []
    for value in values:
        try:
            net = ipaddress.ip_network(str(value))
        except ValueError:
            problems.append("podnet_cluster_cidr %r is not a network in CIDR form" % value)
            continue
        if net.version in found:
            problems.append("podnet_cluster_cidrs has two IPv%d prefixes (%s and %s): one per address family"
                            % (net.version, found[net.version], net))
            continue
        found[net.version] = net
    return found, problems


def _node_cidrs(name, hv, clusters, problems):
    """One node's pod networks {family: network}; what is wrong goes to problems."""
    var = _names(hv, "podnet_pod_cidrs", "podnet_pod_cidr")
    raw = pod_cidrs(hv)
    if not raw:
        problems.append("%s: podnet_pod_cidr is required for host %s (its pod CIDR, e.g. 10.244.1.0/24; "
                        "or podnet_pod_cidrs, one prefix per address family)" % (name, name))
        return {}
    cidrs = {}
    for text in raw:
        try:
            cidr = ipaddress.ip_network(text)
        except ValueError:
            problems.append("%s: %s %r is not a network in CIDR form" % (name, var, text))
            continue
        if cidr.version in cidrs:
            problems.append("%s: %s has two IPv%d prefixes (%s and %s): one per address family"
                            % (name, var, cidr.version, cidrs[cidr.version], cidr))
            continue
        cluster = clusters.get(cidr.version)
        if cluster is not None and not cidr.subnet_of(cluster):
            problems.append("%s: %s %s is not inside podnet_cluster_cidr %s" % (name, var, cidr, cluster))
        elif clusters and cluster is None:
            problems.append("%s: %s %s is IPv%d, but the cluster prefixes (%s) have no IPv%d prefix"
                            % (name, var, cidr, cidr.version, ", ".join(str(c) for c in clusters.values()),
                               cidr.version))
        cidrs[cidr.version] = cidr
    if cidrs:
        for family in sorted(set(clusters) - set(cidrs)):
            problems.append("%s: %s (%s) has no IPv%d prefix, but the cluster is IPv%d too (%s): every node "
                            "needs a pod CIDR of each family of the cluster"
                            % (name, var, ", ".join(raw), family, family, clusters[family]))
    return cidrs


def mesh_problems(nodes, hostvars, cluster_cidr=None, backend="host-gw"):
    """Everything wrong with the cluster inventory, one readable line per problem.

    cluster_cidr: the cluster's prefix, or a list of them (one per family; podnet_cluster_cidrs).
    Each node needs a node address of every family of its pod CIDRs: the peers route
    that family's pod traffic to it. backend (podnet_backend): with host-gw every peer
    must be on a directly connected subnet; vxlan and auto reach the others through the overlay.
    """
    if backend not in BACKENDS:
        return ["podnet_backend %r must be one of %s" % (backend, ", ".join(BACKENDS))]
    clusters, problems = _cluster_prefixes(cluster_cidr)
    if problems:
        return problems
    seen, ips = {}, {}
    for name in nodes:
        hv = hostvars[name]
        cidrs = _node_cidrs(name, hv, clusters, problems)
        for family, cidr in sorted(cidrs.items()):
            for other, ocidr in seen.items():
                if ocidr.version == family and cidr.overlaps(ocidr):
                    problems.append("%s and %s: pod CIDRs %s and %s overlap" % (other[0], name, ocidr, cidr))
            seen[(name, family)] = cidr
        var = _names(hv, "podnet_node_ips", "podnet_node_ip")
        for family in sorted(cidrs):
            ip = _node_ip(name, hv, family)
            if not ip and not _was_read(hv):
                problems.append(
                    "%s: %s is not set and the node's addresses could not be read (it is outside --limit, "
                    "unreachable or failed): set %s for %s, or run on it too" % (name, var, var, name))
                break
            if not ip:
                what = "is not set" if not hv.get(var) else "has no IPv%d address" % family
                problems.append("%s: %s %s and the node has no IPv%d default route to take it from"
                                % (name, var, what, family))
                continue
            try:
                ip = ipaddress.ip_address(str(ip).split("/", 1)[0])
            except ValueError:
                problems.append("%s: %s %r is not an IP address" % (name, var, ip))
                continue
            if ip in ips:
                problems.append("%s and %s: both have node IP %s" % (ips[ip], name, ip))
            else:
                ips[ip] = name
    # host-gw needs every peer on a directly connected subnet.
    for name in nodes if backend == "host-gw" else ():
        nets = _node_networks(hostvars[name])
        if not nets:
            continue
        for peer, ip in ((p, i) for i, p in ips.items() if p != name):
            if not any(ip in net for net in nets if net.version == ip.version):
                problems.append(
                    "%s: peer %s (node IP %s) is not on a directly connected subnet of %s (%s); host-gw "
                    "routing needs layer-2 adjacency (podnet_backend auto or vxlan reaches it through a VXLAN "
                    "overlay)" % (name, peer, ip, name, ", ".join(str(n) for n in nets)))
    return problems


BACKENDS = ("host-gw", "vxlan", "auto")
# The overlay device the mesh_routes role makes (podnet.mesh.overlay's default name).
OVERLAY_DEVICE = "podnet.vxlan"


def _backend(backend):
    if backend not in BACKENDS:
        raise AnsibleFilterError("podnet_backend %r must be one of %s" % (backend, ", ".join(BACKENDS)))
    return backend


def _underlay(name, hv):
    """The address a node's VXLAN tunnels use: its IPv4 node address, else its IPv6 one."""
    for family in (4, 6):
        ip = _node_ip(name, hv, family)
        if ip:
            return str(ip).split("/", 1)[0]
    return None


def _peer_mode(backend, my_networks, peer_ip):
    """host-gw or vxlan for one peer: auto is host-gw to a peer on a directly connected subnet.

    A node whose networks were not read (podnet_check_adjacency false) takes every peer
    as adjacent, as host-gw always did.
    """
    if backend != "auto":
        return backend
    if not my_networks or not peer_ip:
        return "host-gw"
    ip = ipaddress.ip_address(peer_ip)
    return "host-gw" if any(ip in net for net in my_networks if net.version == ip.version) else "vxlan"


def mesh_table(nodes, hostvars, me, backend="host-gw"):
    """Every peer of node me with the way it is reached: [{name, mode, node_ip, pod_cidrs, routes, summary}].

    mode: host-gw (routes via the peer's node address of each family) or vxlan (routes via
    the peer's VTEP addresses, the first address of each of its pod CIDRs, on the overlay
    device, onlink); node_ip: the peer's underlay address (its IPv4 node address, else IPv6).
    """
    backend = _backend(backend)
    mine = _node_networks(hostvars[me]) if me in hostvars else []
    table = []
    for name in nodes:
        if name == me:
            continue
        hv = hostvars[name]
        cidrs = pod_cidrs(hv)
        if not cidrs:
            raise AnsibleFilterError("mesh_routes: node %s lacks podnet_pod_cidr or podnet_node_ip" % name)
        underlay = _underlay(name, hv)
        mode = _peer_mode(backend, mine, underlay)
        routes = []
        for cidr in cidrs:
            family = _family(cidr) or 4
            if mode == "vxlan":
                vtep = str(ipaddress.ip_network(cidr).network_address)
                routes.append({"dst": cidr, "via": vtep, "dev": OVERLAY_DEVICE, "onlink": True})
                continue
            via = _node_ip(name, hv, family)
            if not via:
                raise AnsibleFilterError("mesh_routes: node %s lacks podnet_pod_cidr or podnet_node_ip (no IPv%d "
                                         "node address for %s)" % (name, family, cidr))
            routes.append({"dst": cidr, "via": str(via).split("/", 1)[0]})
        summary = "%s %s via %s: %s" % (name, mode, underlay, ", ".join(cidrs))
        table.append({"name": name, "mode": mode, "node_ip": underlay, "pod_cidrs": cidrs, "routes": routes,
                      "summary": summary})
    return table


def mesh_routes(nodes, hostvars, me, backend="host-gw"):
    """Routes from node me to every pod CIDR of every other node: via that node's address of the CIDR's
    family (host-gw), or via its VTEP address on the overlay device, onlink (vxlan)."""
    return [dict(route) for peer in mesh_table(nodes, hostvars, me, backend) for route in peer["routes"]]


def underlay_address(hv, name=None):
    """A node's underlay address (its VXLAN tunnels' local end): its IPv4 node address, else its IPv6 one."""
    return _underlay(name, hv or {})


def overlay_peers(nodes, hostvars, me, backend="host-gw"):
    """The peers node me reaches over VXLAN, as podnet.mesh.overlay takes them: [{node_ip, vtep}]."""
    table = mesh_table(nodes, hostvars, me, backend)
    if jmespath is not None:
        return jmespath.search("[?mode=='vxlan'].{node_ip: node_ip, vtep: routes[].via}", table)
    return [{"node_ip": peer["node_ip"], "vtep": [route["via"] for route in peer["routes"]]}
            for peer in table if peer["mode"] == "vxlan"]


def mesh_report(nodes, hostvars, backend="host-gw"):
    """The mesh as lines a person reads: one per ordered pair of nodes, with its mode."""
    lines, modes = [], []
    for me in nodes:
        for peer in mesh_table(nodes, hostvars, me, backend):
            lines.append("%s -> %s" % (me, peer["summary"]))
            modes.append(peer["mode"])
    lines.append("%d pairs: %d host-gw, %d vxlan" % (len(lines), modes.count("host-gw"), modes.count("vxlan")))
    return lines


def mesh_mtu(nodes, hostvars, backend="host-gw", underlay_mtu=1500):
    """The pods' MTU when any two nodes of the cluster talk over VXLAN (the underlay's less the
    VXLAN overhead, 50 bytes over IPv4, 70 over IPv6), else None (left as it is)."""
    if _backend(backend) == "host-gw":
        return None
    # Only the modes count: no routes are built (every role evaluates this for every host).
    underlays = dict((name, _underlay(name, hostvars[name])) for name in nodes)
    worst = 0
    for me in nodes:
        mine = _node_networks(hostvars[me])
        for peer, underlay in underlays.items():
            if peer != me and _peer_mode(backend, mine, underlay) == "vxlan":
                worst = max(worst, 70 if ":" in (underlay or "") else 50)
    return int(underlay_mtu) - worst if worst else None


def pod_gateway(cidr, with_prefix=True):
    """First address of a pod CIDR: the bridge address and the pods' gateway."""
    try:
        net = ipaddress.ip_network(str(cidr))
    except ValueError as exc:
        raise AnsibleFilterError("pod_gateway: %r is not a network in CIDR form (%s)" % (cidr, exc))
    first = model.pod_gateway(net)
    return "%s/%d" % (first, net.prefixlen) if with_prefix else str(first)


def stale_bridges(node_info, bridge, gateway):
    """Interfaces other than the bridge that hold a pod gateway address (from node_info).

    gateway: one address in CIDR form, or a list (a dual-stack node's gateways).
    Returns [{interface, addresses, only}], only: every address the interface has of
    the gateways' families is a pod gateway (what the bridge module leaves on a pod bridge). A node with two
    holders of a gateway address sends pod traffic to whichever route the kernel prefers.
    """
    gateways = []
    for text in gateway if isinstance(gateway, (list, tuple)) else [gateway]:
        try:
            gateways.append(ipaddress.ip_interface(str(text)))
        except ValueError as exc:
            raise AnsibleFilterError("stale_bridges: %r is not an address in CIDR form (%s)" % (text, exc))
    held = {}
    for entry in (node_info or {}).get("addresses") or []:
        held.setdefault(entry.get("interface"), []).append(entry.get("address"))
    found = []
    for name, addresses in held.items():
        if name == bridge:
            continue
        ours = [a for a in addresses if any(_same_interface(a, gw) for gw in gateways)]
        if ours:
            families = set(gw.version for gw in gateways)
            same_family = [a for a in addresses if _family(a) in families]
            found.append({"interface": name, "addresses": addresses, "only": same_family == ours})
    return found


def _same_interface(address, gw):
    try:
        return ipaddress.ip_interface(str(address)) == gw
    except ValueError:
        return False


def _probe_family(address):
    """4 or 6 for an address (CIDR suffix ignored); None for anything else."""
    try:
        return ipaddress.ip_address(str(address).split("/", 1)[0]).version
    except ValueError:
        return None


def _probe_pod_addresses(pod):
    """A probed pod's addresses: its addresses list, else its one address (results of older modules)."""
    addresses = pod.get("addresses") or ([pod["address"]] if pod.get("address") else [])
    return [str(a).split("/", 1)[0] for a in addresses]


def _probe_matrix(pods, rows, externals, width):
    """Lines of one matrix: pods as (label, address), address None when the pod has none."""
    columns = [address for _name, address in pods]
    header = " " * width + " | " + " ".join("%-3d" % (i + 1) for i in range(len(pods)))
    if externals:
        header += " | " + " ".join(externals)
    lines = [header]
    for index, (name, address) in enumerate(pods):
        marks = []
        for column in columns:
            marks.append("-  " if column == address else "%-3s" % rows.get(name, {}).get(column, "X"))
        line = "%-*s | %s" % (width, name, " ".join(marks))
        if externals:
            line += " | " + " ".join("%-*s" % (len(e), rows.get(name, {}).get(e, "X")) for e in externals)
        lines.append(line + "   %d=%s" % (index + 1, address or "no address"))
    return lines


def probe_matrices(nodes, hostvars, result_var="podnet_verify_check"):
    """The data of probe_report's matrices, for whoever draws them (probe_report, matrix_svg).

    Returns {matrices, marks, failures, probes, families}. matrices: one per address family
    when the pods have both ({family: 4 or 6, pods, externals}), else one ({family: None or
    the one family, ...}); pods: [(label, address)] in row and column order, address None when
    the pod has none of the family; externals: the external addresses probed, of the matrix's
    family. marks: {source label: {destination address: mark}}, mark '.' ok, 'X' failed, 'N'
    NATed; a pair without a mark was not probed (probe_report shows it as 'X').
    """
    rows, pods, failures, externals = {}, [], [], []
    for node in nodes:
        result = hostvars[node].get(result_var) or {}
        for pod in result.get("pods", []):
            pods.append(("%s@%s" % (pod["name"], node), _probe_pod_addresses(pod)))
        for res in result.get("results", []):
            src = "%s@%s" % (res["src"], node)
            mark = "." if res["ok"] else ("N" if res.get("nat") else "X")
            rows.setdefault(src, {})[res["dst_address"]] = mark
            if res["kind"] == "external" and res["dst_address"] not in externals:
                externals.append(res["dst_address"])
        failures.extend("%s: %s" % (node, line) for line in result.get("failures", []))
    seen = [a for _name, addresses in pods for a in addresses] + [a for row in rows.values() for a in row]
    families = sorted(set(_probe_family(a) for a in seen) - {None})
    if len(families) < 2:
        matrices = [{"family": families[0] if families else None,
                     "pods": [(name, (addresses or [None])[0]) for name, addresses in pods],
                     "externals": list(externals)}]
    else:
        matrices = []
        for family in families:
            matrix = [(name, ([a for a in addresses if _probe_family(a) == family] or [None])[0])
                      for name, addresses in pods]
            # A pod with addresses, none of this family, has no place here; one with none stays.
            matrix = [(name, address) for (name, address), (_n, addresses) in zip(matrix, pods)
                      if address is not None or not addresses]
            matrices.append({"family": family, "pods": matrix,
                             "externals": [e for e in externals if _probe_family(e) == family]})
    total = sum(len(r) for r in rows.values())
    return {"matrices": matrices, "marks": rows, "failures": failures, "probes": total, "families": families,
            "labels": [name for name, _addresses in pods]}


def probe_report(nodes, hostvars, result_var="podnet_verify_check"):
    """A connectivity matrix a person can read at a glance, plus the failing pairs.

    Rows are source pods, columns destination pods and then external hosts;
    '.' is a pass, 'X' a failure, 'N' a NATed pod-to-pod connection, '-' self.
    With pods of both address families, one matrix per family under a heading
    (IPv4, IPv6), its columns numbered by the pods' addresses of that family;
    a pod without an address of a family is left out of that family's matrix.
    """
    data = probe_matrices(nodes, hostvars, result_var)
    width = max([len(name) for name in data["labels"]] + [4])
    lines = []
    for matrix in data["matrices"]:
        if len(data["matrices"]) > 1:
            lines.append("IPv%d" % matrix["family"])
        lines += _probe_matrix(matrix["pods"], data["marks"], matrix["externals"], width)
    lines.append("%d probes, %d failed ('.' ok, 'X' failed, 'N' NATed, '-' self)" % (data["probes"], len(data["failures"])))
    return {"lines": lines, "failures": data["failures"], "probes": data["probes"], "families": data["families"]}


class FilterModule:
    def filters(self):
        return {"mesh_report": mesh_report, "mesh_table": mesh_table, "underlay_address": underlay_address,
                "overlay_peers": overlay_peers, "mesh_mtu": mesh_mtu,
                "prefixes": prefixes, "pod_cidrs": pod_cidrs, "cluster_cidrs": cluster_cidrs, "pod_gateways": pod_gateways,
                "mesh_routes": mesh_routes, "mesh_problems": mesh_problems, "pod_gateway": pod_gateway,
                "probe_report": probe_report, "nodes_group_problems": nodes_group_problems,
                "stale_bridges": stale_bridges}
