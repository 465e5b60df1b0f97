"""Workqueues: struct work_struct, struct delayed_work, struct workqueue_struct (kernel/workqueue.c).

Read at torvalds/linux kernel/workqueue.c @ 1b83d5756a89 (the v4.19-v5.x shape: try_to_grab_pending,
__cancel_work_timer with WORK_OFFQ_CANCELING), and the lockdep annotations as they are since
"[PATCH 1/8] workqueue: Update lock debugging code" (Tejun Heo, 2024-01-30,
<20240130091300.2968534-2-tj@kernel.org>, v6.9): start_flush_work() touches the work's lockdep map
only when it found the work queued or executing, for flush and cancel alike.  v6.10's disable count
(WORK_OFFQ_DISABLE) is not modelled; cancel_work_sync() behaves the same to its caller.

What a work item is, as the kernel keeps it:

* ``PENDING`` (WORK_STRUCT_PENDING_BIT in ``work->data``): ``queue_work()`` claims it with
  test_and_set_bit and does nothing (returns False) if it was set (queue_work_on: "Return: %false
  if @work was already on a queue").  Otherwise the instance goes on the worklist and one *kworker*
  thread (``kworker/<wq>``) is started for it; the search schedules it like any other thread.
* ``process_one_work()`` takes the instance off the worklist and clears PENDING under pool->lock
  *before* it calls the function (so the work may be requeued while it runs), calls
  ``func(work)``, and after the function returned touches only the worker pool, never the work:
  "It is permissible to free the struct work_struct from inside the function that is called from
  it" (the comment above its lockdep_copy_map; "While we must be careful to not use "work" after
  this").  A work never runs concurrently with itself (non-reentrancy: a second instance waits
  for the first, as find_worker_executing_work()/move_linked_works() arrange).
* ``cancel_work_sync(work)`` (__cancel_work_timer): grabs PENDING (try_to_grab_pending: "This
  function can handle @work in any stable state - idle, on timer or on worklist"), taking a queued
  instance off the worklist, marks the work WORK_OFFQ_CANCELING, waits for an executing instance
  (__flush_work), then clears PENDING and CANCELING.  While it holds PENDING, a ``queue_work()``
  of the work -- from the work function itself, say -- fails, which is why it "can be used even
  if the work re-queues itself ... On return from this function, @work is guaranteed to be not
  pending or executing on any CPU".  A second concurrent canceller waits for the first
  (-ENOENT: "someone else is canceling @work").  Returns True if the work was pending.
* ``flush_work(work)`` waits "for a work to finish executing the last queueing instance"; True if
  it waited.  ``flush_workqueue(wq)`` "sleeps until all work items which were queued on entry have
  finished execution, but it is not livelocked by new incoming ones".  ``drain_workqueue(wq)``
  waits until the workqueue is empty; while it drains, "only chain queueing is allowed" (a
  ``queue_work()`` from outside the workqueue's own work items WARNs and is dropped, PENDING stays
  set).  ``destroy_workqueue(wq)`` drains it; a later queue_work WARNs (__WQ_DESTROYING).
* Delayed work: ``queue_delayed_work(wq, dwork, delay)`` claims PENDING and arms the timer (a
  zero delay queues at once); the timer fires at a moment the search chooses
  (delayed_work_timer_fn, from softirq) and queues the work.  ``cancel_delayed_work[_sync]``,
  ``mod_delayed_work``, ``flush_delayed_work`` steal the timer first (del_timer), as
  try_to_grab_pending does for a delayed work.

lockdep, as the kernel annotates it: a kworker runs the function holding ``wq->lockdep_map``
("(wq_completion)name") and a *copy* of ``work->lockdep_map`` ("(work_completion)name") -- the
same class, another instance, so freeing the work inside its function is no "held lock freed".
``flush_work``/``cancel_work_sync`` of a work they found queued or running acquire and release
the work's map (touch_work_lockdep_map), and ``flush_work`` also the workqueue's map if it is
ordered (max_active 1) or has a rescuer (WQ_MEM_RECLAIM); ``flush_workqueue`` always touches the
workqueue's map.  So flushing while holding a lock the work takes is a "possible circular locking
dependency", and flush_work() from inside the work itself is "possible recursive locking
detected" on the work's map -- then the hang itself.

Happens-before: queueing happens before the execution it starts; an execution's end happens
before a flush, cancel or drain that waited for it, and before the next execution of the work.

Simplifications: ``max_active`` is recorded (for lockdep) but instances of different works may run
concurrently even on an ordered workqueue; CPU affinity and the rescuer thread are not modelled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvmcheck._engine import runtime
from kvmcheck._engine.clock import Clock, vc_join, vc_tick
from kvmcheck._engine.finding import UsageError
from kvmcheck._engine.ops import Op
from kvmcheck.kernel import lockdep
from kvmcheck.kernel._core import Held, Primitive, current_thread, kthread, report_embedded, warn
from kvmcheck.kernel.context import might_sleep_check

__all__ = [
    "INIT_DELAYED_WORK",
    "INIT_WORK",
    "WQ_MEM_RECLAIM",
    "WQ_UNBOUND",
    "DelayedWork",
    "Work",
    "Workqueue",
    "alloc_ordered_workqueue",
    "alloc_workqueue",
    "cancel_delayed_work",
    "cancel_delayed_work_sync",
    "cancel_work",
    "cancel_work_sync",
    "container_of",
    "delayed_work_pending",
    "destroy_workqueue",
    "drain_workqueue",
    "flush_delayed_work",
    "flush_work",
    "flush_workqueue",
    "mod_delayed_work",
    "queue_delayed_work",
    "queue_work",
    "schedule_delayed_work",
    "schedule_work",
    "to_delayed_work",
    "work_pending",
]

WQ_UNBOUND = 1 << 1
WQ_FREEZABLE = 1 << 2
WQ_MEM_RECLAIM = 1 << 3  # the workqueue has a rescuer thread
WQ_HIGHPRI = 1 << 4

CANCEL = "cancel"  # cancel_work_sync's grab: waits while another canceller owns the work


class _Start:
    """A kworker's first step for instance ``seq``: waits while another instance of the work runs."""

    __slots__ = ("seq",)

    def __init__(self, seq: int) -> None:
        self.seq = seq


