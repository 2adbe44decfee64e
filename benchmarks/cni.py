# SPDX-License-Identifier: GPL-3.0-or-later
"""CNI ADD and DEL of a batch of pods: the podnet plugin beside the reference bridge + host-local.

Runs as root inside a private network namespace (tests/utils/netns-run.sh).
Both plugins do the same work per pod: a bridge holding the gateway address
(made by the first ADD), a veth pair into the pod's namespace, an address from
a file-backed IPAM, a default route via the gateway; DEL undoes it. A round
gives each plugin a fresh bridge and fresh pod namespaces, then times every
ADD of the batch, one after the other as a runtime starting pods would, then
every DEL. Plugins alternate which goes first from round to round. Times are
wall-clock from the plugin's start to its exit; the result is the median and
spread per call, the total per batch, and the ratio of the medians.

podnet is built from this collection with roles/cni/files/build_podnet.py and
runs under the node's Python (default /usr/bin/python3); it talks netlink on the
standard library alone (kernel.lite, kernel.rtnl), so pyroute2 plays no part.
The reference plugins come from Debian's containernetworking-plugins. The
interpreter's own start (``python3 -c pass``, same Python) is timed beside
them: the floor under every podnet call.

usage: python3 benchmarks/cni.py [--rounds 3] [--pods 50] [--python /usr/bin/python3]
                                 [--reference-dir /usr/lib/cni] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PODNET = "podnet"
REFERENCE = "bridge+host-local"


def call(argv, command, conf, netns, cid, cni_path):
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command, "CNI_CONTAINERID": cid,
           "CNI_NETNS": netns, "CNI_IFNAME": "eth0", "CNI_PATH": cni_path}
    data = json.dumps(conf)
    start = time.perf_counter()
    out = subprocess.run(argv, input=data, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError("%s %s failed: %s%s" % (" ".join(argv), command, out.stdout, out.stderr))
    return elapsed


def netns_add(name):
    subprocess.run(["ip", "netns", "add", name], check=True)
    return "/run/netns/" + name


def netns_del(name):
    subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def summary(values):
    values = sorted(values)
    return {"median": statistics.median(values), "min": values[0], "max": values[-1],
            "p90": values[min(len(values) - 1, int(round(0.9 * (len(values) - 1))))], "n": len(values)}


def versions(python):
    proc = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"],
                          capture_output=True, text=True, check=False)
    parts = proc.stdout.split()
    # The plugin imports no pyroute2, whatever the node has.
    return {"python_version": parts[0], "pyroute2": "not used"} if len(parts) == 1 else {}


def interpreter_start(python):
    """Seconds of one ``python -c pass``: the interpreter's start and exit, the floor of a podnet call."""
    start = time.perf_counter()
    subprocess.run([python, "-c", "pass"], check=True)
    return time.perf_counter() - start


