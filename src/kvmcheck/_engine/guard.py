"""Guards around model code that misbehaves: it exits, it swallows the checker's unwinding,
it runs forever without a visible operation, or the search must stop (budget, signal).

* :func:`base_exception_finding` -- ``SystemExit``, ``KeyboardInterrupt`` raised by model
  code (``raise KeyboardInterrupt``, ``sys.exit()``) and ``GeneratorExit`` are an oops in
  that thread (kind ``exception``), never a silent exit from ``check()``.  A real Ctrl-C
  (a ``KeyboardInterrupt`` raised by the signal handler between two bytecodes, not by a
  ``raise`` in the model) is not a finding: it goes on up.
* :func:`swallowed` -- a thread that announces a visible operation after the checker told it
  to stop (an ``Abort`` was raised into it) has swallowed the unwinding: a bare ``except:``
  or ``except BaseException:`` in the model.  That is a :class:`UsageError` naming the line;
  the thread's greenlet is parked for good (it would swallow anything thrown into it).
* :class:`Watch` and the watchdog thread -- one daemon thread for the whole process checks
  every running check about 10 times a second.  A check whose execution has not taken a step
  for ``step_timeout_s`` gets a :class:`StepTimeout` raised into its OS thread (with
  ``PyThreadState_SetAsyncExc``: it works off the main thread, no signals); the thread
  running then is an oops ("step-limit") naming the thread and the line.  A check past its
  ``max_seconds`` (or asked to stop by :func:`request_stop`, e.g. from a SIGINT handler)
  whose execution does not end on its own within :data:`GRACE_S` gets a :class:`Stop`:
  the execution is abandoned and the search ends ``bounded``.

An exception raised asynchronously lands where the thread is; a thread blocked inside a C
call (``time.sleep``, a blocking ``recv()``, a ``threading.Lock`` taken twice) gets it only
when the call returns -- maybe never.  What the checker cannot stop, it reports: a check
that a Stop or StepTimeout has not ended :data:`ESCALATE_S` seconds after the first one
gets the stuck thread's Python stack printed on stderr.  Where the process is the
checker's own (the command line, a worker process: :func:`set_escalation`), it then exits
at once: with 130/143 when a SIGINT/SIGTERM asked it to stop, else :data:`EXIT_STUCK`.
A ``check()`` called from Python only prints the stack, once, and waits.
"""

from __future__ import annotations

import contextlib
import ctypes
import dis
import os
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kvmcheck._engine.finding import Finding, Site, UsageError

if TYPE_CHECKING:
    from kvmcheck._engine.execution import Execution, Thread

DEFAULT_STEP_TIMEOUT_S = 10.0
GRACE_S = 0.25  # how long an execution may run on past its deadline before it is stopped
TICK_S = 0.1  # the watchdog's period
ESCALATE_S = 3.0  # a Stop / StepTimeout not delivered this long after the first: the thread is stuck
EXIT_STUCK = 3  # the exit status of a process ended because model code was stuck in a C call
_SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}


class Stop(BaseException):
    """Raised into a checking thread: abandon the running execution, end the search (bounded).

    A BaseException so that model code's ``except Exception`` cannot swallow it."""


class StepTimeout(BaseException):
    """Raised into a checking thread whose execution took no step for ``step_timeout_s``."""


_RAISE = dis.opmap["RAISE_VARARGS"]


def raised_by_model(e: BaseException) -> bool:
    """Was ``e`` raised by a ``raise`` statement or a call in model code (not by a signal handler)?

    A signal handler's exception appears between two bytecodes of whatever runs; a
    ``raise`` leaves the frame at its RAISE_VARARGS, and ``sys.exit()`` at a call whose
    callee frame is absent (C)."""
    if not isinstance(e, KeyboardInterrupt):
        return True
    tb = e.__traceback__
    if tb is None:
        return True
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code.co_code
    i = tb.tb_lasti
    return 0 <= i < len(code) and code[i] == _RAISE


def base_exception_finding(e: BaseException, t: Thread) -> Finding:
    """The oops for ``SystemExit`` / ``KeyboardInterrupt`` / ``GeneratorExit`` raised by model code."""
    from kvmcheck._engine.execution import model_site

    site = _site_of(e)
    if site is None:
        site, _ = model_site(None)
    what = type(e).__name__
    arg = f": {e}" if str(e) else ""
    return Finding(
        "exception",
        f"{what}{arg} at {site} (model code may not exit or interrupt the checker)",
        headline="Oops: exception in model code",
        thread=t.tid,
    )


def _site_of(e: BaseException) -> Site | None:
    from kvmcheck._engine.execution import model_site

    tb = e.__traceback__
    frame = None
    while tb is not None:
        frame = tb.tb_frame
        tb = tb.tb_next
    return None if frame is None else model_site(frame)[0]


# Greenlets of threads that swallowed an Abort: kept alive so that they are never garbage
# collected (collecting an unfinished greenlet throws into it, and it would swallow that too).
_PARKED: list[Any] = []
SWALLOW_LIMIT = 100  # Aborts raised at one thread before it counts as swallowing them


