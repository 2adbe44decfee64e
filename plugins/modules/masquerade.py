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
  - Masquerades (source NAT to the outgoing interface's address) IPv4 traffic from the pod
    networks in O(source) to every destination outside O(exempt). Traffic to O(exempt),
    usually the cluster CIDR, keeps the pod's own source address, so pods on other nodes
    see the sender's pod IP.
  - With O(forward=true) the module also accepts forwarded traffic from and to O(source) in a
    chain of its own, and warns when another table's forward chain drops packets anyway.
  - With O(ip_forward=true) it sets C(net.ipv4.ip_forward) to 1 in the network namespace the
    module runs in.
  - All rules live in objects of the module's own, replaced as a whole, so repeated runs never
    duplicate a rule; other tables, chains and rules are never flushed, changed or reordered.
  - "nftables: the table C(ip podnet), with a C(postrouting) chain (type nat, priority 100):
    C(ip daddr <exempt> return) for each exempt network, then
    C(ip saddr <source> [oifname <out_interface>] masquerade) for each source network; and with
    O(forward=true) a C(forward) chain (type filter, priority 0) with C(ip saddr <source> accept)
    and C(ip daddr <source> accept). The table is replaced in one C(nft -f) transaction
    (create, delete and define again), so there is never a moment without the rules."
  - "iptables: the chain C(PODNET-MASQ) in table C(nat) with C(-d <exempt> -j RETURN) rules, then
    C(-s <source> [-o <out_interface>] -j MASQUERADE), jumped to once from C(POSTROUTING); with
    O(forward=true) the chain C(PODNET-FORWARD) in table C(filter) with C(-s <source> -j ACCEPT) and
    C(-d <source> -j ACCEPT), jumped to once from C(FORWARD). A missing jump is inserted at the
    top of the built-in chain; an existing one is left where it is; other rules that jump to
    these chains are removed. Each table is changed with one C(iptables-restore --noflush) that
    declares (and so flushes) only the module's chain. Works with iptables-nft and
    iptables-legacy, whichever C(iptables-restore) is."
author:
  - podnet.mesh maintainers (@podnet-mesh)
options:
  source:
    description:
      - IPv4 networks in CIDR form whose traffic is masqueraded, for instance the node's pod
        CIDR V(10.244.1.0/24) or the cluster CIDR V(10.244.0.0/16).
      - Host bits must be zero; each network may be listed once.
      - With O(state=absent) the list is validated but not used.
    type: list
    elements: str
    required: true
  exempt:
    description:
      - Destination IPv4 networks in CIDR form that are never masqueraded, usually the cluster
        CIDR, so pod-to-pod traffic between nodes keeps the pod's source address.
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
      - V(auto) keeps the backend that already holds this module's rules (table C(ip podnet),
        else chain C(PODNET-MASQ) or C(PODNET-FORWARD)); on a node without them it picks
        V(nftables) when the C(nft) command exists and C(nft -j list tables) succeeds, else
        V(iptables) when C(iptables-save) and C(iptables-restore) exist.
      - Rules of this module found in the other backend are removed after the chosen backend's
        rules are in place, so a backend switch leaves no stale rules.
      - Choosing a backend whose command is missing or does not work fails before any change.
    type: str
    choices: [auto, nftables, iptables]
    default: auto
  forward:
    description:
      - Also accept forwarded traffic from and to O(source) in the module's own chain, so that a
        forward policy of drop on the node does not silently break pod traffic between nodes.
      - With iptables the chain C(PODNET-FORWARD) is jumped to from the top of C(FORWARD), which
        overrides a C(FORWARD) policy of C(DROP).
      - With nftables an accept in one table does not override a drop in another table's chain
        on the same hook. The module then looks for forward chains of other tables (including
        the iptables C(FORWARD) chain, under iptables-nft or iptables-legacy) that have a drop
        policy or a rule dropping every packet, and reports each in the task's warnings.
      - V(false) removes the module's forward chain if there is one.
    type: bool
    default: true
  ip_forward:
    description:
      - Make sure C(net.ipv4.ip_forward) (C(/proc/sys/net/ipv4/ip_forward)) is 1 in the network
        namespace the module runs in; the change is one more entry of RV(actions) and in the diff.
      - V(false) leaves the setting as it is. O(state=absent) never changes it.
    type: bool
    default: true
  foreign:
    description:
      - What to do with a rule of another tool in the iptables C(nat) C(POSTROUTING) chain that
        masquerades (or SNATs) traffic from O(source) to O(exempt), such as the hand-made
        C(-s 10.244.0.0/16 -j MASQUERADE). The module's own chain returns exempt traffic to
        C(POSTROUTING), so such a rule still NATs pod-to-pod traffic and pods on other nodes see
        the node's address instead of the pod IP.
      - Only rules that match on nothing but source, destination, output interface and comment are
        judged; a rule before it in C(POSTROUTING) that returns or accepts all such traffic
        shadows it.
      - V(fail) refuses before any change, naming the rule. V(warn) goes on and reports the rule in
        the task's warnings. V(remove) deletes the rule (with C(iptables-restore --noflush)), after the
        module's own rules are in place; the deletion is one more entry of RV(actions) and in the diff.
      - Ignored with O(state=absent).
    type: str
    choices: [fail, warn, remove]
    default: fail
  state:
    description:
      - V(absent) removes the module's rules in every backend found on the node (the table
        C(ip podnet), the chains C(PODNET-MASQ) and C(PODNET-FORWARD) and the rules that jump to
        them), whatever O(backend) says, and nothing else.
    type: str
    choices: [present, absent]
    default: present
requirements:
  - On the managed node, C(nft) (nftables, with JSON output) or C(iptables-save) and
    C(iptables-restore) (iptables, nft or legacy variant).
  - Root privileges on the managed node.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Check mode only runs C(nft -j list), C(iptables-save) and reads files; it never writes.
  diff_mode:
    support: full
    details:
      - The diff shows the backend holding the rules, the rules as lists of command lines and,
        when managed, C(ip_forward).
  platform:
    support: full
    platforms: linux
notes:
  - IPv4 only. IPv6 networks in O(source) or O(exempt) are refused.
  - Every input is validated before the first change; a refused value fails the task with a
    message that names the parameter (with its list index) and changes nothing.
  - The legacy iptables tables C(nat) and C(filter) are read only when they already exist in the
    namespace, because reading a legacy table creates it.
"""

EXAMPLES = r"""
- name: Masquerade pod traffic that leaves the cluster
  podnet.mesh.masquerade:
    source:
      - 10.244.1.0/24
    exempt:
      - 10.244.0.0/16

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
    - The module's rules after the run (in check mode, as they would be), as command lines.
    - "nftables: C(nft) commands that rebuild the table C(ip podnet)."
    - "iptables: C(iptables -S) lines, each with its C(-t) table."
    - Empty after O(state=absent).
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
    - set net.ipv4.ip_forward = 1
"""

from ansible_collections.podnet.mesh.plugins.module_utils.core.plan import nat as nat_plan
from ansible_collections.podnet.mesh.plugins.module_utils.kernel import nat as nat_tools
from ansible_collections.podnet.mesh.plugins.module_utils.module import run as _module


def read(session, want):
    return session.read(want)


def render(want, current, planned, predicted):
    backend = planned.details["backend"]
    if planned.changed and not predicted:
        rules = nat_plan.current_rules(backend, current)
    else:
        rules = planned.details["rules"]
    return {"rules": rules, "backend": backend}


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
