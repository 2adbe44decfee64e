#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: masquerade
short_description: Masquerade pod traffic that leaves the cluster, with nftables or iptables
version_added: 0.1.0
description:
  - Masquerades (source NAT to the outgoing interface's address) traffic from the pod
    networks in O(source) to every destination outside O(exempt). Traffic to O(exempt),
    usually the cluster CIDR, keeps the pod's own source address, so pods on other nodes
    see the sender's pod IP.
  - IPv4 and IPv6 networks may be mixed in O(source) and O(exempt) (a dual-stack cluster lists its
    IPv4 and its IPv6 cluster CIDR in both). Each family gets rules of its own, IPv4 with
    nftables family C(ip) or C(iptables), IPv6 with family C(ip6) or C(ip6tables), in objects of the
    same names. The networks of O(exempt) apply to the rules of their own family only. A family
    without a network in O(source) gets no rules, and rules of this module found for it are
    removed, so a cluster that goes back to IPv4 only converges.
  - With O(forward=true) the module also accepts forwarded traffic from and to O(source) in a
    chain of its own, and warns when another table's forward chain drops packets anyway.
  - With O(ip_forward=true) it sets C(net.ipv4.ip_forward) (IPv4 source networks) and
    C(net.ipv6.conf.all.forwarding) (IPv6 source networks) to 1 in the network namespace the
    module runs in.
  - All rules live in objects of the module's own, replaced as a whole, so repeated runs never
    duplicate a rule; other tables, chains and rules are never flushed, changed or reordered.
  - "nftables: the table C(ip podnet), with a C(postrouting) chain (type nat, priority 100):
    C(ip daddr <exempt> return) for each exempt network, then
    C(ip saddr <source> [oifname <out_interface>] masquerade) for each source network; and with
    O(forward=true) a C(forward) chain (type filter, priority 0) with C(ip saddr <source> accept)
    and C(ip daddr <source> accept). IPv6 networks get the same in the table C(ip6 podnet), with
    C(ip6 saddr) and C(ip6 daddr). Each table is replaced in one C(nft -f) transaction
    (create, delete and define again), so there is never a moment without the rules."
  - "iptables: the chain C(PODNET-MASQ) in table C(nat) with C(-d <exempt> -j RETURN) rules, then
    C(-s <source> [-o <out_interface>] -j MASQUERADE), jumped to once from C(POSTROUTING); with
    O(forward=true) the chain C(PODNET-FORWARD) in table C(filter) with C(-s <source> -j ACCEPT) and
    C(-d <source> -j ACCEPT), jumped to once from C(FORWARD). A missing jump is inserted at the
    top of the built-in chain; an existing one is left where it is; other rules that jump to
    these chains are removed. Each table is changed with one C(iptables-restore --noflush) that
    declares (and so flushes) only the module's chain. IPv6 networks get the same chains and jumps
    with C(ip6tables-restore). Works with iptables-nft and iptables-legacy, whichever
    C(iptables-restore) (C(ip6tables-restore)) is."
author:
  - podnet.mesh maintainers (@podnet-mesh)
options:
  source:
    description:
      - IPv4 and IPv6 networks in CIDR form whose traffic is masqueraded, for instance the node's
        pod CIDR V(10.244.1.0/24) or the cluster CIDRs V(10.244.0.0/16) and V(fd00:10:244::/56).
      - Host bits must be zero; each network may be listed once.
      - Only the families listed here get rules; see O(exempt).
      - With O(state=absent) the list is validated but not used.
    type: list
    elements: str
    required: true
  exempt:
    description:
      - Destination IPv4 and IPv6 networks in CIDR form that are never masqueraded, usually the
        cluster CIDRs, so pod-to-pod traffic between nodes keeps the pod's source address.
      - Each network applies to the rules of its own family; one of a family without a network in
        O(source) has no effect.
    type: list
    elements: str
    default: []
  out_interface:
    description:
      - When set, traffic is masqueraded only when it leaves through this interface (an exact
        interface name).
    type: str
  backend:
    description:
      - Which tool holds the rules.
      - V(auto) keeps the backend that already holds this module's rules (table C(ip podnet) or
        C(ip6 podnet), else chain C(PODNET-MASQ) or C(PODNET-FORWARD) of iptables or ip6tables)
        when it works for every family of O(source); otherwise it picks V(nftables) when the C(nft)
        command exists and C(nft -j list tables) succeeds, else V(iptables) when C(iptables-save)
        and C(iptables-restore) exist, and also C(ip6tables-save) and C(ip6tables-restore) for
        IPv6 networks in O(source).
      - Rules of this module found in the other backend are removed after the chosen backend's
        rules are in place, so a backend switch leaves no stale rules.
      - Choosing a backend whose command is missing or does not work fails before any change;
        V(iptables) with IPv6 networks in O(source) needs C(ip6tables-save) and
        C(ip6tables-restore) too.
    type: str
    choices: [auto, nftables, iptables]
    default: auto
  forward:
    description:
      - Also accept forwarded traffic from and to O(source) in the module's own chain, so that a
        forward policy of drop on the node does not silently break pod traffic between nodes.
      - With iptables the chain C(PODNET-FORWARD) is jumped to from the top of C(FORWARD), which
        overrides a C(FORWARD) policy of C(DROP) (with IPv6 networks, likewise in ip6tables).
      - With nftables an accept in one table does not override a drop in another table's chain
        on the same hook. The module then looks for forward chains of other tables (including
        the iptables and ip6tables C(FORWARD) chains, under iptables-nft or iptables-legacy) that
        have a drop policy or a rule dropping every packet and see packets of a family of
        O(source), and reports each in the task's warnings.
      - V(false) removes the module's forward chains if there are any.
    type: bool
    default: true
  ip_forward:
    description:
      - Make sure C(net.ipv4.ip_forward) (C(/proc/sys/net/ipv4/ip_forward)) is 1 when O(source)
        holds an IPv4 network, and C(net.ipv6.conf.all.forwarding)
        (C(/proc/sys/net/ipv6/conf/all/forwarding)) is 1 when it holds an IPv6 network, in the
        network namespace the module runs in. Each change is one more entry of RV(actions), and
        the values are in the diff (keys C(ip_forward) and C(ipv6_forwarding)) and in RV(sysctls).
      - Setting C(net.ipv6.conf.all.forwarding) to 1 makes the kernel ignore router advertisements
        on every interface whose C(accept_ra) is 1 (the default); see the notes.
      - V(false) leaves the settings as they are. O(state=absent) never changes them.
    type: bool
    default: true
  foreign:
    description:
      - What to do with a rule of another tool that masquerades (or SNATs) traffic from O(source)
        to O(exempt), such as the hand-made C(-s 10.244.0.0/16 -j MASQUERADE). The module's own
        chain returns exempt traffic to C(POSTROUTING), so such a rule still NATs pod-to-pod
        traffic and pods on other nodes see the node's address instead of the pod IP.
      - Looked at, for each family of O(source) with O(exempt) networks of that family, are the
        C(nat) C(POSTROUTING) chain of iptables (IPv4) or ip6tables (IPv6), and the nat
        postrouting base chains of other nftables tables of family C(ip) (IPv4), C(ip6) (IPv6)
        and C(inet) (both).
      - Only rules that match on nothing but source, destination, output interface and comment
        (and, in nftables, C(meta nfproto)) are judged; a rule before it in the same chain that
        returns or accepts all such traffic shadows it.
      - V(fail) refuses before any change, naming the rule. V(warn) goes on and reports the rule in
        the task's warnings. V(remove) deletes the rule (with C(iptables-restore --noflush),
        C(ip6tables-restore --noflush), or C(nft delete rule) by its handle), after the module's own
        rules are in place; the deletion is one more entry of RV(actions) and in the diff.
      - Ignored with O(state=absent).
    type: str
    choices: [fail, warn, remove]
    default: fail
  state:
    description:
      - V(absent) removes the module's rules of both families in every backend found on the node
        (the tables C(ip podnet) and C(ip6 podnet), the iptables and ip6tables chains
        C(PODNET-MASQ) and C(PODNET-FORWARD) and the rules that jump to them), whatever O(backend)
        and O(source) say, and nothing else.
    type: str
    choices: [present, absent]
    default: present
