"""Wait queues (kernel/wait.py) beyond the guarantees include/linux/wait.h states.

wait_event()'s rules (wake_up() after the change, might_sleep, wake_up_all, prepare_to_wait()
then test) are conformance cases, each with the comment it rests on: tests/conformance/test_wait.py.
Here: what the wake-up orders, waitqueue_active(), misuse, and the vhost-worker missed wakeup.
"""

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
    wait_event,
    waitqueue_active,
    wake_up,
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
def _worker_testing_first(d: Any) -> None:
    """Sleep until ``d.done``, wrongly: the test before prepare_to_wait() (prepare-then-test, the
    right order, is the conformance case prepare_to_wait:queue-then-state)."""
    if READ_ONCE(d, "done"):
        return
    prepare_to_wait(d.wq, TASK_UNINTERRUPTIBLE)
    schedule()
    finish_wait(d.wq)


def test_testing_before_prepare_to_wait_loses_the_wake_up() -> None:
    """The vhost-worker missed wakeup shape: the test is made before the task is queued."""

    def body() -> None:
        d = Dev()
        w = spawn(_worker_testing_first, d)
        WRITE_ONCE(d, "done", 1)
        wake_up(d.wq)
        join(w)

    r = run(body)
    found(r, "deadlock")
    assert "in schedule()" in r.finding.message  # type: ignore[union-attr]
