"""Wait-queue and wakeup guarantees: include/linux/wait.h, kernel/sched/wait.c, include/linux/sched.h
(set_current_state), kernel/sched/core.c (try_to_wake_up) and kernel/time/timer.c
(schedule_timeout), as their comments state them -- one case per documented guarantee.

The comments were read in the index's copies of those files (wait_event's kernel-doc, __wake_up's
"If this function wakes up a task, it executes a full memory barrier before accessing the task
state", the set_current_state() comment of include/linux/sched.h (v5.14+, ``__state``),
try_to_wake_up()'s kernel-doc, schedule_timeout()'s kernel-doc after Alexander Popov's 2020
rewording).  kvmcheck's default memory model is sequential consistency, so the guarantees that
exist only against a weaker model (waitqueue_active() without its smp_mb()) are listed as not
applicable here.
"""

from __future__ import annotations

import pytest

from kvmcheck import check, join, scenario, spawn
from kvmcheck.kernel import (
    READ_ONCE,
    TASK_RUNNING,
    TASK_UNINTERRUPTIBLE,
    WRITE_ONCE,
    SpinLock,
    Struct,
    WaitQueueHead,
    __set_current_state,
    finish_wait,
    get_current,
    prepare_to_wait,
    schedule,
    schedule_timeout,
    set_current_state,
    spin_lock,
    spin_unlock,
    wait_event,
    wake_up,
    wake_up_all,
    wake_up_process,
)
from tests.conformance.case import KernelCase, check_case

WAIT_H = "include/linux/wait.h"
WAIT_C = "kernel/sched/wait.c"
SCHED_H = "include/linux/sched.h"
CORE_C = "kernel/sched/core.c"
TIMER_C = "kernel/time/timer.c"


class Ev(Struct):
    cond: int = 0
    data: int = 0
    woken: int = 0

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)
        self.wq = WaitQueueHead()


def wait_event_after_change_then_wake_up() -> None:
    e = Ev()
    w = spawn(lambda: wait_event(e.wq, lambda: READ_ONCE(e, "cond")))
    WRITE_ONCE(e, "cond", 1)
    wake_up(e.wq)
    join(w)


def wake_up_before_the_change_is_lost() -> None:
    e = Ev()
    w = spawn(lambda: wait_event(e.wq, lambda: READ_ONCE(e, "cond")))
    wake_up(e.wq)
    WRITE_ONCE(e, "cond", 1)
    join(w)


def change_without_wake_up_hangs() -> None:
    e = Ev()
    w = spawn(lambda: wait_event(e.wq, lambda: READ_ONCE(e, "cond")))
    WRITE_ONCE(e, "cond", 1)
    join(w)


def wait_event_true_condition_does_not_sleep() -> None:
    e = Ev(cond=1)
    wait_event(e.wq, lambda: READ_ONCE(e, "cond"))


def wake_up_wakes_every_non_exclusive_waiter() -> None:
    e = Ev()
    a = spawn(lambda: wait_event(e.wq, lambda: READ_ONCE(e, "cond")))
    b = spawn(lambda: wait_event(e.wq, lambda: READ_ONCE(e, "cond")))
    WRITE_ONCE(e, "cond", 1)
    wake_up(e.wq)
    join(a, b)


def wake_up_all_wakes_every_waiter() -> None:
    e = Ev()
    a = spawn(lambda: wait_event(e.wq, lambda: READ_ONCE(e, "cond")))
    b = spawn(lambda: wait_event(e.wq, lambda: READ_ONCE(e, "cond")))
    WRITE_ONCE(e, "cond", 1)
    wake_up_all(e.wq)
    join(a, b)


def wait_event_in_atomic_context() -> None:
    e = Ev(cond=0)
    lock = SpinLock()

    def waker() -> None:
        WRITE_ONCE(e, "cond", 1)
        wake_up(e.wq)

    w = spawn(waker)
    spin_lock(lock)
    wait_event(e.wq, lambda: READ_ONCE(e, "cond"))
    spin_unlock(lock)
    join(w)


def set_current_state_pattern() -> None:
    e = Ev()

    def waiter() -> None:
        while True:
            set_current_state(TASK_UNINTERRUPTIBLE)
            if READ_ONCE(e, "cond"):
                break
            schedule()
        __set_current_state(TASK_RUNNING)

    w = spawn(waiter)
    WRITE_ONCE(e, "cond", 1)
    wake_up_process(w)
    join(w)


def lost_wakeup_test_first() -> None:
    e = Ev()

    def waiter() -> None:
        if not READ_ONCE(e, "cond"):
            set_current_state(TASK_UNINTERRUPTIBLE)
            schedule()
            __set_current_state(TASK_RUNNING)

    w = spawn(waiter)
    WRITE_ONCE(e, "cond", 1)
    wake_up_process(w)
    join(w)


