"""Wait queues: wait_queue_head_t, wait_event(), wake_up() (include/linux/wait.h,
kernel/sched/wait.c, v6.x).

``wait_event(wq, cond)`` is the kernel's loop, one visible step per stage:

1. ``prepare_to_wait_event``: the task puts itself on ``wq`` (and is then
   TASK_UNINTERRUPTIBLE) -- *before* it tests the condition, which is what
   makes a wake_up() between the test and the sleep not lost;
2. it evaluates ``cond()`` -- ordinary model code, so reading Struct fields
   there is a visible read like any other;
3. if the condition holds: ``finish_wait`` (off the queue) and return;
   otherwise ``schedule()``: the task *sleeps* -- it is not runnable, and
   costs the search nothing -- until a ``wake_up(wq)`` takes it off the
   queue; then it goes back to 1.

``wake_up(wq)``/``wake_up_all(wq)`` wake every task queued on ``wq`` (all
``wait_event`` waiters are non-exclusive, so both wake them all).  A waker
that changes the condition without a wake_up(), or calls wake_up() before
the change, leaves the waiter asleep: the search reports that lost wakeup as
a deadlock, as a hung task.  Every operation holds ``wq->lock`` in the
kernel, so each one acquires what the last one released (happens-before for
KCSAN: a wake_up() happens before the wakeup it causes).

``wait_event`` may sleep: a might_sleep point.

Sleeping by hand, as kthreads and vhost workers do (kernel/sched/wait.c)::

    prepare_to_wait(wq, TASK_UNINTERRUPTIBLE)   # DEFINE_WAIT + prepare_to_wait()
    if not cond():
        schedule()
    finish_wait(wq)

``prepare_to_wait()`` sets the task state (kernel/sched.py) and queues the task, so a
``wake_up(wq)`` after it wakes the task (autoremove_wake_function: try_to_wake_up, then off the
queue) even if it comes before ``schedule()``; ``finish_wait()`` sets TASK_RUNNING and dequeues.
The state is set before the task is on the queue (two steps here, one under wq->lock in the
kernel), so a wake_up() in between does not see the task -- and the task, which tests the
condition after prepare_to_wait(), sees the condition the waker set first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvmcheck._engine import runtime
from kvmcheck._engine.clock import Clock, vc_join, vc_tick
from kvmcheck._engine.finding import UsageError
from kvmcheck._engine.ops import Op
from kvmcheck.kernel._core import Primitive
from kvmcheck.kernel.context import might_sleep_check
from kvmcheck.kernel.sched import (
    TASK_NORMAL,
    TASK_RUNNING,
    __set_current_state,
    set_current_state,
    wake_up_state,
)

__all__ = [
    "WaitQueueHead",
    "finish_wait",
    "init_waitqueue_head",
    "prepare_to_wait",
    "wait_event",
    "waitqueue_active",
    "wake_up",
    "wake_up_all",
]

SLEEP = "sleep"


class WaitQueueHead(Primitive):
    """``wait_queue_head_t`` (``DECLARE_WAIT_QUEUE_HEAD`` / ``init_waitqueue_head``)."""

    kind = "wait_queue_head_t"
    prefix = "wq_head"

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name)
        self.queued: list[int] = []  # tasks on the queue
        self.woken: list[int] = []  # tasks taken off it by a wake-up, not yet running
        self.entries: list[int] = []  # tasks queued by prepare_to_wait() (sleep in schedule())
        self.clock: Clock = []  # what the wait-queue lock's last holder released

    def _kc_state(self) -> Any:
        return tuple(self.woken)

    def _kc_enabled(self, op: Op, tid: int, state: Any) -> bool:
        if op.arg != SLEEP:
            return True
        return tid in (self.woken if state is None else state)

    def _kc_holders(self) -> list[int]:
        return []


def _locked(wq: WaitQueueHead, excl: bool, label: str, arg: Any = None) -> Any:
    """One step under wq->lock: acquire the last holder's clock, release ours."""
    t = wq.step(excl, label, arg)
    if t is not None:
        t.vc = vc_join(t.vc, wq.clock)
        wq.clock = t.vc[:]
        vc_tick(t.vc, t.tid)
    return t


