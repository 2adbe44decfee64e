# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pod masquerade with nftables or iptables, for IPv4 and IPv6.

Layout, from pure to impure:

* ``validate``: module parameters -> ``want`` (raises ValidationError).
* ``nft_rules`` / ``iptables_rules``: ``want`` and one address ``Family`` ->
  the rules we own for that family, as command lines (nft commands;
  ``iptables -S`` style lines with ``-t``).
* ``parse_*``: command output -> plain data; ``nft_table_rules`` and
  ``iptables_current_rules`` turn what is on the node back into the same
  command lines, so current and desired compare as lists of strings.
* ``plan``: ``want`` + current state -> a Plan of actions (each with its
  ``text``); its details hold the backend and the predicted rules, its
  warnings what may still block pod traffic.
The node side (running nft, iptables-save/-restore, the sysctls) is
``kernel.nat``; this file is pure and unit-tested without root.

Every family is handled by the same code, parameterised by its ``Family``
(IPV4, IPV6): a family gets rules only when ``source`` holds a network of it,
and ``exempt`` networks apply to their own family's rules.

What is ours: the nftables tables ``ip podnet`` and ``ip6 podnet``; the
iptables and ip6tables chains ``PODNET-MASQ`` (nat) and ``PODNET-FORWARD``
(filter) and the rules that jump to them. Nothing else is read for changes,
flushed or reordered.
"""

from __future__ import annotations

import collections
import ipaddress
import json
import shlex

from ansible_collections.podnet.mesh.plugins.module_utils.core import validate as v
from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ConflictError, ToolError, ValidationError
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import Op, Plan

NFTABLES = "nftables"
IPTABLES = "iptables"
BACKENDS = ("auto", NFTABLES, IPTABLES)
# What to do with another tool's nat POSTROUTING rule that masquerades traffic from
# source to exempt networks (pod to pod): refuse, warn, or delete that rule.
FOREIGN = ("fail", "warn", "remove")

NFT_FAMILY = "ip"
NFT_TABLE = "podnet"
NFT_TABLE_REF = "%s %s" % (NFT_FAMILY, NFT_TABLE)
NFT_POSTROUTING = "postrouting"
NFT_FORWARD = "forward"
# Numeric priorities (srcnat, filter): nft before 0.9.1 has no names for them.
NFT_PRIO_SRCNAT = 100
NFT_PRIO_FILTER = 0

IPT_MASQ = "PODNET-MASQ"
IPT_FORWARD = "PODNET-FORWARD"
# table -> (our chain, the built-in chain that jumps to it)
IPT_CHAINS = {"nat": (IPT_MASQ, "POSTROUTING"), "filter": (IPT_FORWARD, "FORWARD")}
IPT_TABLES = ("nat", "filter")
# Seconds iptables-restore waits for the xtables lock held by another writer.
IPT_WAIT = "5"

IP_FORWARD_PATH = "/proc/sys/net/ipv4/ip_forward"
IP_FORWARD_KEY = "net.ipv4.ip_forward"
IP6_FORWARD_PATH = "/proc/sys/net/ipv6/conf/all/forwarding"
IP6_FORWARD_KEY = "net.ipv6.conf.all.forwarding"
# Legacy (x_tables) tables instantiated in this network namespace.
LEGACY_TABLES_PATH = "/proc/net/ip_tables_names"
LEGACY6_TABLES_PATH = "/proc/net/ip6_tables_names"
SBIN_DIRS = ["/usr/sbin", "/sbin", "/usr/local/sbin"]

Family = collections.namedtuple(
    "Family", "version name label nft table_ref iptables ours forwarding sysctl sysctl_path legacy_tables line_prefix")
Family.__doc__ = """Everything that differs between IPv4 and IPv6 NAT.

