"""Workqueue guarantees as kernel/workqueue.c and include/linux/workqueue.h state them.

Source read: torvalds/linux kernel/workqueue.c @ 1b83d5756a89 (v4.19-v5.x: queue_work_on,
try_to_grab_pending, process_one_work, __flush_work, __cancel_work_timer, flush_workqueue,
drain_workqueue, the delayed-work functions), the v6.9 lockdep change "[PATCH 1/8] workqueue:
Update lock debugging code" (Tejun Heo, 2024-01-30, <20240130091300.2968534-2-tj@kernel.org>)
for touch_work_lockdep_map()/touch_wq_lockdep_map(), and include/linux/workqueue.h's
queue_work() comment (memory ordering).  One case per documented guarantee; each ``why`` quotes
the comment it rests on.
"""

from __future__ import annotations

from typing import Any

import pytest

from kvmcheck import check, join, scenario, spawn
from kvmcheck.kernel import (
    INIT_WORK,
    READ_ONCE,
    WRITE_ONCE,
    DelayedWork,
    Mutex,
    Struct,
    Work,
    alloc_ordered_workqueue,
    alloc_workqueue,
    cancel_delayed_work,
    cancel_delayed_work_sync,
    cancel_work_sync,
    container_of,
    drain_workqueue,
    flush_delayed_work,
    flush_work,
    flush_workqueue,
    kfree,
    kmalloc,
    mod_delayed_work,
    mutex_lock,
    mutex_unlock,
    queue_delayed_work,
    queue_work,
    work_pending,
)
from tests.conformance.case import KernelCase, check_case

WQ_C = "kernel/workqueue.c"
WQ_H = "include/linux/workqueue.h"


class Obj(Struct):
    """``struct obj { int n; struct work_struct work; struct delayed_work dwork; }``."""

    n: int = 0
    x: int = 0
    busy: int = 0
    wq: Any = None

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.work = Work(_bump)
        self.dwork = DelayedWork(_dbump)
        self.lock = Mutex()


def _bump(work: Work) -> None:
    o = container_of(work, Obj, "work")
    o.n = o.n + 1


def _dbump(work: Work) -> None:
    o = container_of(work, Obj, "dwork.work")
    o.n = o.n + 1


# -- queueing -------------------------------------------------------------------------------------
def queue_work_pending_returns_false(seen: set[tuple[bool, bool, int]] | None = None) -> None:
    o = Obj()
    wq = alloc_workqueue("wq")
    a = queue_work(wq, o.work)
    b = queue_work(wq, o.work)
    flush_work(o.work)
    assert a is True
    assert o.n == (1 if not b else 2)  # b: the kworker had taken (and cleared PENDING of) the first
    if seen is not None:
        seen.add((a, b, o.n))


def queue_work_orders_prior_stores() -> None:
    def read_x(work: Work) -> None:
        o = container_of(work, Obj, "work")
        assert o.x == 1  # plain: ordered by the queueing, no data race either

    o = Obj()
    INIT_WORK(o.work, read_x)
    o.x = 1
    queue_work(alloc_workqueue("wq"), o.work)


def pending_cleared_before_the_function() -> None:
    requeued: list[bool] = []

    def requeue(work: Work) -> None:
        o = container_of(work, Obj, "work")
        o.n = o.n + 1
        if o.n == 1:
            requeued.append(queue_work(o.wq, work))

    o = Obj()
    o.wq = alloc_workqueue("wq")
    INIT_WORK(o.work, requeue)
    queue_work(o.wq, o.work)
    flush_workqueue(o.wq)
    flush_work(o.work)
    assert requeued == [True] and o.n == 2


def work_is_non_reentrant() -> None:
    def busy(work: Work) -> None:
        o = container_of(work, Obj, "work")
        assert not READ_ONCE(o, "busy"), "two instances of one work ran at once"
        WRITE_ONCE(o, "busy", 1)
        WRITE_ONCE(o, "busy", 0)

    o = Obj()
    INIT_WORK(o.work, busy)
    wq1, wq2 = alloc_workqueue("wq1"), alloc_workqueue("wq2")

    def queuer(wq: Any) -> None:
        queue_work(wq, o.work)

    join(spawn(queuer, wq1), spawn(queuer, wq2))
    flush_work(o.work)


def work_may_free_itself() -> None:
    def free_self(work: Work) -> None:
        kfree(container_of(work, Obj, "work"))

    o = kmalloc(Obj)
    INIT_WORK(o.work, free_self)
    queue_work(alloc_workqueue("wq"), o.work)


# -- cancelling -----------------------------------------------------------------------------------
def cancel_work_sync_then_kfree() -> None:
    o = kmalloc(Obj)
    queue_work(alloc_workqueue("wq"), o.work)
    cancel_work_sync(o.work)
    kfree(o)


