"""One worker process of a parallel search: its loop, and its tie to the parent.

A worker is forked by the parent's pool (parallel.py) and takes jobs from one pipe,
sending each result back on it.  It dies with its parent: on Linux the kernel sends it
SIGKILL when the parent exits (``prctl(PR_SET_PDEATHSIG)``, set through ctypes), and on
any system a closed pipe (the parent gone) ends the loop.  It ignores SIGINT (the
parent decides when to stop, and says so) and dies of SIGTERM.  A model stuck in a C call
past its deadline ends the worker (guard's escalation; the parent names the job).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any

PR_SET_PDEATHSIG = 1  # include/uapi/linux/prctl.h


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to kill this process when its parent exits (Linux); exit now if it has."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the pipe still ends the loop when the parent goes
    if os.getppid() != parent_pid:  # the parent died before the prctl took effect
        os._exit(0)


def worker_loop(
    conn: Any, parent_pid: int, run: Callable[[Any], Any], failed: Callable[[Any, str], Any]
) -> None:
    """Take jobs from ``conn`` until it closes (or sends None): ``run(job)`` each, send the result.

    An exception out of ``run`` (a bug in kvmcheck) is sent back as ``failed(job, text)``."""
    from kvmcheck._engine import guard

    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    guard.set_escalation(True)  # a model stuck in C ends this worker, and the parent says which job
    gc.freeze()  # the parent's objects: never scanned, so their pages stay shared (copy-on-write)
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            os._exit(0)
        if job is None:
            os._exit(0)
        try:
            result = run(job)
        except BaseException as e:  # noqa: BLE001 - sent to the parent, which raises it
            result = failed(job, "".join(traceback.format_exception(e)))
        try:
            conn.send(result)
        except (EOFError, OSError):
            os._exit(0)
        except Exception as e:  # noqa: BLE001 - a result that does not pickle
            conn.send(failed(job, f"the job's result cannot be sent back: {type(e).__name__}: {e}"))