class _Fire:
    """A delayed work's timer firing for arming number ``seq`` (never blocks)."""

    __slots__ = ("seq",)

    def __init__(self, seq: int) -> None:
        self.seq = seq


class _Until:
    """What a flush waits for: every instance numbered <= ``upto`` has finished (None: all)."""

    __slots__ = ("upto",)

    def __init__(self, upto: int | None) -> None:
        self.upto = upto


class _LockdepMap:
    """A lockdep map that is not a lock (``struct lockdep_map`` of a work or a workqueue)."""

    sleeps = True  # never makes the holder atomic, never takes irq-usage bits
    recursive_read = False
    kind = "lockdep_map"

    def __init__(self, name: str, cls: str | None = None) -> None:
        self.name = name
        self.cls = cls or name

    def copy(self) -> _LockdepMap:
        """lockdep_copy_map(): another map of the same class."""
        return _LockdepMap(self.name, self.cls)


class Workqueue(Primitive):
    """``struct workqueue_struct`` (``alloc_workqueue``)."""

    kind = "workqueue_struct"
    prefix = "wq"
    embeddable = False  # alloc_workqueue() allocates it; a struct holds a pointer

    def __init__(self, name: str | None = None, flags: int = 0, max_active: int = 0) -> None:
        super().__init__(name)
        self.flags = flags
        self.max_active = max_active
        self.queued = 0  # instances queued on it so far (their numbers are 1..queued)
        self.outstanding: list[int] = []  # numbers of instances not finished (nor cancelled) yet
        self.draining = 0
        self.destroyed = False
        self.clock: Clock = []  # join of the clocks at the end of every execution
        self.map = _LockdepMap(f"(wq_completion){self.name}")

    def _kc_state(self) -> Any:
        return tuple(self.outstanding)

    def _kc_enabled(self, op: Op, tid: int, state: Any) -> bool:
        if not isinstance(op.arg, _Until):
            return True
        out = self.outstanding if state is None else state
        return not out or (op.arg.upto is not None and out[0] > op.arg.upto)