def cancel_work_sync_self_requeueing(requeued: set[bool] | None = None) -> None:
    def again(work: Work) -> None:
        o = container_of(work, Obj, "work")
        o.n = o.n + 1
        if o.n < 3:
            ok = queue_work(o.wq, work)  # False while cancel_work_sync() owns PENDING
            if requeued is not None:
                requeued.add(ok)

    o = kmalloc(Obj)
    o.wq = alloc_workqueue("wq")
    INIT_WORK(o.work, again)
    queue_work(o.wq, o.work)
    cancel_work_sync(o.work)
    n = o.n
    assert o.n == n  # neither pending nor executing: nothing changes it any more
    kfree(o)


def cancel_work_sync_return_value(seen: set[tuple[bool, int]] | None = None) -> None:
    o = Obj()
    queue_work(alloc_workqueue("wq"), o.work)
    was = cancel_work_sync(o.work)
    assert was == (o.n == 0)  # pending: it never ran; not pending: it ran to completion
    if seen is not None:
        seen.add((was, o.n))


def cancel_work_sync_inside_the_work() -> None:
    def cancel_self(work: Work) -> None:
        cancel_work_sync(work)

    o = Obj()
    INIT_WORK(o.work, cancel_self)
    queue_work(alloc_workqueue("wq"), o.work)


def cancel_delayed_work_sync_then_kfree(seen: set[tuple[bool, int]] | None = None) -> None:
    o = kmalloc(Obj)
    queue_delayed_work(alloc_workqueue("wq"), o.dwork, 5)
    was = cancel_delayed_work_sync(o.dwork)
    if seen is not None:
        seen.add((was, o.n))
    kfree(o)


def cancel_delayed_work_then_kfree() -> None:
    o = kmalloc(Obj)
    queue_delayed_work(alloc_workqueue("wq"), o.dwork, 5)
    cancel_delayed_work(o.dwork)
    kfree(o)


# -- flushing -------------------------------------------------------------------------------------
def flush_work_waits() -> None:
    o = Obj()
    queue_work(alloc_workqueue("wq"), o.work)
    flush_work(o.work)
    assert o.n == 1


def flush_work_idle_returns_false() -> None:
    o = Obj()
    queue_work(alloc_workqueue("wq"), o.work)
    flush_work(o.work)
    assert flush_work(o.work) is False


def flush_work_inside_the_work() -> None:
    def flush_self(work: Work) -> None:
        flush_work(work)

    o = Obj()
    INIT_WORK(o.work, flush_self)
    queue_work(alloc_workqueue("wq"), o.work)


def flush_work_under_a_lock_the_work_takes() -> None:
    def locked(work: Work) -> None:
        o = container_of(work, Obj, "work")
        mutex_lock(o.lock)
        mutex_unlock(o.lock)

    o = Obj()
    INIT_WORK(o.work, locked)
    mutex_lock(o.lock)
    queue_work(alloc_workqueue("wq"), o.work)
    flush_work(o.work)
    mutex_unlock(o.lock)


def flush_work_of_a_sibling_on_an_ordered_wq() -> None:
    class Two(Struct):
        def __init__(self, **kw: Any) -> None:
            super().__init__(**kw)
            self.a = Work(lambda w: None)
            self.b = Work(lambda w: None)

    t = Two()
    wq = alloc_ordered_workqueue("ordered")

    def flush_b(work: Work) -> None:
        flush_work(t.b)

    INIT_WORK(t.a, flush_b)
    queue_work(wq, t.b)
    queue_work(wq, t.a)


def flush_workqueue_waits_for_queued() -> None:
    a, b = Obj(), Obj()
    wq = alloc_workqueue("wq")
    queue_work(wq, a.work)
    queue_work(wq, b.work)
    flush_workqueue(wq)
    assert a.n == 1 and b.n == 1


def drain_workqueue_allows_chained_queueing() -> None:
    def chain(work: Work) -> None:
        o = container_of(work, Obj, "work")
        o.n = o.n + 1
        if o.n == 1:
            queue_work(o.wq, work)

    o = Obj()
    o.wq = alloc_workqueue("wq")
    INIT_WORK(o.work, chain)
    queue_work(o.wq, o.work)
    drain_workqueue(o.wq)
    assert o.n == 2


def drain_workqueue_rejects_outside_queueing() -> None:
    a, b = Obj(), Obj()
    wq = alloc_workqueue("wq")
    queue_work(wq, a.work)

    def outsider() -> None:
        queue_work(wq, b.work)

    t = spawn(outsider)
    drain_workqueue(wq)
    join(t)