def init_waitqueue_head(wq: WaitQueueHead) -> None:
    """init_waitqueue_head(wq): (re)initialise an empty wait queue."""
    _check(wq, "init_waitqueue_head")
    _locked(wq, True, f"init_waitqueue_head({wq.name})")
    wq.queued, wq.woken, wq.entries = [], [], []


def _check(wq: Any, fn: str) -> None:
    if not isinstance(wq, WaitQueueHead):
        raise UsageError(f"{fn}() takes a WaitQueueHead (wait_queue_head_t), not {wq!r}")


def wait_event(wq: WaitQueueHead, cond: Callable[[], Any]) -> None:
    """Sleep until ``cond()`` is true, re-testing it after each wake_up(wq)."""
    _check(wq, "wait_event")
    if not callable(cond):
        raise UsageError(f"wait_event({wq.name}, cond): cond must be a function of no arguments")
    might_sleep_check(f"wait_event({wq.name})")
    if cond():  # the fast path: no queueing when the condition already holds
        return
    while True:
        t = _locked(wq, True, f"prepare_to_wait_event({wq.name})")
        if t is None:
            return
        if t.tid not in wq.queued:
            wq.queued.append(t.tid)
        if cond():
            _locked(wq, True, f"finish_wait({wq.name})")
            if t.tid in wq.queued:
                wq.queued.remove(t.tid)
            if t.tid in wq.woken:
                wq.woken.remove(t.tid)
            return
        _locked(wq, True, f"schedule() in wait_event({wq.name})", SLEEP)
        wq.woken.remove(t.tid)


def _wake(wq: WaitQueueHead, fn: str) -> None:
    _check(wq, fn)
    t = _locked(wq, True, f"{fn}({wq.name})")
    for tid in wq.queued:
        if tid not in wq.woken:
            wq.woken.append(tid)
    wq.queued = []
    entries, wq.entries = wq.entries, []  # autoremove_wake_function(): off the queue, then woken
    if t is None or not entries:
        return
    ex = runtime.current
    assert ex is not None
    for tid in entries:
        wake_up_state(ex.threads[tid], TASK_NORMAL)


def prepare_to_wait(wq: WaitQueueHead, state: int) -> None:
    """``prepare_to_wait(wq, &wait, state)``: set the task state, then queue it on ``wq``."""
    _check(wq, "prepare_to_wait")
    set_current_state(state)
    t = _locked(wq, True, f"prepare_to_wait({wq.name})")
    if t is not None and t.tid not in wq.entries:
        wq.entries.append(t.tid)


def finish_wait(wq: WaitQueueHead) -> None:
    """``finish_wait(wq, &wait)``: TASK_RUNNING again, and off ``wq`` if a wake-up did not take it."""
    _check(wq, "finish_wait")
    __set_current_state(TASK_RUNNING)
    t = _locked(wq, True, f"finish_wait({wq.name})")
    if t is not None and t.tid in wq.entries:
        wq.entries.remove(t.tid)


def wake_up(wq: WaitQueueHead) -> None:
    """Wake the tasks waiting on ``wq`` (every wait_event() waiter: they are non-exclusive)."""
    _wake(wq, "wake_up")


def wake_up_all(wq: WaitQueueHead) -> None:
    """Wake every task waiting on ``wq``."""
    _wake(wq, "wake_up_all")


def waitqueue_active(wq: WaitQueueHead) -> bool:
    """True if some task is queued on ``wq`` (a lockless peek, as in the kernel)."""
    _check(wq, "waitqueue_active")
    wq.step(False, f"waitqueue_active({wq.name})")
    return bool(wq.queued or wq.entries)
