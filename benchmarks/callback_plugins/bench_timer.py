# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark callback: per-task and per-host timings and counts as JSON.

Enabled by benchmarks/ansible.cfg (``callbacks_enabled = bench_timer``); writes
its record to the file named by ``PODNET_BENCH_TIMER`` when the playbook ends
(nothing when the variable is unset). The record holds, per task, its name,
action, start and end (seconds since the playbook started) and how many hosts
reported ok/changed/skipped/failed; per host, the recap counts; the
playbook's own wall time as the controller saw it, and the wall-clock time
(epoch) at which it started, to place other records in its tasks.
"""
from __future__ import annotations

DOCUMENTATION = r"""
name: bench_timer
type: aggregate
short_description: Task timings and per-host counts as JSON, for the benchmarks
description:
  - Writes a JSON record of the run to the file named by E(PODNET_BENCH_TIMER).
requirements:
  - enabled in the configuration (callbacks_enabled)
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._t0 = time.perf_counter()
        self._epoch = time.time()
        self._tasks = []
        self._current = None
        self._items = 0

    def _now(self):
        return round(time.perf_counter() - self._t0, 4)

    def _close_task(self):
        if self._current is not None:
            self._current["end"] = self._now()
            self._current = None

    def v2_playbook_on_start(self, playbook):
        self._t0 = time.perf_counter()
        self._epoch = time.time()

    def _start(self, task, kind):
        self._close_task()
        self._current = {"name": task.get_name(), "action": task.action, "kind": kind, "start": self._now(),
                         "ok": 0, "changed": 0, "skipped": 0, "failed": 0, "unreachable": 0, "items": 0}
        self._tasks.append(self._current)

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._start(task, "task")

    def v2_playbook_on_handler_task_start(self, task):
        self._start(task, "handler")

    def _count(self, key, result):
        if self._current is not None:
            self._current[key] += 1
            self._current["last"] = self._now()

    def v2_runner_on_ok(self, result):
        self._count("changed" if result._result.get("changed") else "ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._count("failed", result)

    def v2_runner_on_skipped(self, result):
        self._count("skipped", result)

    def v2_runner_on_unreachable(self, result):
        self._count("unreachable", result)

    def v2_runner_item_on_ok(self, result):
        if self._current is not None:
            self._current["items"] += 1

    v2_runner_item_on_failed = v2_runner_item_on_ok
    v2_runner_item_on_skipped = v2_runner_item_on_ok

    def v2_playbook_on_stats(self, stats):
        self._close_task()
        path = os.environ.get("PODNET_BENCH_TIMER")
        if not path:
            return
        hosts = {}
        for host in sorted(stats.processed):
            summary = stats.summarize(host)
            hosts[host] = dict((k, summary.get(k, 0)) for k in (
                "ok", "changed", "skipped", "failures", "unreachable", "rescued", "ignored"))
        record = {"wall": self._now(), "epoch": self._epoch, "tasks": self._tasks, "hosts": hosts}
        with open(path, "w") as handle:
            json.dump(record, handle, indent=1)
