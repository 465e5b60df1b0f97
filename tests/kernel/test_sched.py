"""set_current_state()/schedule()/wake_up_process(): the lost-wakeup rules of include/linux/sched.h."""

from __future__ import annotations

from kvmcheck import join, spawn
from kvmcheck.kernel import (
    MAX_SCHEDULE_TIMEOUT,
    READ_ONCE,
    TASK_RUNNING,
    TASK_UNINTERRUPTIBLE,
    WRITE_ONCE,
    SpinLock,
    Struct,
    __set_current_state,
    get_current,
    schedule,
    schedule_timeout,
    set_current_state,
    spin_lock,
    spin_unlock,
    wake_up_process,
)
from tests.kernel.helpers import found, ok, run


class Flag(Struct):
    cond: int = 0
    data: int = 0


def test_the_documented_pattern_never_loses_the_wakeup() -> None:
    """set_current_state() before the test: a wakeup in between makes schedule() return."""

    def body() -> None:
        f = Flag()

        def waiter() -> None:
            while True:
                set_current_state(TASK_UNINTERRUPTIBLE)
                if READ_ONCE(f, "cond"):
                    break
                schedule()
            __set_current_state(TASK_RUNNING)

        w = spawn(waiter)
        WRITE_ONCE(f, "cond", 1)
        wake_up_process(w)
        join(w)

    ok(run(body))


def test_testing_before_set_current_state_loses_the_wakeup_and_hangs() -> None:
    def body() -> None:
        f = Flag()

        def waiter() -> None:
            if not READ_ONCE(f, "cond"):
                set_current_state(TASK_UNINTERRUPTIBLE)  # too late: the wakeup may be gone
                schedule()

        w = spawn(waiter)
        WRITE_ONCE(f, "cond", 1)
        wake_up_process(w)
        join(w)

    r = run(body)
    found(r, "deadlock")
    assert (
        "waiter#1 waits for a wake_up_process(waiter#1) (TASK_UNINTERRUPTIBLE, in schedule())"
        in "\n".join(
            r.finding.details  # type: ignore[union-attr]
        )
    )


def test_wake_up_process_says_whether_it_woke_the_task() -> None:
    woke: set[bool] = set()

    def body() -> None:
        f = Flag()

        def waiter() -> None:
            set_current_state(TASK_UNINTERRUPTIBLE)
            if not READ_ONCE(f, "cond"):
                schedule()
            __set_current_state(TASK_RUNNING)

        w = spawn(waiter)
        WRITE_ONCE(f, "cond", 1)
        woke.add(wake_up_process(w))
        join(w)

    ok(run(body))
    assert woke == {True, False}


def test_the_wakeup_happens_before_the_wakee_runs_on() -> None:
    """Data written before wake_up_process() is no race with the woken task's read."""

    def body() -> None:
        f = Flag()
        me = get_current()

        def waker() -> None:
            f.data = 42  # plain: ordered by the wakeup
            WRITE_ONCE(f, "cond", 1)
            wake_up_process(me)

        w = spawn(waker)
        while True:
            set_current_state(TASK_UNINTERRUPTIBLE)
            if READ_ONCE(f, "cond"):
                break
            schedule()
        __set_current_state(TASK_RUNNING)
        join(w)
        assert f.data == 42

    ok(run(body))


def test_schedule_with_a_spinlock_held_is_scheduling_while_atomic() -> None:
    def body() -> None:
        lock = SpinLock()
        spin_lock(lock)
        schedule()
        spin_unlock(lock)

    found(run(body), "sleep-in-atomic", "BUG: scheduling while atomic")


def test_schedule_timeout_returns_zero_when_the_timer_fired_first() -> None:
    seen: set[int] = set()

    def body() -> None:
        me = get_current()
        w = spawn(lambda: wake_up_process(me))
        set_current_state(TASK_UNINTERRUPTIBLE)
        seen.add(schedule_timeout(10))
        join(w)

    ok(run(body))
    assert seen == {0, 10}


def test_schedule_timeout_with_nobody_to_wake_times_out() -> None:
    def body() -> None:
        set_current_state(TASK_UNINTERRUPTIBLE)
        assert schedule_timeout(5) == 0
        set_current_state(TASK_RUNNING)
        assert schedule_timeout(5) == 5  # TASK_RUNNING: no sleep at all

    ok(run(body))


def test_max_schedule_timeout_is_schedule() -> None:
    def body() -> None:
        set_current_state(TASK_UNINTERRUPTIBLE)
        schedule_timeout(MAX_SCHEDULE_TIMEOUT)

    found(run(body), "deadlock")


def test_schedule_while_running_is_a_reschedule_point() -> None:
    def body() -> None:
        schedule()

    ok(run(body))
