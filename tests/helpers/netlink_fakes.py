# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""Stand-ins for a netlink socket, for tests of answers the kernel gives only under load."""
from __future__ import annotations


class FakeSocket:
    """Hands out canned netlink answers, one per recv(); records what was sent."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.sent = []

    def sendall(self, data):
        self.sent.append(data)

    def recv(self, size):
        return self.answers.pop(0)

    def close(self):
        pass