def flush_delayed_work_runs_it() -> None:
    o = Obj()
    queue_delayed_work(alloc_workqueue("wq"), o.dwork, 100)
    flush_delayed_work(o.dwork)
    assert o.n == 1
    assert not work_pending(o.dwork)


def queue_delayed_work_pending_returns_false() -> None:
    o = Obj()
    wq = alloc_workqueue("wq")
    assert queue_delayed_work(wq, o.dwork, 100) is True
    second = queue_delayed_work(wq, o.dwork, 100)
    cancel_delayed_work_sync(o.dwork)
    assert second is False or o.n >= 1  # True only once the first one ran


def mod_delayed_work_returns_pending() -> None:
    o = Obj()
    wq = alloc_workqueue("wq")
    assert mod_delayed_work(wq, o.dwork, 100) is False  # idle: queued
    cancel_delayed_work_sync(o.dwork)


CASES: tuple[KernelCase, ...] = (
    KernelCase(
        WQ_C,
        "queue_work_on:already-pending",
        "ok",
        queue_work_pending_returns_false,
        why='queue_work_on(): "Return: %false if @work was already on a queue, %true otherwise."',
    ),
    KernelCase(
        WQ_H,
        "queue_work:memory-ordering",
        "ok",
        queue_work_orders_prior_stores,
        why='queue_work(): "If it returns %true, guarantee that all stores preceding the call to '
        'queue_work() in the program order will be visible from the CPU which will execute @work"',
    ),
    KernelCase(
        WQ_C,
        "process_one_work:pending-cleared-first",
        "ok",
        pending_cleared_before_the_function,
        why="process_one_work() clears PENDING (set_work_pool_and_clear_pending) before calling "
        "the function, so the function may requeue its own work",
    ),
    KernelCase(
        WQ_C,
        "__queue_work:non-reentrancy",
        "ok",
        work_is_non_reentrant,
        why='__queue_work(): "If @work was previously on a different pool, it might still be '
        "running there, in which case the work needs to be queued on that pool to guarantee "
        'non-reentrancy."',
    ),
    KernelCase(
        WQ_C,
        "process_one_work:free-from-inside",
        "ok",
        work_may_free_itself,
        why='process_one_work(): "It is permissible to free the struct work_struct from inside the '
        'function that is called from it"',
    ),
    KernelCase(
        WQ_C,
        "cancel_work_sync:teardown",
        "ok",
        cancel_work_sync_then_kfree,
        why='cancel_work_sync(): "On return from this function, @work is guaranteed to be not '
        'pending or executing on any CPU." -- so queue, cancel_work_sync, kfree is safe',
    ),
    KernelCase(
        WQ_C,
        "cancel_work_sync:self-requeueing",
        "ok",
        cancel_work_sync_self_requeueing,
        why='cancel_work_sync(): "This function can be used even if the work re-queues itself"',
    ),
    KernelCase(
        WQ_C,
        "cancel_work_sync:return",
        "ok",
        cancel_work_sync_return_value,
        why='cancel_work_sync(): "Return: %true if @work was pending, %false otherwise."',
    ),
    KernelCase(
        WQ_C,
        "cancel_work_sync:inside-the-work",
        "bug",
        cancel_work_sync_inside_the_work,
        kind="lock-order",
        why="start_flush_work() touches the work's lockdep map (v6.9: for cancel too) while the "
        "kworker holds a copy of it: recursive locking, then the wait for itself",
    ),
    KernelCase(
        WQ_C,
        "cancel_delayed_work_sync:teardown",
        "ok",
        cancel_delayed_work_sync_then_kfree,
        why='cancel_delayed_work_sync(): "This is cancel_work_sync() for delayed works."',
    ),
    KernelCase(
        WQ_C,
        "cancel_delayed_work:may-still-run",
        "bug",
        cancel_delayed_work_then_kfree,
        kind="use-after-free",
        why='cancel_delayed_work(): "The work callback function may still be running on return, '
        "unless it returns %true and the work doesn't re-arm itself.\"",
    ),
    KernelCase(
        WQ_C,
        "flush_work:waits",
        "ok",
        flush_work_waits,
        why='flush_work(): "Wait until @work has finished execution.  @work is guaranteed to be '
        "idle on return if it hasn't been requeued since flush started.\"",
    ),
    KernelCase(
        WQ_C,
        "flush_work:idle-returns-false",
        "ok",
        flush_work_idle_returns_false,
        why='flush_work(): "%false if it was already idle."',
    ),
    KernelCase(
        WQ_C,
        "flush_work:inside-the-work",
        "bug",
        flush_work_inside_the_work,
        kind="lock-order",
        why="process_one_work() holds a copy of work->lockdep_map; __flush_work()/start_flush_work() "
        "acquires work->lockdep_map: lockdep's possible recursive locking",
        report="WARNING: possible recursive locking detected",
    ),
    KernelCase(
        WQ_C,
        "flush_work:under-a-lock-the-work-takes",
        "bug",
        flush_work_under_a_lock_the_work_takes,
        kind="lock-order",
        why="the work map is acquired under the lock by the flusher and the lock under the work map "
        "by the kworker: lockdep's circular dependency (and the deadlock)",
        report="INFO: task blocked forever (deadlock)",
    ),
    KernelCase(
        WQ_C,
        "start_flush_work:ordered-recursion",
        "bug",
        flush_work_of_a_sibling_on_an_ordered_wq,
        kind="lock-order",
        why='start_flush_work(): "Force a lock recursion deadlock when using flush_work() inside a '
        'single-threaded or rescuer equipped workqueue."',
    ),
    KernelCase(
        WQ_C,
        "flush_workqueue:queued-on-entry",
        "ok",
        flush_workqueue_waits_for_queued,
        why='flush_workqueue(): "This function sleeps until all work items which were queued on '
        'entry have finished execution"',
    ),
    KernelCase(
        WQ_C,
        "drain_workqueue:chained",
        "ok",
        drain_workqueue_allows_chained_queueing,
        why='drain_workqueue(): "only chain queueing is allowed.  IOW, only currently pending or '
        'running work items on @wq can queue further work items on it."',
    ),
    KernelCase(
        WQ_C,
        "drain_workqueue:outsider",
        "bug",
        drain_workqueue_rejects_outside_queueing,
        kind="warn",
        why='__queue_work(): "if draining, only works from the same workqueue are allowed" '
        "(WARN_ON_ONCE(!is_chained_work(wq)))",
    ),
    KernelCase(
        WQ_C,
        "flush_delayed_work:runs-now",
        "ok",
        flush_delayed_work_runs_it,
        why='flush_delayed_work(): "Delayed timer is cancelled and the pending work is queued for '
        "immediate execution.  Like flush_work(), this function only considers the last queueing "
        'instance of @dwork."',
    ),
    KernelCase(
        WQ_C,
        "queue_delayed_work_on:already-pending",
        "ok",
        queue_delayed_work_pending_returns_false,
        why='queue_delayed_work_on(): "Return: %false if @work was already on a queue, %true otherwise."',
    ),
    KernelCase(
        WQ_C,
        "mod_delayed_work_on:idle",
        "ok",
        mod_delayed_work_returns_pending,
        why='mod_delayed_work_on(): "If @dwork is idle, equivalent to queue_delayed_work_on() ... '
        'Return: %false if @dwork was idle and queued, %true if @dwork was pending"',
    ),
    KernelCase(
        WQ_C,
        "check_flush_dependency:WQ_MEM_RECLAIM",
        "ok",
        None,
        why="not applicable: PF_MEMALLOC and WQ_MEM_RECLAIM forward-progress warnings need memory "
        "reclaim, which kvmcheck does not model",
    ),
    KernelCase(
        WQ_C,
        "queue_rcu_work",
        "ok",
        None,
        why="not applicable: struct rcu_work is not modelled (queue_rcu_work / flush_rcu_work)",
    ),
)


