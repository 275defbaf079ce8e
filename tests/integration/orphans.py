"""Peers started by the tests die with the test process, even when it is killed.

A test run stopped by a timeout or Ctrl-C gets no chance to run its finalizers; without this,
its redis-servers, Node processes and chat servers would keep running (and keep their ports).
Pass ``preexec_fn=die_with_parent`` when starting one (Linux: ``PR_SET_PDEATHSIG``; elsewhere
it does nothing).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import sys

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the process that started it dies."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
