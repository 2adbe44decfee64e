# SPDX-License-Identifier: GPL-3.0-or-later
"""Where the time goes: the profiles behind docs/performance.md.

Runs as root inside a private network namespace (tests/utils/netns-run.sh),
with a one-node lab of its own (removed at the end), and writes a text
report (default benchmarks/results/profile.txt):

1. ``socket.getfqdn()`` inside a lab node and in the private namespace: the
   setup module's platform facts call it even for ``gather_subset: network``,
   which is why the inventory check reads node networks with
   ``podnet.mesh.node_info`` instead.
2. ``python3 -X importtime`` of module payloads exactly as Ansible sends them
   to a node (AnsiballZ, captured from stdin by a stand-in interpreter):
   ``ansible.builtin.ping`` and ``podnet.mesh.pod_route``.
3. pyinstrument of one pod_route call adding 1,000 routes and of the same
   call unchanged, under the node's Python.
4. ``-X importtime`` and pyinstrument of one CNI ADD of the podnet plugin.

usage: python3 benchmarks/profile.py [--out FILE]
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import routes as routes_bench  # noqa: E402

BIN = os.path.dirname(sys.executable)
NODE_PYTHON = "/usr/bin/python3"
LAB_ROOT = "/run/podnet-lab"


def sh(argv, **kwargs):
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    return subprocess.run(argv, check=False, **kwargs)


def importtime_top(stderr, count=12):
    """The heaviest imports by cumulative time (microseconds), from -X importtime output."""
    rows = []
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            parts = line[len("import time:"):].split("|")
            try:
                rows.append((int(parts[1]), int(parts[0]), parts[2].rstrip()))
            except ValueError:
                continue
    total = sum(own for cumulative, own, name in rows)
    top = sorted(rows, reverse=True)[:count]
    return total, ["%8.1f ms cumulative %7.1f ms self  %s" % (c / 1e3, o / 1e3, n) for c, o, n in top]


def pyinstrument_shim():
    """A directory with ansible/ and pyinstrument/ of this venv, for the node's Python."""
    path = routes_bench.ansible_shim()
    try:
        import pyinstrument
    except ImportError:
        return path, False
    os.symlink(os.path.dirname(pyinstrument.__file__), os.path.join(path, "pyinstrument"))
    return path, True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", default=os.path.join(HERE, "results", "profile.txt"))
    opts = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("profile: needs root (run it through tests/utils/netns-run.sh)")
    work = tempfile.mkdtemp(prefix="podnet-profile.")
    collections = os.path.join(work, "collections")
    collection = os.path.join(collections, "ansible_collections", "podnet", "mesh")
    sh([os.path.join(ROOT, "tests", "utils", "build-collection.sh"), collection], cwd=ROOT)
    lab = "pntbp" + secrets.token_hex(2)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(HERE, "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=collections,
               PODNET_LAB_NODES="1", ANSIBLE_NOCOLOR="1")
    node = ["nsenter", "--net=%s/%s/node1/net" % (LAB_ROOT, lab), "--mount=%s/%s/node1/mnt" % (LAB_ROOT, lab),
            "--uts=%s/%s/node1/uts" % (LAB_ROOT, lab), "--"]
    inventory = ["-i", os.path.join(collection, "inventories", "lab"), "-e", "podnet_lab_name=%s" % lab]
    report = []

    def section(title):
        report.extend(["", "== " + title])

    try:
        proc = sh([os.path.join(BIN, "ansible-playbook")] + inventory +
                  [os.path.join(collection, "playbooks", "lab.yml"), "--tags", "lab"], env=env, cwd=collection)
        if proc.returncode:
            raise SystemExit("profile: lab: %s" % proc.stdout[-2000:])

        section("socket.getfqdn() (called by ansible.builtin.setup's platform facts), seconds")
        probe = [NODE_PYTHON, "-c", "import socket, time; t = time.perf_counter(); name = socket.getfqdn(); "
                 "print('%.3f s -> %s' % (time.perf_counter() - t, name))"]
        report.append("in a lab node:          " + sh(node + probe).stdout.strip())
        report.append("in the bench namespace: " + sh(probe).stdout.strip())
        report.append("lab node /etc/resolv.conf: " + " ".join(
            line for line in sh(node + ["cat", "/etc/resolv.conf"]).stdout.splitlines() if line.startswith("nameserver")))

        # A stand-in interpreter that keeps each payload Ansible pipes to the node.
        capture = os.path.join(work, "capture")
        payloads = os.path.join(work, "payloads")
        os.makedirs(payloads)
        with open(capture, "w") as handle:
            handle.write('#!/bin/bash\nf=%s/$(date +%%s%%N).py\ncat > "$f"\nexec %s "$f"\n' % (payloads, NODE_PYTHON))
        os.chmod(capture, 0o755)
        adhoc = [os.path.join(BIN, "ansible"), "node1"] + inventory + ["-e", "ansible_python_interpreter=" + capture]
        routes_arg = json.dumps({"routes": [{"dst": "10.244.%d.0/24" % i, "via": "192.168.1.%d" % (11 + i)}
                                            for i in range(2, 51)], "purge": True})
        for module, args in (("ansible.builtin.ping", None), ("podnet.mesh.pod_route", routes_arg)):
            before = set(os.listdir(payloads))
            sh(adhoc + ["-m", module] + (["-a", args] if args else []), env=env, cwd=collection)
            new = sorted(set(os.listdir(payloads)) - before)
            if not new:
                report.append("%s: no payload captured" % module)
                continue
            payload = os.path.join(payloads, new[-1])
            start = time.perf_counter()
            sh(node + [NODE_PYTHON, payload])
            elapsed = time.perf_counter() - start
            total, top = importtime_top(sh(node + [NODE_PYTHON, "-X", "importtime", payload]).stderr)
            section("%s as Ansible runs it on a node (AnsiballZ payload, %d KiB): %.3f s wall, "
                    "imports %.3f s (-X importtime)" % (module, os.path.getsize(payload) // 1024, elapsed, total / 1e6))
            report.extend(top)

        shim, have_pyinstrument = pyinstrument_shim()
        pyenv = dict(os.environ, PYTHONPATH=os.pathsep.join([collections, shim]))
        if have_pyinstrument:
            setup = ["link add pntbprof0 type bridge", "addr add 192.168.1.11/24 dev pntbprof0", "link set pntbprof0 up"]
            sh(["ip", "-batch", "-"], input="\n".join(setup) + "\n")
            argsfile = os.path.join(work, "routes.json")
            with open(argsfile, "w") as handle:
                json.dump({"ANSIBLE_MODULE_ARGS": {"routes": routes_bench.routes(1000)}}, handle)
            for title in ("pod_route, 1,000 routes added", "pod_route, the same call unchanged"):
                proc = sh([NODE_PYTHON, "-m", "pyinstrument", "--show-all", "-r", "text", "--no-color",
                           "--interval", "0.0005", os.path.join(collection, "plugins", "modules", "pod_route.py"),
                           argsfile], env=pyenv)
                section("pyinstrument: %s (%s)" % (title, NODE_PYTHON))
                report.extend(trim(proc.stdout + proc.stderr))
            sh(["ip", "route", "flush", "proto", "149"])
            sh(["ip", "link", "del", "pntbprof0"])

        plugin = os.path.join(work, "bin", "podnet")
        os.makedirs(os.path.dirname(plugin))
        sh([sys.executable, os.path.join(collection, "roles", "cni", "files", "build_podnet.py"), plugin])
        netns = "pntbp" + secrets.token_hex(2)
        sh(["ip", "netns", "add", netns])
        conf = json.dumps({"cniVersion": "1.0.0", "name": "pntbprof", "type": "podnet", "bridge": "pntbprof1",
                           "ipam": {"subnet": "10.253.1.0/24", "dataDir": os.path.join(work, "ipam")}})
        cni_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "prof",
                   "CNI_NETNS": "/run/netns/" + netns, "CNI_IFNAME": "eth0", "CNI_PATH": os.path.dirname(plugin)}
        start = time.perf_counter()
        sh([NODE_PYTHON, plugin], input=conf, env=cni_env)
        add = time.perf_counter() - start
        cni_env["CNI_COMMAND"] = "DEL"
        sh([NODE_PYTHON, plugin], input=conf, env=cni_env)
        cni_env["CNI_COMMAND"] = "ADD"
        total, top = importtime_top(sh([NODE_PYTHON, "-X", "importtime", plugin], input=conf, env=cni_env).stderr)
        section("CNI ADD of podnet: %.3f s wall; imports %.3f s (-X importtime)" % (add, total / 1e6))
        report.extend(top)
        cni_env["CNI_COMMAND"] = "DEL"
        sh([NODE_PYTHON, plugin], input=conf, env=cni_env)
        if have_pyinstrument:
            cni_env["CNI_COMMAND"] = "ADD"
            cni_env["PYTHONPATH"] = shim
            proc = sh([NODE_PYTHON, "-m", "pyinstrument", "--show-all", "-r", "text", "--no-color",
                       "--interval", "0.0005", plugin], input=conf, env=cni_env)
            section("pyinstrument: CNI ADD of podnet")
            report.extend(trim(proc.stdout + proc.stderr))
            cni_env["CNI_COMMAND"] = "DEL"
            sh([NODE_PYTHON, plugin], input=conf, env=cni_env)
        sh(["ip", "netns", "del", netns])
        sh(["ip", "link", "del", "pntbprof1"])
    finally:
        if os.path.exists(os.path.join(LAB_ROOT, lab)):
            sh([os.path.join(BIN, "ansible"), "localhost", "-c", "local", "-i", "localhost,", "-m", "podnet.mesh.lab",
                "-a", "name=%s state=absent" % lab], env=env)
        shutil.rmtree(work, ignore_errors=True)
        for path in glob.glob(os.path.join(tempfile.gettempdir(), "podnet-bench-ansible-*")):
            shutil.rmtree(path, ignore_errors=True)
    os.makedirs(os.path.dirname(opts.out), exist_ok=True)
    with open(opts.out, "w") as handle:
        handle.write("\n".join(report).lstrip() + "\n")
    print("\n".join(report))


def trim(text, share=0.02, depth=9):
    """A pyinstrument tree cut to its frames of at least `share` of the total, `depth` levels deep."""
    out, total = [], None
    for line in text.splitlines():
        body = line.lstrip(" │├└─")
        level = (len(line) - len(body)) // 3
        try:
            seconds = float(body.split()[0])
        except (ValueError, IndexError):
            if not line.startswith("{") and line.strip() and total is None:
                out.append(line.rstrip())  # the header
            continue
        total = total or seconds
        if seconds >= share * total and level <= depth:
            out.append(line.rstrip())
    return out


if __name__ == "__main__":
    main()
