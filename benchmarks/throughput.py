# SPDX-License-Identifier: GPL-3.0-or-later
"""make bench: pod-to-pod TCP throughput, host-gw beside VXLAN, with iperf3 on the routed lab.

The routed lab (inventories/lab-routed, 3 nodes, 2 subnets) converged by site.yml: node1 and node2
share a subnet, so node1 reaches node2's pods with a host-gw route; node3 is on the other subnet,
reached through the VXLAN overlay (podnet.vxlan). An iperf3 server runs in the target pod
(``iperf3 -s -1``: one test, then it exits), the client in pod red on node1; the two pairs alternate
which goes first, round after round. Every pod has the MTU of a cluster with VXLAN pairs (1450) on
both paths, so the difference is the tunnel's encapsulation, not the packet size.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import time

from harness import LAB_ROOT, summary

# mode -> (target node, its pod red's address); the client is pod red on node1 (10.244.1.2).
TARGETS = {"host-gw": ("node2", "10.244.2.2"), "vxlan": ("node3", "10.244.3.2")}
PORT = 5201


class Missing(Exception):
    """iperf3 is not installed (make apt installs it)."""


def in_pod(lab, node, pod, argv):
    """argv that runs argv in pod of node (the node's network and mount namespace, then the pod's)."""
    return ["nsenter", "--net=%s" % os.path.join(lab, node, "net"), "--mount=%s" % os.path.join(lab, node, "mnt"),
            "--", "ip", "netns", "exec", pod] + list(argv)


def run_pair(lab, node, address, seconds):
    """Bits per second of one iperf3 run from pod red on node1 to pod red on node (server: -s -1)."""
    server = subprocess.Popen(in_pod(lab, node, "red", ["iperf3", "-s", "-1", "-B", address, "-p", str(PORT)]),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for _attempt in range(50):
            proc = subprocess.run(in_pod(lab, "node1", "red", ["iperf3", "-c", address, "-p", str(PORT), "-t",
                                                               str(seconds), "-J"]),
                                  capture_output=True, text=True, check=False, timeout=seconds + 60)
            try:
                data = json.loads(proc.stdout)
            except ValueError:
                data = {}
            received = data.get("end", {}).get("sum_received", {}).get("bits_per_second")
            if proc.returncode == 0 and received:
                return received
            # Not listening yet (refused), or busy with the end of the previous test: again.
            text = proc.stdout + proc.stderr
            if "refused" not in text and "busy" not in text and "error" not in data:
                raise RuntimeError("iperf3 to %s on %s failed (rc %d): %s" % (
                    address, node, proc.returncode, (proc.stdout + proc.stderr)[-2000:]))
            time.sleep(0.1)  # the server is not listening yet
        raise RuntimeError("iperf3 server on %s (%s) never listened" % (node, address))
    finally:
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def routes(lab):
    """node1's routes to the two target pod CIDRs (proto 149), to show the mode of each."""
    out = subprocess.run(["nsenter", "--net=%s" % os.path.join(lab, "node1", "net"), "ip", "route", "show",
                          "proto", "149"], capture_output=True, text=True, check=True).stdout
    return [line.strip() for line in out.splitlines() if line.startswith(("10.244.2.0/24", "10.244.3.0/24"))]


def bench(b, seconds, rounds, strict, log):
    """Throughput on a routed lab built by the Bench b; raises Missing without iperf3 (when not strict: None)."""
    if shutil.which("iperf3") is None:
        if strict:
            raise Missing("iperf3 is not installed (Debian iperf3; make apt installs it)")
        log("iperf3 is not installed: throughput skipped (make apt installs it)")
        return None
    b.routed(2)
    b.lab_up(3)
    try:
        b.playbook(os.path.join(b.collection, "playbooks", "site.yml"), 3, "throughput-site", measured=False)
        lab = os.path.join(LAB_ROOT, b.lab_name)
        found = routes(lab)
        if not (any("dev eth0" in r for r in found if r.startswith("10.244.2.0/24"))
                and any("dev podnet.vxlan" in r for r in found if r.startswith("10.244.3.0/24"))):
            raise RuntimeError("the routed lab's node1 does not reach node2 by host-gw and node3 by VXLAN: %s" % found)
        samples = {"host-gw": [], "vxlan": []}
        for round_no in range(rounds):
            order = ("host-gw", "vxlan") if round_no % 2 == 0 else ("vxlan", "host-gw")
            for mode in order:
                node, address = TARGETS[mode]
                bps = run_pair(lab, node, address, seconds)
                samples[mode].append(bps / 1e9)
                log("  iperf3 %-7s node1 -> %s (%s), %d s: %.2f Gbit/s" % (mode, node, address, seconds, bps / 1e9))
    finally:
        b.lab_down()
        b.routed(None)
    gbits = dict((mode, summary(values)) for mode, values in samples.items())
    return {"seconds": seconds, "rounds": rounds, "routes": found, "gbits": gbits, "samples": samples,
            "ratio": gbits["vxlan"]["median"] / gbits["host-gw"]["median"],
            "ratios": [v / h for v, h in zip(samples["vxlan"], samples["host-gw"])],
            "iperf3": subprocess.run(["iperf3", "--version"], capture_output=True, text=True,
                                     check=False).stdout.split("\n", 1)[0].strip()}


def markdown(result):
    if not result:
        return ""
    g = result["gbits"]
    lines = ["## Pod-to-pod TCP throughput, host-gw beside VXLAN (iperf3), Gbit/s", "",
             "Routed lab (3 nodes, 2 subnets): pod red on node1 to pod red on node2 (same subnet: host-gw route) "
             "and to pod red on node3 (other subnet: VXLAN); `iperf3 -s -1` in the target pod, the client in the "
             "source pod, %d s per run, %d rounds, alternating which goes first; %s. Pod MTU 1450 on both paths."
             % (result["seconds"], result["rounds"], result.get("iperf3") or "iperf3"), "",
             "| path | median [min-max] | runs |", "|---|---:|---:|"]
    for mode in ("host-gw", "vxlan"):
        s = g[mode]
        lines.append("| %s | %.2f [%.2f-%.2f] | %d |" % (mode, s["median"], s["min"], s["max"], s["n"]))
    lines += ["", "VXLAN / host-gw, medians: %.2fx (per round %s)" % (
        result["ratio"], ", ".join("%.2f" % r for r in result["ratios"])), "",
        "node1's routes: " + "; ".join("`%s`" % r for r in result["routes"]), ""]
    return "\n".join(lines)


def check(result):
    """The statistics are sane (no timing assertion): every run moved data."""
    return result is None or all(statistics.median(v) > 0 for v in result["samples"].values())
