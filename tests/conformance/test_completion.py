"""Completion guarantees as kernel/sched/completion.c states them, one case per guarantee.

Read in the index's copy of kernel/sched/completion.c (the raw_spin_lock / swait version, v5.x:
complete(), complete_all(), do_wait_for_common(), wait_for_completion(), try_wait_for_completion(),
completion_done()).  Each ``why`` quotes the comment the case rests on.
"""

from __future__ import annotations

from typing import Any

import pytest

from kvmcheck import check, join, scenario, spawn
from kvmcheck.kernel import (
    Completion,
    SpinLock,
    Struct,
    complete,
    complete_all,
    completion_done,
    cpu_relax,
    kfree,
    kmalloc,
    reinit_completion,
    spawn_irq,
    spin_lock,
    spin_unlock,
    try_wait_for_completion,
    wait_for_completion,
    wait_for_completion_timeout,
)
from tests.conformance.case import KernelCase, check_case

COMPLETION_C = "kernel/sched/completion.c"


class Req(Struct):
    """``struct req { int result; struct completion done; }``."""

    result: int = 0

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.done = Completion()


def complete_then_wait() -> None:
    r = Req()
    t = spawn(lambda: complete(r.done))
    wait_for_completion(r.done)
    join(t)


def complete_wakes_a_single_waiter() -> None:
    r = Req()
    a = spawn(lambda: wait_for_completion(r.done))
    b = spawn(lambda: wait_for_completion(r.done))
    complete(r.done)
    join(a, b)


def each_complete_lets_one_wait_through() -> None:
    r = Req()
    a = spawn(lambda: wait_for_completion(r.done))
    b = spawn(lambda: wait_for_completion(r.done))
    complete(r.done)
    complete(r.done)
    join(a, b)


def complete_all_wakes_every_waiter() -> None:
    r = Req()
    a = spawn(lambda: wait_for_completion(r.done))
    b = spawn(lambda: wait_for_completion(r.done))
    complete_all(r.done)
    join(a, b)


def complete_all_is_permanent() -> None:
    r = Req()
    complete_all(r.done)
    wait_for_completion(r.done)
    wait_for_completion(r.done)
    assert completion_done(r.done)


def reinit_after_complete_all() -> None:
    r = Req()
    complete_all(r.done)
    reinit_completion(r.done)
    wait_for_completion(r.done)


def wait_without_complete() -> None:
    r = Req()
    wait_for_completion(r.done)


def wait_in_atomic_context() -> None:
    r = Req()
    lock = SpinLock()
    complete(r.done)
    spin_lock(lock)
    wait_for_completion(r.done)
    spin_unlock(lock)


def try_wait_never_blocks() -> None:
    r = Req()
    lock = SpinLock()
    spin_lock(lock)  # "never sleeps": fine in atomic context
    assert try_wait_for_completion(r.done) is False
    spin_unlock(lock)
    complete(r.done)
    assert try_wait_for_completion(r.done) is True
    assert try_wait_for_completion(r.done) is False  # the one completion was consumed


def completion_done_after_complete_all() -> None:
    r = Req()
    assert completion_done(r.done) is False
    complete_all(r.done)
    assert completion_done(r.done) is True


def completion_done_then_free() -> None:
    r = kmalloc(Req)
    t = spawn(lambda: complete(r.done))
    while not completion_done(r.done):
        cpu_relax()
    kfree(r)
    join(t)


def complete_orders_prior_stores() -> None:
    r = Req()

    def worker() -> None:
        r.result = 42  # plain
        complete(r.done)

    t = spawn(worker)
    wait_for_completion(r.done)
    assert r.result == 42  # plain: no race, and seen
    join(t)


def complete_from_irq() -> None:
    r = Req()
    spawn_irq(lambda: complete(r.done))
    wait_for_completion(r.done)


def waiter_frees_after_wait() -> None:
    r = kmalloc(Req)
    t = spawn(lambda: complete(r.done))
    wait_for_completion(r.done)
    kfree(r)
    join(t)


def wait_timeout_returns_zero_or_positive(seen: set[tuple[int, bool]] | None = None) -> None:
    r = Req()

    def worker() -> None:
        r.result = 1
        complete(r.done)

    t = spawn(worker)
    left = wait_for_completion_timeout(r.done, 10)
    assert left == 0 or (left >= 1 and r.result == 1)  # completed: its stores are seen
    join(t)
    still_there = try_wait_for_completion(r.done)
    if left == 0:  # timed out: the completion is still there to consume
        assert still_there
    if seen is not None:
        seen.add((left, still_there))


