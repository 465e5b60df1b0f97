"""Workqueues: queue_work/flush_work/cancel_work_sync/flush_workqueue/destroy_workqueue,
kworker threads the search schedules, and lockdep's view of flushing under a lock."""

from __future__ import annotations

from typing import Any

import pytest

from kvmcheck import check, scenario
from kvmcheck._engine.finding import UsageError
from kvmcheck.kernel import (
    INIT_WORK,
    DelayedWork,
    Mutex,
    Struct,
    Work,
    alloc_workqueue,
    cancel_delayed_work_sync,
    cancel_work,
    cancel_work_sync,
    container_of,
    destroy_workqueue,
    drain_workqueue,
    flush_delayed_work,
    flush_work,
    flush_workqueue,
    kfree,
    kmalloc,
    mutex_lock,
    mutex_unlock,
    queue_delayed_work,
    queue_work,
    schedule_work,
    work_pending,
)
from tests.kernel.helpers import found, ok, run


class Dev(Struct):
    runs: int = 0
    seen: int = 0

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.work = Work()
        self.lock = Mutex()


def _bump(work: Work) -> None:
    d = work.dev  # type: ignore[attr-defined]
    d.runs = d.runs + 1


def _dev() -> Dev:
    d = Dev()
    INIT_WORK(d.work, _bump)
    d.work.dev = d  # type: ignore[attr-defined]  # container_of()
    return d


def test_queue_work_returns_false_while_pending() -> None:
    results: set[tuple[bool, bool, int]] = set()

    def body() -> None:
        d = _dev()
        wq = alloc_workqueue("kvm-wq")
        a = queue_work(wq, d.work)
        b = queue_work(wq, d.work)
        flush_work(d.work)
        results.add((a, b, d.runs))

    ok(run(body))
    # The second queue_work finds it pending unless the kworker already took it (cleared PENDING).
    assert results == {(True, False, 1), (True, True, 2)}


def test_flush_work_waits_for_the_work() -> None:
    def body() -> None:
        d = _dev()
        wq = alloc_workqueue("wq")
        queue_work(wq, d.work)
        flush_work(d.work)  # True if it had to wait, False if the kworker was done already
        assert d.runs == 1
        assert flush_work(d.work) is False  # idle: nothing to wait for

    ok(run(body))


def test_without_flush_the_work_may_not_have_run() -> None:
    def body() -> None:
        d = _dev()
        queue_work(alloc_workqueue("wq"), d.work)
        assert d.runs == 1

    found(run(body, kcsan=False), "assertion")


def test_flush_workqueue_and_destroy_wait_for_every_work() -> None:
    def body() -> None:
        a, b = _dev(), _dev()
        wq = alloc_workqueue("wq")
        queue_work(wq, a.work)
        queue_work(wq, b.work)
        flush_workqueue(wq)
        assert a.runs == 1 and b.runs == 1
        queue_work(wq, a.work)
        destroy_workqueue(wq)
        assert a.runs == 2

    ok(run(body))


def test_queue_work_on_destroyed_workqueue_warns() -> None:
    def body() -> None:
        d = _dev()
        wq = alloc_workqueue("wq")
        destroy_workqueue(wq)
        # queue_work_on() claimed PENDING, so it says True; __queue_work() WARNs and drops it,
        # and PENDING stays set: the work can never be queued again.
        assert queue_work(wq, d.work) is True
        assert queue_work(alloc_workqueue("wq2"), d.work) is False

    found(run(body), "warn", "__queue_work")


def test_cancel_work_sync_stops_a_pending_work_and_waits_for_a_running_one() -> None:
    outcomes: set[tuple[bool, int]] = set()

    def body() -> None:
        d = _dev()
        queue_work(alloc_workqueue("wq"), d.work)
        was = cancel_work_sync(d.work)
        runs = d.runs  # settled: the work is neither pending nor running now
        outcomes.add((was, runs))

    ok(run(body))
    assert outcomes == {(True, 0), (False, 1)}


def test_flush_work_under_a_lock_the_work_takes_is_a_deadlock() -> None:
    """The classic: mutex_lock(L); flush_work(w) while w's function takes L."""

    def locked_work(work: Work) -> None:
        d = work.dev  # type: ignore[attr-defined]
        mutex_lock(d.lock)
        d.runs = d.runs + 1
        mutex_unlock(d.lock)

    def body() -> None:
        d = Dev()
        INIT_WORK(d.work, locked_work)
        d.work.dev = d  # type: ignore[attr-defined]
        mutex_lock(d.lock)
        schedule_work(d.work)
        flush_work(d.work)
        mutex_unlock(d.lock)

    r = run(body)
    assert r.finding is not None
    kinds = {r.finding.kind} | {w.kind for w in r.warnings}
    assert "deadlock" in kinds, r.finding
    assert "lock-order" in kinds, r.warnings  # lockdep: Dev.lock -> (work_completion) -> Dev.lock