version: 4 or 6; name: 'ipv4'/'ipv6' (keys of per-family return values); label: for messages;
nft: the nftables family of our table and the keyword of its address matches ('ip', 'ip6');
table_ref: our nft table; iptables: the tool (and the key of its state in ``current``);
ours: the key of our nft table's rules in ``current['nft']``; forwarding: the key of the
forwarding sysctl's value in ``current`` and in the diff; sysctl, sysctl_path: that sysctl;
legacy_tables: the legacy tables that exist; line_prefix: what marks this family's iptables
lines in the flat ``rules`` list (iptables-restore's own ``-6``).
"""
IPV4 = Family(4, "ipv4", "IPv4", NFT_FAMILY, NFT_TABLE_REF, "iptables", "ours", "ip_forward",
              IP_FORWARD_KEY, IP_FORWARD_PATH, LEGACY_TABLES_PATH, "")
IPV6 = Family(6, "ipv6", "IPv6", "ip6", "ip6 %s" % NFT_TABLE, "ip6tables", "ours6", "ipv6_forwarding",
              IP6_FORWARD_KEY, IP6_FORWARD_PATH, LEGACY6_TABLES_PATH, "-6 ")
FAMILIES = (IPV4, IPV6)
# Our nft tables, as (family, name).
NFT_OURS = tuple((f.nft, NFT_TABLE) for f in FAMILIES)
# What ``current`` holds for an iptables tool that was not read.
NO_IPTABLES = {"path": None, "works": False, "error": None, "variant": None, "tables": {}}


def of_family(family, networks):
    """The networks (CIDR strings) of one family, in order."""
    return [n for n in networks if ipaddress.ip_network(n).version == family.version]


def wanted_families(want):
    """The families that get rules: those with a source network (none with state=absent)."""
    if want["state"] != "present":
        return []
    return [f for f in FAMILIES if of_family(f, want["source"])]


def iptables_info(current, family):
    """What was read of one family's iptables tool (NO_IPTABLES when it was not read)."""
    return current.get(family.iptables) or NO_IPTABLES


# ------------------------------------------------------------------ validate
def _networks(values, path, required):
    """A list of IPv4 and IPv6 networks in CIDR form (host bits zero, each once), normalised."""
    if values is None:
        values = []
    if not isinstance(values, list):
        raise ValidationError(path, values, "must be a list of networks in CIDR form")
    if required and not values:
        raise ValidationError(path, values, "must list at least one network in CIDR form")
    result = []
    seen = {}
    for index, value in enumerate(values):
        item_path = "%s[%d]" % (path, index)
        net = v.network(value, item_path)
        if net in seen:
            raise ValidationError(
                item_path, value, "repeats %s[%d]; list each network once" % (path, seen[net]))
        seen[net] = index
        result.append(net)
    return result


def validate(params):
    """Module parameters -> want; every refusal names its parameter."""
    out_interface = params.get("out_interface")
    if out_interface is not None:
        out_interface = v.ifname(out_interface, "out_interface")
        if '"' in out_interface or "\\" in out_interface:
            raise ValidationError(
                "out_interface", out_interface, "must not contain a double quote or a backslash")
    return {
        "source": _networks(params.get("source"), "source", True),
        "exempt": _networks(params.get("exempt"), "exempt", False),
        "out_interface": out_interface,
        "backend": v.choice(params.get("backend") or "auto", BACKENDS, "backend"),
        "forward": bool(params.get("forward", True)),
        "ip_forward": bool(params.get("ip_forward", True)),
        "state": v.choice(params.get("state") or "present", ("present", "absent"), "state"),
        "foreign": v.choice(params.get("foreign") or "fail", FOREIGN, "foreign"),
    }


# ------------------------------------------------------------ desired rules
def _nft_addr(net):
    """A network as nft prints it: a /32 (IPv4) or /128 (IPv6) is a plain address."""
    network = ipaddress.ip_network(net)
    return str(network.network_address) if network.prefixlen == network.max_prefixlen else str(network)


def nft_chain_line(name, kind, hook, prio, policy, table_ref=NFT_TABLE_REF):
    return "add chain %s %s { type %s hook %s priority %d; policy %s; }" % (
        table_ref, name, kind, hook, prio, policy)


def nft_rules(want, family=IPV4):
    """The complete content of our table of one family, as nft commands in order ([]: no table)."""
    source = of_family(family, want["source"])
    if not source:
        return []
    ref = family.table_ref
    rule = "add rule %s %%s %s %%s" % (ref, family.nft)
    lines = ["add table %s" % ref,
             nft_chain_line(NFT_POSTROUTING, "nat", "postrouting", NFT_PRIO_SRCNAT, "accept", ref)]
    for net in of_family(family, want["exempt"]):
        lines.append(rule % (NFT_POSTROUTING, "daddr %s return" % _nft_addr(net)))
    oif = ' oifname "%s"' % want["out_interface"] if want["out_interface"] else ""
    for net in source:
        lines.append(rule % (NFT_POSTROUTING, "saddr %s%s masquerade" % (_nft_addr(net), oif)))
    if want["forward"]:
        lines.append(nft_chain_line(NFT_FORWARD, "filter", "forward", NFT_PRIO_FILTER, "accept", ref))
        for net in source:
            lines.append(rule % (NFT_FORWARD, "saddr %s accept" % _nft_addr(net)))
        for net in source:
            lines.append(rule % (NFT_FORWARD, "daddr %s accept" % _nft_addr(net)))
    return lines


def nft_script(rules, table_ref=NFT_TABLE_REF):
    """One nft -f transaction: make sure the table exists, delete it, define it anew.

    The kernel applies the whole file or nothing, so there is no moment
    without our rules and never a duplicate.
    """
    return "\n".join(["table %s {}" % table_ref, "delete table %s" % table_ref]
                     + list(rules)) + "\n"


def _ipt_match(flag, net):
    # iptables prints no match at all for 0.0.0.0/0 (ip6tables: ::/0).
    return [] if net.endswith("/0") else [flag, net]


def iptables_chain_specs(want, family=IPV4):
    """table -> the rule specs of our chain of one family in that table (None: chain not wanted)."""
    source = of_family(family, want["source"]) if want["state"] == "present" else []
    if not source:
        return {"nat": None, "filter": None}
    masq = []
    for net in of_family(family, want["exempt"]):
        masq.append(" ".join(_ipt_match("-d", net) + ["-j", "RETURN"]))
    oif = ["-o", want["out_interface"]] if want["out_interface"] else []
    for net in source:
        masq.append(" ".join(_ipt_match("-s", net) + oif + ["-j", "MASQUERADE"]))
    forward = None
    if want["forward"]:
        forward = [" ".join(_ipt_match("-s", net) + ["-j", "ACCEPT"]) for net in source]
        forward += [" ".join(_ipt_match("-d", net) + ["-j", "ACCEPT"]) for net in source]
    return {"nat": masq, "filter": forward}


def _ipt_lines(table, chain_rules, jumps):
    """Our objects in one table as iptables -S lines prefixed with -t TABLE."""
    chain, _hook = IPT_CHAINS[table]
    lines = ["-t %s -N %s" % (table, chain)]
    lines += ["-t %s -A %s %s" % (table, chain, spec) for spec in chain_rules]
    lines += ["-t %s -A %s %s" % (table, from_chain, spec) for from_chain, spec in jumps]
    return lines


def iptables_rules(want, family=IPV4):
    """Our objects of one family as iptables -S lines (ip6tables -S for IPV6)."""
    specs = iptables_chain_specs(want, family)
    lines = []
    for table in IPT_TABLES:
        if specs[table] is not None:
            chain, hook = IPT_CHAINS[table]
            lines += _ipt_lines(table, specs[table], [(hook, "-j %s" % chain)])
    return lines


def desired_rules_by_family(backend, want):
    """family name -> the rules we want for it (state=absent, or no source of it: [])."""
    result = {}
    for family in FAMILIES:
        if want["state"] != "present" or backend is None:
            result[family.name] = []
        elif backend == NFTABLES:
            result[family.name] = nft_rules(want, family)
        else:
            result[family.name] = iptables_rules(want, family)
    return result


def flat_rules(backend, by_family):
    """Per-family rules as one list, IPv4 first; IPv6 iptables lines start with -6 (iptables-restore's mark)."""
    lines = []
    for family in FAMILIES:
        prefix = family.line_prefix if backend == IPTABLES else ""
        lines += [prefix + line for line in by_family.get(family.name, [])]
    return lines


def desired_rules(backend, want):
    """Every rule we want, both families in one list (see flat_rules)."""
    return flat_rules(backend, desired_rules_by_family(backend, want))


# ---------------------------------------------------------------- parse nft
def nft_items(text, what):
    try:
        return json.loads(text).get("nftables", [])
    except (ValueError, AttributeError) as exc:
        raise ToolError("cannot read %s: nft printed no valid JSON (%s)" % (what, exc))


def parse_nft_tables(text):
    """nft -j list tables -> set of (family, name)."""
    return set((item["table"]["family"], item["table"]["name"])
               for item in nft_items(text, "the nftables tables") if "table" in item)


def parse_nft_chains(text):
    """nft -j list chains -> list of chain dicts (family, table, name, hook, policy, ...)."""
    return [item["chain"] for item in nft_items(text, "the nftables chains") if "chain" in item]


def _nft_value(value):
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"prefix"}:
        return "%s/%s" % (value["prefix"].get("addr"), value["prefix"].get("len"))
    return json.dumps(value, sort_keys=True)