CASES: tuple[KernelCase, ...] = (
    KernelCase(
        COMPLETION_C,
        "complete:wait",
        "ok",
        complete_then_wait,
        why='wait_for_completion(): "This waits to be signaled for completion of a specific task."',
    ),
    KernelCase(
        COMPLETION_C,
        "complete:single-waiter",
        "bug",
        complete_wakes_a_single_waiter,
        kind="deadlock",
        why='complete(): "This will wake up a single thread waiting on this completion."',
    ),
    KernelCase(
        COMPLETION_C,
        "complete:counting",
        "ok",
        each_complete_lets_one_wait_through,
        why="complete() increments x->done and do_wait_for_common() consumes one (x->done--): "
        "each complete() lets one wait through",
    ),
    KernelCase(
        COMPLETION_C,
        "complete_all:all-waiters",
        "ok",
        complete_all_wakes_every_waiter,
        why='complete_all(): "This will wake up all threads waiting on this particular completion event."',
    ),
    KernelCase(
        COMPLETION_C,
        "complete_all:permanent",
        "ok",
        complete_all_is_permanent,
        why='complete_all(): "Since complete_all() sets the completion of @x permanently to done to '
        'allow multiple waiters to finish"',
    ),
    KernelCase(
        COMPLETION_C,
        "complete_all:reinit",
        "bug",
        reinit_after_complete_all,
        kind="deadlock",
        why='complete_all(): "a call to reinit_completion() must be used on @x if @x is to be used '
        'again" -- after it, a wait waits for a new complete()',
    ),
    KernelCase(
        COMPLETION_C,
        "wait_for_completion:no-timeout",
        "bug",
        wait_without_complete,
        kind="deadlock",
        why='wait_for_completion(): "It is NOT interruptible and there is no timeout."',
        report="main waits for Req.done held by nobody",  # named by its field
    ),
    KernelCase(
        COMPLETION_C,
        "wait_for_completion:might_sleep",
        "bug",
        wait_in_atomic_context,
        kind="sleep-in-atomic",
        why="__wait_for_common() starts with might_sleep()",
    ),
    KernelCase(
        COMPLETION_C,
        "try_wait_for_completion",
        "ok",
        try_wait_never_blocks,
        why='try_wait_for_completion(): "Return: 0 if a decrement cannot be done without blocking 1 if '
        'a decrement succeeded."',
    ),
    KernelCase(
        COMPLETION_C,
        "completion_done:complete_all",
        "ok",
        completion_done_after_complete_all,
        why='completion_done(): "Note, this will always return true if complete_all() was called on @X."',
    ),
    KernelCase(
        COMPLETION_C,
        "completion_done:safe-to-free",
        "ok",
        completion_done_then_free,
        why='completion_done(): "If ->done, we need to wait for complete() to release ->wait.lock '
        'otherwise we can end up freeing the completion before complete() is done referencing it."',
    ),
    KernelCase(
        COMPLETION_C,
        "complete:memory-ordering",
        "ok",
        complete_orders_prior_stores,
        why='complete(): "If this function wakes up a task, it executes a full memory barrier before '
        'accessing the task state." -- and both sides take x->wait.lock',
    ),
    KernelCase(
        COMPLETION_C,
        "complete:from-irq",
        "ok",
        complete_from_irq,
        why="complete() takes x->wait.lock with raw_spin_lock_irqsave(): callable from hard irq",
    ),
    KernelCase(
        COMPLETION_C,
        "wait_for_completion:then-free",
        "ok",
        waiter_frees_after_wait,
        why="do_wait_for_common() runs under x->wait.lock, which complete() holds until it is done with "
        "@x: once the wait returns, the completion may be freed",
    ),
    KernelCase(
        COMPLETION_C,
        "wait_for_completion_timeout",
        "ok",
        wait_timeout_returns_zero_or_positive,
        why='wait_for_completion_timeout(): "Return: 0 if timed out, and positive (at least 1, or number '
        'of jiffies left till timeout) if completed."',
    ),
    KernelCase(
        COMPLETION_C,
        "wait_for_completion_interruptible/killable",
        "ok",
        None,
        why="not applicable: signals are not modelled (the _interruptible/_killable waits)",
    ),
)


@pytest.mark.parametrize("case", [c for c in CASES if c.applicable], ids=lambda c: c.case)
def test_kernel_guarantee(case: KernelCase) -> None:
    check_case(case)


def test_wait_for_completion_timeout_either_times_out_or_consumes() -> None:
    """wait_for_completion_timeout beyond its verdict: the check reaches the timeout (0 left, the
    completion still there) and the completion first (all 10 left, consumed)."""
    seen: set[tuple[int, bool]] = set()
    r = check(scenario(lambda: wait_timeout_returns_zero_or_positive(seen)))
    assert r.verdict == "ok" and r.complete, r.finding
    assert seen == {(0, True), (10, False)}
