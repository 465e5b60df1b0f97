"""Workqueues (kernel/workqueue.py) beyond the guarantees kernel/workqueue.c states.

queue_work/flush_work/cancel_work_sync/drain_workqueue's documented rules (return values, teardown,
freeing from inside, self-requeueing, flushing inside the work or under its lock) are conformance
cases, each with the comment it rests on: tests/conformance/test_workqueue.py.  Here: kworker
threads the search schedules, destroy_workqueue, misuse, and the use-after-frees around a work.
"""

from __future__ import annotations

from typing import Any

import pytest

from kvmcheck import check, scenario
from kvmcheck._engine.finding import UsageError
from kvmcheck.kernel import (
    INIT_WORK,
    Mutex,
    Struct,
    Work,
    alloc_workqueue,
    cancel_work,
    cancel_work_sync,
    container_of,
    destroy_workqueue,
    flush_work,
    flush_workqueue,
    kfree,
    kmalloc,
    mutex_lock,
    mutex_unlock,
    queue_work,
    schedule_work,
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


def test_flush_work_of_an_idle_work_touches_no_lockdep_map() -> None:
    """start_flush_work() touches the map only when the work is queued or running (v6.9)."""

    def body() -> None:
        o = Obj()
        lock = Mutex()
        mutex_lock(lock)
        assert flush_work(o.work) is False
        mutex_unlock(lock)

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
