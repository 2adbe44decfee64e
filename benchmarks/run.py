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
   With routed subnets, each round also runs site.yml (cold and warm) on the routed
   lab (inventories/lab-routed: the nodes on that many subnets joined by the lab
   router, host-gw inside a subnet and VXLAN across), alternating with the others.
4. Pod sandboxes through containerd's CRI, podnet beside bridge + host-local in
   one daemon (benchmarks/containerd.py).
6. Pod-to-pod TCP throughput with iperf3 on the routed lab, host-gw beside VXLAN
   (benchmarks/throughput.py).
5. Peak memory: of the controller (ansible-playbook and its forks: the largest
   process, from wait4, and the sum of their PSS, sampled) and of every module
   process on the nodes (GNU time around the node's Python).

Results go to benchmarks/results/ (QUICK mode: benchmarks/results/quick/):
bench.json (everything, with each sample), bench.md (tables) and
converge.png (converge time against node count).

usage: run.py [--quick] [--nodes 3,10,50] [--rounds 2,2,1] [--floor-max N] [--classic-warm-max N]
              [--routed 3:2,10:2,50:5] [--out DIR] [--only converge,routes,cni,containerd,throughput] [--keep]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cni as cni_bench  # noqa: E402  (beside this file)
import containerd as containerd_bench  # noqa: E402
import routes as routes_bench  # noqa: E402
import throughput as throughput_bench  # noqa: E402
from converge import PAIRS, Bench, converge_stats, floor_yaml, memory_report, pair_ratios  # noqa: E402
from harness import HERE, NODE_PYTHON, log, machine  # noqa: E402
from report import markdown, plot, targets  # noqa: E402

# Full mode: node counts and rounds per count. `make bench` must stay under 20 minutes on 2 cores, and
# at 50 nodes the classic playbook alone runs 50 x (18 + 49) command module processes (about 500 s):
# so one round at 50 nodes and the classic playbook's warm run at 3 nodes only (about 16 minutes
# in all; --classic-warm-max 10 adds it at 10 nodes).
# The routed lab (node count: subnets) beside the flat one: 2 subnets at 3 and 10 nodes (blocks of 2 and 5),
# 5 subnets at 50 (blocks of 10), so that most peers are VXLAN peers (at 50 nodes, 9 of 49 are host-gw).
# Its rounds are those of the node count: about 3 minutes more in all. iperf3: 5 s per run, 3 rounds of
# both paths (about 40 s).
FULL = {"nodes": [3, 10, 50], "rounds": [2, 2, 1], "classic_warm_max_nodes": 3, "floor_max_nodes": 50,
        "routes": 1000, "routes_rounds": 7, "cni_pods": 50, "cni_rounds": 2, "containerd_pods": 10,
        "containerd_rounds": 3, "routed": {3: 2, 10: 2, 50: 5}, "iperf_seconds": 5, "iperf_rounds": 3}
QUICK = {"nodes": [3], "rounds": [1], "classic_warm_max_nodes": 3, "floor_max_nodes": 3,
         "routes": 100, "routes_rounds": 1, "cni_pods": 5, "cni_rounds": 1, "containerd_pods": 2,
         "containerd_rounds": 1, "routed": {3: 2}, "iperf_seconds": 1, "iperf_rounds": 1}


def strict():
    """Whether a missing tool fails the run: under make (make test, make bench) or PODNET_TEST_STRICT=1."""
    return os.environ.get("PODNET_TEST_STRICT") == "1" or "MAKELEVEL" in os.environ


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", default=os.environ.get("QUICK") == "1",
                        help="tiny counts, to prove the harness runs (also QUICK=1)")
    parser.add_argument("--nodes", help="node counts, comma separated")
    parser.add_argument("--rounds", help="rounds per node count, comma separated")
    parser.add_argument("--floor-max", type=int, help="largest node count with a ping floor run")
    parser.add_argument("--classic-warm-max", type=int, help="largest node count with a classic warm run")
    parser.add_argument("--routed", help="routed lab per node count, nodes:subnets comma separated (none: no routed lab)")
    parser.add_argument("--only", default="converge,routes,cni,containerd,throughput",
                        help="parts to run, comma separated")
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
    if opts.routed is not None:
        items = [item.split(":") for item in opts.routed.split(",") if item and item != "none"]
        plan["routed"] = dict((int(n), int(k)) for n, k in items)
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
                               verify_classic=(nodes == plan["nodes"][0]), routed_subnets=plan["routed"].get(nodes))
            stats = converge_stats(bench.runs)
            report["converge"] = {
                "forks": 10, "routed_subnets": plan["routed"], "floor_tasks": getattr(bench, "floor_count", None), "stats": stats,
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
        if "containerd" in only:
            log("containerd CRI: %d pods per handler, %d round(s) of %d at once"
                % (plan["containerd_pods"], plan["containerd_rounds"], containerd_bench.PARALLEL))
            report["containerd"] = containerd_bench.bench(plan["containerd_pods"], plan["containerd_rounds"],
                                                          NODE_PYTHON, collections=bench.collections, log=log)
        if "throughput" in only:
            log("iperf3 on the routed lab, host-gw beside VXLAN: %d s per run, %d round(s)"
                % (plan["iperf_seconds"], plan["iperf_rounds"]))
            report["throughput"] = throughput_bench.bench(bench, plan["iperf_seconds"], plan["iperf_rounds"],
                                                          strict(), log)
            if not throughput_bench.check(report["throughput"]):
                raise RuntimeError("iperf3 moved no data: %s" % report["throughput"])
    finally:
        bench.lab_down()
        if opts.keep:
            log("work directory kept: %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    report["total_seconds"] = time.time() - started
    report["targets"] = targets(report) + containerd_bench.targets(report.get("containerd"))
    with open(os.path.join(out, "bench.json"), "w") as handle:
        json.dump(report, handle, indent=1, default=str)
    text = markdown(report)
    section = containerd_bench.markdown(report.get("containerd")) + throughput_bench.markdown(report.get("throughput"))
    if section:  # before the targets table, when there is one
        text = text.replace("## Targets", section + "\n## Targets", 1) if "## Targets" in text else text + section
    with open(os.path.join(out, "bench.md"), "w") as handle:
        handle.write(text)
    if report.get("converge"):
        plot(report, os.path.join(out, "converge.png"))
    print(text)
    log("results in %s (%.0f s)" % (out, report["total_seconds"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
