# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The NAT tools of the node: nft, iptables-save/-restore and the ip_forward sysctl.

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
    IPT_TABLES, IPT_WAIT, IP_FORWARD_PATH, LEGACY_TABLES_PATH, NFT_FAMILY, NFT_TABLE, NFT_TABLE_REF, SBIN_DIRS,
    nft_items, iptables_forward_blockers, nft_forward_blockers, nft_table_rules, parse_iptables_save,
    parse_nft_chains, parse_nft_tables)


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
                "tables": set(), "ours": None, "chains": []}
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
        if (NFT_FAMILY, NFT_TABLE) in info["tables"]:
            info["ours"] = nft_table_rules(self._read(
                [nft, "-j", "list", "table", NFT_FAMILY, NFT_TABLE],
                "nftables table %s" % NFT_TABLE_REF))
        if want["state"] == "present" and want["forward"]:
            info["chains"] = parse_nft_chains(self._read([nft, "-j", "list", "chains"],
                                                         "the nftables chains"))
        return info

    def _nft_blockers(self, nft):
        rules = {}
        for chain in nft["chains"]:
            key = (chain.get("family"), chain.get("table"), chain.get("name"))
            if (chain.get("hook") != "forward" or chain.get("policy") == "drop"
                    or key[:2] == (NFT_FAMILY, NFT_TABLE)):
                continue
            out = self._read([nft["path"], "-j", "list", "chain"] + list(key),
                             "nftables chain %s %s %s" % key)
            rules[key] = [item["rule"].get("expr", []) for item in nft_items(out, "nft chain")
                          if "rule" in item]
        return nft_forward_blockers(nft["chains"], rules)

    def _variant(self, path):
        name = os.path.basename(self.runner.realpath(path))
        if "nft" in name:
            return "nf_tables"
        if "legacy" in name:
            return "legacy"
        rc, out, _err = self.runner.run([path, "-V"])
        return "nf_tables" if rc == 0 and "nf_tables" in out else "legacy"

    def _read_iptables(self, nft):
        info = {"save": self.runner.which("iptables-save"),
                "restore": self.runner.which("iptables-restore"),
                "works": False, "error": None, "variant": None, "tables": {}}
        info["path"] = info["save"] and info["restore"]
        if not info["path"]:
            return info
        info["variant"] = self._variant(info["save"])
        legacy_tables = None
        if info["variant"] == "legacy":
            legacy_tables = (self.runner.read_file(LEGACY_TABLES_PATH) or "").split()
        for table in IPT_TABLES:
            # Skip tables that do not exist: legacy iptables-save would create them.
            if legacy_tables is not None and table not in legacy_tables:
                continue
            if legacy_tables is None and nft["works"] and ("ip", table) not in nft["tables"]:
                continue
            rc, out, err = self.runner.run([info["save"], "-t", table])
            if rc != 0:
                info["error"] = _first_line(err or out) or "iptables-save exited with %d" % rc
                return info
            info["tables"][table] = parse_iptables_save(out)
        info["works"] = True
        return info

    def read(self, want):
        nft = self._read_nft(want)
        ipt = self._read_iptables(nft)
        current = {"nft": nft, "iptables": ipt, "ip_forward": None, "forward_blockers": []}
        if want["state"] == "present" and want["ip_forward"]:
            value = (self.runner.read_file(IP_FORWARD_PATH) or "").strip()
            current["ip_forward"] = int(value) if value.isdigit() else None
        if want["state"] == "present" and want["forward"]:
            if nft["works"]:
                current["forward_blockers"] += self._nft_blockers(nft)
            if ipt["works"] and (ipt["variant"] == "legacy" or not nft["works"]):
                current["forward_blockers"] += iptables_forward_blockers(
                    ipt["tables"].get("filter"))
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
        self._write(action, [self.runner.which("nft"), "delete", "table", NFT_FAMILY, NFT_TABLE])

    def _iptables_restore(self, action):
        self._write(action, [self.runner.which("iptables-restore"), "-w", IPT_WAIT, "--noflush"],
                    action.args["input"])

    def _sysctl(self, action):
        try:
            self.runner.write_file(action.args["path"], action.args["value"] + "\n")
        except OSError as exc:
            raise ToolError("cannot %s: %s" % (describe(action), exc), code=exc.errno)