def nft_expr(expr):
    """One statement of a rule in nft syntax; anything unknown as its JSON."""
    if isinstance(expr, dict) and len(expr) == 1:
        key, value = next(iter(expr.items()))
        if key in ("accept", "drop", "return", "masquerade") and value is None:
            return key
        if key == "counter":
            return "counter"
        if key == "match" and isinstance(value, dict) and value.get("op") in ("==", "!="):
            left, right = value.get("left"), value.get("right")
            neg = "!= " if value["op"] == "!=" else ""
            if isinstance(left, dict) and set(left) == {"payload"}:
                payload = left["payload"]
                return "%s %s %s%s" % (payload.get("protocol"), payload.get("field"), neg,
                                       _nft_value(right))
            if left == {"meta": {"key": "oifname"}} and isinstance(right, str):
                return 'oifname %s"%s"' % (neg, right)
            if isinstance(left, dict) and set(left) == {"meta"} and isinstance(right, str):
                return "meta %s %s%s" % (left["meta"].get("key"), neg, right)
    return json.dumps(expr, sort_keys=True)


def nft_table_rules(text, family=IPV4):
    """nft -j list table ip podnet (ip6 podnet) -> our canonical command lines (see nft_rules)."""
    ref = family.table_ref
    items = nft_items(text, "nftables table %s" % ref)
    chains = []
    others = []
    rules = {}
    for item in items:
        if "chain" in item:
            chains.append(item["chain"])
        elif "rule" in item:
            rule = item["rule"]
            text_rule = " ".join(nft_expr(e) for e in rule.get("expr", []))
            rules.setdefault(rule.get("chain"), []).append(text_rule)
        else:
            for kind in item:
                if kind not in ("metainfo", "table"):
                    others.append("add %s %s %s" % (kind, ref, item[kind].get("name")))
    lines = ["add table %s" % ref]
    for chain in chains:
        if chain.get("hook"):
            lines.append(nft_chain_line(chain["name"], chain.get("type"), chain["hook"],
                                        chain.get("prio", 0), chain.get("policy", "accept"), ref))
        else:
            lines.append("add chain %s %s" % (ref, chain["name"]))
        for rule in rules.pop(chain["name"], []):
            lines.append("add rule %s %s %s" % (ref, chain["name"], rule))
    return lines + others


