# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run a module's main() in this process: arguments in, the exit or failure result out.

Shared by the unit and kernel suites: ``stub_exits(monkeypatch)`` turns
exit_json/fail_json into an ``Exit`` exception (and collects warnings), and
``run_main(main, args)`` runs a module with the given arguments.
"""
from __future__ import annotations

import contextlib
import json

import pytest

from ansible.module_utils import basic

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19
    @contextlib.contextmanager
    def patch_module_args(args):
        old = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = old


class Exit(Exception):
    """How a module ended: kind is 'exit' or 'fail', result what it returned."""

    def __init__(self, kind, result):
        super().__init__(kind)
        self.kind = kind
        self.result = result


def stub_exits(monkeypatch):
    """Make exit_json/fail_json raise Exit; return the list module.warn() appends to."""
    warnings = []

    def fake_exit(self, **kw):
        raise Exit("exit", kw)

    def fake_fail(self, msg, **kw):
        kw["msg"] = msg
        raise Exit("fail", kw)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", fake_exit)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fake_fail)
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, msg, **kw: warnings.append(msg))
    return warnings


def run_main(main, args):
    """Run main() with args; return (kind, result)."""
    with patch_module_args(args):
        with pytest.raises(Exit) as err:
            main()
    return err.value.kind, err.value.result