def try_to_wake_up_return_value(seen: set[bool] | None = None) -> None:
    e = Ev()

    def waiter() -> None:
        set_current_state(TASK_UNINTERRUPTIBLE)
        if not READ_ONCE(e, "cond"):
            schedule()
        __set_current_state(TASK_RUNNING)
        WRITE_ONCE(e, "woken", 1)

    w = spawn(waiter)
    WRITE_ONCE(e, "cond", 1)
    woke = wake_up_process(w)
    join(w)
    assert wake_up_process(w) is False  # running (here: dead): no state change
    if seen is not None:
        seen.add(woke)


def try_to_wake_up_orders_prior_stores() -> None:
    e = Ev()
    me = get_current()

    def waker() -> None:
        e.data = 7
        WRITE_ONCE(e, "cond", 1)
        wake_up_process(me)

    w = spawn(waker)
    slept = False
    while True:
        set_current_state(TASK_UNINTERRUPTIBLE)
        if READ_ONCE(e, "cond"):
            break
        schedule()
        slept = True
    __set_current_state(TASK_RUNNING)
    if slept:  # woken by the waker: its earlier plain store is no race and is seen
        assert e.data == 7
    join(w)


def schedule_timeout_running_does_not_sleep() -> None:
    assert schedule_timeout(10) == 10


def schedule_timeout_expires() -> None:
    set_current_state(TASK_UNINTERRUPTIBLE)
    assert schedule_timeout(10) == 0
    set_current_state(TASK_UNINTERRUPTIBLE)  # "guaranteed to be %TASK_RUNNING when this routine
    assert schedule_timeout(3) == 0  # returns": it sleeps again only after a new set_current_state


def schedule_timeout_woken_early(seen: set[int] | None = None) -> None:
    me = get_current()
    w = spawn(lambda: wake_up_process(me))
    set_current_state(TASK_UNINTERRUPTIBLE)
    left = schedule_timeout(10)
    assert left in (0, 10)
    join(w)
    if seen is not None:
        seen.add(left)


def prepare_to_wait_then_test() -> None:
    e = Ev()

    def worker() -> None:
        while True:
            prepare_to_wait(e.wq, TASK_UNINTERRUPTIBLE)
            if READ_ONCE(e, "cond"):
                break
            schedule()
        finish_wait(e.wq)

    w = spawn(worker)
    WRITE_ONCE(e, "cond", 1)
    wake_up(e.wq)
    join(w)


def schedule_while_atomic() -> None:
    lock = SpinLock()
    spin_lock(lock)
    schedule()
    spin_unlock(lock)


