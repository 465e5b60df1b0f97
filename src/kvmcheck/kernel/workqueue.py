"""Workqueues: struct work_struct and struct workqueue_struct (kernel/workqueue.c, v6.x).

* ``INIT_WORK(work, func)`` sets the function (``Work(func)`` does both);
  ``func(work)`` is called with the work item, as in C (``container_of``).
* ``queue_work(wq, work)`` sets WORK_STRUCT_PENDING; if it was already set
  it does nothing and returns False (``test_and_set_bit`` in
  ``queue_work_on``).  Otherwise one *kworker* thread (named
  ``kworker/<wq>``) is started for this instance; the search schedules it
  like any other thread.  As ``process_one_work`` does, the worker clears
  PENDING *before* calling ``func`` (so the work may be requeued while it
  runs), and a work item never runs concurrently with itself (the
  non-reentrancy guarantee: a second instance waits for the first).
* ``flush_work(work)`` waits until the instance queued when it was called
  (if any) has finished; True if it had to wait.  ``cancel_work_sync``
  takes a pending instance off the queue and waits for a running one;
  True if it was pending.  ``flush_workqueue(wq)`` waits for every instance
  queued on ``wq`` before the call; ``destroy_workqueue(wq)`` drains it, and
  a later ``queue_work`` on it WARNs (``__WQ_DESTROYING``).  All may sleep.
* lockdep, as the kernel annotates it: a worker runs ``func`` holding the
  workqueue's and the work's lockdep maps ("(wq_completion)name" and
  "(work_completion)name"); ``flush_work`` acquires and releases the work's
  map and ``flush_workqueue`` the workqueue's.  So flushing while holding a
  lock the work takes is a "possible circular locking dependency" even in
  runs that do not deadlock -- and the search finds the deadlock itself.
* Happens-before: queueing happens before the execution it starts (the
  worker is spawned by the queuer); an execution's end happens before a
  flush, cancel or drain that waited for it.

Simplifications: ``max_active`` and ordered workqueues are not modelled
(instances of different work items may run concurrently); delayed work,
``WQ_MEM_RECLAIM`` and CPU affinity are not modelled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvmcheck._engine import runtime
from kvmcheck._engine.clock import Clock, vc_join, vc_tick
from kvmcheck._engine.finding import UsageError
from kvmcheck._engine.ops import Op
from kvmcheck.kernel import lockdep
from kvmcheck.kernel._core import Held, Primitive, current_thread, kthread, warn

START = "start"  # a worker's first step: waits until no other instance of the work runs
IDLE = "idle"  # cancel_work_sync's wait: until no instance runs


class _Until:
    """What a flush waits for: every instance numbered <= ``upto`` has finished."""

    __slots__ = ("upto",)

    def __init__(self, upto: int) -> None:
        self.upto = upto


class _LockdepMap:
    """A lockdep map that is not a lock (``struct lockdep_map`` of a work or a workqueue)."""

    sleeps = True  # never makes the holder atomic, never takes irq-usage bits
    recursive_read = False
    kind = "lockdep_map"

    def __init__(self, name: str) -> None:
        self.name = self.cls = name


class Workqueue(Primitive):
    """``struct workqueue_struct`` (``alloc_workqueue``)."""

    kind = "workqueue_struct"
    prefix = "wq"

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name)
        self.queued = 0  # instances queued on it so far (their numbers are 1..queued)
        self.outstanding: list[int] = []  # numbers of instances not finished yet
        self.destroyed = False
        self.clock: Clock = []  # join of the clocks at the end of every execution
        self.map = _LockdepMap(f"(wq_completion){self.name}")

    def _kc_state(self) -> Any:
        return tuple(self.outstanding)

    def _kc_enabled(self, op: Op, tid: int, state: Any) -> bool:
        if not isinstance(op.arg, _Until):
            return True
        out = self.outstanding if state is None else state
        return not out or out[0] > op.arg.upto


class Work(Primitive):
    """``struct work_struct``: ``Work(func)`` is ``DECLARE_WORK`` / ``INIT_WORK``."""

    kind = "work_struct"
    prefix = "work"

    def __init__(self, func: Callable[[Any], Any] | None = None, name: str | None = None) -> None:
        super().__init__(name)
        self.func = func
        self.pending = False
        self.running = False
        self.seq = 0  # instances queued so far
        self.finished = 0  # the number of the last instance that finished (or was cancelled)
        self.cancelled: list[int] = []
        self.clock: Clock = []  # the clock at the end of its last execution
        self.map = _LockdepMap(f"(work_completion){self.name}")

    def _kc_state(self) -> Any:
        return (self.running, self.finished)

    def _kc_enabled(self, op: Op, tid: int, state: Any) -> bool:
        running, finished = (self.running, self.finished) if state is None else state
        if op.arg == START or op.arg == IDLE:
            return not running
        if isinstance(op.arg, _Until):
            return bool(finished >= op.arg.upto)
        return True


def INIT_WORK(work: Work, func: Callable[[Any], Any]) -> None:
    """Set ``work``'s function (not a visible step: the work is not shared yet)."""
    if not isinstance(work, Work):
        raise UsageError(f"INIT_WORK() takes a Work (struct work_struct), not {work!r}")
    work.func = func