def stopping(ex: Execution, t: Thread, op: Any) -> None:
    """Thread ``t`` announces ``op`` after the checker told it to stop: raise Abort again.

    Unwinding legitimately announces a few operations (an unlock in a ``finally`` or a
    ``with``); a thread that reaches its exit, or is told to stop SWALLOW_LIMIT times, has
    swallowed the Abort with a bare ``except:`` -- a UsageError naming the line."""
    from kvmcheck._engine.execution import model_site
    from kvmcheck._engine.finding import Abort

    told = ex._told
    n = told[t.tid] = told.get(t.tid, 0) + 1
    sites = ex._told_at
    if t.tid not in sites or n > SWALLOW_LIMIT:
        import sys

        sites[t.tid] = model_site(sys._getframe(0))[0]  # engine frames skipped by name
    if getattr(op, "arg", None) == "exit" or n > SWALLOW_LIMIT:
        err = UsageError(
            f"thread {t.name!r} went on after the checker stopped it at {sites[t.tid]}: a bare "
            "'except:' or 'except BaseException:' in the model swallows the checker's "
            "unwinding; catch Exception instead"
        )
        if ex._crash is None:
            ex._crash = err
        if ex._swallowed is None:
            ex._swallowed = err
        if getattr(op, "arg", None) == "exit":
            raise err  # engine code: _thread_main ends the thread
        _PARKED.append(t.glet)
        ex._sched.switch()  # never comes back here: the thread is parked for good
    raise Abort


def thread_died(ex: Execution, t: Thread, e: BaseException) -> None:
    """Thread ``t``'s greenlet ends with a BaseException other than Abort."""
    import greenlet

    if isinstance(e, greenlet.GreenletExit):
        raise e
    if isinstance(e, StepTimeout):
        if not ex.aborting and not t.dead:
            w: Watch | None = getattr(_local, "watch", None)
            ex._record(step_timeout_finding(e, t, w.step_timeout_s if w else DEFAULT_STEP_TIMEOUT_S))
            t.dead = t.done = True
        return
    if isinstance(e, Stop) or not raised_by_model(e):  # the search is stopping / a real Ctrl-C
        if ex._crash is None:
            ex._crash = e
        t.dead = t.done = True
        return
    if not ex.aborting and not t.dead:
        ex._record(base_exception_finding(e, t))
        t.dead = t.done = True


def step_timeout_finding(e: BaseException, t: Thread, limit: float) -> Finding:
    site = _site_of(e) or Site("?", "?", 0)
    return Finding(
        "step-limit",
        f"thread {t.name!r} ran pure Python for more than {limit:g} s without a visible "
        f"operation, at {site} (an unbounded loop with no kernel operation in it?)",
        headline="step time limit reached",
        thread=t.tid,
    )


# -- the watchdog --------------------------------------------------------------------------------
@dataclass
class Watch:
    """One running check, as the watchdog sees it."""

    ident: int  # the OS thread running the check
    step_timeout_s: float
    deadline: float | None  # perf_counter() time at which the search must end (max_seconds)
    ex: Execution | None = None  # the execution running now
    steps: int = -1
    since: float = 0.0  # when ``steps`` last changed
    stop: str | None = None  # why the search must stop now ("SIGINT", ...), else None
    stop_at: float = 0.0
    fired_at: float | None = None  # when a StepTimeout or Stop was last raised into ``ex``
    first_fired: float | None = None  # ... and first (for this execution)
    reported: bool = False  # the stuck thread's stack was printed
    outer: Watch | None = None  # the check this one runs inside (a check() in model code)


_WATCHES: dict[int, Watch] = {}
_LOCK = threading.Lock()
_local = threading.local()
_watchdog: threading.Thread | None = None
_pending: str | None = None  # a request_stop() that checks started later obey too
_escalate_exits = False  # set_escalation(True): a stuck check ends the process
REFIRE_S = 1.0  # a model that swallowed the first one gets another after this long


@contextmanager
def watching(max_seconds: float | None, step_timeout_s: float | None) -> Iterator[Watch]:
    """Watch the check running in this OS thread for as long as the ``with`` lasts."""
    now = time.perf_counter()
    outer: Watch | None = getattr(_local, "watch", None)
    w = Watch(
        threading.get_ident(),
        DEFAULT_STEP_TIMEOUT_S if step_timeout_s is None else step_timeout_s,
        None if max_seconds is None else now + max_seconds,
        outer=outer,
    )
    if outer is not None:
        w.stop, w.stop_at = outer.stop, outer.stop_at
    elif _pending is not None:  # asked before this check started (e.g. a signal during loading)
        w.stop, w.stop_at = _pending, now
    _local.watch = w
    with _LOCK:
        _WATCHES[id(w)] = w
    _ensure_watchdog()
    try:
        yield w
    finally:
        with _LOCK:
            _WATCHES.pop(id(w), None)
        _local.watch = outer