CASES: tuple[KernelCase, ...] = (
    KernelCase(
        WAIT_H,
        "wait_event:change-then-wake_up",
        "ok",
        wait_event_after_change_then_wake_up,
        why='wait_event(): "The @condition is checked each time the waitqueue @wq_head is woken up."',
    ),
    KernelCase(
        WAIT_H,
        "wait_event:wake_up-before-change",
        "bug",
        wake_up_before_the_change_is_lost,
        kind="deadlock",
        why='wait_event(): "wake_up() has to be called after changing any variable that could change '
        'the result of the wait condition." -- called before, the wakeup can be lost',
        report="waits for Ev.wq held by nobody",  # the queue named by its field, not its type
    ),
    KernelCase(
        WAIT_H,
        "wait_event:no-wake_up",
        "bug",
        change_without_wake_up_hangs,
        kind="deadlock",
        why='wait_event(): "wake_up() has to be called after changing any variable ..."',
    ),
    KernelCase(
        WAIT_H,
        "wait_event:condition-already-true",
        "ok",
        wait_event_true_condition_does_not_sleep,
        why="wait_event(): `if (condition) break;` before __wait_event(): no sleep at all",
    ),
    KernelCase(
        WAIT_H,
        "wake_up:non-exclusive-waiters",
        "ok",
        wake_up_wakes_every_non_exclusive_waiter,
        why="wake_up(x) is __wake_up(x, TASK_NORMAL, 1, NULL): nr_exclusive counts exclusive waiters "
        "only; every wait_event() waiter is non-exclusive and is woken",
    ),
    KernelCase(
        WAIT_H,
        "wake_up_all",
        "ok",
        wake_up_all_wakes_every_waiter,
        why="wake_up_all(x) is __wake_up(x, TASK_NORMAL, 0, NULL): every waiter",
    ),
    KernelCase(
        WAIT_C,
        "__wake_up:memory-barrier",
        "ok",
        None,
        why='not applicable under sequential consistency: __wake_up() "executes a full memory barrier '
        'before accessing the task state" so that the condition store is not reordered after the '
        "wait-queue check (store buffering), which SC never does; the lost-wakeup cases cover what SC "
        "shows",
    ),
    KernelCase(
        WAIT_H,
        "wait_event:might_sleep",
        "bug",
        wait_event_in_atomic_context,
        kind="sleep-in-atomic",
        why="wait_event() starts with might_sleep()",
    ),
    KernelCase(
        WAIT_H,
        "waitqueue_active:needs-smp_mb",
        "bug",
        None,
        why="not applicable under sequential consistency: \"without the explicit smp_mb() it's possible "
        'for the waitqueue_active() load to get hoisted over the @cond store" is a store-buffering '
        "reordering only a weak memory model shows",
    ),
    KernelCase(
        WAIT_C,
        "prepare_to_wait:queue-then-state",
        "ok",
        prepare_to_wait_then_test,
        why='prepare_to_wait(): "any wake-function that tests for the wait-queue being active will be '
        "guaranteed to see waitqueue addition _or_ subsequent tests in this thread will see the wakeup "
        'having taken place."',
    ),
    KernelCase(
        SCHED_H,
        "set_current_state:pattern",
        "ok",
        set_current_state_pattern,
        why='set_current_state() "includes a barrier so that the write of current->__state is '
        "correctly serialised wrt the caller's subsequent test of whether to actually sleep\"",
    ),
    KernelCase(
        SCHED_H,
        "set_current_state:test-first-loses-wakeup",
        "bug",
        lost_wakeup_test_first,
        kind="deadlock",
        why='"Wakeup will do: if (@state & p->__state) p->__state = TASK_RUNNING": a wakeup before '
        "set_current_state() finds the task running and is lost",
        report="waiter#1 waits for a wake_up_process(waiter#1) (TASK_UNINTERRUPTIBLE, in schedule())",
    ),
    KernelCase(
        CORE_C,
        "try_to_wake_up:return",
        "ok",
        try_to_wake_up_return_value,
        why='try_to_wake_up(): "Return: %true if @p->state changes (an actual wakeup was done), %false '
        'otherwise."',
    ),
    KernelCase(
        CORE_C,
        "try_to_wake_up:memory-barrier",
        "ok",
        try_to_wake_up_orders_prior_stores,
        why='try_to_wake_up(): "This function executes a full memory barrier before accessing the task '
        "state; see set_current_state().\" -- a task it woke sees the waker's earlier stores",
    ),
    KernelCase(
        CORE_C,
        "__schedule_bug:scheduling-while-atomic",
        "bug",
        schedule_while_atomic,
        kind="sleep-in-atomic",
        why='schedule_debug() -> __schedule_bug(): "BUG: scheduling while atomic"',
        report="BUG: scheduling while atomic",
    ),
    KernelCase(
        TIMER_C,
        "schedule_timeout:TASK_RUNNING",
        "ok",
        schedule_timeout_running_does_not_sleep,
        why='schedule_timeout(): "%TASK_RUNNING - the scheduler is called, but the task does not sleep '
        'at all."',
    ),
    KernelCase(
        TIMER_C,
        "schedule_timeout:expires",
        "ok",
        schedule_timeout_expires,
        why='schedule_timeout(): "Returns 0 when the timer has expired" and "The current task state is '
        'guaranteed to be %TASK_RUNNING when this routine returns."',
    ),
    KernelCase(
        TIMER_C,
        "schedule_timeout:woken-early",
        "ok",
        schedule_timeout_woken_early,
        why='schedule_timeout(): "at least @timeout jiffies are guaranteed to pass before the routine '
        'returns unless the current task is explicitly woken up, (e.g. by wake_up_process())"',
    ),
    KernelCase(
        TIMER_C,
        "schedule_timeout:TASK_INTERRUPTIBLE-signal",
        "ok",
        None,
        why="not applicable: signals are not modelled (TASK_INTERRUPTIBLE sleeps like TASK_UNINTERRUPTIBLE)",
    ),
)


@pytest.mark.parametrize("case", [c for c in CASES if c.applicable], ids=lambda c: c.case)
def test_kernel_guarantee(case: KernelCase) -> None:
    check_case(case)


def test_try_to_wake_up_returns_true_and_false() -> None:
    """try_to_wake_up:return beyond its verdict: the check reaches a wakeup of the sleeping task
    (true) and one that finds it running (false)."""
    seen: set[bool] = set()
    r = check(scenario(lambda: try_to_wake_up_return_value(seen)))
    assert r.verdict == "ok" and r.complete, r.finding
    assert seen == {True, False}


def test_schedule_timeout_returns_what_is_left_or_zero() -> None:
    """schedule_timeout:woken-early beyond its verdict: the check reaches the wakeup before the
    timer (all 10 jiffies left) and the timer first (0)."""
    seen: set[int] = set()
    r = check(scenario(lambda: schedule_timeout_woken_early(seen)))
    assert r.verdict == "ok" and r.complete, r.finding
    assert seen == {0, 10}