class Work(Primitive):
    """``struct work_struct``: ``Work(func)`` is ``DECLARE_WORK`` / ``INIT_WORK``.

    The function is called with the work item; it finds its object with
    ``container_of(work, Type, "member")``.
    """

    kind = "work_struct"
    prefix = "work"

    def __init__(self, func: Callable[[Any], Any] | None = None, name: str | None = None) -> None:
        super().__init__(name)
        self.func = func
        # Invariant: the fields below change only in steps on this work's key.
        self.pending = False  # WORK_STRUCT_PENDING_BIT
        self.canceling = False  # WORK_OFFQ_CANCELING: a cancel_work_sync() owns PENDING
        self.queued = 0  # the instance on a worklist (0: none)
        self.running = 0  # the instance a kworker is executing (0: none)
        self.runner = -1  # that kworker's thread id
        self.armed = 0  # delayed work: the arming number of the pending timer (0: none)
        self.seq = 0  # instances queued so far
        self.arms = 0  # timers armed so far
        self.wq: Workqueue | None = None  # the workqueue it was last queued on
        # Invariant: these two change only in steps on the workqueue's key.
        self.numbers: dict[int, int] = {}  # instance -> its number on that workqueue (0: dropped)
        self.gone: set[int] = set()  # instances cancelled before their workqueue numbered them
        self.clock: Clock = []  # the clock at the end of its last execution
        self.map = _LockdepMap(f"(work_completion){self.name}")

    def _kc_state(self) -> Any:
        return (self.queued, self.running, self.canceling)

    def _kc_enabled(self, op: Op, tid: int, state: Any) -> bool:
        queued, running, canceling = self._kc_state() if state is None else state
        arg = op.arg
        if isinstance(arg, _Start):
            return not running or queued != arg.seq
        if isinstance(arg, _Until):
            upto = arg.upto if arg.upto is not None else 1 << 62
            return not (0 < queued <= upto) and not (0 < running <= upto)
        if arg == CANCEL:
            return not canceling
        return True

    def _kc_holders(self) -> list[int]:
        return [self.runner] if self.running else []


class DelayedWork(Work):
    """``struct delayed_work``: a work item and its timer (``INIT_DELAYED_WORK``).

    ``dwork.work`` is the work item itself (``&dwork->work``): a work function
    gets it, ``to_delayed_work(work)`` gives the delayed work back.
    """

    kind = "delayed_work"
    prefix = "dwork"

    @property
    def work(self) -> DelayedWork:
        return self


def to_delayed_work(work: Work) -> DelayedWork:
    """``to_delayed_work(work)``: the delayed_work whose ``work`` member ``work`` is."""
    if not isinstance(work, DelayedWork):
        raise UsageError(f"to_delayed_work({work!r}): not the work of a DelayedWork")
    return work


def INIT_WORK(work: Work, func: Callable[[Any], Any]) -> None:
    """Set ``work``'s function (not a visible step: the work is not shared yet)."""
    if not isinstance(work, Work):
        raise UsageError(f"INIT_WORK() takes a Work (struct work_struct), not {work!r}")
    work.func = func


def INIT_DELAYED_WORK(dwork: DelayedWork, func: Callable[[Any], Any]) -> None:
    """``INIT_DELAYED_WORK(dwork, func)``: set the delayed work's function."""
    if not isinstance(dwork, DelayedWork):
        raise UsageError(f"INIT_DELAYED_WORK() takes a DelayedWork, not {dwork!r}")
    dwork.func = func


def alloc_workqueue(name: str, flags: int = 0, max_active: int = 0) -> Workqueue:
    """``alloc_workqueue(fmt, flags, max_active)``: flags and max_active matter to lockdep only."""
    return Workqueue(name, flags, max_active)


def alloc_ordered_workqueue(name: str, flags: int = 0) -> Workqueue:
    """``alloc_ordered_workqueue(fmt, flags)``: max_active 1 (flush_work() inside it is recursion)."""
    return Workqueue(name, flags, 1)


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
    _check_work(work, fn)
    if work.func is None:
        raise UsageError(f"{fn}({work.name}): the work has no function; INIT_WORK() it first")


