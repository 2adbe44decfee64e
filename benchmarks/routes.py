# SPDX-License-Identifier: GPL-3.0-or-later
"""pod_route beside `ip -batch`: 1,000 routes added, the same call unchanged, 500 purged.

Runs as root inside a private network namespace (tests/utils/netns-run.sh):
the namespace gets a bridge holding 192.168.1.11/24 and every route goes via
192.168.1.12. Both sides run in the same invocation, alternating, for several
rounds; the result is the median and spread of each, and their ratio.

The module is run as Ansible runs it on a node, minus the transport: a fresh
Python process executing the module file with its arguments in a JSON file
(``python pod_route.py args.json``), timed from start to exit.
"""
from __future__ import annotations

import argparse
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


def collections_path():
    """A directory holding ansible_collections/podnet/mesh -> this checkout."""
    path = tempfile.mkdtemp(prefix="podnet-bench-")
    os.makedirs(os.path.join(path, "ansible_collections", "podnet"))
    os.symlink(ROOT, os.path.join(path, "ansible_collections", "podnet", "mesh"))
    return path


def ansible_shim():
    """A directory holding only ansible/ (this Python's ansible-core), for another interpreter.

    Lets a node-side interpreter such as /usr/bin/python3 import ansible.module_utils
    while it keeps its own pyroute2 (the whole site-packages would shadow it).
    """
    import ansible  # noqa: E402  (the controller's ansible-core)
    path = tempfile.mkdtemp(prefix="podnet-bench-ansible-")
    os.symlink(os.path.dirname(ansible.__file__), os.path.join(path, "ansible"))
    return path


def interpreter_versions(python):
    """'Python X.Y.Z, pyroute2 V' of an interpreter."""
    proc = subprocess.run([python, "-c", "import sys, pyroute2; print(sys.version.split()[0], "
                           "getattr(pyroute2, '__version__', '?'))"],
                          capture_output=True, text=True, check=False)
    parts = proc.stdout.split()
    if len(parts) != 2:
        return {"python_version": "?", "pyroute2": "?"}
    if parts[1] in ("?", "unknown"):  # Debian's build reports no version
        meta = subprocess.run([python, "-c", "import importlib.metadata as m; print(m.version('pyroute2'))"],
                              capture_output=True, text=True, check=False)
        parts[1] = meta.stdout.strip() or parts[1]
    return {"python_version": parts[0], "pyroute2": parts[1]}


def routes(count):
    return [{"dst": "10.%d.%d.0/24" % (100 + i // 256, i % 256), "via": "192.168.1.12"} for i in range(count)]


def timed(argv, env=None, stdin=None):
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, input=stdin, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit("%s failed: %s %s" % (argv[0], proc.stdout[:600], proc.stderr[-2000:]))
    return elapsed, proc.stdout


def module_run(python, env, args):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    try:
        elapsed, out = timed([python, os.path.join(ROOT, "plugins", "modules", "pod_route.py"), handle.name], env)
    finally:
        os.unlink(handle.name)
    result = json.loads(out)
    return elapsed, result


def ip_batch(lines):
    return timed(["ip", "-batch", "-"], stdin="".join(line + "\n" for line in lines))[0]


def flush(proto):
    subprocess.run(["ip", "route", "flush", "proto", str(proto)], check=True)


def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def bench(rounds=5, count=1000, python=sys.executable, collections=None):
    """Run the comparison in the current network namespace; return the report (dict)."""
    made = [] if collections else [collections_path()]
    if os.path.realpath(python) != os.path.realpath(sys.executable):
        made.append(ansible_shim())
    try:
        return _bench(rounds, count, python, os.pathsep.join(([collections] if collections else []) + made))
    finally:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)


def _bench(rounds, count, python, pythonpath):
    env = dict(os.environ, PYTHONPATH=pythonpath)
    setup = [
        "link add pntbench0 type bridge", "addr add 192.168.1.11/24 dev pntbench0", "link set pntbench0 up"]
    subprocess.run(["ip", "-batch", "-"], input="\n".join(setup) + "\n", text=True, check=True)
    full, half = routes(count), routes(count // 2)
    add_lines = ["route add %s via %s proto 150" % (r["dst"], r["via"]) for r in full]
    del_lines = ["route del %s via %s proto 150" % (r["dst"], r["via"]) for r in full[count // 2:]]
    times = {k: [] for k in ("module_add", "module_unchanged", "module_purge_half",
                             "ip_batch_add", "ip_batch_del_half")}
    try:
        for round_no in range(rounds):
            # Alternate which side goes first, so neither always meets a warmer machine.
            for side in (("module", "ip") if round_no % 2 == 0 else ("ip", "module")):
                flush(149)
                flush(150)
                if side == "module":
                    elapsed, result = module_run(python, env, {"routes": full})
                    assert result["changed"] and len(result["added"]) == count, result.get("msg")
                    times["module_add"].append(elapsed)
                    elapsed, result = module_run(python, env, {"routes": full})
                    assert not result["changed"], result
                    times["module_unchanged"].append(elapsed)
                    elapsed, result = module_run(python, env, {"routes": half, "purge": True})
                    assert len(result["removed"]) == count - count // 2, result.get("msg")
                    times["module_purge_half"].append(elapsed)
                else:
                    times["ip_batch_add"].append(ip_batch(add_lines))
                    times["ip_batch_del_half"].append(ip_batch(del_lines))
    finally:
        flush(149)
        flush(150)
        subprocess.run(["ip", "link", "del", "pntbench0"], check=False)
    stats = dict((k, summary(v)) for k, v in times.items())
    ratios = {
        "module_add / ip_batch_add": stats["module_add"]["median"] / stats["ip_batch_add"]["median"],
        "module_purge_half / ip_batch_del_half":
            stats["module_purge_half"]["median"] / stats["ip_batch_del_half"]["median"],
    }
    report = {"routes": count, "rounds": rounds, "python": python, "seconds": stats, "ratios": ratios,
              "samples": times}
    report.update(interpreter_versions(python))
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter that runs the module (another one than this gets ansible-core "
                             "from this one and keeps its own pyroute2)")
    parser.add_argument("--collections", help="directory holding ansible_collections/podnet/mesh "
                                              "(default: a link to this checkout)")
    parser.add_argument("--json", help="write the results here")
    opts = parser.parse_args()
    report = bench(opts.rounds, opts.count, opts.python, opts.collections)
    if opts.json:
        with open(opts.json, "w") as handle:
            json.dump(report, handle, indent=2)
    print("pod_route under %s (Python %s, pyroute2 %s), %d routes, %d rounds"
          % (report["python"], report.get("python_version", "?"), report["pyroute2"], opts.count, opts.rounds))
    print("%-22s %9s %9s %9s" % ("", "median s", "min s", "max s"))
    for key, value in report["seconds"].items():
        print("%-22s %9.3f %9.3f %9.3f" % (key, value["median"], value["min"], value["max"]))
    for key, value in report["ratios"].items():
        print("%s = %.1fx" % (key, value))


if __name__ == "__main__":
    main()