# ----------------------------------------------------------- parse iptables
def _target(spec):
    """The chain a rule spec jumps or goes to, or None."""
    try:
        words = shlex.split(spec)
    except ValueError:
        words = spec.split()
    for index, word in enumerate(words[:-1]):
        if word in ("-j", "--jump", "-g", "--goto"):
            return words[index + 1]
    return None


def parse_iptables_save(text):
    """iptables-save -t TABLE -> {policies: {chain: policy}, rules: [(chain, spec)]}."""
    policies = {}
    rules = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(":"):
            name, _sep, rest = line[1:].partition(" ")
            policies[name] = rest.split(" ")[0] if rest else "-"
        elif line.startswith("-A "):
            chain, _sep, spec = line[3:].partition(" ")
            rules.append((chain, spec))
    return {"policies": policies, "rules": rules}


def iptables_table_state(table, saved):
    """Our objects in one parsed table: {exists, rules (specs), jumps [(chain, spec)]}."""
    chain, _hook = IPT_CHAINS[table]
    if saved is None or chain not in saved["policies"]:
        return {"exists": False, "rules": [], "jumps": []}
    return {
        "exists": True,
        "rules": [spec for name, spec in saved["rules"] if name == chain],
        "jumps": [(name, spec) for name, spec in saved["rules"]
                  if name != chain and _target(spec) == chain],
    }


def iptables_current_rules(current, family=IPV4):
    """Our objects of one family found by iptables-save (ip6tables-save), as iptables -S lines."""
    lines = []
    tables = (current.get(family.iptables) or NO_IPTABLES).get("tables", {})
    for table in IPT_TABLES:
        state = iptables_table_state(table, tables.get(table))
        if state["exists"]:
            lines += _ipt_lines(table, state["rules"], state["jumps"])
    return lines


def nft_current_rules(current, family=IPV4):
    """Our nft table of one family as read (None: there is none)."""
    return current["nft"].get(family.ours)


def current_rules_by_family(backend, current):
    """family name -> our rules the backend holds for it."""
    result = {}
    for family in FAMILIES:
        if backend == NFTABLES:
            result[family.name] = list(nft_current_rules(current, family) or [])
        elif backend == IPTABLES:
            result[family.name] = iptables_current_rules(current, family)
        else:
            result[family.name] = []
    return result


def current_rules(backend, current):
    """Every rule of ours the backend holds, both families in one list (see flat_rules)."""
    return flat_rules(backend, current_rules_by_family(backend, current))


# ------------------------------------------------------- foreign masquerade
def _networks_of(value):
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None


def _simple_rule(spec):
    """A POSTROUTING rule spec -> {src, dst, not_dst, target} when it matches on nothing
    but addresses, interfaces and comments; None for anything else (it cannot be judged)."""
    try:
        words = shlex.split(spec)
    except ValueError:
        return None
    rule = {"src": None, "dst": None, "not_dst": None, "target": None}
    index, negate = 0, False
    while index < len(words):
        word = words[index]
        arg = words[index + 1] if index + 1 < len(words) else None
        if word == "!":
            negate = True
            index += 1
            continue
        if word in ("-j", "--jump"):
            rule["target"] = arg
            return rule  # what follows are the target's own options
        if arg is None:
            return None
        if word in ("-s", "--source") and not negate:
            rule["src"] = _networks_of(arg)
        elif word in ("-d", "--destination"):
            rule["not_dst" if negate else "dst"] = _networks_of(arg)
        elif word in ("-o", "--out-interface"):
            pass
        elif word == "-m" and arg == "comment" and index + 3 < len(words) and words[index + 2] == "--comment":
            index += 2
        else:
            return None
        if (word in ("-s", "--source", "-d", "--destination")
                and _networks_of(arg) is None):
            return None
        negate = False
        index += 2
    return None