def _check_work(work: Any, fn: str, cls: type = Work) -> None:
    if not isinstance(work, cls):
        what = "a DelayedWork (struct delayed_work)" if cls is DelayedWork else "a Work (struct work_struct)"
        raise UsageError(f"{fn}() takes {what}, not {work!r}")


# -- queueing ------------------------------------------------------------------------------------------
def queue_work(wq: Workqueue, work: Work) -> bool:
    """Queue ``work`` on ``wq``; False (and nothing done) if it was already pending."""
    _check(wq, work, "queue_work")
    work.step(True, f"queue_work({wq.name}, {work.name})")
    if work.pending:  # test_and_set_bit(WORK_STRUCT_PENDING_BIT) failed
        return False
    work.pending = True
    _queue(wq, work)
    return True


def schedule_work(work: Work) -> bool:
    """``queue_work(system_wq, work)``."""
    return queue_work(_system_wq(), work)


def _queue(wq: Workqueue, work: Work) -> None:
    """__queue_work(), inside the caller's step on ``work`` (PENDING is ours): a new instance.

    The instance is on the work at once (a canceller may take it from here on);
    the workqueue learns of it in a step of its own, which also makes the checks
    the kernel makes there (destroyed; draining: chained queueing only).
    """
    work.seq += 1
    seq = work.queued = work.seq
    work.wq = wq
    wq.step(True, f"__queue_work({wq.name}, {work.name})")
    if seq in work.gone:  # cancelled before the workqueue saw it
        work.gone.discard(seq)
        return
    if wq.destroyed or (wq.draining and kthread().wq_worker is not wq):
        what = "destroyed" if wq.destroyed else "draining"
        warn(
            "warn",
            f"queue_work() on {what} workqueue {wq.name} (PENDING stays set, the work never runs)",
            f"WARNING: at __queue_work ({wq.name})",
        )
        work.numbers[seq] = 0  # on no worklist: a cancel has nothing to take off one
        work.step(True, f"__queue_work({wq.name}, {work.name}) dropped")
        if work.queued == seq:  # flush_work() finds it "already gone"
            work.queued = 0
        return
    wq.queued += 1
    wq.outstanding.append(wq.queued)
    work.numbers[seq] = wq.queued
    _start_worker(wq, work, seq)


def _start_worker(wq: Workqueue, work: Work, seq: int) -> None:
    ex = runtime.current
    assert ex is not None

    def worker() -> None:
        # pool->lock: take it off the worklist, clear PENDING -- the last touch of the work.
        label = f"process_one_work({work.name})"
        # Ordered against a free of the work's object while the instance is queued (a cancel
        # only ever takes it away), but it touches the work only if it is still queued now.
        t = _announce(work, label, _Start(seq), touch=work.queued == seq)
        if work.queued != seq:  # cancelled before a kworker got to it: nothing runs
            return
        _kasan(work, label)
        t.vc = vc_join(t.vc, work.clock)  # after the previous execution (pool->lock)
        work.queued = 0
        work.pending = False  # cleared before the function runs: it may be requeued
        work.running, work.runner = seq, t.tid
        _run(wq, work, t)
        # Past the function: only the pool's bookkeeping, never the (possibly freed) work.
        t2 = _announce(work, f"process_one_work({work.name}) done", None, touch=False)
        assert t2 is not None
        work.running, work.runner = 0, -1
        work.clock = vc_join(work.clock, t2.vc)
        vc_tick(t2.vc, t2.tid)
        _dec_nr_in_flight(wq, work, seq, "process_one_work")

    worker.__name__ = f"kworker/{wq.name}"
    ex.spawn(worker, (), f"kworker/{wq.name}")


def _announce(work: Work, label: str, arg: Any, touch: bool) -> Any:
    """One step on ``work`` whose touching of the work's memory is decided once it is granted."""
    ex = runtime.current
    assert ex is not None
    ex.visible(work.op(True, label, arg, touch))
    return ex.current


def _kasan(work: Work, label: str) -> None:
    """The step ``label`` read or wrote the work: KASAN if its object was freed."""
    home = work._kc_home
    if home is not None and home._kc_freed is not None:
        report_embedded(home, work, label)


