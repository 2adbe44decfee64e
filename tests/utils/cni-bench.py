# SPDX-License-Identifier: GPL-3.0-or-later
"""ADD and DEL times of the podnet CNI plugin beside the reference bridge + host-local plugins.

Both do the same work per container: a bridge with the gateway address
(created by the first ADD), a veth pair into the container's namespace, an
address from a file-backed IPAM, a default route via the gateway; DEL undoes
it. Each round creates a throwaway container namespace per plugin, then times
ADD and DEL of podnet and of the reference, alternating, so both see the same
machine state. Times are wall-clock, from the plugin's start to its exit, as
a runtime sees them. The first round of each is a warm-up and not counted.

Everything runs inside a private network namespace (the script re-runs itself
under ``unshare --net``); container namespaces are named cnib* and removed at
the end. Needs root, the reference plugins in /usr/lib/cni (Debian package
containernetworking-plugins), and pyroute2 for the plugin's Python.

usage: python3 tests/utils/cni-bench.py [--rounds 30] [--python /usr/bin/python3]
                                        [--reference-dir /usr/lib/cni]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.join(ROOT, "roles", "cni", "files", "build_podnet.py")
INNER = "PODNET_CNI_BENCH_INNER"


def in_private_netns():
    return os.environ.get(INNER) == "1"


def reexec_private():
    """Run this script again in a fresh network namespace (lo up)."""
    env = dict(os.environ, **{INNER: "1"})
    argv = ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "cni-bench",
            sys.executable] + sys.argv
    return subprocess.run(argv, env=env, check=False).returncode


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
    ms = sorted(v * 1000 for v in values)
    return {"median": statistics.median(ms), "min": ms[0], "max": ms[-1],
            "p90": ms[min(len(ms) - 1, int(round(0.9 * (len(ms) - 1))))]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--python", default="/usr/bin/python3", help="Python that runs podnet (its shebang)")
    parser.add_argument("--reference-dir", default="/usr/lib/cni")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("cni-bench: needs root")
    if not in_private_netns():
        return reexec_private()
    ref_bridge = os.path.join(args.reference_dir, "bridge")
    if not os.access(ref_bridge, os.X_OK):
        sys.exit("cni-bench: no reference plugin %s (apt-get install containernetworking-plugins)" % ref_bridge)

    tmp = tempfile.mkdtemp(prefix="cni-bench.")
    plugin = os.path.join(tmp, "podnet")
    subprocess.run([sys.executable, BUILD, plugin, "--interpreter", args.python], check=True)
    # Not pnt*: tests/utils/netns-run.sh of a concurrent test run removes those.
    tag = "cnib" + secrets.token_hex(3)
    podnet_conf = {"cniVersion": "1.0.0", "name": tag + "p", "type": "podnet", "bridge": tag + "p",
                   "ipam": {"subnet": "10.253.1.0/24", "dataDir": os.path.join(tmp, "podnet-ipam")}}
    ref_conf = {"cniVersion": "1.0.0", "name": tag + "r", "type": "bridge", "bridge": tag + "r",
                "isGateway": True,
                "ipam": {"type": "host-local", "subnet": "10.253.2.0/24", "dataDir": os.path.join(tmp, "ref-ipam"),
                         "routes": [{"dst": "0.0.0.0/0"}]}}
    sides = {
        "podnet": ([plugin], podnet_conf, os.path.dirname(plugin)),
        "bridge+host-local": ([ref_bridge], ref_conf, args.reference_dir),
    }
    times = dict((name, {"ADD": [], "DEL": []}) for name in sides)
    made = []
    try:
        for round_no in range(args.rounds + 1):
            order = list(sides) if round_no % 2 == 0 else list(reversed(list(sides)))
            for name in order:
                argv, conf, cni_path = sides[name]
                ns_name = "%s%s%d" % (tag, name[0], round_no)
                made.append(ns_name)
                netns = netns_add(ns_name)
                cid = "bench%s%d" % (name[0], round_no)
                add = call(argv, "ADD", conf, netns, cid, cni_path)
                delete = call(argv, "DEL", conf, netns, cid, cni_path)
                netns_del(ns_name)
                if round_no:  # round 0 warms up (bridge creation, page cache)
                    times[name]["ADD"].append(add)
                    times[name]["DEL"].append(delete)
    finally:
        for ns_name in made:
            netns_del(ns_name)
        subprocess.run(["rm", "-rf", tmp], check=False)

    py = subprocess.run([args.python, "-c", "import sys, importlib.metadata as m; "
                         "print('Python %s, pyroute2 %s' % (sys.version.split()[0], m.version('pyroute2')))"],
                        capture_output=True, text=True, check=False)
    print("CNI ADD/DEL wall time, %d rounds each, alternating, in one run (ms)" % args.rounds)
    print("podnet under %s (%s); reference: %s with host-local"
          % (args.python, py.stdout.strip() or "?", ref_bridge))
    print()
    print("| plugin | ADD median | ADD p90 | ADD min | DEL median | DEL p90 | DEL min |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    stats = {}
    for name in sides:
        add, delete = summary(times[name]["ADD"]), summary(times[name]["DEL"])
        stats[name] = (add, delete)
        print("| %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |" % (
            name, add["median"], add["p90"], add["min"], delete["median"], delete["p90"], delete["min"]))
    ours, ref = stats["podnet"], stats["bridge+host-local"]
    print()
    print("podnet / reference, medians: ADD %.1fx, DEL %.1fx" % (
        ours[0]["median"] / ref[0]["median"], ours[1]["median"] / ref[1]["median"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