def enter(ex: Execution) -> Watch | None:
    """An execution starts in this OS thread (called by ``Execution.run``)."""
    w: Watch | None = getattr(_local, "watch", None)
    if w is not None:
        w.steps, w.since, w.fired_at, w.first_fired = -1, time.perf_counter(), None, None
        w.ex = ex
    return w


def leave(w: Watch | None, ex: Execution) -> None:
    """The execution ended (called by ``Execution.run``, last): no exception may arrive after this."""
    if w is not None:
        with _LOCK:
            w.ex = None
            fired = w.fired_at is not None
        if fired:  # one raised but not delivered yet must not land in the caller
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(w.ident), None)
    err, ex._swallowed = ex._swallowed, None
    if err is not None:
        raise err


def finish(ex: Execution) -> None:
    """An execution's run was cut short by a Stop or StepTimeout that arrived after its own
    handler (in its clean-up, before :func:`leave`): leave it now, so nothing more is raised."""
    from kvmcheck._engine import runtime

    if runtime.current is ex:  # its clean-up did not get to restore it
        runtime.current = None
    w: Watch | None = getattr(_local, "watch", None)
    if w is not None and w.ex is ex:
        ex._swallowed = None
        leave(w, ex)


def stop_requested() -> bool:
    """Between executions: has the check running in this OS thread been asked to stop?"""
    w: Watch | None = getattr(_local, "watch", None)
    return w is not None and w.stop is not None


def request_stop(reason: str) -> None:
    """Ask every running check to stop at a clean point (between executions; inside one after GRACE_S).

    Safe to call from a signal handler."""
    global _pending
    _pending = reason
    now = time.perf_counter()
    for w in list(_WATCHES.values()):
        if w.stop is None:
            w.stop, w.stop_at = reason, now


def clear_stop() -> None:
    """Forget a :func:`request_stop` (checks started from now on run normally)."""
    global _pending
    _pending = None


def set_escalation(exit_process: bool) -> None:
    """Whether a check stuck in a C call past its deadline ends the whole process (see above)."""
    global _escalate_exits
    _escalate_exits = exit_process


def _ensure_watchdog() -> None:
    global _watchdog
    with _LOCK:
        if _watchdog is None or not _watchdog.is_alive():
            _watchdog = threading.Thread(target=_watch_loop, name="kvmcheck-watchdog", daemon=True)
            _watchdog.start()


def _watch_loop() -> None:
    while True:
        time.sleep(TICK_S)
        now = time.perf_counter()
        with _LOCK:
            for w in _WATCHES.values():
                _inspect(w, now)


def _inspect(w: Watch, now: float) -> None:
    """Called with _LOCK held."""
    ex = w.ex
    if ex is None:
        return
    if w.first_fired is not None and now - w.first_fired >= ESCALATE_S and not w.reported:
        _stuck(w, ex, now)
    if w.fired_at is not None and now - w.fired_at < REFIRE_S:
        return
    steps = len(ex.schedule)
    if steps != w.steps:
        w.steps, w.since = steps, now
    late = (w.deadline is not None and now >= w.deadline + GRACE_S) or (
        w.stop is not None and now >= w.stop_at + GRACE_S
    )
    if late:
        exc: type[BaseException] = Stop
    elif now - w.since >= w.step_timeout_s:
        exc = StepTimeout
    else:
        return
    w.fired_at = now
    if w.first_fired is None:
        w.first_fired = now
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(w.ident), ctypes.py_object(exc))


def _stuck(w: Watch, ex: Execution, now: float) -> None:
    """The check did not stop ESCALATE_S after it was told to: print where it is; maybe exit."""
    w.reported = True
    frame = sys._current_frames().get(w.ident)
    stack = "".join(traceback.format_stack(frame)) if frame is not None else "  (no Python frame)\n"
    cur = ex.current
    who = f"model thread {cur.name!r}" if cur is not None else "the model"
    why = (
        f"asked to stop by {w.stop}"
        if w.stop is not None
        else (
            "past its time budget"
            if w.deadline is not None and now >= w.deadline
            else f"running {w.step_timeout_s:g} s without a kernel operation"
        )
    )
    end = "stopping the process" if _escalate_exits else "the check cannot go on until that call returns"
    sys.stderr.write(
        f"kvmcheck: error: {who} is stuck in a call the checker cannot interrupt (a C call: "
        f"time.sleep, a blocking recv(), a threading.Lock taken twice), {why}; {end}. "
        f"Its Python stack, innermost last:\n{stack}"
    )
    sys.stderr.flush()
    if _escalate_exits:
        code = _SIGNAL_EXIT.get(w.stop or "", EXIT_STUCK)
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        os._exit(code)


def _after_fork_in_child() -> None:
    """A forked worker (parallel.py) starts with no checks watched, a free lock and no watchdog:
    the parent's watchdog thread is not copied, and may have held the lock at the fork."""
    global _LOCK, _watchdog, _pending, _escalate_exits
    _escalate_exits = False  # the worker sets its own
    _LOCK = threading.Lock()
    _WATCHES.clear()
    _watchdog = None
    _pending = None
    _local.__dict__.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