@pytest.mark.parametrize("case", [c for c in CASES if c.applicable], ids=lambda c: c.case)
def test_kernel_guarantee(case: KernelCase) -> None:
    check_case(case)


# -- beyond a case's verdict: every answer the kernel allows is reached -------------------------------
@pytest.mark.parametrize(
    ("model", "answers"),
    [
        # queue_work_on:already-pending: (first, second queue_work, runs): the second finds the
        # first pending, or the kworker already took it and it runs twice.
        (queue_work_pending_returns_false, {(True, False, 1), (True, True, 2)}),
        # cancel_work_sync:return: (pending when cancelled, runs): never ran, or ran to completion.
        (cancel_work_sync_return_value, {(True, 0), (False, 1)}),
        # cancel_work_sync:self-requeueing: the work's own requeue succeeds, or finds the
        # canceller's PENDING.
        (cancel_work_sync_self_requeueing, {True, False}),
        # cancel_delayed_work_sync:teardown: as cancel_work_sync's.
        (cancel_delayed_work_sync_then_kfree, {(True, 0), (False, 1)}),
    ],
    ids=lambda x: getattr(x, "__name__", ""),
)
def test_every_answer_is_reached(model: Any, answers: set[Any]) -> None:
    seen: set[Any] = set()
    r = check(scenario(lambda: model(seen)))
    assert r.verdict == "ok" and r.complete, r.finding
    assert seen == answers