def _nft_simple_rule(exprs, family):
    """A nat postrouting rule of nft JSON -> the shape of _simple_rule, for one family.

    None for a rule that cannot be judged (sets, marks, other matches) or that never
    sees this family's packets (address matches or meta nfproto of the other family).
    """
    rule = {"src": None, "dst": None, "not_dst": None, "target": None}
    for expr in exprs:
        if not isinstance(expr, dict) or len(expr) != 1:
            return None
        key, value = next(iter(expr.items()))
        if key in ("counter", "log"):
            continue
        if key in ("masquerade", "snat", "return", "accept"):
            rule["target"] = {"masquerade": "MASQUERADE", "snat": "SNAT"}.get(key, key.upper())
            return rule
        if key != "match" or not isinstance(value, dict) or value.get("op") not in ("==", "!="):
            return None
        left, right, negate = value.get("left"), value.get("right"), value["op"] == "!="
        if not isinstance(left, dict):
            return None
        meta = left.get("meta") if isinstance(left.get("meta"), dict) else {}
        if meta.get("key") in ("oifname", "oif"):
            continue
        if meta.get("key") == "nfproto":
            if (right == family.name) == negate:
                return None
            continue
        payload = left.get("payload") if isinstance(left.get("payload"), dict) else {}
        if payload.get("protocol") != family.nft or payload.get("field") not in ("saddr", "daddr"):
            return None
        net = _networks_of(_nft_value(right))
        if net is None or (negate and payload["field"] == "saddr"):
            return None
        rule["not_dst" if negate else ("src" if payload["field"] == "saddr" else "dst")] = net
    return None


def _covers(net, nets):
    """net is None (any) or holds every network of nets."""
    return net is None or all(n.version == net.version and n.subnet_of(net) for n in nets)


def _foreign_hits(want, family, rules):
    """rules: [(key, simple rule or None)] of one chain in order -> the keys of those that
    masquerade traffic from the family's source to its exempt networks.

    A rule before it that RETURNs or ACCEPTs all such traffic shadows it.
    """
    sources = [ipaddress.ip_network(n) for n in of_family(family, want["source"])]
    exempt = [ipaddress.ip_network(n) for n in of_family(family, want["exempt"])]
    if want["state"] != "present" or not sources or not exempt:
        return []
    found = []
    for key, rule in rules:
        if rule is None:
            continue
        if rule["target"] in ("RETURN", "ACCEPT") and rule["not_dst"] is None:
            if _covers(rule["src"], sources) and _covers(rule["dst"], exempt):
                break  # pod-to-pod traffic never gets further
            continue
        if rule["target"] not in ("MASQUERADE", "SNAT"):
            continue
        if rule["src"] is not None and not any(rule["src"].overlaps(n) for n in sources if n.version == rule["src"].version):
            continue
        hit = [n for n in exempt
               if (rule["dst"] is None or (rule["dst"].version == n.version and rule["dst"].overlaps(n)))
               and (rule["not_dst"] is None or not (rule["not_dst"].version == n.version and n.subnet_of(rule["not_dst"])))]
        if hit:
            found.append(key)
    return found


def foreign_masquerades(want, saved, family=IPV4):
    """Rules of another tool in iptables (ip6tables) nat POSTROUTING that masquerade traffic
    from want's source to its exempt networks of the family, as iptables -S specs.

    Our chain's RETURN for exempt traffic returns to POSTROUTING, so a later
    foreign MASQUERADE still NATs pod-to-pod traffic. A foreign rule before it that
    RETURNs or ACCEPTs all such traffic shadows it.
    """
    if saved is None:
        return []
    rules = [(spec, _simple_rule(spec)) for chain, spec in saved["rules"]
             if chain == "POSTROUTING" and _target(spec) not in (IPT_MASQ, IPT_FORWARD)]
    return _foreign_hits(want, family, rules)


def nft_nat_chains(chains, skip=()):
    """The nat postrouting base chains of other tools' tables (parse_nft_chains output), as
    (family, table, name) keys; skip: (family, table) pairs read another way (iptables-nft)."""
    return [(c.get("family"), c.get("table"), c.get("name")) for c in chains
            if c.get("type") == "nat" and c.get("hook") == "postrouting"
            and (c.get("family"), c.get("table")) not in NFT_OURS + tuple(skip)]


def nft_foreign_masquerades(want, family, chain_rules):
    """Native nftables rules of other tables that masquerade the family's pod-to-pod traffic.

    chain_rules: (family, table, chain) -> list of nft JSON rules (dicts with handle, expr),
    for nat postrouting chains (nft_nat_chains). Only ip (ip6) and inet tables see the
    family's packets. Returns [{family, table, chain, handle, rule}] (rule: nft syntax).
    """
    found = []
    for key in sorted(chain_rules):
        if key[0] not in (family.nft, "inet"):
            continue
        rules = [(item, _nft_simple_rule(item.get("expr", []), family)) for item in chain_rules[key]]
        for item in _foreign_hits(want, family, rules):
            found.append({"family": key[0], "table": key[1], "chain": key[2], "handle": item.get("handle"),
                          "rule": " ".join(nft_expr(e) for e in item.get("expr", []))})
    return found


