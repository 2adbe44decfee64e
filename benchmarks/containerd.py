# SPDX-License-Identifier: GPL-3.0-or-later
"""Pod sandboxes through containerd's CRI: podnet beside the reference plugins, in one daemon.

Runs as root inside a private network namespace (tests/utils/netns-run.sh).
It starts the containerd of the containerd suite (tests/containerd/daemon.py:
Debian's containerd 1.6 in a node namespace, the podnet conflist as its
default network and Debian's bridge + host-local behind the runtime handler
``reference``, both chained with portmap) and drives it as kubelet does, over
the CRI (tests/containerd/cri.py):

1. RunPodSandbox until the sandbox is Ready (PodSandboxStatus), then
   StopPodSandbox + RemovePodSandbox, one pod at a time, alternating the
   handlers (which goes first alternates too): the median of each.
2. 12 sandboxes at once (12 RunPodSandbox calls in parallel, as kubelet's pod
   workers make them): the time until the last is Ready, then the 12 removed
   at once; handlers alternate from round to round.

Both sides run in the same daemon at the same time of the run, so the ratios
podnet / reference compare like with like; the pause process, runc and
containerd's own work are in both. podnet runs under the node's Python
(default /usr/bin/python3, which needs pyroute2).

usage: python3 benchmarks/containerd.py [--pods 10] [--rounds 3] [--quick] [--json FILE]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import importlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PARALLEL = 12
# podnet / reference limits of the medians (docs/containerd.md).
LIMITS = {"runp": 1.2, "parallel": 1.5}


def summary(values):
    values = sorted(values)
    return {"median": statistics.median(values), "min": values[0], "max": values[-1], "n": len(values)}


def harness(collections=None):
    """The suite's daemon module, imported from `collections` (a directory holding ansible_collections/).

    Without one, a temporary directory links ansible_collections/podnet/mesh to this checkout.
    """
    made = None
    if collections is None:
        made = collections = tempfile.mkdtemp(prefix="podnet-containerd-bench.")
        os.makedirs(os.path.join(collections, "ansible_collections", "podnet"))
        os.symlink(ROOT, os.path.join(collections, "ansible_collections", "podnet", "mesh"))
    sys.path.insert(0, collections)
    try:
        return importlib.import_module("ansible_collections.podnet.mesh.tests.containerd.daemon"), made
    except ImportError:
        if made:
            shutil.rmtree(made, ignore_errors=True)
        raise


def ready(node, sandbox_id, cri):
    """Wait until the sandbox reports Ready (RunPodSandbox returns a Ready one; this is the check)."""
    while node.cri.pod_sandbox_status(sandbox_id)["status"]["state"] != cri.SANDBOX_READY:
        time.sleep(0.01)


def one_pod(node, daemon, handler, name):
    """(RunPodSandbox to Ready, StopPodSandbox + RemovePodSandbox) in seconds."""
    config = node.sandbox_config(name)
    start = time.perf_counter()
    sandbox_id = node.cri.run_pod_sandbox(config, handler)
    ready(node, sandbox_id, daemon.cri)
    runp = time.perf_counter() - start
    start = time.perf_counter()
    node.remove_pod(sandbox_id)
    return runp, time.perf_counter() - start


def parallel(node, daemon, handler, tag):
    """(seconds until PARALLEL sandboxes started at once are all Ready, seconds to remove them at once)."""
    configs = [node.sandbox_config("%s-%02d" % (tag, index)) for index in range(PARALLEL)]

    def start(config):
        sandbox_id = node.cri.run_pod_sandbox(config, handler)
        ready(node, sandbox_id, daemon.cri)
        return sandbox_id

    with concurrent.futures.ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        begin = time.perf_counter()
        ids = list(pool.map(start, configs))
        up = time.perf_counter() - begin
        begin = time.perf_counter()
        list(pool.map(node.remove_pod, ids))
        down = time.perf_counter() - begin
    leftover = node.host_veths()
    if leftover:
        raise RuntimeError("veths left after removing the sandboxes of %s: %s" % (handler, leftover))
    return up, down


def bench(pods=10, rounds=3, python="/usr/bin/python3", collections=None, log=print):
    """Run the comparison; return the report (dict)."""
    daemon, made = harness(collections)
    lacking = daemon.missing()
    if lacking:
        raise SystemExit("containerd bench: missing %s" % ", ".join(lacking))
    sides = (daemon.PODNET, daemon.REFERENCE)
    times = dict((h, {"runp": [], "stop_remove": [], "parallel_up": [], "parallel_down": []}) for h in sides)
    try:
        with daemon.Node(python=python) as node:
            # One pod of each first, unmeasured: images unpacked, bridges made, caches warm.
            for handler in sides:
                one_pod(node, daemon, handler, "warm-" + handler)
            for index in range(pods):
                order = sides if index % 2 == 0 else sides[::-1]
                for handler in order:
                    runp, stop_remove = one_pod(node, daemon, handler, "p%02d-%s" % (index, handler))
                    times[handler]["runp"].append(runp)
                    times[handler]["stop_remove"].append(stop_remove)
            log("containerd: %d pods per handler, one at a time" % pods)
            for round_no in range(rounds):
                order = sides if round_no % 2 == 0 else sides[::-1]
                for handler in order:
                    up, down = parallel(node, daemon, handler, "r%d-%s" % (round_no, handler))
                    times[handler]["parallel_up"].append(up)
                    times[handler]["parallel_down"].append(down)
            log("containerd: %d x %d sandboxes at once per handler" % (rounds, PARALLEL))
            version = node.version["runtime_version"]
    finally:
        if made:
            shutil.rmtree(made, ignore_errors=True)
    stats = dict((h, dict((k, summary(v)) for k, v in per.items())) for h, per in times.items())
    podnet, reference = stats[daemon.PODNET], stats[daemon.REFERENCE]
    ratios = dict((key, podnet[key]["median"] / reference[key]["median"])
                  for key in ("runp", "stop_remove", "parallel_up", "parallel_down"))
    names = {daemon.PODNET: "podnet", daemon.REFERENCE: "bridge+host-local"}
    report = {"pods": pods, "rounds": rounds, "parallel": PARALLEL, "python": python, "containerd": version,
              "seconds": dict((names[h], s) for h, s in stats.items()), "ratios": ratios,
              "chain": "+ portmap, both"}
    proc = subprocess.run([python, "-c", "import sys, importlib.metadata as m; "
                           "print(sys.version.split()[0], m.version('pyroute2'))"],
                          capture_output=True, text=True, check=False)
    if len(proc.stdout.split()) == 2:
        report["python_version"], report["pyroute2"] = proc.stdout.split()
    return report


def markdown(section):
    """The report's section (for benchmarks/run.py's bench.md)."""
    if not section:
        return ""
    lines = ["## Pod sandboxes through containerd's CRI, ms", "",
             "containerd %s, one daemon, two runtime handlers; podnet under %s (Python %s, pyroute2 %s) beside "
             "bridge + host-local, both chained with portmap. %d pods per handler one at a time (alternating), "
             "%d rounds of %d sandboxes at once." % (
                 section["containerd"], section["python"], section.get("python_version"), section.get("pyroute2"),
                 section["pods"], section["rounds"], section["parallel"]),
             "", "| plugin | RunPodSandbox to Ready, median [min-max] | Stop + Remove, median [min-max] | "
             "%d at once: all Ready | %d at once: all removed |" % (section["parallel"], section["parallel"]),
             "|---|---:|---:|---:|---:|"]
    for name, per in section["seconds"].items():
        lines.append("| %s | %.0f [%.0f-%.0f] | %.0f [%.0f-%.0f] | %.0f | %.0f |" % (
            name, per["runp"]["median"] * 1e3, per["runp"]["min"] * 1e3, per["runp"]["max"] * 1e3,
            per["stop_remove"]["median"] * 1e3, per["stop_remove"]["min"] * 1e3, per["stop_remove"]["max"] * 1e3,
            per["parallel_up"]["median"] * 1e3, per["parallel_down"]["median"] * 1e3))
    r = section["ratios"]
    lines += ["", "podnet / reference, medians: RunPodSandbox %.2fx, Stop + Remove %.2fx, %d at once %.2fx "
              "(removal %.2fx)" % (r["runp"], r["stop_remove"], section["parallel"], r["parallel_up"],
                                   r["parallel_down"]), ""]
    return "\n".join(lines)


def targets(section):
    if not section:
        return []
    out = []
    for key, limit, title in (("runp", LIMITS["runp"], "containerd RunPodSandbox median / reference"),
                              ("parallel_up", LIMITS["parallel"],
                               "containerd %d sandboxes at once / reference" % PARALLEL)):
        value = section["ratios"][key]
        out.append({"target": title, "measured": "%.2fx" % value, "limit": "<= %.1fx" % limit, "met": value <= limit})
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pods", type=int, default=10, help="pods per handler, one at a time")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of %d sandboxes at once per handler" % PARALLEL)
    parser.add_argument("--quick", action="store_true", help="2 pods and 1 round, to prove the harness runs")
    parser.add_argument("--python", default="/usr/bin/python3", help="Python that runs podnet (its shebang)")
    parser.add_argument("--json", help="write the results here")
    opts = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("containerd bench: needs root (run it through tests/utils/netns-run.sh)")
    if opts.quick:
        opts.pods, opts.rounds = 2, 1
    report = bench(opts.pods, opts.rounds, opts.python)
    if opts.json:
        with open(opts.json, "w") as handle:
            json.dump(report, handle, indent=2)
    print(markdown(report))
    for target in targets(report):
        print("%s: %s (limit %s) %s" % (target["target"], target["measured"], target["limit"],
                                        "met" if target["met"] else "NOT MET"))


if __name__ == "__main__":
    main()
