"""Wait queues: wait_event() sleeps until a wake_up() after which its condition holds."""

from __future__ import annotations

from typing import Any

import pytest

from kvmcheck import check, join, scenario, spawn
from kvmcheck._engine.finding import UsageError
from kvmcheck.kernel import (
    READ_ONCE,
    TASK_UNINTERRUPTIBLE,
    WRITE_ONCE,
    SpinLock,
    Struct,
    WaitQueueHead,
    finish_wait,
    init_waitqueue_head,
    prepare_to_wait,
    schedule,
    smp_load_acquire,
    smp_store_release,
    spin_lock,
    spin_unlock,
    wait_event,
    waitqueue_active,
    wake_up,
    wake_up_all,
)
from tests.kernel.helpers import found, ok, run


class Dev(Struct):
    done: int = 0
    data: int = 0

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.wq = WaitQueueHead()


def _handoff(acquire: bool) -> Any:
    def body() -> None:
        d = Dev()
        init_waitqueue_head(d.wq)

        def waiter() -> int:
            if acquire:
                wait_event(d.wq, lambda: smp_load_acquire(d, "done"))
            else:
                wait_event(d.wq, lambda: READ_ONCE(d, "done"))
            return int(d.data)

        def waker() -> None:
            d.data = 42
            smp_store_release(d, "done", 1) if acquire else WRITE_ONCE(d, "done", 1)
            wake_up(d.wq)

        w = spawn(waiter)
        join(spawn(waker))
        assert join(w) == 42

    return body


def test_waiter_sees_the_data_published_before_the_condition() -> None:
    ok(run(_handoff(acquire=True)))


def test_a_waiter_that_never_slept_is_not_ordered_by_the_wake_up() -> None:
    """With a plain READ_ONCE condition, the waiter may find it true without sleeping: then
    nothing orders the waker's plain write before the waiter's read (KCSAN is right)."""
    found(run(_handoff(acquire=False)), "data-race")


def test_wake_up_before_the_condition_is_set_is_a_lost_wakeup() -> None:
    def body() -> None:
        d = Dev()

        def waiter() -> None:
            wait_event(d.wq, lambda: READ_ONCE(d, "done"))

        def waker() -> None:
            wake_up(d.wq)  # too early
            WRITE_ONCE(d, "done", 1)

        join(spawn(waiter), spawn(waker))

    r = run(body)
    found(r, "deadlock")
    assert "wait_queue_head_t" not in r.finding.message  # type: ignore[union-attr]
    assert "waiter" in r.finding.message  # type: ignore[union-attr]


def test_condition_set_without_wake_up_leaves_the_waiter_asleep() -> None:
    def body() -> None:
        d = Dev()

        def waiter() -> None:
            wait_event(d.wq, lambda: READ_ONCE(d, "done"))

        def setter() -> None:
            WRITE_ONCE(d, "done", 1)

        join(spawn(waiter), spawn(setter))

    found(run(body), "deadlock")


def test_wake_up_all_wakes_every_waiter() -> None:
    def body() -> None:
        d = Dev()

        def waiter() -> None:
            wait_event(d.wq, lambda: READ_ONCE(d, "done"))

        def waker() -> None:
            WRITE_ONCE(d, "done", 1)
            wake_up_all(d.wq)

        join(spawn(waiter), spawn(waiter), spawn(waker))

    ok(run(body))


def test_wait_event_under_a_spinlock_is_sleeping_in_atomic() -> None:
    def body() -> None:
        d = Dev(done=1)
        lk = SpinLock("lk")
        spin_lock(lk)
        wait_event(d.wq, lambda: READ_ONCE(d, "done"))
        spin_unlock(lk)

    found(run(body), "sleep-in-atomic")


def test_waitqueue_active_sees_a_queued_waiter() -> None:
    seen: set[bool] = set()

    def body() -> None:
        d = Dev()

        def waiter() -> None:
            wait_event(d.wq, lambda: READ_ONCE(d, "done"))

        w = spawn(waiter)
        WRITE_ONCE(d, "done", 1)
        seen.add(waitqueue_active(d.wq))
        wake_up(d.wq)
        join(w)

    check(scenario(body))
    assert seen == {True, False}


@pytest.mark.parametrize("bad", ["wq", "cond"])
def test_misuse_is_a_usage_error(bad: str) -> None:
    def body() -> None:
        if bad == "wq":
            wake_up(SpinLock("x"))  # type: ignore[arg-type]
        else:
            wait_event(WaitQueueHead(), 1)  # type: ignore[arg-type]

    with pytest.raises(UsageError):
        check(scenario(body))


# -- sleeping by hand: prepare_to_wait / schedule / finish_wait (a vhost-worker loop) --------------
def _worker_loop(d: Any, test_first: bool) -> None:
    """Sleep until ``d.done``: prepare_to_wait() then test (right), or test then prepare (wrong)."""
    if test_first:
        if READ_ONCE(d, "done"):
            return
        prepare_to_wait(d.wq, TASK_UNINTERRUPTIBLE)
        schedule()
        finish_wait(d.wq)
        return
    while True:
        prepare_to_wait(d.wq, TASK_UNINTERRUPTIBLE)
        if READ_ONCE(d, "done"):
            break
        schedule()
    finish_wait(d.wq)


def test_prepare_to_wait_then_test_never_loses_the_wake_up() -> None:
    def body() -> None:
        d = Dev()
        w = spawn(_worker_loop, d, False)
        WRITE_ONCE(d, "done", 1)
        wake_up(d.wq)
        join(w)

    ok(run(body))


def test_testing_before_prepare_to_wait_loses_the_wake_up() -> None:
    """The vhost-worker missed wakeup shape: the test is made before the task is queued."""

    def body() -> None:
        d = Dev()
        w = spawn(_worker_loop, d, True)
        WRITE_ONCE(d, "done", 1)
        wake_up(d.wq)
        join(w)

    r = run(body)
    found(r, "deadlock")
    assert "in schedule()" in r.finding.message  # type: ignore[union-attr]