def _run(wq: Workqueue, work: Work, t: Any) -> None:
    """Call the function holding the workqueue's map and a copy of the work's (lockdep)."""
    kt = kthread(t)
    maps = [Held(wq.map, False, False), Held(work.map.copy(), False, False)]
    for h in maps:
        lockdep.on_acquire(kt, h)
        kt.held.append(h)
    kt.wq_worker = wq
    try:
        assert work.func is not None
        work.func(work)
    finally:
        kt.wq_worker = None
        for h in maps:
            if h in kt.held:
                kt.held.remove(h)


def _dec_nr_in_flight(wq: Workqueue, work: Work, seq: int, fn: str) -> None:
    """pwq_dec_nr_in_flight(): instance ``seq`` of ``work`` left ``wq`` (finished or cancelled)."""
    t = wq.step(True, f"{fn}({wq.name}) pwq_dec_nr_in_flight")
    number = work.numbers.pop(seq, None)
    if number is None:  # cancelled before __queue_work() numbered it: it will drop it
        work.gone.add(seq)
    elif number in wq.outstanding:
        wq.outstanding.remove(number)
    if t is not None:
        wq.clock = vc_join(wq.clock, t.vc)
        vc_tick(t.vc, t.tid)


# -- flushing ------------------------------------------------------------------------------------------
def _touch(m: _LockdepMap) -> None:
    """lock_map_acquire(m); lock_map_release(m): the dependency, without holding anything.

    Acquiring a map this task holds already (a kworker flushing its own ordered
    workqueue) is lockdep's recursive locking, as for a copy of the same class.
    """
    kt = kthread()
    new = Held(m, False, False)
    for h in kt.held:
        if h.lock is m:
            warn(
                "lock-order",
                f"possible recursive locking: {m.name} while holding it",
                headline="WARNING: possible recursive locking detected",
                details=lockdep.recursive_details(kt, new, h),
            )
            return
    lockdep.on_acquire(kt, new)


def _wait_idle(work: Work, fn: str, from_cancel: bool) -> bool:
    """__flush_work(): wait for the last queued or executing instance; True if there was one."""
    target = work.queued or work.running  # the latest instance: queued is newer than running
    if not target:  # already gone -- seen under pool->lock, after the last execution's end
        t0 = current_thread()
        t0.vc = vc_join(t0.vc, work.clock)
        return False
    wq = work.wq
    _touch(work.map)  # touch_work_lockdep_map() in start_flush_work
    if wq is not None and not from_cancel and (wq.max_active == 1 or wq.flags & WQ_MEM_RECLAIM):
        _touch(wq.map)  # "Force a lock recursion deadlock when using flush_work() inside a
        # single-threaded or rescuer equipped workqueue"
    t = _announce(work, f"{fn}({work.name}) waits", _Until(target), touch=False)
    if t is not None:  # wait_for_completion(&barr.done): after the instance's end
        t.vc = vc_join(t.vc, work.clock)
    return True


def flush_work(work: Work) -> bool:
    """Wait for the last queueing instance of ``work`` to finish; True if it waited."""
    _check_work(work, "flush_work")
    might_sleep_check(f"flush_work({work.name})")
    work.step(True, f"flush_work({work.name})")  # get_work_pool(): reads work->data
    return _wait_idle(work, "flush_work", from_cancel=False)


def flush_delayed_work(dwork: DelayedWork) -> bool:
    """Queue a delayed work whose timer is pending at once, then flush_work() it."""
    _check_work(dwork, "flush_delayed_work", DelayedWork)
    might_sleep_check(f"flush_delayed_work({dwork.name})")
    dwork.step(True, f"flush_delayed_work({dwork.name})")
    if dwork.armed and dwork.wq is not None:  # del_timer_sync() won: __queue_work now
        dwork.armed = 0
        _queue(dwork.wq, dwork)
    return flush_work(dwork)


def flush_workqueue(wq: Workqueue) -> None:
    """Wait until every instance queued on ``wq`` before this call has finished."""
    if not isinstance(wq, Workqueue):
        raise UsageError(f"flush_workqueue() takes a Workqueue, not {wq!r}")
    might_sleep_check(f"flush_workqueue({wq.name})")
    _touch(wq.map)
    _flush_wq(wq, wq.queued, "flush_workqueue")