def foreign_message(spec, want, family=IPV4):
    """Why a foreign iptables (ip6tables) rule is refused, and how to remove it."""
    return ("is masqueraded to the exempt networks %s too, by a rule in the %s nat POSTROUTING chain that is not podnet's: "
            "'-A POSTROUTING %s'; pods on other nodes would see this node's address instead of the sender's pod IP. "
            "Remove that rule (%s -t nat -D POSTROUTING %s), or set foreign=remove to let this module "
            "delete it (role variable podnet_foreign_masquerade: remove)"
            % (", ".join(of_family(family, want["exempt"])), family.iptables, spec, family.iptables, spec))


def nft_foreign_message(found, want, family):
    """Why a foreign nftables rule is refused, and how to remove it."""
    return ("is masqueraded to the exempt networks %s too, by a rule of nftables chain %s in table %s %s that is "
            "not podnet's: '%s' (handle %s); pods on other nodes would see this node's address instead of the "
            "sender's pod IP. Remove that rule (nft delete rule %s %s %s handle %s), or set foreign=remove to let "
            "this module delete it (role variable podnet_foreign_masquerade: remove)"
            % (", ".join(of_family(family, want["exempt"])), found["chain"], found["family"], found["table"],
               found["rule"], found["handle"], found["family"], found["table"], found["chain"], found["handle"]))


# -------------------------------------------------------------- forward drop
def _unconditional_drop(rule_exprs):
    """True when a rule drops or rejects everything (only counter/log/limit besides)."""
    verdict = None
    for expr in rule_exprs:
        if not isinstance(expr, dict) or len(expr) != 1:
            return False
        key = next(iter(expr))
        if key in ("drop", "reject"):
            verdict = key
        elif key not in ("counter", "log"):
            return False
    return verdict is not None


def nft_forward_blockers(chains, chain_rules):
    """Forward base chains of other tables that drop: [{family, table, chain, why, iptables}].

    chains: parse_nft_chains output; chain_rules: (family, table, chain) -> list of
    rule expression lists (for the chains whose policy is accept).
    """
    found = []
    for chain in chains:
        key = (chain.get("family"), chain.get("table"), chain.get("name"))
        if chain.get("hook") != "forward" or key[:2] in NFT_OURS:
            continue
        if chain.get("policy") == "drop":
            why = "policy drop"
        elif any(_unconditional_drop(exprs) for exprs in chain_rules.get(key, [])):
            why = "a rule that drops every packet"
        else:
            continue
        found.append({"family": key[0], "table": key[1], "chain": key[2], "why": why,
                      "iptables": key[:2] in (("ip", "filter"), ("ip6", "filter")) and key[2] == "FORWARD"})
    return found


def iptables_forward_blockers(saved, family=IPV4):
    """The iptables (ip6tables) FORWARD chain, when it drops by policy or by a catch-all rule."""
    if saved is None:
        return []
    catch_all = ("-j DROP", "-j REJECT")
    if saved["policies"].get("FORWARD") == "DROP":
        why = "policy DROP"
    elif any(chain == "FORWARD" and (spec in catch_all or spec.startswith("-j REJECT "))
             for chain, spec in saved["rules"]):
        why = "a rule that drops every packet"
    else:
        return []
    return [{"family": family.nft, "table": "filter", "chain": "FORWARD", "why": why, "iptables": True}]


def _blocked_families(blocker, families):
    """The families (of those given) whose packets a chain of blocker's nft family sees."""
    own = dict((f.nft, f) for f in FAMILIES)
    if blocker["family"] in own:
        return [f for f in families if f is own[blocker["family"]]]
    return list(families)


def forward_warnings(want, backend, blockers):
    """Warnings for forward chains that may drop pod traffic despite our accept."""
    if want["state"] != "present" or not want["forward"]:
        return []
    warnings = []
    for blocker in blockers:
        families = _blocked_families(blocker, wanted_families(want))
        if not families or (blocker["iptables"] and backend == IPTABLES):
            # No pod traffic of that family, or our jump at the top of FORWARD accepts it first.
            continue
        source = ", ".join(n for f in families for n in of_family(f, want["source"]))
        if blocker["iptables"]:
            tool = IPV6.iptables if blocker["family"] == IPV6.nft else IPV4.iptables
            where = "the %s FORWARD chain (table %s %s)" % (tool, blocker["family"], blocker["table"])
            hint = ("use backend=iptables (podnet then accepts pod traffic at the top of FORWARD) "
                    "or accept traffic from/to %s there" % source)
        else:
            where = "nftables chain %s in table %s %s" % (
                blocker["chain"], blocker["family"], blocker["table"])
            hint = "accept traffic from/to %s in that chain" % source
        warnings.append(
            "forward: %s hooks forwarding with %s; an accept in podnet's own chain does not "
            "override a drop in another table, so pod traffic routed through this node may be "
            "dropped there: %s." % (where, blocker["why"], hint))
    return warnings


# ---------------------------------------------------------------------- plan
def _unavailable(tool, info):
    if not info.get("path"):
        return "the %s command was not found on the node" % tool
    return "%s does not work on the node: %s" % (tool, info.get("error") or "unknown error")


