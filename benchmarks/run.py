# SPDX-License-Identifier: GPL-3.0-or-later
"""make bench: podnet.mesh beside the classic command-task playbook, the ping floor and the reference CNI plugins.

Run as root inside a private network namespace (the Makefile runs it under
tests/utils/netns-run.sh); nothing touches the machine's own network namespace.

1. Converge of the lab (podnet.mesh.lab, 2 pods per node) at each node count:
   ``site.yml`` cold (fresh nodes) and warm (nothing to change), beside the
   classic command-task playbook (benchmarks/classic.yml, cold and warm) and
   the floor: a playbook of as many ``ansible.builtin.ping`` tasks per host as
   the site.yml run reported (counted from its recap at run time). All run
   with benchmarks/ansible.cfg and the lab inventory (nsenter connection,
   pipelining). Per round the two sides alternate which goes first; each side
   starts from a freshly built lab and destroys it afterwards.
2. pod_route beside ``ip -batch`` (benchmarks/routes.py).
3. CNI ADD and DEL of a batch of pods beside bridge + host-local (benchmarks/cni.py).
4. Peak memory: of the controller (ansible-playbook and its forks: the largest
   process, from wait4, and the sum of their PSS, sampled) and of every module
   process on the nodes (GNU time around the node's Python).

Results go to benchmarks/results/ (QUICK mode: benchmarks/results/quick/):
bench.json (everything, with each sample), bench.md (tables) and
converge.png (converge time against node count).

usage: run.py [--quick] [--nodes 3,10,50] [--rounds 2,2,1] [--floor-max N] [--classic-warm-max N]
              [--out DIR] [--only converge,routes,cni] [--keep]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import cni as cni_bench  # noqa: E402  (beside this file)
import routes as routes_bench  # noqa: E402

BIN = os.path.dirname(sys.executable)
NODE_PYTHON = "/usr/bin/python3"  # the lab inventory's ansible_python_interpreter
GNU_TIME = "/usr/bin/time"
LAB_ROOT = "/run/podnet-lab"

# Full mode: node counts and rounds per count. `make bench` must stay under 20 minutes on 2 cores, and
# at 50 nodes the classic playbook alone runs 50 x (18 + 49) command module processes (about 500 s):
# so one round at 50 nodes and the classic playbook's warm run at 3 nodes only (about 16 minutes
# in all; --classic-warm-max 10 adds it at 10 nodes).
FULL = {"nodes": [3, 10, 50], "rounds": [2, 2, 1], "classic_warm_max_nodes": 3, "floor_max_nodes": 50,
        "routes": 1000, "routes_rounds": 7, "cni_pods": 50, "cni_rounds": 2}
QUICK = {"nodes": [3], "rounds": [1], "classic_warm_max_nodes": 3, "floor_max_nodes": 3,
         "routes": 100, "routes_rounds": 1, "cni_pods": 5, "cni_rounds": 1}

SIDES = ("site_cold", "site_warm", "floor", "classic_cold", "classic_warm")
LABELS = {"site_cold": "site.yml cold", "site_warm": "site.yml warm", "floor": "ping floor",
          "classic_cold": "classic cold", "classic_warm": "classic warm"}


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def summary(values):
    values = sorted(values)
    return {"median": statistics.median(values), "min": values[0], "max": values[-1], "n": len(values)}


# --- process tree memory --------------------------------------------------------------------------

def _parents():
    """{pid: parent pid} of every process (/proc/PID/task/*/children needs CONFIG_PROC_CHILDREN)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as handle:
                    stat = handle.read()
            except OSError:
                continue
            parents[int(entry)] = int(stat[stat.rindex(")") + 2:].split()[1])
    return parents


def _pss_kb(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _is_controller(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return b"ansible-playbook" in handle.read()
    except OSError:
        return False


class TreeSampler(threading.Thread):
    """Peak of the summed PSS of a process and its descendants that are ansible-playbook processes."""

    def __init__(self, pid, interval=0.5):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_kb, self.peak_procs = 0, 0
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(self.interval):
            children = {}
            for pid, parent in _parents().items():
                children.setdefault(parent, []).append(pid)
            stack, total, count = [self.pid], 0, 0
            while stack:
                pid = stack.pop()
                stack.extend(children.get(pid, ()))
                if _is_controller(pid):
                    total += _pss_kb(pid)
                    count += 1
            if total > self.peak_kb:
                self.peak_kb, self.peak_procs = total, count


def read_modlog(path):
    """Rows of [start epoch, elapsed s, max RSS KiB, user s, sys s], one per module process."""
    rows = []
    with open(path) as handle:
        for line in handle:
            parts = line.split()
            if len(parts) == 5:
                try:
                    rows.append([float(p) for p in parts])
                except ValueError:
                    pass  # "Command exited with non-zero status N" lines
    return rows


def module_stats(rows):
    if not rows:
        return None
    return {"processes": len(rows), "cpu_seconds": sum(r[3] + r[4] for r in rows),
            "max_rss_kb": max(r[2] for r in rows), "median_seconds": statistics.median(r[1] for r in rows),
            "max_seconds": max(r[1] for r in rows), "sum_seconds": sum(r[1] for r in rows)}


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
                    ANSIBLE_FORCE_COLOR="0", PYTHONDONTWRITEBYTECODE="1")

    def playbook(self, playbook, nodes, label, extra=(), measured=True):
        """Run a playbook against the current lab; return its record (time, counts, memory)."""
        logfile = os.path.join(self.logs, "%03d-%s.log" % (len(self.runs), label))
        timer = logfile[:-4] + ".timer.json"
        modlog = logfile[:-4] + ".modules.txt"
        env = self.env(nodes)
        env.update(PODNET_BENCH_TIMER=timer, PODNET_BENCH_MODLOG=modlog)
        argv = [os.path.join(BIN, "ansible-playbook"), "-i", os.path.join(self.collection, "inventories", "lab"),
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

    def converge(self, nodes, rounds, classic_warm, floor_max, verify_classic=False):
        site = os.path.join(self.collection, "playbooks", "site.yml")
        classic = os.path.join(self.work, "classic.yml")
        for round_no in range(rounds):
            order = ("ours", "classic") if round_no % 2 == 0 else ("classic", "ours")
            for side in order:
                self.lab_up(nodes)
                try:
                    if side == "ours":
                        cold = self.measure(site, nodes, "site_cold", round_no)
                        if any(h["changed"] == 0 for h in cold["hosts"].values()):
                            raise RuntimeError("site.yml on fresh nodes changed nothing on some host")
                        warm = self.measure(site, nodes, "site_warm", round_no)
                        if warm["changed"]:
                            raise RuntimeError("site.yml run again changed %d things" % warm["changed"])
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


# --- results ----------------------------------------------------------------------------------------

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


PAIRS = (("site_warm", "floor", 1.2), ("site_cold", "floor", 1.5), ("site_cold", "classic_cold", 1.0),
         ("site_warm", "classic_warm", None))


def machine():
    info = {"kernel": platform.release(), "python": platform.python_version(), "cores": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as handle:
            info["memory_gib"] = round(int(handle.readline().split()[1]) / 1024 / 1024, 1)
        with open("/etc/os-release") as handle:
            for line in handle:
                if line.startswith("PRETTY_NAME="):
                    info["os"] = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    try:
        from ansible.release import __version__ as ansible_version
        info["ansible_core"] = ansible_version
    except ImportError:
        pass
    return info


def fmt(value, digits=2):
    return "-" if value is None else ("%.*f" % (digits, value))


def markdown(report):
    lines = []
    m = report["machine"]
    lines += ["# podnet.mesh benchmark%s" % (" (QUICK mode: tiny counts, the harness only)" if report["quick"] else ""),
              "",
              "%s, %s cores, %s GiB; %s, kernel %s; ansible-core %s, Python %s; %s; took %.0f s." % (
                  m.get("cpu", "?"), m.get("cores"), m.get("memory_gib"), m.get("os", "?"), m.get("kernel"),
                  m.get("ansible_core", "?"), m.get("python"), report["started"], report["total_seconds"]), ""]
    conv = report.get("converge")
    if conv:
        lines += ["## Converge of the lab (2 pods per node), seconds", "",
                  "Median [min-max] over the rounds; forks %s, nsenter connection, pipelining, one ansible.cfg "
                  "for all. The floor has %s ping tasks per host (the count site.yml reported)." % (
                      conv["forks"], conv.get("floor_tasks")), "",
                  "| nodes | rounds | " + " | ".join(LABELS[s] for s in SIDES) + " |",
                  "|---:|---:|" + "---:|" * len(SIDES)]
        for nodes, sides in conv["stats"].items():
            cells = []
            for side in SIDES:
                s = sides.get(side)
                cells.append("-" if s is None else "%.1f [%.1f-%.1f]" % (s["median"], s["min"], s["max"]))
            rounds = max(s["n"] for s in sides.values())
            lines.append("| %s | %d | %s |" % (nodes, rounds, " | ".join(cells)))
        lines += ["", "Ratios of the medians [min-max of the per-round ratios]:", "",
                  "| nodes | " + " | ".join("%s / %s" % (LABELS[a], LABELS[b]) for a, b, t in PAIRS) + " |",
                  "|---:|" + "---:|" * len(PAIRS)]
        for nodes in conv["stats"]:
            cells = []
            for num, den, target in PAIRS:
                r = conv["ratios"]["%s/%s" % (num, den)].get(nodes)
                cells.append("-" if r is None else "%.2fx [%.2f-%.2f]" % (r["ratio"], r["min"], r["max"]))
            lines.append("| %s | %s |" % (nodes, " | ".join(cells)))
        lines += ["", "Where the time goes (medians): CPU seconds of the whole run (controller and nodes), "
                  "module processes on the nodes and their CPU seconds:", "",
                  "| nodes | run | wall s | CPU s | module processes | module CPU s | other CPU s |",
                  "|---:|---|---:|---:|---:|---:|---:|"]
        for nodes, sides in conv["stats"].items():
            for side in SIDES:
                s = sides.get(side)
                if s:
                    mod = s.get("module_cpu_seconds")
                    lines.append("| %s | %s | %.1f | %.1f | %s | %s | %s |" % (
                        nodes, LABELS[side], s["median"], s["cpu_seconds"], s.get("module_processes", "-"),
                        fmt(mod, 1), fmt(s["cpu_seconds"] - mod if mod is not None else None, 1)))
        lines += ["", "\"other CPU\" is the controller (ansible-playbook and its forks) plus the connection "
                  "(nsenter, sh). site.yml per task, first round at each node count (s = seconds of the task, "
                  "p = module processes, cpu = their CPU seconds):", ""]
        for side in ("site_cold", "site_warm"):
            heads, rows = [], {}
            for run in conv["runs"]:
                if run["side"] == side and run["round"] == 0 and run.get("tasks"):
                    heads.append(run["nodes"])
                    for index, task in enumerate(run["tasks"]):
                        mods = task.get("modules") or {}
                        rows.setdefault((index, task["name"]), {})[run["nodes"]] = "%.2f s%s" % (
                            task["seconds"], ", %d p, %.1f cpu" % (mods["processes"], mods["cpu_seconds"])
                            if mods else "")
            if heads:
                lines += ["| %s task | %s |" % (LABELS[side], " | ".join("%d nodes" % n for n in heads)),
                          "|---|" + "---:|" * len(heads)]
                for (index, name), cells in sorted(rows.items()):
                    short = name.split(" - ")[0].replace("|", "/")
                    short = short if len(short) <= 72 else short[:69] + "..."
                    lines.append("| %s | %s |" % (short, " | ".join(cells.get(n, "-") for n in heads)))
                lines.append("")
    routes = report.get("routes")
    if routes:
        sec = routes["seconds"]
        lines += ["## pod_route beside `ip -batch`, %d routes, seconds" % routes["routes"], "",
                  "Module run time: a fresh `%s` process running the module file (Python %s, pyroute2 %s), "
                  "start to exit; %d rounds, alternating." % (routes["python"], routes.get("python_version"),
                                                              routes.get("pyroute2"), routes["rounds"]), "",
                  "| operation | pod_route median [min-max] | ip -batch median [min-max] | ratio |",
                  "|---|---:|---:|---:|"]
        for title, ours, theirs in (("add %d" % routes["routes"], "module_add", "ip_batch_add"),
                                    ("same call, unchanged", "module_unchanged", None),
                                    ("purge %d" % (routes["routes"] - routes["routes"] // 2),
                                     "module_purge_half", "ip_batch_del_half")):
            o = sec[ours]
            t = sec.get(theirs) if theirs else None
            lines.append("| %s | %.3f [%.3f-%.3f] | %s | %s |" % (
                title, o["median"], o["min"], o["max"],
                "%.3f [%.3f-%.3f]" % (t["median"], t["min"], t["max"]) if t else "- (nothing to do)",
                "%.0fx" % (o["median"] / t["median"]) if t else "-"))
        lines.append("")
    cni = report.get("cni")
    if cni:
        lines += ["## CNI ADD and DEL of %d pods, ms per call" % cni["pods"], "",
                  "podnet under %s (Python %s, pyroute2 %s) beside %s + host-local; %d rounds, alternating." % (
                      cni["python"], cni.get("python_version"), cni.get("pyroute2"), cni["reference"], cni["rounds"]),
                  "", "| plugin | ADD median [min-max] | ADD p90 | DEL median [min-max] | DEL p90 | "
                  "ADD all pods, s | DEL all pods, s |", "|---|---:|---:|---:|---:|---:|---:|"]
        for name, per in cni["seconds"].items():
            a, d = per["ADD"], per["DEL"]
            lines.append("| %s | %.1f [%.1f-%.1f] | %.1f | %.1f [%.1f-%.1f] | %.1f | %.2f | %.2f |" % (
                name, a["median"] * 1e3, a["min"] * 1e3, a["max"] * 1e3, a["p90"] * 1e3,
                d["median"] * 1e3, d["min"] * 1e3, d["max"] * 1e3, d["p90"] * 1e3,
                per["ADD_total"]["median"], per["DEL_total"]["median"]))
        lines += ["", "podnet / reference, medians: ADD %.1fx, DEL %.1fx" % (
            cni["ratios"]["ADD median"], cni["ratios"]["DEL median"]), ""]
    mem = report.get("memory")
    if mem:
        lines += ["## Peak memory at %d nodes (MiB)" % mem["nodes"], "",
                  "Controller: the largest ansible-playbook process (its main process or a fork, from wait4) and "
                  "the peak of the summed PSS of all of them (sampled every 0.5 s). Module: the largest module "
                  "process on a node (GNU time's maximum RSS).", "",
                  "| run | controller largest process | controller all processes (PSS) | largest module process | "
                  "module processes |", "|---|---:|---:|---:|---:|"]
        for side in SIDES:
            r = mem["runs"].get(side)
            if r:
                lines.append("| %s | %.0f | %.0f | %s | %s |" % (
                    LABELS[side], r["controller_max_rss_kb"] / 1024.0, r["controller_pss_peak_kb"] / 1024.0,
                    fmt(r["module_max_rss_kb"] / 1024.0 if r.get("module_max_rss_kb") else None, 0),
                    r.get("module_processes", "-")))
        if mem.get("per_module"):
            lines += ["", "Largest process per site.yml task (MiB): " + ", ".join(
                "%s %.0f" % (k, v / 1024.0) for k, v in mem["per_module"].items())]
        lines.append("")
    targets = report.get("targets")
    if targets:
        lines += ["## Targets", "", "| target | measured | limit | met |", "|---|---:|---:|---|"]
        for t in targets:
            met = "yes" if t["met"] else "**no**"
            lines.append("| %s | %s | %s | %s |" % (t["target"], t["measured"], t["limit"], met))
        lines.append("")
    return "\n".join(lines)


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


def targets(report):
    result = []
    conv = report.get("converge")
    if conv:
        for num, den, limit in PAIRS:
            if limit is None:
                continue
            for nodes, r in conv["ratios"]["%s/%s" % (num, den)].items():
                if den == "classic_cold":
                    result.append({"target": "%d nodes: site.yml cold faster than classic cold" % nodes,
                                   "measured": "%.2fx" % r["ratio"], "limit": "< 1x", "met": r["ratio"] < 1.0})
                else:
                    result.append({"target": "%d nodes: %s / %s" % (nodes, LABELS[num], LABELS[den]),
                                   "measured": "%.2fx" % r["ratio"], "limit": "<= %.1fx" % limit,
                                   "met": r["ratio"] <= limit})
    routes = report.get("routes")
    if routes:
        for key, limit, title in (("module_add", 0.5, "pod_route %d routes in one call"),
                                  ("module_unchanged", 0.3, "pod_route %d routes, unchanged")):
            value = routes["seconds"][key]["median"]
            result.append({"target": title % routes["routes"], "measured": "%.3f s" % value,
                           "limit": "<= %.1f s" % limit, "met": value <= limit})
    cni = report.get("cni")
    if cni:
        value = cni["ratios"]["ADD median"]
        result.append({"target": "CNI ADD median / reference", "measured": "%.1fx" % value, "limit": "<= 3x",
                       "met": value <= 3.0})
    return result


def plot(report, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed (pip install -r benchmarks/requirements.txt): no plot")
        return False
    stats = report["converge"]["stats"]
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    styles = {"site_cold": ("tab:blue", "o", "-"), "site_warm": ("tab:blue", "s", "--"),
              "classic_cold": ("tab:red", "o", "-"), "classic_warm": ("tab:red", "s", "--"),
              "floor": ("tab:gray", "^", ":")}
    for side in SIDES:
        points = [(n, s[side]) for n, s in stats.items() if side in s]
        if not points:
            continue
        xs = [int(n) for n, s in points]
        ys = [s["median"] for n, s in points]
        err = [[s["median"] - s["min"] for n, s in points], [s["max"] - s["median"] for n, s in points]]
        color, marker, line = styles[side]
        ax.errorbar(xs, ys, yerr=err, color=color, marker=marker, linestyle=line, capsize=3, label=LABELS[side])
    ax.set_xlabel("lab nodes (2 pods each)")
    ax.set_ylabel("converge time, s (median, min-max)")
    ax.set_title("podnet.mesh site.yml vs classic command tasks vs ping floor")
    ax.set_xticks(sorted(int(n) for n in stats))
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", default=os.environ.get("QUICK") == "1",
                        help="tiny counts, to prove the harness runs (also QUICK=1)")
    parser.add_argument("--nodes", help="node counts, comma separated")
    parser.add_argument("--rounds", help="rounds per node count, comma separated")
    parser.add_argument("--floor-max", type=int, help="largest node count with a ping floor run")
    parser.add_argument("--classic-warm-max", type=int, help="largest node count with a classic warm run")
    parser.add_argument("--only", default="converge,routes,cni", help="parts to run, comma separated")
    parser.add_argument("--out", help="results directory (default benchmarks/results, quick: .../results/quick)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    opts = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: needs root (run it through tests/utils/netns-run.sh, as make bench does)")
    plan = dict(QUICK if opts.quick else FULL)
    if opts.nodes:
        plan["nodes"] = [int(n) for n in opts.nodes.split(",")]
        plan["rounds"] = plan["rounds"][:1] * len(plan["nodes"])
    if opts.rounds:
        plan["rounds"] = [int(r) for r in opts.rounds.split(",")]
    if len(plan["rounds"]) == 1:
        plan["rounds"] *= len(plan["nodes"])
    if opts.floor_max is not None:
        plan["floor_max_nodes"] = opts.floor_max
    if opts.classic_warm_max is not None:
        plan["classic_warm_max_nodes"] = opts.classic_warm_max
    only = set(opts.only.split(","))
    out = opts.out or os.path.join(HERE, "results", "quick" if opts.quick else "")
    os.makedirs(out, exist_ok=True)

    # SIGTERM/SIGINT end the run through the finally clauses: labs and namespaces are removed.
    def stop(signum, frame):
        raise SystemExit("bench: stopped by signal %d" % signum)
    signal.signal(signal.SIGTERM, stop)

    started = time.time()
    report = {"quick": opts.quick, "started": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
              "machine": machine(), "plan": plan}
    work = tempfile.mkdtemp(prefix="podnet-bench.")
    bench = Bench(work, opts.quick)
    try:
        bench.copy_collection()
        log("collection copied to %s; node count(s) %s" % (bench.collections, plan["nodes"]))
        if "converge" in only:
            for nodes, rounds in zip(plan["nodes"], plan["rounds"]):
                log("converge at %d nodes, %d round(s)" % (nodes, rounds))
                bench.converge(nodes, rounds, plan["classic_warm_max_nodes"], plan["floor_max_nodes"],
                               verify_classic=(nodes == plan["nodes"][0]))
            stats = converge_stats(bench.runs)
            report["converge"] = {
                "forks": 10, "floor_tasks": getattr(bench, "floor_count", None), "stats": stats,
                "ratios": dict(("%s/%s" % (a, b), pair_ratios(bench.runs, stats, a, b)) for a, b, t in PAIRS),
                "runs": bench.runs}
            report["memory"] = memory_report(bench.runs, max(plan["nodes"]))
            with open(os.path.join(HERE, "floor.yml")) as handle:
                if bench.floor_count and handle.read() != floor_yaml(bench.floor_count):
                    log("note: benchmarks/floor.yml has another task count than site.yml now runs (%d); "
                        "the measured floor used %d" % (bench.floor_count, bench.floor_count))
        if "routes" in only:
            log("pod_route beside ip -batch: %d routes, %d round(s)" % (plan["routes"], plan["routes_rounds"]))
            report["routes"] = routes_bench.bench(plan["routes_rounds"], plan["routes"], NODE_PYTHON,
                                                  bench.collections)
            report["routes"].pop("samples", None)
        if "cni" in only:
            log("CNI ADD/DEL of %d pods, %d round(s)" % (plan["cni_pods"], plan["cni_rounds"]))
            report["cni"] = cni_bench.bench(plan["cni_rounds"], plan["cni_pods"], NODE_PYTHON,
                                            collection=bench.collection)
    finally:
        bench.lab_down()
        if opts.keep:
            log("work directory kept: %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    report["total_seconds"] = time.time() - started
    report["targets"] = targets(report)
    with open(os.path.join(out, "bench.json"), "w") as handle:
        json.dump(report, handle, indent=1, default=str)
    text = markdown(report)
    with open(os.path.join(out, "bench.md"), "w") as handle:
        handle.write(text)
    if report.get("converge"):
        plot(report, os.path.join(out, "converge.png"))
    print(text)
    log("results in %s (%.0f s)" % (out, report["total_seconds"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