def test_flush_after_unlock_is_fine() -> None:
    def locked_work(work: Work) -> None:
        d = work.dev  # type: ignore[attr-defined]
        mutex_lock(d.lock)
        d.runs = d.runs + 1
        mutex_unlock(d.lock)

    def body() -> None:
        d = Dev()
        INIT_WORK(d.work, locked_work)
        d.work.dev = d  # type: ignore[attr-defined]
        mutex_lock(d.lock)
        schedule_work(d.work)
        mutex_unlock(d.lock)
        flush_work(d.work)
        assert d.runs == 1

    ok(run(body))


def test_work_in_a_freed_object_is_a_use_after_free() -> None:
    """kfree() with the work still queued: the kworker runs on freed memory."""

    def body() -> None:
        d = kmalloc(Dev)
        INIT_WORK(d.work, lambda w: None)
        schedule_work(d.work)
        kfree(d)

    r = run(body)
    found(r, "use-after-free")
    assert "process_one_work on freed object" in r.finding.message  # type: ignore[union-attr]


def test_the_work_runs_in_a_kworker_thread_that_races_like_any_other() -> None:
    def body() -> None:
        d = _dev()
        schedule_work(d.work)
        d.seen = d.runs  # no flush: races with the kworker's write

    r = run(body)
    found(r, "data-race")
    assert "kworker/events" in r.finding.message  # type: ignore[union-attr]


@pytest.mark.parametrize("bad", ["queue", "flush", "init"])
def test_misuse_is_a_usage_error(bad: str) -> None:
    def body() -> None:
        if bad == "queue":
            queue_work(None, Work(lambda w: None))  # type: ignore[arg-type]
        elif bad == "flush":
            flush_work(Mutex("m"))  # type: ignore[arg-type]
        else:
            queue_work(alloc_workqueue("wq"), Work())

    with pytest.raises(UsageError):
        check(scenario(body))


def test_kworker_is_scheduled_by_the_search() -> None:
    """Both orders of the main thread's read and the kworker's write are explored."""
    seen: set[int] = set()

    def body() -> None:
        d = _dev()
        schedule_work(d.work)
        seen.add(d.runs)
        flush_work(d.work)

    check(scenario(body), kcsan=False)
    assert seen == {0, 1}


# -- the kernel's teardown patterns (issue 22): each was a false KASAN report before -------------------
class Obj(Struct):
    """An object with its work item embedded (``struct obj { struct work_struct work; }``)."""

    n: int = 0
    wq: Any = None

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.work = Work(_count)


def _count(work: Work) -> None:
    o = container_of(work, Obj, "work")
    o.n = o.n + 1


def test_queue_cancel_sync_kfree_is_the_canonical_teardown() -> None:
    """cancel_work_sync() takes a queued instance off the worklist: no kworker touches the work."""

    def body() -> None:
        o = kmalloc(Obj)
        queue_work(alloc_workqueue("wq"), o.work)
        cancel_work_sync(o.work)
        kfree(o)

    ok(run(body))


def test_a_work_function_may_free_the_struct_holding_its_work() -> None:
    """workqueue.c: "It is permissible to free the struct work_struct from inside the function"."""

    def free_self(work: Work) -> None:
        o = container_of(work, Obj, "work")
        o.n = 1
        kfree(o)

    def body() -> None:
        o = kmalloc(Obj)
        INIT_WORK(o.work, free_self)
        queue_work(alloc_workqueue("wq"), o.work)

    ok(run(body))


def test_cancel_work_sync_stops_a_self_requeueing_work() -> None:
    """While cancel_work_sync() owns PENDING the work's own queue_work() fails; then kfree is safe."""
    requeued: set[bool] = set()

    def again(work: Work) -> None:
        o = container_of(work, Obj, "work")
        o.n = o.n + 1
        if o.n < 3:
            requeued.add(queue_work(o.wq, work))

    def body() -> None:
        o = kmalloc(Obj)
        o.wq = alloc_workqueue("wq")
        INIT_WORK(o.work, again)
        queue_work(o.wq, o.work)
        cancel_work_sync(o.work)
        kfree(o)

    ok(run(body, kcsan=False))
    assert requeued == {True, False}  # some runs requeue, some find the canceller's PENDING