def alloc_workqueue(name: str, flags: int = 0, max_active: int = 0) -> Workqueue:
    """``alloc_workqueue(fmt, flags, max_active)`` (flags and max_active are not modelled)."""
    return Workqueue(name)


def _system_wq() -> Workqueue:
    ex = runtime.current
    if ex is None:
        raise UsageError("schedule_work() outside a running check (call it from a scenario)")
    wq: Workqueue | None = ex.k.system_wq
    if wq is None:
        wq = ex.k.system_wq = Workqueue("events")
    return wq


def _check(wq: Any, work: Any, fn: str) -> None:
    if not isinstance(wq, Workqueue):
        raise UsageError(f"{fn}() takes a Workqueue (alloc_workqueue()) first, not {wq!r}")
    if not isinstance(work, Work):
        raise UsageError(f"{fn}() takes a Work (struct work_struct), not {work!r}")
    if work.func is None:
        raise UsageError(f"{fn}({work.name}): the work has no function; INIT_WORK() it first")


def queue_work(wq: Workqueue, work: Work) -> bool:
    """Queue ``work`` on ``wq``; False (and nothing done) if it was already pending."""
    _check(wq, work, "queue_work")
    work.step(True, f"queue_work({wq.name}, {work.name})")
    if wq.destroyed:
        warn(
            "warn", f"queue_work() on destroyed workqueue {wq.name}", f"WARNING: at __queue_work ({wq.name})"
        )
        return False
    if work.pending:
        return False
    work.pending = True
    work.seq += 1
    wq.queued += 1
    wq.outstanding.append(wq.queued)
    _start_worker(wq, work, work.seq, wq.queued)
    return True


def schedule_work(work: Work) -> bool:
    """``queue_work(system_wq, work)``."""
    return queue_work(_system_wq(), work)


def _start_worker(wq: Workqueue, work: Work, seq: int, number: int) -> None:
    ex = runtime.current
    assert ex is not None

    def worker() -> None:
        t = work.step(True, f"process_one_work({work.name})", START)
        assert t is not None
        t.vc = vc_join(t.vc, work.clock)  # after the previous execution (pool->lock)
        if seq in work.cancelled:  # cancel_work_sync() took it off the queue: nothing to run
            work.cancelled.remove(seq)
            _finish(wq, work, seq, number, t, ran=False)
            return
        work.pending = False  # cleared before the function runs: it may be requeued
        work.running = True
        kt = kthread(t)
        maps = [Held(wq.map, False, False), Held(work.map, False, False)]
        for h in maps:
            lockdep.on_acquire(kt, h)
            kt.held.append(h)
        try:
            assert work.func is not None
            work.func(work)
        finally:
            for h in maps:
                if h in kt.held:
                    kt.held.remove(h)
        t2 = work.step(True, f"process_one_work({work.name}) done")
        assert t2 is not None
        _finish(wq, work, seq, number, t2, ran=True)

    worker.__name__ = f"kworker/{wq.name}"
    ex.spawn(worker, (), f"kworker/{wq.name}")


