# -*- coding: utf-8 -*-
# Copyright: podnet.mesh contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""pyroute2, loaded in parts: only the message classes for reads, IPRoute on the first change.

Works with pyroute2 0.7 (Debian 12's python3-pyroute2) through 0.9. When pyroute2
cannot be imported, HAS_PYROUTE2 is False and PYROUTE2_IMPORT_ERROR holds why.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback

PARTS = ("pyroute2.netlink.exceptions", "pyroute2.netlink.rtnl.rtmsg", "pyroute2.netlink.rtnl.ifinfmsg",
         "pyroute2.netlink.rtnl.ifaddrmsg")


def _import_pyroute2_parts():
    """pyroute2's exceptions module and its rtmsg, ifinfmsg and ifaddrmsg message classes.

    pyroute2's package __init__ imports nearly the whole library (NDB, IPDB, conntrack,
    ethtool, its test lab, asyncio, multiprocessing, ...): 100 to 200 ms, the largest part
    of a module run. When nothing has imported pyroute2 yet, the package is entered bare
    (its directory only) and only the submodules used here are loaded: the message classes
    now (reads are plain dumps that pyroute2 decodes), IPRoute and pyroute2.netns on the
    first change (see ``iproute``). The bare package runs its real __init__ the first time
    anything else is asked of it (PEP 562 module __getattr__), so other code in the same
    process still sees all of pyroute2. Should a release not allow this, everything is
    thrown away and pyroute2 is imported normally.
    """
    if "pyroute2" not in sys.modules:
        spec = importlib.util.find_spec("pyroute2")
        if spec is None or spec.submodule_search_locations is None:
            raise ImportError("No module named 'pyroute2'", name="pyroute2")
        bare = importlib.util.module_from_spec(spec)

        def complete(name):
            if importlib.util.find_spec("pyroute2." + name) is not None:
                # "from pyroute2 import config" inside pyroute2: just that submodule.
                return importlib.import_module("pyroute2." + name)
            del bare.__getattr__  # pylint: disable=no-member
            spec.loader.exec_module(bare)
            return getattr(bare, name)

        bare.__getattr__ = complete
        sys.modules["pyroute2"] = bare
        try:
            modules = [importlib.import_module(name) for name in PARTS]
        except Exception:  # pylint: disable=broad-except
            for name in [n for n in sys.modules if n == "pyroute2" or n.startswith("pyroute2.")]:
                del sys.modules[name]
        else:
            return modules[0], modules[1].rtmsg, modules[2].ifinfmsg, modules[3].ifaddrmsg
    import pyroute2  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    modules = [importlib.import_module(name) for name in PARTS]
    return modules[0], modules[1].rtmsg, modules[2].ifinfmsg, modules[3].ifaddrmsg


def iproute():
    """pyroute2's IPRoute class, imported on first use (reads do not need it)."""
    return importlib.import_module("pyroute2.iproute.linux").IPRoute


def ndmsg():
    """pyroute2's neighbour message class (forwarding and neighbour entries), imported on first use."""
    return importlib.import_module("pyroute2.netlink.rtnl.ndmsg").ndmsg


def pr_netns():
    """pyroute2's netns module (create and remove named namespaces), imported on first use."""
    return importlib.import_module("pyroute2.netns")


try:
    _exceptions, rtmsg, ifinfmsg, ifaddrmsg = _import_pyroute2_parts()
    NetlinkDumpInterrupted, NetlinkError = _exceptions.NetlinkDumpInterrupted, _exceptions.NetlinkError
except ImportError:
    HAS_PYROUTE2 = False
    PYROUTE2_IMPORT_ERROR = traceback.format_exc()
    NetlinkError = OSError

    rtmsg = ifinfmsg = ifaddrmsg = None

    class NetlinkDumpInterrupted(Exception):
        """Stand-in when pyroute2 is missing."""
else:
    HAS_PYROUTE2 = True
    PYROUTE2_IMPORT_ERROR = None