def test_flush_work_inside_the_work_is_lockdep_recursive_locking() -> None:
    """The kworker holds (a copy of) the work's lockdep map; flush_work() acquires it again."""

    def flush_self(work: Work) -> None:
        flush_work(work)

    def body() -> None:
        o = Obj()
        INIT_WORK(o.work, flush_self)
        queue_work(alloc_workqueue("wq"), o.work)

    r = run(body, keep_going=True)
    heads = [w.headline for w in r.warnings] + ([r.finding.headline] if r.finding else [])
    assert heads[0] == "WARNING: possible recursive locking detected", heads
    rec = r.warnings[0]
    assert "(work_completion)Obj.work" in "\n".join(rec.details), rec.details
    assert any(f.kind == "deadlock" for f in [r.finding, *r.warnings] if f is not None), heads


def test_flush_work_of_an_idle_work_touches_no_lockdep_map() -> None:
    """start_flush_work() touches the map only when the work is queued or running (v6.9)."""

    def body() -> None:
        o = Obj()
        lock = Mutex()
        mutex_lock(lock)
        assert flush_work(o.work) is False
        mutex_unlock(lock)

    ok(run(body))


def test_queue_work_from_outside_while_draining_warns_chained_is_fine() -> None:
    def chain(work: Work) -> None:
        o = container_of(work, Obj, "work")
        o.n = o.n + 1
        if o.n == 1:
            queue_work(o.wq, work)  # chained: from a work item of this workqueue

    def body() -> None:
        o = Obj()
        o.wq = alloc_workqueue("wq")
        INIT_WORK(o.work, chain)
        queue_work(o.wq, o.work)
        drain_workqueue(o.wq)
        assert o.n == 2

    ok(run(body, kcsan=False))


def test_delayed_work_cancel_sync_then_kfree() -> None:
    class D(Struct):
        n: int = 0

        def __init__(self, **kw: Any) -> None:
            super().__init__(**kw)
            self.dwork = DelayedWork(_dbump)

    def _dbump(work: Work) -> None:
        d = container_of(work, D, "dwork.work")
        d.n = d.n + 1

    outcomes: set[tuple[bool, int]] = set()

    def body() -> None:
        d = kmalloc(D)
        queue_delayed_work(alloc_workqueue("wq"), d.dwork, 10)
        was = cancel_delayed_work_sync(d.dwork)
        outcomes.add((was, d.n))
        kfree(d)

    ok(run(body))
    assert outcomes == {(True, 0), (False, 1)}


def test_flush_delayed_work_runs_it_now() -> None:
    def body() -> None:
        o = Obj()
        dw = DelayedWork(lambda w: None)
        assert queue_delayed_work(alloc_workqueue("wq"), dw, 100) is True
        flush_delayed_work(dw)
        assert not work_pending(dw)
        assert o.n == 0

    ok(run(body))


def test_cancel_work_does_not_wait_for_a_running_instance() -> None:
    seen: set[int] = set()

    def body() -> None:
        o = Obj()
        queue_work(alloc_workqueue("wq"), o.work)
        cancel_work(o.work)
        seen.add(o.n)
        flush_work(o.work)

    check(scenario(body), kcsan=False)
    assert seen == {0, 1}


def test_container_of_a_pointer_that_is_not_the_member_is_a_usage_error() -> None:
    def body() -> None:
        container_of(Work(lambda w: None), Obj, "work")

    with pytest.raises(UsageError, match="container_of"):
        check(scenario(body))


@pytest.mark.parametrize("settle", ["flush_work", "flush_workqueue", "destroy_workqueue"])
def test_kfree_after_the_work_is_settled_is_clean(settle: str) -> None:
    """Once flushed (or the workqueue drained), the kworker touches the work no more."""

    def body() -> None:
        o = kmalloc(Obj)
        wq = alloc_workqueue("wq")
        queue_work(wq, o.work)
        if settle == "flush_work":
            flush_work(o.work)
        elif settle == "flush_workqueue":
            flush_workqueue(wq)
        else:
            destroy_workqueue(wq)
        assert o.n == 1
        kfree(o)

    ok(run(body))


def test_cancel_after_kfree_is_a_use_after_free() -> None:
    def body() -> None:
        o = kmalloc(Obj)
        kfree(o)
        cancel_work_sync(o.work)

    found(run(body), "use-after-free")