requirements:
  - On the managed node, C(nft) (nftables, with JSON output) or C(iptables-save) and
    C(iptables-restore) (iptables, nft or legacy variant), and for IPv6 networks with the
    iptables backend C(ip6tables-save) and C(ip6tables-restore).
  - Root privileges on the managed node.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Check mode only runs C(nft -j list), C(iptables-save), C(ip6tables-save) and reads files;
        it never writes.
  diff_mode:
    support: full
    details:
      - The diff shows the backend holding the rules, the rules of both families as one list of
        command lines (as RV(rules)) and, when managed, C(ip_forward) and C(ipv6_forwarding).
  platform:
    support: full
    platforms: linux
notes:
  - "Forwarding and router advertisements: with C(net.ipv6.conf.all.forwarding=1) the kernel
    treats the node as a router and ignores router advertisements on every interface whose
    C(accept_ra) is 1, the default. A node whose uplink learns its IPv6 default route (or
    addresses) from router advertisements loses them when they expire, unless that interface has
    C(net.ipv6.conf.<uplink>.accept_ra=2). The module does not change interfaces it does not own:
    set C(accept_ra=2) on the uplink (for instance with ansible.posix.sysctl) before enabling
    IPv6 forwarding, or use O(ip_forward=false) and manage forwarding yourself."
  - IPv6 networks need IPv6 in the node's kernel; with IPv6 disabled (no
    C(/proc/sys/net/ipv6)) the task fails before any change, naming O(source).
  - Every input is validated before the first change; a refused value fails the task with a
    message that names the parameter (with its list index) and changes nothing.
  - The legacy iptables and ip6tables tables C(nat) and C(filter) are read only when they already
    exist in the namespace, because reading a legacy table creates it.