def _iptables_tools(family):
    return "%s-save/%s-restore" % (family.iptables, family.iptables)


def _iptables_problems(want, current):
    """Why the iptables backend cannot hold the wanted families' rules: [(family, text)]."""
    return [(f, _unavailable(_iptables_tools(f), iptables_info(current, f)))
            for f in wanted_families(want) or [IPV4] if not iptables_info(current, f)["works"]]


def _for_source(family, want):
    if family is IPV4:
        return ""
    return " (needed for the %s networks in source: %s)" % (family.label, ", ".join(of_family(family, want["source"])))


def holders(current):
    """The backends that hold rules of ours, in any family."""
    found = []
    if any(nft_current_rules(current, f) is not None for f in FAMILIES):
        found.append(NFTABLES)
    if any(iptables_current_rules(current, f) for f in FAMILIES):
        found.append(IPTABLES)
    return found


def resolve_backend(want, current):
    """The backend to use, by the rule documented for backend=auto."""
    nft = current["nft"]
    requested = want["backend"]
    absent = want["state"] == "absent"
    usable = {NFTABLES: nft["works"], IPTABLES: not _iptables_problems(want, current)}
    if requested == NFTABLES:
        if not nft["works"] and not absent:
            raise ValidationError("backend", requested, "was chosen but " + _unavailable("nft", nft))
        return requested
    if requested == IPTABLES:
        problems = [] if absent else _iptables_problems(want, current)
        if problems:
            family, text = problems[0]
            raise ValidationError("backend", requested, "was chosen but %s%s" % (text, _for_source(family, want)))
        return requested
    if absent:
        found = holders(current)
        return found[0] if found else next((b for b in (NFTABLES, IPTABLES) if usable[b]), None)
    for backend in holders(current) + [NFTABLES, IPTABLES]:
        if usable[backend]:
            return backend
    texts = [_unavailable("nft", nft)] + ["%s%s" % (text, _for_source(f, want))
                                          for f, text in _iptables_problems(want, current)]
    raise ValidationError(
        "backend", requested,
        "found no usable NAT tool: %s; install nftables or iptables" % ", and ".join(texts))


def _iptables_table_action(plan, table, state, specs, family=IPV4):
    """Add at most one iptables-restore action that makes one table of one family right.

    specs: the rules our chain must hold, or None when the chain must go.
    One iptables-restore --noflush per table: declaring our chain flushes
    only that chain, and the table is committed as a whole.
    """
    chain, hook = IPT_CHAINS[table]
    name = "%s chain %s %s" % (family.iptables, table, chain)
    lines = []
    if specs is None:
        if not state["exists"]:
            return
        lines += ["-D %s %s" % (from_chain, spec) for from_chain, spec in state["jumps"]]
        lines += [":%s - [0:0]" % chain, "-X %s" % chain]
        text = "delete %s" % name
        if state["jumps"]:
            text += " and %d jump(s) to it" % len(state["jumps"])
    else:
        parts = []
        exact = (hook, "-j %s" % chain)
        extra = list(state["jumps"])
        kept = exact in extra
        if kept:
            extra.remove(exact)
        if extra:
            lines += ["-D %s %s" % (from_chain, spec) for from_chain, spec in extra]
            parts.append("delete %d extra jump(s) to %s" % (len(extra), name))
        if not state["exists"] or state["rules"] != specs:
            lines.append(":%s - [0:0]" % chain)
            lines += ["-A %s %s" % (chain, spec) for spec in specs]
            parts.append("%s %s (%d rules)" % (
                "set the rules of" if state["exists"] else "create", name, len(specs)))
        if not kept:
            lines.append("-I %s 1 -j %s" % (hook, chain))
            parts.append("insert a jump to %s at the top of %s" % (chain, hook))
        if not lines:
            return
        text = ", ".join(parts)
    data = "*%s\n%s\nCOMMIT\n" % (table, "\n".join(lines))
    plan.add(Op.IPTABLES_RESTORE, None, table, input=data, tool=family.iptables + "-restore", text=text)


def _plan_nft(result, want, current, family, use):
    """Make our nft table of one family what want says (use: nftables is the backend)."""
    ours = nft_current_rules(current, family)
    wanted = nft_rules(want, family) if use else []
    ref = family.table_ref
    if wanted and ours != wanted:
        result.add(Op.NFT_REPLACE, None, ref, script=nft_script(wanted, ref),
                   text="%s nftables table %s (%d rules)" % (
                       "create" if ours is None else "replace", ref,
                       sum(1 for r in wanted if r.startswith("add rule"))))
    elif not wanted and ours is not None:
        result.add(Op.NFT_DELETE, None, ref, nft_family=family.nft, table=NFT_TABLE,
                   text="delete nftables table %s" % ref)