def _flush_wq(wq: Workqueue, upto: int | None, fn: str) -> None:
    t = wq.step(True, f"{fn}({wq.name})")
    if t is None:
        return
    target = wq.queued if upto is not None else None  # every instance queued before the flush
    if wq.outstanding and (target is None or wq.outstanding[0] <= target):
        wq.step(True, f"{fn}({wq.name}) waits", _Until(target))
    t.vc = vc_join(t.vc, wq.clock)


def drain_workqueue(wq: Workqueue) -> None:
    """Wait until ``wq`` is empty; meanwhile only its own work items may queue on it."""
    if not isinstance(wq, Workqueue):
        raise UsageError(f"drain_workqueue() takes a Workqueue, not {wq!r}")
    might_sleep_check(f"drain_workqueue({wq.name})")
    wq.step(True, f"drain_workqueue({wq.name}) __WQ_DRAINING")
    wq.draining += 1
    _touch(wq.map)
    _flush_wq(wq, None, "drain_workqueue")
    wq.draining -= 1


def destroy_workqueue(wq: Workqueue) -> None:
    """Drain ``wq``, then retire it: queueing on it afterwards is a WARN."""
    drain_workqueue(wq)
    wq.step(True, f"destroy_workqueue({wq.name})")
    wq.destroyed = True


# -- cancelling ----------------------------------------------------------------------------------------
def _grab_pending(
    work: Work, fn: str, blocking: bool, sync: bool = False, keep: bool = True
) -> tuple[bool, bool]:
    """try_to_grab_pending(): (was it pending, do we own PENDING now).

    One step under pool->lock: steal the timer or take a queued instance off
    the worklist (which then never runs), or claim PENDING of an idle work;
    ``sync``: also mark the work CANCELING (other grabbers back off).  Then,
    for a taken instance, pwq_dec_nr_in_flight() on its workqueue.  ``keep``:
    PENDING stays ours (cancel_work() clears it at once).
    """
    work.step(True, f"{fn}({work.name})", CANCEL if blocking else None)
    if work.canceling:  # -ENOENT: someone else is canceling (only the non-blocking form gets here)
        return False, False
    was, taken, wq = work.pending, 0, work.wq
    if work.armed:  # del_timer() won: the timer will not queue it
        work.armed = 0
    elif work.queued:
        taken, work.queued = work.queued, 0
    work.pending = keep
    work.canceling = sync  # mark_work_canceling()
    if taken and wq is not None:
        _dec_nr_in_flight(wq, work, taken, fn)
    return was, True


def _cancel_sync(work: Work, fn: str) -> bool:
    might_sleep_check(f"{fn}({work.name})")
    was, _ = _grab_pending(work, fn, blocking=True, sync=True)
    _wait_idle(work, fn, from_cancel=True)
    # clear_work_data(): neither PENDING nor CANCELING; the work is idle
    t = work.step(True, f"{fn}({work.name}) clear_work_data")
    work.pending = False
    work.canceling = False
    if t is None:
        t = current_thread()
    t.vc = vc_join(t.vc, work.clock)
    return was


def cancel_work_sync(work: Work) -> bool:
    """Cancel ``work`` and wait for its execution to finish; True if it was pending.

    Works even if the work re-queues itself: on return it is neither pending nor executing.
    """
    _check_work(work, "cancel_work_sync")
    return _cancel_sync(work, "cancel_work_sync")


def cancel_delayed_work_sync(dwork: DelayedWork) -> bool:
    """``cancel_work_sync()`` for a delayed work: the timer is stolen too; True if it was pending."""
    _check_work(dwork, "cancel_delayed_work_sync", DelayedWork)
    return _cancel_sync(dwork, "cancel_delayed_work_sync")


def _cancel(work: Work, fn: str) -> bool:
    was, _ = _grab_pending(work, fn, blocking=False, keep=False)  # and clear PENDING
    return was


def cancel_work(work: Work) -> bool:
    """Kill off a pending ``work`` without waiting for a running one; True if it was pending."""
    _check_work(work, "cancel_work")
    return _cancel(work, "cancel_work")


