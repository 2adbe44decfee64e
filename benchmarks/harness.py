# SPDX-License-Identifier: GPL-3.0-or-later
"""The common part of make bench: paths, logging, summaries, memory sampling, the machine.

Imported by benchmarks/run.py and the parts it runs (converge.py, report.py).
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.path.dirname(sys.executable)
NODE_PYTHON = "/usr/bin/python3"  # the lab inventory's ansible_python_interpreter
GNU_TIME = "/usr/bin/time"
LAB_ROOT = "/run/podnet-lab"


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


# --- the machine -----------------------------------------------------------------------------------

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