def bench(rounds=3, pods=50, python="/usr/bin/python3", reference_dir="/usr/lib/cni", collection=ROOT):
    """Run the comparison in the current network namespace; return the report (dict)."""
    ref_bridge = os.path.join(reference_dir, "bridge")
    if not os.access(ref_bridge, os.X_OK):
        raise SystemExit("cni bench: no reference plugin %s (Debian package containernetworking-plugins)"
                         % ref_bridge)
    tmp = tempfile.mkdtemp(prefix="podnet-cni-bench.")
    plugin = os.path.join(tmp, "bin", PODNET)
    os.makedirs(os.path.dirname(plugin))
    subprocess.run([sys.executable, os.path.join(collection, "roles", "cni", "files", "build_podnet.py"),
                    plugin, "--interpreter", python], check=True, capture_output=True)
    # pnt*: tests/utils/netns-run.sh removes whatever a killed run leaves behind.
    tag = "pntbc" + secrets.token_hex(2)
    times = dict((name, {"ADD": [], "DEL": [], "ADD_total": [], "DEL_total": []}) for name in (PODNET, REFERENCE))
    floor = []
    made = []
    try:
        for round_no in range(rounds):
            sides = {
                PODNET: ([plugin], {
                    "cniVersion": "1.0.0", "name": "%sp%d" % (tag, round_no), "type": "podnet",
                    "bridge": "%sp%d" % (tag, round_no),
                    "ipam": {"subnet": "10.253.1.0/24", "dataDir": os.path.join(tmp, "podnet-ipam%d" % round_no)}},
                    os.path.dirname(plugin)),
                REFERENCE: ([ref_bridge], {
                    "cniVersion": "1.0.0", "name": "%sr%d" % (tag, round_no), "type": "bridge",
                    "bridge": "%sr%d" % (tag, round_no), "isGateway": True,
                    "ipam": {
                        "type": "host-local", "subnet": "10.253.2.0/24",
                        "dataDir": os.path.join(tmp, "ref-ipam%d" % round_no),
                        "routes": [{"dst": "0.0.0.0/0"}]}},
                    reference_dir),
            }
            order = [PODNET, REFERENCE] if round_no % 2 == 0 else [REFERENCE, PODNET]
            for name in order:
                argv, conf, cni_path = sides[name]
                namespaces = []
                for index in range(pods):
                    ns_name = "%s%s%d-%d" % (tag, name[0], round_no, index)
                    made.append(ns_name)
                    namespaces.append((ns_name, netns_add(ns_name)))
                adds = [call(argv, "ADD", conf, path, "c%d" % index, cni_path)
                        for index, (ns_name, path) in enumerate(namespaces)]
                dels = [call(argv, "DEL", conf, path, "c%d" % index, cni_path)
                        for index, (ns_name, path) in enumerate(namespaces)]
                for ns_name, path in namespaces:
                    netns_del(ns_name)
                subprocess.run(["ip", "link", "del", conf["bridge"]], check=False, capture_output=True)
                times[name]["ADD"].extend(adds)
                times[name]["DEL"].extend(dels)
                times[name]["ADD_total"].append(sum(adds))
                times[name]["DEL_total"].append(sum(dels))
            floor.extend(interpreter_start(python) for _round in range(pods))
    finally:
        for ns_name in made:
            if os.path.exists("/run/netns/" + ns_name):
                netns_del(ns_name)
        shutil.rmtree(tmp, ignore_errors=True)
    stats = dict((name, dict((key, summary(values)) for key, values in per.items())) for name, per in times.items())
    ratios = dict(("%s median" % verb, stats[PODNET][verb]["median"] / stats[REFERENCE][verb]["median"])
                  for verb in ("ADD", "DEL"))
    report = {"pods": pods, "rounds": rounds, "python": python, "reference": ref_bridge,
              "seconds": stats, "ratios": ratios, "interpreter_start": summary(floor)}
    report.update(versions(python))
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pods", type=int, default=50)
    parser.add_argument("--python", default="/usr/bin/python3", help="Python that runs podnet (its shebang)")
    parser.add_argument("--reference-dir", default="/usr/lib/cni")
    parser.add_argument("--json", help="write the results here")
    opts = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("cni bench: needs root")
    report = bench(opts.rounds, opts.pods, opts.python, opts.reference_dir)
    if opts.json:
        with open(opts.json, "w") as handle:
            json.dump(report, handle, indent=2)
    print("CNI ADD/DEL of %d pods, %d rounds, ms per call" % (opts.pods, opts.rounds))
    for name, per in report["seconds"].items():
        print("%-18s ADD %6.1f [%6.1f-%6.1f]  DEL %6.1f [%6.1f-%6.1f]" % (
            name, per["ADD"]["median"] * 1e3, per["ADD"]["min"] * 1e3, per["ADD"]["max"] * 1e3,
            per["DEL"]["median"] * 1e3, per["DEL"]["min"] * 1e3, per["DEL"]["max"] * 1e3))
    floor = report["interpreter_start"]
    print("%-18s     %6.1f [%6.1f-%6.1f]" % (
        "%s -c pass" % os.path.basename(opts.python), floor["median"] * 1e3, floor["min"] * 1e3, floor["max"] * 1e3))
    for key, value in report["ratios"].items():
        print("podnet / reference, %s: %.1fx" % (key, value))


if __name__ == "__main__":
    main()