def cancel_delayed_work(dwork: DelayedWork) -> bool:
    """Kill off a pending delayed work (the function may still be running on return)."""
    _check_work(dwork, "cancel_delayed_work", DelayedWork)
    return _cancel(dwork, "cancel_delayed_work")


# -- delayed work --------------------------------------------------------------------------------------
def _arm(wq: Workqueue, dwork: DelayedWork, delay: int) -> None:
    """__queue_delayed_work(): PENDING is ours; queue now (delay 0) or arm the timer."""
    if not delay:
        _queue(wq, dwork)
        return
    dwork.wq = wq
    dwork.arms += 1
    dwork.armed = seq = dwork.arms
    ex = runtime.current
    assert ex is not None

    def timer() -> None:
        # delayed_work_timer_fn(), from the timer softirq: queue it, unless the timer was deleted.
        label = f"delayed_work_timer_fn({dwork.name})"
        _announce(dwork, label, _Fire(seq), touch=dwork.armed == seq)
        if dwork.armed != seq:  # del_timer() won: the timer is not queued anywhere
            return
        _kasan(dwork, label)
        dwork.armed = 0
        _queue(wq, dwork)

    timer.__name__ = f"timer:{dwork.name}"
    ex.spawn(timer, (), f"timer:{dwork.name}")


def queue_delayed_work(wq: Workqueue, dwork: DelayedWork, delay: int) -> bool:
    """Queue ``dwork`` on ``wq`` after ``delay`` jiffies; False if it was already pending."""
    _check(wq, dwork, "queue_delayed_work")
    _check_work(dwork, "queue_delayed_work", DelayedWork)
    dwork.step(True, f"queue_delayed_work({wq.name}, {dwork.name})")
    if dwork.pending:
        return False
    dwork.pending = True
    _arm(wq, dwork, delay)
    return True


def schedule_delayed_work(dwork: DelayedWork, delay: int) -> bool:
    """``queue_delayed_work(system_wq, dwork, delay)``."""
    return queue_delayed_work(_system_wq(), dwork, delay)


def mod_delayed_work(wq: Workqueue, dwork: DelayedWork, delay: int) -> bool:
    """Queue ``dwork``, or re-arm its timer if pending; True if it was pending."""
    _check(wq, dwork, "mod_delayed_work")
    _check_work(dwork, "mod_delayed_work", DelayedWork)
    was, owned = _grab_pending(dwork, "mod_delayed_work", blocking=False)
    if owned:
        dwork.step(True, f"mod_delayed_work({wq.name}, {dwork.name}) __queue_delayed_work")
        _arm(wq, dwork, delay)
    return was or not owned  # -ENOENT (being cancelled) counts as pending


def work_pending(work: Work) -> bool:
    """``work_pending(work)``: the PENDING bit (a lockless test)."""
    _check_work(work, "work_pending")
    work.step(False, f"work_pending({work.name})")
    return work.pending


def delayed_work_pending(dwork: DelayedWork) -> bool:
    """``delayed_work_pending(dwork)``: work_pending() of its work."""
    return work_pending(dwork)


def container_of(ptr: Any, type_: type, member: str) -> Any:
    """``container_of(ptr, type, member)``: the ``type`` object whose ``member`` ``ptr`` is.

    For an embedded primitive (a work item, a delayed work, a lock ...) or a
    list_head; ``member`` may be a path ("dwork.work").  A pointer that is not
    that member of a ``type`` object is a model bug, said in one line.
    """
    owner = ptr.__dict__.get("owner") if hasattr(ptr, "__dict__") and "owner" in ptr.__dict__ else None
    if owner is None:
        owner = getattr(ptr, "_kc_home", None)
    got: Any = owner
    for part in member.split("."):
        got = getattr(got, part, None) if got is not None else None
    if owner is None or not isinstance(owner, type_) or got is not ptr:
        raise UsageError(
            f"container_of({ptr!r}, {type_.__name__}, {member}): it is not the {member} of a "
            f"{type_.__name__} (build it in the object's __init__, or kmalloc the object holding it)"
        )
    return owner