def _finish(wq: Workqueue, work: Work, seq: int, number: int, t: Any, ran: bool) -> None:
    work.running = False
    work.finished = max(work.finished, seq)
    if ran:
        work.clock = vc_join(work.clock, t.vc)
        wq.clock = vc_join(wq.clock, t.vc)
        vc_tick(t.vc, t.tid)
    wq.outstanding.remove(number)


def _lockdep_touch(m: _LockdepMap) -> None:
    """lock_map_acquire(m); lock_map_release(m): the dependency, without holding anything."""
    kt = kthread()
    lockdep.on_acquire(kt, Held(m, False, False))


def flush_work(work: Work) -> bool:
    """Wait for the instance of ``work`` queued now (if any) to finish; True if it waited."""
    from kvmcheck.kernel.context import might_sleep_check

    if not isinstance(work, Work):
        raise UsageError(f"flush_work() takes a Work (struct work_struct), not {work!r}")
    might_sleep_check(f"flush_work({work.name})")
    _lockdep_touch(work.map)
    return _wait_work(work, "flush_work")


def _wait_work(work: Work, fn: str) -> bool:
    t = work.step(True, f"{fn}({work.name})")
    target = work.seq  # the instance queued when the flush took effect
    waited = work.finished < target
    if waited:
        work.step(True, f"{fn}({work.name}) waits", _Until(target))
    if t is not None:  # through pool->lock, which the worker took when it finished
        t.vc = vc_join(t.vc, work.clock)
    return waited


def cancel_work_sync(work: Work) -> bool:
    """Take a pending ``work`` off its queue and wait for a running one; True if it was pending."""
    from kvmcheck.kernel.context import might_sleep_check

    if not isinstance(work, Work):
        raise UsageError(f"cancel_work_sync() takes a Work (struct work_struct), not {work!r}")
    might_sleep_check(f"cancel_work_sync({work.name})")
    _lockdep_touch(work.map)
    work.step(True, f"cancel_work_sync({work.name})")
    was = work.pending
    if was:
        work.pending = False
        work.cancelled.append(work.seq)
    if work.running:
        work.step(True, f"cancel_work_sync({work.name}) waits", IDLE)
    t = current_thread()
    t.vc = vc_join(t.vc, work.clock)
    return was


def flush_workqueue(wq: Workqueue) -> None:
    """Wait until every instance queued on ``wq`` before this call has finished."""
    from kvmcheck.kernel.context import might_sleep_check

    if not isinstance(wq, Workqueue):
        raise UsageError(f"flush_workqueue() takes a Workqueue, not {wq!r}")
    might_sleep_check(f"flush_workqueue({wq.name})")
    _lockdep_touch(wq.map)
    t = wq.step(True, f"flush_workqueue({wq.name})")
    target = wq.queued  # every instance queued before the flush took effect
    if t is None:
        return
    if wq.outstanding and wq.outstanding[0] <= target:
        wq.step(True, f"flush_workqueue({wq.name}) waits", _Until(target))
    t.vc = vc_join(t.vc, wq.clock)


def drain_workqueue(wq: Workqueue) -> None:
    """Wait until ``wq`` is empty (here: every instance queued so far has finished)."""
    flush_workqueue(wq)


def destroy_workqueue(wq: Workqueue) -> None:
    """Drain ``wq``, then retire it: queueing on it afterwards is a WARN."""
    drain_workqueue(wq)
    wq.destroyed = True
