"""Workqueues: queue_work/flush_work/cancel_work_sync/flush_workqueue/destroy_workqueue,
kworker threads the search schedules, and lockdep's view of flushing under a lock."""

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
    cancel_work_sync,
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
        assert queue_work(wq, d.work) is False

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
