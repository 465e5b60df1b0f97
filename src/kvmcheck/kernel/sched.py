"""Task state and sleeping by hand: set_current_state(), schedule(), wake_up_process().

As include/linux/sched.h (v5.14+, ``current->__state``) and kernel/sched/core.c
(try_to_wake_up) state it:

* ``set_current_state(state)`` is ``smp_store_mb(current->__state, state)``: "includes a
  barrier so that the write of current->__state is correctly serialised wrt the caller's
  subsequent test of whether to actually sleep"; ``__set_current_state()`` is the plain
  ``WRITE_ONCE`` for when no such serialisation is needed.
* ``schedule()`` with ``__state`` TASK_RUNNING just reschedules; otherwise the task is taken
  off the run queue and sleeps until a wakeup makes it TASK_RUNNING again.
* ``wake_up_process(p)`` is ``try_to_wake_up(p, TASK_NORMAL)``: "Wakeup will do: if (@state &
  p->__state) p->__state = TASK_RUNNING" -- so a wakeup that lands *between*
  ``set_current_state(TASK_UNINTERRUPTIBLE)`` and ``schedule()`` is not lost (schedule()
  finds the task running and returns), while one that lands *before* ``set_current_state()``
  finds the task running, does nothing (returns False), and the task then sleeps for ever:
  the search reports that hang as a deadlock whose waiter waits in schedule() for a
  wake_up_process() nobody will do.  The documented pattern::

      for (;;) {
          set_current_state(TASK_UNINTERRUPTIBLE);
          if (CONDITION)
              break;
          schedule();
      }
      __set_current_state(TASK_RUNNING);

  against the waker's ``CONDITION = 1; wake_up_process(p);``.
* ``schedule_timeout(timeout)``: sleeps like schedule() but the timer may fire at any moment
  the search chooses; returns 0 if it did (the task is TASK_RUNNING again), the remaining
  jiffies (here: ``timeout``) if a wakeup came first.  TASK_RUNNING: returns at once.
  ``MAX_SCHEDULE_TIMEOUT`` is schedule().

Signals are not modelled: TASK_INTERRUPTIBLE sleeps like TASK_UNINTERRUPTIBLE.  wait_event()
(kernel/wait.py) keeps its own model of the wait loop; these are for code that sleeps by hand
(kthreads, vhost workers, rcuwait).

Visible steps: each of these is one exclusive step on the task's state (a key of the task's
own), so the search orders every wakeup against every state change and sleep of that task.
Happens-before: a wakeup that woke the task happens before schedule() returns in it (the
wakee runs after try_to_wake_up's full barrier and the run-queue lock).
"""

from __future__ import annotations

from typing import Any

from kvmcheck._engine import runtime
from kvmcheck._engine.clock import Clock, vc_join, vc_tick
from kvmcheck._engine.execution import Thread
from kvmcheck._engine.finding import UsageError
from kvmcheck._engine.ops import FIELD_SLOTS, Op
from kvmcheck.kernel._core import current_thread, kthread, warn

__all__ = [
    "MAX_SCHEDULE_TIMEOUT",
    "TASK_INTERRUPTIBLE",
    "TASK_NORMAL",
    "TASK_RUNNING",
    "TASK_UNINTERRUPTIBLE",
    "__set_current_state",
    "get_current",
    "schedule",
    "schedule_timeout",
    "set_current_state",
    "wake_up_process",
    "wake_up_state",
]

TASK_RUNNING = 0x0
TASK_INTERRUPTIBLE = 0x1
TASK_UNINTERRUPTIBLE = 0x2
TASK_NORMAL = TASK_INTERRUPTIBLE | TASK_UNINTERRUPTIBLE
MAX_SCHEDULE_TIMEOUT = (1 << 63) - 1  # LONG_MAX

SLEEP = "sleep"
_NAMES = {0: "TASK_RUNNING", 1: "TASK_INTERRUPTIBLE", 2: "TASK_UNINTERRUPTIBLE"}


