# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which run of the kernel suite a test module belongs to.

make kernel runs tests/kernel twice, once per controller virtual environment: with pyroute2 0.9
and with pyroute2 0.7, the releases the netlink layer must work with. A test module whose code
under test never touches the controller's pyroute2 (the NAT tools, the CNI plugin on its own
standard-library codec, podman, a node's own interpreter) does the same thing in both runs: it is
marked ``once_per_kernel_run`` and runs in the pyroute2 0.9 run only.
"""
from __future__ import annotations

import pyroute2
import pytest

PYROUTE2 = tuple(int(part) for part in pyroute2.__version__.split(".")[:2] if part.isdigit())

once_per_kernel_run = pytest.mark.skipif(
    PYROUTE2 < (0, 9),
    reason="runs in the kernel suite's pyroute2 0.9 run: nothing it tests uses the controller's pyroute2")
