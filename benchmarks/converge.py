# SPDX-License-Identifier: GPL-3.0-or-later
"""make bench, part 1: converge of the lab, site.yml beside the classic playbook and the ping floor.

Bench runs the playbooks against freshly built labs and records each run (time, task and module
counts, memory); the functions below turn those records into the statistics of the report.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import statistics
import subprocess
import time

from harness import BIN, GNU_TIME, HERE, LAB_ROOT, NODE_PYTHON, ROOT, TreeSampler, log, module_stats, \
    read_modlog, summary

# The runs compared (the "side" of a record) and their labels in the report.
# routed_*: site.yml on the routed lab (inventories/lab-routed: the nodes on several subnets joined by the
# lab router, podnet_backend auto: host-gw inside a subnet, VXLAN across), beside the flat lab's site_*.
SIDES = ("site_cold", "site_warm", "routed_cold", "routed_warm", "floor", "classic_cold", "classic_warm")
LABELS = {"site_cold": "site.yml cold", "site_warm": "site.yml warm", "floor": "ping floor",
          "classic_cold": "classic cold", "classic_warm": "classic warm",
          "routed_cold": "routed cold", "routed_warm": "routed warm"}

# Ratios in the report: numerator, denominator and the target's limit (None: no target).
PAIRS = (("site_warm", "floor", 1.2), ("site_cold", "floor", 1.5), ("site_cold", "classic_cold", 1.0),
         ("site_warm", "classic_warm", None), ("routed_cold", "site_cold", None),
         ("routed_warm", "site_warm", None))


# --- the runs ---------------------------------------------------------------------------------------

class Bench:
    def __init__(self, work, quick):
        self.work = work
        self.quick = quick
        self.collections = os.path.join(work, "collections")
        self.collection = os.path.join(self.collections, "ansible_collections", "podnet", "mesh")
        self.logs = os.path.join(work, "logs")
        os.makedirs(self.logs)
        self.tag = "pntb" + secrets.token_hex(2)
        self.labs = 0
        self.lab_name = None
        self.runs = []
        self.floor_count = None
        self.inventory = "lab"  # the lab inventory of the collection the playbooks run with
        self.subnets = None     # with inventory lab-routed: PODNET_LAB_SUBNETS

    # A private copy of the collection (tracked and untracked files of the checkout), so that
    # edits made while the benchmark runs do not mix two versions into one result.
    def copy_collection(self):
        subprocess.run([os.path.join(ROOT, "tests", "utils", "build-collection.sh"), self.collection],
                       cwd=ROOT, check=True, capture_output=True)
        shutil.copy(os.path.join(HERE, "ansible.cfg"), os.path.join(self.work, "ansible.cfg"))
        shutil.copytree(os.path.join(HERE, "callback_plugins"), os.path.join(self.work, "callback_plugins"))
        shutil.copy(os.path.join(HERE, "classic.yml"), os.path.join(self.work, "classic.yml"))
        self.timed = os.access(GNU_TIME, os.X_OK)

    def wrapper(self, modlog):
        """The node's Python under GNU time, which appends "start elapsed maxrss user sys" to modlog.

        The same wrapper runs every module process of every playbook compared (the connection
        gives a node a clean environment, so the log's path is written into the script).
        """
        path = modlog[:-4] + ".python3"
        with open(path, "w") as handle:
            handle.write('#!/bin/bash\nexec %s -a -o %s -f "$EPOCHREALTIME %%e %%M %%U %%S" %s "$@"\n'
                         % (GNU_TIME, modlog, NODE_PYTHON))
        os.chmod(path, 0o755)
        return path

    def env(self, nodes):
        return dict(os.environ, ANSIBLE_CONFIG=os.path.join(self.work, "ansible.cfg"),
                    ANSIBLE_COLLECTIONS_PATH=self.collections, PODNET_LAB_NODES=str(nodes),
                    ANSIBLE_LOCAL_TEMP=os.path.join(self.work, "tmp"), ANSIBLE_NOCOLOR="1",
                    ANSIBLE_FORCE_COLOR="0", PYTHONDONTWRITEBYTECODE="1", **(
                        {"PODNET_LAB_SUBNETS": str(self.subnets)} if self.subnets else {}))

    def routed(self, subnets):
        """Run what follows on the routed lab of that many subnets (None: the flat lab)."""
        self.inventory, self.subnets = ("lab-routed", subnets) if subnets else ("lab", None)

    def playbook(self, playbook, nodes, label, extra=(), measured=True):
        """Run a playbook against the current lab; return its record (time, counts, memory)."""
        logfile = os.path.join(self.logs, "%03d-%s.log" % (len(self.runs), label))
        timer = logfile[:-4] + ".timer.json"
        modlog = logfile[:-4] + ".modules.txt"
        env = self.env(nodes)
        env.update(PODNET_BENCH_TIMER=timer, PODNET_BENCH_MODLOG=modlog)
        argv = [os.path.join(BIN, "ansible-playbook"), "-i", os.path.join(self.collection, "inventories", self.inventory),
                "-e", "podnet_lab_name=%s" % self.lab_name]
        if measured and self.timed:
            argv += ["-e", "ansible_python_interpreter=%s" % self.wrapper(modlog)]
        argv += list(extra) + [playbook]
        with open(logfile, "w") as out:
            start = time.perf_counter()
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.collection)
            sampler = TreeSampler(proc.pid)
            if measured:
                sampler.start()
            dummy, status, usage = os.wait4(proc.pid, 0)
            elapsed = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            sampler.done.set()
        if proc.returncode != 0:
            with open(logfile) as handle:
                tail = handle.read()[-4000:]
            raise RuntimeError("%s (%s, %d nodes) failed, rc %d; log %s:\n%s"
                               % (os.path.basename(playbook), label, nodes, proc.returncode, logfile, tail))
        record = {"label": label, "nodes": nodes, "seconds": elapsed,
                  "cpu_seconds": usage.ru_utime + usage.ru_stime,
                  "controller_max_rss_kb": usage.ru_maxrss, "controller_pss_peak_kb": sampler.peak_kb,
                  "controller_processes": sampler.peak_procs}
        if os.path.exists(timer):
            with open(timer) as handle:
                data = json.load(handle)
            record["hosts"] = data["hosts"]
            record["tasks"] = [{"name": t["name"], "action": t["action"], "seconds": t["end"] - t["start"],
                                "items": t["items"], "changed": t["changed"]} for t in data["tasks"]]
            record["tasks_per_host"] = max(sum(h[k] for k in ("ok", "skipped", "failures"))  # ok counts changed too
                                           for h in data["hosts"].values())
            record["changed"] = sum(h["changed"] for h in data["hosts"].values())
        if os.path.exists(modlog):
            rows = read_modlog(modlog)
            record["modules"] = module_stats(rows)
            if rows and os.path.exists(timer):
                # Each module process belongs to the task whose time window holds its start.
                for task, raw in zip(record["tasks"], data["tasks"]):
                    first, last = data["epoch"] + raw["start"], data["epoch"] + raw["end"]
                    task["modules"] = module_stats([r for r in rows if first <= r[0] <= last])
        return record

    def lab_up(self, nodes):
        self.labs += 1
        self.lab_name = "%s%d" % (self.tag, self.labs)
        self.playbook(os.path.join(self.collection, "playbooks", "lab.yml"), nodes, "lab-up",
                      extra=("--tags", "lab"), measured=False)

    def lab_down(self):
        if self.lab_name is None:
            return
        name, self.lab_name = self.lab_name, None
        if os.path.exists(os.path.join(LAB_ROOT, name)):
            subprocess.run([os.path.join(BIN, "ansible"), "localhost", "-c", "local", "-i", "localhost,",
                            "-m", "podnet.mesh.lab", "-a", "name=%s state=absent" % name],
                           env=self.env(1), check=False, capture_output=True)
        if os.path.exists(os.path.join(LAB_ROOT, name)):
            log("warning: lab %s not fully removed" % name)

    def floor_playbook(self, count):
        path = os.path.join(self.work, "floor.yml")
        with open(path, "w") as handle:
            handle.write(floor_yaml(count))
        return path

    def measure(self, playbook, nodes, label, round_no):
        record = self.playbook(playbook, nodes, label)
        record.update(round=round_no, side=label)
        self.runs.append(record)
        log("  %-13s %3d nodes round %d: %7.2f s (changed %s, tasks/host %s)" % (
            label, nodes, round_no + 1, record["seconds"], record.get("changed"), record.get("tasks_per_host")))
        return record

    def cold_and_warm(self, site, nodes, label, round_no, where):
        """site.yml on fresh nodes (label_cold: every host changes), then again (label_warm: nothing
        changes); the cold run's record."""
        cold = self.measure(site, nodes, label + "_cold", round_no)
        if any(h["changed"] == 0 for h in cold["hosts"].values()):
            raise RuntimeError("site.yml on fresh nodes%s changed nothing on some host" % where)
        warm = self.measure(site, nodes, label + "_warm", round_no)
        if warm["changed"]:
            raise RuntimeError("site.yml run again%s changed %d things" % (where, warm["changed"]))
        return cold

    def converge(self, nodes, rounds, classic_warm, floor_max, verify_classic=False, routed_subnets=None):
        """Rounds of site.yml (and the floor), the classic playbook and, with routed_subnets, site.yml on the
        routed lab of that many subnets; the sides alternate which goes first."""
        site = os.path.join(self.collection, "playbooks", "site.yml")
        classic = os.path.join(self.work, "classic.yml")
        sides = ("ours", "routed", "classic") if routed_subnets else ("ours", "classic")
        for round_no in range(rounds):
            order = sides if round_no % 2 == 0 else tuple(reversed(sides))
            for side in order:
                self.routed(routed_subnets if side == "routed" else None)
                self.lab_up(nodes)
                try:
                    if side == "routed":
                        self.cold_and_warm(site, nodes, "routed", round_no, " on the routed lab")
                    elif side == "ours":
                        cold = self.cold_and_warm(site, nodes, "site", round_no, "")
                        self.floor_count = cold["tasks_per_host"]
                        if nodes <= floor_max:
                            self.measure(self.floor_playbook(self.floor_count), nodes, "floor", round_no)
                    else:
                        self.measure(classic, nodes, "classic_cold", round_no)
                        if nodes <= classic_warm:
                            warm = self.measure(classic, nodes, "classic_warm", round_no)
                            if warm["changed"]:
                                raise RuntimeError("classic.yml run again changed %d things" % warm["changed"])
                        if verify_classic and round_no == 0:
                            # Same wiring: the collection's own connectivity check passes on it.
                            self.playbook(os.path.join(self.collection, "playbooks", "verify.yml"), nodes,
                                          "classic-verify", measured=False)
                            log("  classic.yml wiring passes verify.yml")
                finally:
                    self.lab_down()
                    self.routed(None)


def floor_yaml(count):
    lines = ["---",
             "# The floor: as many tasks per host as site.yml runs, each an ansible.builtin.ping",
             "# (benchmarks/run.py writes this file with the count of the site.yml run it measured).",
             "- name: Ping floor, %d tasks per host" % count,
             "  hosts: \"{{ podnet_nodes_group | default('podnet_nodes') }}\"",
             "  gather_facts: false",
             "  tasks:"]
    for index in range(count):
        lines += ["    - name: Ping %d" % (index + 1), "      ansible.builtin.ping:"]
    return "\n".join(lines) + "\n"


# --- statistics of the runs ------------------------------------------------------------------------

def converge_stats(runs):
    stats = {}
    for run in runs:
        stats.setdefault(run["nodes"], {}).setdefault(run["side"], []).append(run)
    out = {}
    for nodes, sides in sorted(stats.items()):
        out[nodes] = {}
        for side, records in sides.items():
            entry = summary([r["seconds"] for r in records])
            entry["cpu_seconds"] = statistics.median(r["cpu_seconds"] for r in records)
            entry["tasks_per_host"] = records[0].get("tasks_per_host")
            mods = [r["modules"] for r in records if r.get("modules")]
            if mods:
                entry["module_processes"] = mods[0]["processes"]
                entry["module_cpu_seconds"] = statistics.median(m["cpu_seconds"] for m in mods)
            out[nodes][side] = entry
    return out


def pair_ratios(runs, stats, num, den):
    """Ratio of the medians, and the spread of the per-round ratios."""
    result = {}
    for nodes, sides in stats.items():
        if num not in sides or den not in sides:
            continue
        per_round = {}
        for run in runs:
            if run["nodes"] == nodes and run["side"] in (num, den):
                per_round.setdefault(run["round"], {})[run["side"]] = run["seconds"]
        paired = [r[num] / r[den] for r in per_round.values() if num in r and den in r]
        result[nodes] = {"ratio": sides[num]["median"] / sides[den]["median"],
                         "min": min(paired), "max": max(paired)}
    return result


def memory_report(runs, nodes):
    runs = [r for r in runs if r["nodes"] == nodes]
    if not runs:
        return None
    out = {"nodes": nodes, "runs": {}}
    for side in SIDES:
        records = [r for r in runs if r["side"] == side]
        if not records:
            continue
        entry = {"controller_max_rss_kb": max(r["controller_max_rss_kb"] for r in records),
                 "controller_pss_peak_kb": max(r["controller_pss_peak_kb"] for r in records)}
        mods = [r["modules"] for r in records if r.get("modules")]
        if mods:
            entry["module_max_rss_kb"] = max(m["max_rss_kb"] for m in mods)
            entry["module_processes"] = mods[0]["processes"]
        out["runs"][side] = entry
    per_module = {}
    for run in runs:
        if run["side"] in ("site_cold", "site_warm"):
            for task in run.get("tasks", ()):
                if task.get("modules"):
                    key = task["action"]
                    per_module[key] = max(per_module.get(key, 0), task["modules"]["max_rss_kb"])
    out["per_module"] = per_module
    return out
