# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pod masquerade with nftables or iptables.

Layout, from pure to impure:

* ``validate``: module parameters -> ``want`` (raises ValidationError).
* ``nft_rules`` / ``iptables_rules``: ``want`` -> the rules we own, as
  command lines (nft commands; ``iptables -S`` style lines with ``-t``).
* ``parse_*``: command output -> plain data; ``nft_table_rules`` and
  ``iptables_current_rules`` turn what is on the node back into the same
  command lines, so current and desired compare as lists of strings.
* ``plan``: ``want`` + current state -> a Plan of actions (each with its
  ``text``); its details hold the backend and the predicted rules, its
  warnings what may still block pod traffic.
The node side (running nft, iptables-save/-restore, the sysctl) is
``kernel.nat``; this file is pure and unit-tested without root.

What is ours: the nftables table ``ip podnet``; the iptables chains
``PODNET-MASQ`` (nat) and ``PODNET-FORWARD`` (filter) and the rules that jump
to them. Nothing else is read for changes, flushed or reordered.
"""

from __future__ import annotations

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
# Legacy (x_tables) tables instantiated in this network namespace.
LEGACY_TABLES_PATH = "/proc/net/ip_tables_names"
SBIN_DIRS = ["/usr/sbin", "/sbin", "/usr/local/sbin"]


# ------------------------------------------------------------------ validate
def _ipv4_networks(values, path, required):
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
        if ipaddress.ip_network(net).version != 4:
            raise ValidationError(
                item_path, value,
                "is an IPv6 network; masquerade manages IPv4 NAT only (nftables table %s, "
                "iptables)" % NFT_TABLE_REF)
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
        "source": _ipv4_networks(params.get("source"), "source", True),
        "exempt": _ipv4_networks(params.get("exempt"), "exempt", False),
        "out_interface": out_interface,
        "backend": v.choice(params.get("backend") or "auto", BACKENDS, "backend"),
        "forward": bool(params.get("forward", True)),
        "ip_forward": bool(params.get("ip_forward", True)),
        "state": v.choice(params.get("state") or "present", ("present", "absent"), "state"),
        "foreign": v.choice(params.get("foreign") or "fail", FOREIGN, "foreign"),
    }


# ------------------------------------------------------------ desired rules
def _nft_addr(net):
    """A network as nft prints it: a /32 is a plain address."""
    network = ipaddress.ip_network(net)
    return str(network.network_address) if network.prefixlen == 32 else str(network)


def nft_chain_line(name, kind, hook, prio, policy):
    return "add chain %s %s { type %s hook %s priority %d; policy %s; }" % (
        NFT_TABLE_REF, name, kind, hook, prio, policy)


def nft_rules(want):
    """The complete content of table ip podnet, as nft commands in order."""
    rule = "add rule %s %%s %%s" % NFT_TABLE_REF
    lines = ["add table %s" % NFT_TABLE_REF,
             nft_chain_line(NFT_POSTROUTING, "nat", "postrouting", NFT_PRIO_SRCNAT, "accept")]
    for net in want["exempt"]:
        lines.append(rule % (NFT_POSTROUTING, "ip daddr %s return" % _nft_addr(net)))
    oif = ' oifname "%s"' % want["out_interface"] if want["out_interface"] else ""
    for net in want["source"]:
        lines.append(rule % (NFT_POSTROUTING, "ip saddr %s%s masquerade" % (_nft_addr(net), oif)))
    if want["forward"]:
        lines.append(nft_chain_line(NFT_FORWARD, "filter", "forward", NFT_PRIO_FILTER, "accept"))
        for net in want["source"]:
            lines.append(rule % (NFT_FORWARD, "ip saddr %s accept" % _nft_addr(net)))
        for net in want["source"]:
            lines.append(rule % (NFT_FORWARD, "ip daddr %s accept" % _nft_addr(net)))
    return lines


def nft_script(rules):
    """One nft -f transaction: make sure the table exists, delete it, define it anew.

    The kernel applies the whole file or nothing, so there is no moment
    without our rules and never a duplicate.
    """
    return "\n".join(["table %s {}" % NFT_TABLE_REF, "delete table %s" % NFT_TABLE_REF]
                     + list(rules)) + "\n"


def _ipt_match(flag, net):
    # iptables prints no match at all for 0.0.0.0/0.
    return [] if net.endswith("/0") else [flag, net]


def iptables_chain_specs(want):
    """table -> the rule specs of our chain in that table (None: chain not wanted)."""
    masq = []
    for net in want["exempt"]:
        masq.append(" ".join(_ipt_match("-d", net) + ["-j", "RETURN"]))
    oif = ["-o", want["out_interface"]] if want["out_interface"] else []
    for net in want["source"]:
        masq.append(" ".join(_ipt_match("-s", net) + oif + ["-j", "MASQUERADE"]))
    forward = None
    if want["forward"]:
        forward = [" ".join(_ipt_match("-s", net) + ["-j", "ACCEPT"]) for net in want["source"]]
        forward += [" ".join(_ipt_match("-d", net) + ["-j", "ACCEPT"]) for net in want["source"]]
    return {"nat": masq, "filter": forward}


def _ipt_lines(table, chain_rules, jumps):
    """Our objects in one table as iptables -S lines prefixed with -t TABLE."""
    chain, _hook = IPT_CHAINS[table]
    lines = ["-t %s -N %s" % (table, chain)]
    lines += ["-t %s -A %s %s" % (table, chain, spec) for spec in chain_rules]
    lines += ["-t %s -A %s %s" % (table, from_chain, spec) for from_chain, spec in jumps]
    return lines


def iptables_rules(want):
    specs = iptables_chain_specs(want)
    lines = []
    for table in IPT_TABLES:
        if specs[table] is not None:
            chain, hook = IPT_CHAINS[table]
            lines += _ipt_lines(table, specs[table], [(hook, "-j %s" % chain)])
    return lines


def desired_rules(backend, want):
    if want["state"] == "absent":
        return []
    return nft_rules(want) if backend == NFTABLES else iptables_rules(want)


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
    return json.dumps(expr, sort_keys=True)


def nft_table_rules(text):
    """nft -j list table ip podnet -> our canonical command lines (see nft_rules)."""
    items = nft_items(text, "nftables table %s" % NFT_TABLE_REF)
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
                    others.append("add %s %s %s" % (kind, NFT_TABLE_REF, item[kind].get("name")))
    lines = ["add table %s" % NFT_TABLE_REF]
    for chain in chains:
        if chain.get("hook"):
            lines.append(nft_chain_line(chain["name"], chain.get("type"), chain["hook"],
                                        chain.get("prio", 0), chain.get("policy", "accept")))
        else:
            lines.append("add chain %s %s" % (NFT_TABLE_REF, chain["name"]))
        for rule in rules.pop(chain["name"], []):
            lines.append("add rule %s %s %s" % (NFT_TABLE_REF, chain["name"], rule))
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


def iptables_current_rules(current):
    lines = []
    for table in IPT_TABLES:
        state = iptables_table_state(table, current["iptables"]["tables"].get(table))
        if state["exists"]:
            lines += _ipt_lines(table, state["rules"], state["jumps"])
    return lines


def current_rules(backend, current):
    if backend == NFTABLES:
        return list(current["nft"]["ours"] or [])
    if backend == IPTABLES:
        return iptables_current_rules(current)
    return []


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


def _covers(net, nets):
    """net is None (any) or holds every network of nets."""
    return net is None or all(n.version == net.version and n.subnet_of(net) for n in nets)


def foreign_masquerades(want, saved):
    """Rules of another tool in iptables nat POSTROUTING that masquerade traffic from
    want's source to its exempt networks, as iptables -S specs.

    Our chain's RETURN for exempt traffic returns to POSTROUTING, so a later
    foreign MASQUERADE still NATs pod-to-pod traffic. A foreign rule before it that
    RETURNs or ACCEPTs all such traffic shadows it.
    """
    if saved is None or want["state"] != "present" or not want["exempt"]:
        return []
    sources = [ipaddress.ip_network(n) for n in want["source"]]
    exempt = [ipaddress.ip_network(n) for n in want["exempt"]]
    found = []
    for chain, spec in saved["rules"]:
        if chain != "POSTROUTING" or _target(spec) in (IPT_MASQ, IPT_FORWARD):
            continue
        rule = _simple_rule(spec)
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
            found.append(spec)
    return found


def foreign_message(spec, want):
    return ("is masqueraded to the exempt networks %s too, by a nat POSTROUTING rule that is not podnet's: '-A "
            "POSTROUTING %s'; pods on other nodes would see this node's address instead of the sender's pod IP. "
            "Remove that rule (iptables -t nat -D POSTROUTING %s), or set foreign=remove to let this module "
            "delete it (role variable podnet_foreign_masquerade: remove)"
            % (", ".join(want["exempt"]), spec, spec))


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
    """Forward base chains of other tables that drop: [{family, table, chain, why}].

    chains: parse_nft_chains output; chain_rules: (family, table, chain) -> list of
    rule expression lists (for the chains whose policy is accept).
    """
    found = []
    for chain in chains:
        key = (chain.get("family"), chain.get("table"), chain.get("name"))
        if chain.get("hook") != "forward" or key[:2] == (NFT_FAMILY, NFT_TABLE):
            continue
        if chain.get("policy") == "drop":
            why = "policy drop"
        elif any(_unconditional_drop(exprs) for exprs in chain_rules.get(key, [])):
            why = "a rule that drops every packet"
        else:
            continue
        found.append({"family": key[0], "table": key[1], "chain": key[2], "why": why,
                      "iptables": key[:2] == ("ip", "filter") and key[2] == "FORWARD"})
    return found


def iptables_forward_blockers(saved):
    """The iptables FORWARD chain, when it drops by policy or by a catch-all rule."""
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
    return [{"family": "ip", "table": "filter", "chain": "FORWARD", "why": why, "iptables": True}]


def forward_warnings(want, backend, blockers):
    """Warnings for forward chains that may drop pod traffic despite our accept."""
    if want["state"] != "present" or not want["forward"]:
        return []
    warnings = []
    for blocker in blockers:
        if blocker["iptables"] and backend == IPTABLES:
            # Our jump at the top of FORWARD accepts pod traffic first.
            continue
        if blocker["iptables"]:
            where = "the iptables FORWARD chain (table %s %s)" % (blocker["family"], blocker["table"])
            hint = ("use backend=iptables (podnet then accepts pod traffic at the top of FORWARD) "
                    "or accept traffic from/to %s there" % ", ".join(want["source"]))
        else:
            where = "nftables chain %s in table %s %s" % (
                blocker["chain"], blocker["family"], blocker["table"])
            hint = "accept traffic from/to %s in that chain" % ", ".join(want["source"])
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


def resolve_backend(want, current):
    """The backend to use, by the rule documented for backend=auto."""
    nft, ipt = current["nft"], current["iptables"]
    requested = want["backend"]
    absent = want["state"] == "absent"
    if requested == NFTABLES:
        if not nft["works"] and not absent:
            raise ValidationError("backend", requested, "was chosen but " + _unavailable("nft", nft))
        return requested
    if requested == IPTABLES:
        if not ipt["works"] and not absent:
            raise ValidationError(
                "backend", requested,
                "was chosen but " + _unavailable("iptables-save/iptables-restore", ipt))
        return requested
    if nft["ours"] is not None:
        return NFTABLES
    if iptables_current_rules(current):
        return IPTABLES
    if nft["works"]:
        return NFTABLES
    if ipt["works"]:
        return IPTABLES
    if absent:
        return None
    raise ValidationError(
        "backend", requested,
        "found no usable NAT tool: %s, and %s; install nftables or iptables"
        % (_unavailable("nft", nft), _unavailable("iptables-save/iptables-restore", ipt)))


def _iptables_table_action(plan, table, state, specs):
    """Add at most one iptables-restore action that makes one table right.

    specs: the rules our chain must hold, or None when the chain must go.
    One iptables-restore --noflush per table: declaring our chain flushes
    only that chain, and the table is committed as a whole.
    """
    chain, hook = IPT_CHAINS[table]
    name = "iptables chain %s %s" % (table, chain)
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
    plan.add(Op.IPTABLES_RESTORE, None, table, input=data, text=text)


def plan(want, current, assume_missing=False):  # pylint: disable=unused-argument
    """want + current -> Plan (details: backend, rules). Raises ValidationError before anything changes."""
    backend = resolve_backend(want, current)
    present = want["state"] == "present"
    foreign = foreign_masquerades(want, current["iptables"]["tables"].get("nat")) if present else []
    if foreign and want.get("foreign", "fail") == "fail":
        raise ConflictError("source", ", ".join(want["source"]), foreign_message(foreign[0], want))
    nft_ours = current["nft"]["ours"]
    ipt_rules = iptables_current_rules(current)

    holders = [name for name, rules in ((NFTABLES, nft_ours), (IPTABLES, ipt_rules)) if rules]
    before = {"backend": "+".join(holders) or None, "rules": (nft_ours or []) + ipt_rules}
    wanted = desired_rules(backend, want)
    after = {"backend": backend if present else None, "rules": list(wanted)}
    manage_forwarding = present and want["ip_forward"]
    if manage_forwarding:
        before["ip_forward"] = current["ip_forward"]
        after["ip_forward"] = 1
    result = Plan(before, after)

    # The backend in use first, so the new rules are there before old ones go.
    order = [NFTABLES, IPTABLES] if backend != IPTABLES else [IPTABLES, NFTABLES]
    for name in order:
        use = present and name == backend
        if name == NFTABLES:
            if use and nft_ours != wanted:
                verb = "create" if nft_ours is None else "replace"
                result.add(Op.NFT_REPLACE, None, NFT_TABLE_REF, script=nft_script(wanted),
                           text="%s nftables table %s (%d rules)" % (
                               verb, NFT_TABLE_REF, sum(1 for r in wanted if r.startswith("add rule"))))
            elif not use and nft_ours is not None:
                result.add(Op.NFT_DELETE, None, NFT_TABLE_REF,
                           text="delete nftables table %s" % NFT_TABLE_REF)
        else:
            specs = iptables_chain_specs(want) if use else {"nat": None, "filter": None}
            for table in IPT_TABLES:
                state = iptables_table_state(table, current["iptables"]["tables"].get(table))
                _iptables_table_action(result, table, state, specs[table])

    if foreign and want.get("foreign") == "remove":
        before["foreign"], after["foreign"] = list(foreign), []
        data = "*nat\n%s\nCOMMIT\n" % "\n".join("-D POSTROUTING %s" % spec for spec in foreign)
        result.add(Op.IPTABLES_RESTORE, None, "nat", input=data,
                   text="delete %d foreign rule(s) from iptables nat POSTROUTING: %s"
                   % (len(foreign), "; ".join(foreign)))

    if manage_forwarding and current["ip_forward"] != 1:
        result.add(Op.SYSCTL, None, IP_FORWARD_KEY, path=IP_FORWARD_PATH, value="1",
                   text="set %s = 1" % IP_FORWARD_KEY)
    result.warnings = forward_warnings(want, backend, current.get("forward_blockers", []))
    if foreign and want.get("foreign") == "warn":
        result.warnings += ["source: %s %s" % (", ".join(want["source"]), foreign_message(spec, want))
                            for spec in foreign]
    result.details = {"backend": backend, "rules": wanted}
    return result