class TaskState:
    """``p->__state`` of one task: what its schedule() waits on (the engine's Blocker)."""

    __slots__ = ("clock", "key", "name", "state")

    def __init__(self, t: Thread) -> None:
        self.key = t.key - t.key % FIELD_SLOTS  # slot 0 of the thread's number: its task state
        self.name = t.name
        self.state = TASK_RUNNING
        self.clock: Clock = []  # what the last wakeup released to the wakee

    def _kc_state(self) -> int:
        return self.state

    def _kc_enabled(self, op: Op, tid: int, state: Any) -> bool:
        if op.arg != SLEEP:
            return True
        return (self.state if state is None else state) == TASK_RUNNING

    def _kc_holders(self) -> list[int]:
        return []

    def _kc_label(self) -> str:
        return f"a wake_up_process({self.name}) ({_NAMES.get(self.state, hex(self.state))}, in schedule())"


def _task(t: Thread) -> TaskState:
    kt = kthread(t)
    ts: TaskState | None = kt.task
    if ts is None:
        ts = kt.task = TaskState(t)
    return ts


def _step(ts: TaskState, label: str, arg: Any = None) -> Thread:
    ex = runtime.current
    assert ex is not None
    ex.visible(Op(ts.key, True, label, ts, arg))
    t = ex.current
    assert t is not None
    return t


def get_current() -> Thread:
    """``current``: the running task (hand it to a waker for wake_up_process())."""
    return current_thread()


def _check_state(state: Any, fn: str) -> None:
    if state not in (TASK_RUNNING, TASK_INTERRUPTIBLE, TASK_UNINTERRUPTIBLE):
        raise UsageError(f"{fn}({state!r}): use TASK_RUNNING, TASK_INTERRUPTIBLE or TASK_UNINTERRUPTIBLE")


def set_current_state(state: int) -> None:
    """``set_current_state(state)``: smp_store_mb(current->__state, state) -- before testing the condition."""
    _check_state(state, "set_current_state")
    ts = _task(current_thread())
    _step(ts, f"set_current_state({_NAMES[state]})")
    ts.state = state


def __set_current_state(state: int) -> None:
    """``__set_current_state(state)``: the plain store (e.g. back to TASK_RUNNING after the loop)."""
    _check_state(state, "__set_current_state")
    ts = _task(current_thread())
    _step(ts, f"__set_current_state({_NAMES[state]})")
    ts.state = state


def _sleepable(fn: str) -> None:
    reason = kthread().atomic_reason()
    if reason is not None:
        warn(
            "sleep-in-atomic",
            f"{fn} with {reason}",
            headline=f"BUG: scheduling while atomic: {current_thread().name}",
        )


def schedule() -> None:
    """``schedule()``: sleep until woken if ``current->__state`` is not TASK_RUNNING; else reschedule."""
    ts = _task(current_thread())
    _sleepable("schedule()")  # schedule_debug(): in atomic context even when it would not sleep
    t = _step(ts, "schedule()", SLEEP)
    t.vc = vc_join(t.vc, ts.clock)


def schedule_timeout(timeout: int) -> int:
    """``schedule_timeout(timeout)``: sleep until woken or the timeout fires; 0 if it fired."""
    if timeout == MAX_SCHEDULE_TIMEOUT:
        schedule()
        return timeout
    t = current_thread()
    ts = _task(t)
    if ts.state == TASK_RUNNING:
        _step(ts, f"schedule_timeout({timeout})")
        return timeout
    _sleepable(f"schedule_timeout({timeout})")
    # Never blocks: the timer may expire at any point, which is this step itself.
    t = _step(ts, f"schedule_timeout({timeout})")
    if ts.state == TASK_RUNNING:  # a wakeup came first
        t.vc = vc_join(t.vc, ts.clock)
        return timeout
    ts.state = TASK_RUNNING  # process_timeout(): wake_up_process(current)
    return 0


def wake_up_state(p: Thread, state: int) -> bool:
    """``wake_up_state(p, state)``: make ``p`` TASK_RUNNING if its state is in ``state``; True if so."""
    if not isinstance(p, Thread):
        raise UsageError(f"wake_up_process() takes a task (spawn()'s result, get_current()), not {p!r}")
    ts = _task(p)
    t = _step(ts, f"wake_up_process({p.name})")
    if p.done or not ts.state & state:
        return False  # already running (or dead): nothing to do -- a wakeup before set_current_state
    ts.state = TASK_RUNNING
    ts.clock = vc_join(ts.clock, t.vc)
    vc_tick(t.vc, t.tid)
    return True


def wake_up_process(p: Thread) -> bool:
    """``wake_up_process(p)``: try_to_wake_up(p, TASK_NORMAL); True if ``p`` was sleeping (or about to)."""
    return wake_up_state(p, TASK_NORMAL)