"""

EXAMPLES = r"""
- name: Masquerade pod traffic that leaves the cluster
  podnet.mesh.masquerade:
    source:
      - 10.244.1.0/24
    exempt:
      - 10.244.0.0/16

- name: Dual-stack cluster, masquerade IPv4 and IPv6 pod traffic that leaves the cluster
  podnet.mesh.masquerade:
    source:
      - 10.244.0.0/16
      - fd00:10:244::/56
    exempt:
      - 10.244.0.0/16
      - fd00:10:244::/56

- name: Only when leaving through eth0, with iptables
  podnet.mesh.masquerade:
    source:
      - 10.244.1.0/24
    exempt:
      - 10.244.0.0/16
    out_interface: eth0
    backend: iptables

- name: Remove the masquerade rules (all backends)
  podnet.mesh.masquerade:
    source:
      - 10.244.1.0/24
    state: absent
"""

RETURN = r"""
rules:
  description:
    - The module's rules after the run (in check mode, as they would be), as command lines, the
      IPv4 rules first, then the IPv6 rules.
    - "nftables: C(nft) commands that rebuild the table C(ip podnet), then the table C(ip6 podnet)."
    - "iptables: C(iptables -S) lines, each with its C(-t) table; the IPv6 lines (C(ip6tables -S))
      start with C(-6), as C(iptables-restore) marks IPv6 rules."
    - Empty after O(state=absent). RV(rules_by_family) holds the same per family.
  returned: always
  type: list
  elements: str
  sample:
    - add table ip podnet
    - add chain ip podnet postrouting { type nat hook postrouting priority 100; policy accept; }
    - add rule ip podnet postrouting ip daddr 10.244.0.0/16 return
    - add rule ip podnet postrouting ip saddr 10.244.1.0/24 masquerade
    - add chain ip podnet forward { type filter hook forward priority 0; policy accept; }
    - add rule ip podnet forward ip saddr 10.244.1.0/24 accept
    - add rule ip podnet forward ip daddr 10.244.1.0/24 accept
