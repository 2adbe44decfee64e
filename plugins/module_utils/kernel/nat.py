# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The NAT tools of the node: nft, iptables-save/-restore, ip6tables-save/-restore and the forwarding sysctls.

``Session`` reads what masquerade needs (``core.plan.nat`` plans from it) and
applies NAT actions, one handler per operation. Commands and files go through
a ``Runner``: the module's (``module.run_command``, so Ansible's environment
rules apply), or a fake in unit tests.
"""

from __future__ import annotations

import os

from ansible_collections.podnet.mesh.plugins.module_utils.core.describe import describe
from ansible_collections.podnet.mesh.plugins.module_utils.core.errors import ToolError
from ansible_collections.podnet.mesh.plugins.module_utils.core import model
from ansible_collections.podnet.mesh.plugins.module_utils.core.model import Op
from ansible_collections.podnet.mesh.plugins.module_utils.core.plan.nat import (
    FAMILIES, IPT_TABLES, IPT_WAIT, IPV4, IPV6, NFT_OURS, NFT_TABLE, SBIN_DIRS, nft_items, iptables_forward_blockers,
    nft_forward_blockers, nft_nat_chains, nft_table_rules, of_family, parse_iptables_save, parse_nft_chains,
    parse_nft_tables, wanted_families)


# -------------------------------------------------------------------- runner
class Runner:
    """Commands and files of the node, through the AnsibleModule."""

    def __init__(self, module):
        self.module = module

    def which(self, name):
        return self.module.get_bin_path(name, opt_dirs=SBIN_DIRS)

    def run(self, argv, data=None):
        return self.module.run_command(argv, data=data, environ_update={"LC_ALL": "C"})

    @staticmethod
    def realpath(path):
        return os.path.realpath(path)

    @staticmethod
    def read_file(path):
        """File content, or None when the file does not exist."""
        try:
            with open(path) as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    @staticmethod
    def write_file(path, text):
        with open(path, "w") as handle:
            handle.write(text)


# ------------------------------------------------------------------- session
def _first_line(text):
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


class ToolSession(model.Session):
    """A session whose reads and changes go through one Runner (commands, files): nothing to close."""

    def __init__(self, runner):
        self.runner = runner
        self.applied = []

    def close(self):
        pass


class Session(ToolSession):
    """Reads the node's NAT state and applies NAT actions with one Runner."""

    # ---------------------------------------------------------------- reads
    def _read(self, argv, what):
        rc, out, err = self.runner.run(argv)
        if rc != 0:
            raise ToolError("cannot read %s: %s exited with %d: %s"
                            % (what, " ".join(argv), rc, (err or out).strip()))
        return out

    def _read_nft(self, want):
        info = {"path": self.runner.which("nft"), "works": False, "error": None,
                "tables": set(), "chains": [], "nat_rules": {}}
        for family in FAMILIES:
            info[family.ours] = None
        if not info["path"]:
            return info
        nft = info["path"]
        rc, out, err = self.runner.run([nft, "-j", "list", "tables"])
        if rc != 0:
            info["error"] = _first_line(err or out) or "nft -j list tables exited with %d" % rc
            return info
        try:
            info["tables"] = parse_nft_tables(out)
        except (ToolError, KeyError, TypeError) as exc:
            info["error"] = "nft has no usable JSON output (%s)" % exc
            return info
        info["works"] = True
        for family in FAMILIES:
            if (family.nft, NFT_TABLE) in info["tables"]:
                info[family.ours] = nft_table_rules(self._read(
                    [nft, "-j", "list", "table", family.nft, NFT_TABLE],
                    "nftables table %s" % family.table_ref), family)
        present = want["state"] == "present"
        if present and (want["forward"] or want["exempt"]):
            info["chains"] = parse_nft_chains(self._read([nft, "-j", "list", "chains"],
                                                         "the nftables chains"))
        return info

    def _chain_rules(self, nft, key):
        """The rules (nft JSON dicts) of one chain."""
        out = self._read([nft["path"], "-j", "list", "chain"] + list(key), "nftables chain %s %s %s" % key)
        return [item["rule"] for item in nft_items(out, "nft chain") if "rule" in item]

    def _nft_blockers(self, nft):
        rules = {}
        for chain in nft["chains"]:
            key = (chain.get("family"), chain.get("table"), chain.get("name"))
            if (chain.get("hook") != "forward" or chain.get("policy") == "drop"
                    or key[:2] in NFT_OURS):
                continue
            rules[key] = [rule.get("expr", []) for rule in self._chain_rules(nft, key)]
        return nft_forward_blockers(nft["chains"], rules)

    def _nft_nat_rules(self, want, nft, iptables):
        """Rules of other tools' nat postrouting chains, for the families with source and exempt
        networks; tables that iptables-nft's save read already are left to it."""
        families = [f for f in wanted_families(want) if of_family(f, want["exempt"])]
        if not families:
            return {}
        skip = [(f.nft, "nat") for f in FAMILIES
                if iptables[f.name]["variant"] == "nf_tables" and "nat" in iptables[f.name]["tables"]]
        seen = [f.nft for f in families] + ["inet"]
        return dict((key, self._chain_rules(nft, key)) for key in nft_nat_chains(nft["chains"], skip)
                    if key[0] in seen)

    def _variant(self, path):
        name = os.path.basename(self.runner.realpath(path))
        if "nft" in name:
            return "nf_tables"
        if "legacy" in name:
            return "legacy"
        rc, out, _err = self.runner.run([path, "-V"])
        return "nf_tables" if rc == 0 and "nf_tables" in out else "legacy"

    def _read_iptables(self, nft, family=IPV4):
        tool = family.iptables
        info = {"save": self.runner.which(tool + "-save"),
                "restore": self.runner.which(tool + "-restore"),
                "works": False, "error": None, "variant": None, "tables": {}}
        info["path"] = info["save"] and info["restore"]
        if not info["path"]:
            return info
        info["variant"] = self._variant(info["save"])
        legacy_tables = None
        if info["variant"] == "legacy":
            legacy_tables = (self.runner.read_file(family.legacy_tables) or "").split()
        for table in IPT_TABLES:
            # Skip tables that do not exist: legacy iptables-save would create them.
            if legacy_tables is not None and table not in legacy_tables:
                continue
            if legacy_tables is None and nft["works"] and (family.nft, table) not in nft["tables"]:
                continue
            rc, out, err = self.runner.run([info["save"], "-t", table])
            if rc != 0:
                info["error"] = _first_line(err or out) or "%s-save exited with %d" % (tool, rc)
                return info
            info["tables"][table] = parse_iptables_save(out)
        info["works"] = True
        return info

    def _read_forwarding(self, family):
        value = self.runner.read_file(family.sysctl_path)
        value = (value or "").strip()
        return int(value) if value.isdigit() else None

    def read(self, want):
        nft = self._read_nft(want)
        iptables = dict((f.name, self._read_iptables(nft, f)) for f in FAMILIES)
        current = {"nft": nft, "forward_blockers": []}
        for family in FAMILIES:
            current[family.iptables] = iptables[family.name]
            current[family.forwarding] = None
        families = wanted_families(want)
        if want["ip_forward"]:
            for family in families:
                current[family.forwarding] = self._read_forwarding(family)
        if IPV6 in families:
            # Without IPv6 in the kernel (ipv6.disable=1) there is no IPv6 sysctl directory.
            current["ipv6"] = self.runner.read_file(IPV6.sysctl_path) is not None
        if nft["works"]:
            nft["nat_rules"] = self._nft_nat_rules(want, nft, iptables)
        if want["state"] == "present" and want["forward"]:
            if nft["works"]:
                current["forward_blockers"] += self._nft_blockers(nft)
            for family in families:
                ipt = iptables[family.name]
                if ipt["works"] and (ipt["variant"] == "legacy" or not nft["works"]):
                    current["forward_blockers"] += iptables_forward_blockers(ipt["tables"].get("filter"), family)
        return current

    # --------------------------------------------------------------- writes
    def apply(self, actions):
        handlers = {Op.NFT_REPLACE: self._nft_replace, Op.NFT_DELETE: self._nft_delete,
                    Op.IPTABLES_RESTORE: self._iptables_restore, Op.SYSCTL: self._sysctl}
        for action in actions:
            handlers[action.op](action)
            self.applied.append(action)

    def _write(self, action, argv, data=None):
        rc, out, err = self.runner.run(argv, data=data)
        if rc != 0:
            raise ToolError("cannot %s: %s exited with %d: %s" % (
                describe(action), " ".join(argv), rc, (err or out).strip()), code=rc)

    def _nft_replace(self, action):
        self._write(action, [self.runner.which("nft"), "-f", "-"], action.args["script"])

    def _nft_delete(self, action):
        self._write(action, [self.runner.which("nft"), "delete", "table",
                             action.args.get("nft_family", IPV4.nft), action.args.get("table", NFT_TABLE)])

    def _iptables_restore(self, action):
        self._write(action, [self.runner.which(action.args.get("tool", "iptables-restore")), "-w", IPT_WAIT,
                             "--noflush"], action.args["input"])

    def _sysctl(self, action):
        try:
            self.runner.write_file(action.args["path"], action.args["value"] + "\n")
        except OSError as exc:
            raise ToolError("cannot %s: %s" % (describe(action), exc), code=exc.errno)