def _plan_iptables(result, want, current, family, use):
    """Make our chains of one family what want says (use: iptables is the backend)."""
    specs = iptables_chain_specs(want, family) if use else {"nat": None, "filter": None}
    tables = iptables_info(current, family)["tables"]
    for table in IPT_TABLES:
        _iptables_table_action(result, table, iptables_table_state(table, tables.get(table)),
                               specs[table], family)


def find_foreign(want, current):
    """Every foreign masquerade of pod-to-pod traffic: [(family, kind, found)].

    kind 'iptables': found is an iptables -S spec of that family's nat POSTROUTING;
    kind 'nft': found is a dict of nft_foreign_masquerades.
    """
    result = []
    for family in wanted_families(want):
        saved = iptables_info(current, family)["tables"].get("nat")
        result += [(family, "iptables", spec) for spec in foreign_masquerades(want, saved, family)]
        result += [(family, "nft", found) for found in nft_foreign_masquerades(
            want, family, current["nft"].get("nat_rules") or {})]
    return result


def _foreign_text(kind, found):
    if kind == "iptables":
        return found
    return "%s (table %s %s, chain %s, handle %s)" % (
        found["rule"], found["family"], found["table"], found["chain"], found["handle"])


def _foreign_refusal(want, family, kind, found):
    """(path, value, message) of a foreign rule: source networks of its family."""
    message = (foreign_message(found, want, family) if kind == "iptables"
               else nft_foreign_message(found, want, family))
    return "source", ", ".join(of_family(family, want["source"])), message


def _plan_foreign_removal(result, foreign):
    """One deletion per iptables tool, one nft transaction for native rules."""
    for family in FAMILIES:
        specs = [found for f, kind, found in foreign if f is family and kind == "iptables"]
        if specs:
            data = "*nat\n%s\nCOMMIT\n" % "\n".join("-D POSTROUTING %s" % spec for spec in specs)
            result.add(Op.IPTABLES_RESTORE, None, "nat", input=data, tool=family.iptables + "-restore",
                       text="delete %d foreign rule(s) from %s nat POSTROUTING: %s"
                       % (len(specs), family.iptables, "; ".join(specs)))
    rules = []
    for _family, kind, found in foreign:
        if kind == "nft" and found not in rules:
            rules.append(found)
    if rules:
        script = "".join("delete rule %s %s %s handle %s\n" % (r["family"], r["table"], r["chain"], r["handle"])
                         for r in rules)
        result.add(Op.NFT_REPLACE, None, "foreign", script=script,
                   text="delete %d foreign rule(s) from nftables nat postrouting chains: %s"
                   % (len(rules), "; ".join(_foreign_text("nft", r) for r in rules)))


def plan(want, current, assume_missing=False):  # pylint: disable=unused-argument
    """want + current -> Plan (details: backend, rules). Raises ValidationError before anything changes."""
    backend = resolve_backend(want, current)
    present = want["state"] == "present"
    families = wanted_families(want)
    if IPV6 in families and current.get("ipv6") is False:
        raise ValidationError("source", ", ".join(of_family(IPV6, want["source"])),
                              "holds IPv6 networks but IPv6 is disabled on the node (no %s)" % IPV6.sysctl_path)
    foreign = find_foreign(want, current)
    if foreign and want.get("foreign", "fail") == "fail":
        raise ConflictError(*_foreign_refusal(want, *foreign[0]))

    held = holders(current)
    before = {"backend": "+".join(held) or None,
              "rules": [rule for name in held for rule in current_rules(name, current)]}
    wanted_by_family = desired_rules_by_family(backend, want)
    wanted = flat_rules(backend, wanted_by_family)
    after = {"backend": backend if present else None, "rules": list(wanted)}
    forwarding = [f for f in families if want["ip_forward"]]
    for family in forwarding:
        before[family.forwarding] = current.get(family.forwarding)
        after[family.forwarding] = 1
    result = Plan(before, after)

    # The backend in use first, so the new rules are there before old ones go; IPv4, then IPv6.
    order = [NFTABLES, IPTABLES] if backend != IPTABLES else [IPTABLES, NFTABLES]
    for name in order:
        for family in FAMILIES:
            (_plan_nft if name == NFTABLES else _plan_iptables)(
                result, want, current, family, present and name == backend)

    if foreign and want.get("foreign") == "remove":
        before["foreign"] = [_foreign_text(kind, found) for _f, kind, found in foreign]
        after["foreign"] = []
        _plan_foreign_removal(result, foreign)

    for family in forwarding:
        if current.get(family.forwarding) != 1:
            result.add(Op.SYSCTL, None, family.sysctl, path=family.sysctl_path, value="1",
                       text="set %s = 1" % family.sysctl)
    result.warnings = forward_warnings(want, backend, current.get("forward_blockers", []))
    if foreign and want.get("foreign") == "warn":
        result.warnings += ["%s: %s %s" % _foreign_refusal(want, family, kind, found)
                            for family, kind, found in foreign]
    result.details = {"backend": backend, "rules": wanted, "rules_by_family": wanted_by_family,
                      "sysctls": dict((f.sysctl, 1) for f in forwarding)}
    return result