rules_by_family:
  description:
    - The rules of RV(rules) per family, without the C(-6) mark.
  returned: always
  type: dict
  contains:
    ipv4:
      description: The IPv4 rules (C(nft) commands of table C(ip podnet), or C(iptables -S) lines).
      type: list
      elements: str
    ipv6:
      description: The IPv6 rules (C(nft) commands of table C(ip6 podnet), or C(ip6tables -S) lines).
      type: list
      elements: str
  sample:
    ipv4:
      - add table ip podnet
      - add chain ip podnet postrouting { type nat hook postrouting priority 100; policy accept; }
      - add rule ip podnet postrouting ip daddr 10.244.0.0/16 return
      - add rule ip podnet postrouting ip saddr 10.244.0.0/16 masquerade
    ipv6:
      - add table ip6 podnet
      - add chain ip6 podnet postrouting { type nat hook postrouting priority 100; policy accept; }
      - add rule ip6 podnet postrouting ip6 daddr fd00:10:244::/56 return
      - add rule ip6 podnet postrouting ip6 saddr fd00:10:244::/56 masquerade
sysctls:
  description:
    - The forwarding sysctls the module manages (O(ip_forward=true) and O(state=present)) with
      their value after the run (in check mode, as it would be), by sysctl name.
      C(net.ipv4.ip_forward) when O(source) holds an IPv4 network, C(net.ipv6.conf.all.forwarding)
      when it holds an IPv6 network. Empty otherwise.
  returned: always
  type: dict
  sample:
    net.ipv4.ip_forward: 1
    net.ipv6.conf.all.forwarding: 1
backend:
  description:
    - The backend used, V(nftables) or V(iptables). With O(state=absent) and neither tool on the
      node, null.
  returned: always
  type: str
  sample: nftables
actions:
  description: Changes made, or in check mode to be made, in order.
  returned: always
  type: list
  elements: str
  sample:
    - create nftables table ip podnet (4 rules)
    - create nftables table ip6 podnet (4 rules)
    - set net.ipv4.ip_forward = 1
    - set net.ipv6.conf.all.forwarding = 1
"""

from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import nat as nat_plan
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import nat as nat_tools
from ansible_collections.podnet.mesh.plugins.module_utils.module import run as _module


def read(session, want):
    return session.read(want)


def render(want, current, planned, predicted):
    backend = planned.details["backend"]
    if planned.changed and not predicted:
        by_family = nat_plan.current_rules_by_family(backend, current)
        sysctls = dict((f.sysctl, current.get(f.forwarding)) for f in nat_plan.FAMILIES
                       if f.sysctl in planned.details["sysctls"])
    else:
        by_family = planned.details["rules_by_family"]
        sysctls = planned.details["sysctls"]
    return {"rules": nat_plan.flat_rules(backend, by_family), "rules_by_family": by_family,
            "backend": backend, "sysctls": sysctls}


def main():
    _module.run_module(
        {
            "source": {"type": "list", "elements": "str", "required": True},
            "exempt": {"type": "list", "elements": "str", "default": []},
            "out_interface": {"type": "str"},
            "backend": {"type": "str", "choices": ["auto", "nftables", "iptables"],
                        "default": "auto"},
            "forward": {"type": "bool", "default": True},
            "ip_forward": {"type": "bool", "default": True},
            "foreign": {"type": "str", "choices": ["fail", "warn", "remove"], "default": "fail"},
            "state": _module.STATE_OPTION,
        },
        nat_plan.validate, read, nat_plan.plan, render, None,
        session_factory=lambda module: nat_tools.Session(nat_tools.Runner(module)))


if __name__ == "__main__":
    main()
