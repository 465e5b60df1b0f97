"""struct completion: blocking waits, complete/complete_all, ordering."""

from __future__ import annotations

from typing import Any

import pytest

from kvmcheck import join, spawn
from kvmcheck.kernel import (
    Completion,
    SpinLock,
    Struct,
    complete,
    complete_all,
    completion_done,
    init_completion,
    reinit_completion,
    spin_lock,
    spin_unlock,
    try_wait_for_completion,
    wait_for_completion,
    wait_for_completion_timeout,
)
from tests.kernel.helpers import found, ok, run


class Box(Struct):
    data: int = 0


@pytest.mark.parametrize("ordered", [True, False])
def test_complete_happens_before_wait(ordered: bool) -> None:
    def body() -> None:
        b = Box()
        done = Completion("done")

        def producer() -> None:
            b.data = 1
            if ordered:
                complete(done)

        def consumer() -> int:
            if ordered:
                wait_for_completion(done)
                assert b.data == 1
            return int(b.data)

        join(spawn(producer), spawn(consumer))

    r = run(body)
    if ordered:
        ok(r)
    else:
        found(r, "data-race")


@pytest.mark.parametrize("completed", [True, False])
def test_wait_without_complete_blocks_forever(completed: bool) -> None:
    def body() -> None:
        done = Completion("done")
        init_completion(done)

        def waiter() -> None:
            wait_for_completion(done)

        t = spawn(waiter)
        if completed:
            complete(done)
        join(t)

    r = run(body)
    if completed:
        ok(r)
    else:
        found(r, "deadlock")
        assert r.finding is not None
        assert "done" in " ".join(r.finding.details)


@pytest.mark.parametrize("atomic", [True, False])
def test_wait_for_completion_may_sleep(atomic: bool) -> None:
    def body() -> None:
        done = Completion("done")
        lock = SpinLock("lock")
        complete(done)
        if atomic:
            spin_lock(lock)
        wait_for_completion(done)
        if atomic:
            spin_unlock(lock)

    r = run(body)
    if atomic:
        found(r, "sleep-in-atomic")
    else:
        ok(r)


@pytest.mark.parametrize("all_", [True, False])
def test_complete_all_wakes_every_waiter(all_: bool) -> None:
    def body() -> None:
        done = Completion("done")
        ts = [spawn(wait_for_completion, done) for _ in range(2)]
        if all_:
            complete_all(done)
        else:
            complete(done)  # wakes one waiter: the other blocks forever
        join(*ts)
        assert completion_done(done) == all_

    r = run(body)
    if all_:
        ok(r)
    else:
        found(r, "deadlock")


def test_each_complete_satisfies_one_wait() -> None:
    def body() -> None:
        done = Completion("done")
        complete(done)
        complete(done)
        wait_for_completion(done)
        assert completion_done(done)
        wait_for_completion(done)
        assert not completion_done(done)

    ok(run(body))


def test_try_wait_and_reinit() -> None:
    def body() -> Any:
        done = Completion("done")
        assert not try_wait_for_completion(done)
        complete(done)
        assert try_wait_for_completion(done)
        assert not try_wait_for_completion(done)
        complete_all(done)
        assert try_wait_for_completion(done)
        assert try_wait_for_completion(done)  # complete_all is never consumed
        reinit_completion(done)
        assert not completion_done(done)

    ok(run(body))


@pytest.mark.parametrize("waited", [True, False])
def test_try_wait_orders_only_on_success(waited: bool) -> None:
    def body() -> None:
        b = Box()
        done = Completion("done")

        def producer() -> None:
            b.data = 1
            complete(done)

        def consumer() -> None:
            if try_wait_for_completion(done) or not waited:
                _ = b.data

        join(spawn(producer), spawn(consumer))

    r = run(body)
    if waited:
        ok(r)
    else:
        found(r, "data-race")


def test_wait_for_completion_timeout_either_times_out_or_consumes() -> None:
    """Before: no wait_for_completion_timeout (it is now: 0, or >= 1 with the completion consumed)."""
    seen: set[tuple[int, bool]] = set()

    def body() -> None:
        x = Completion("x")
        t = spawn(lambda: complete(x))
        left = wait_for_completion_timeout(x, 5)
        join(t)
        seen.add((left, try_wait_for_completion(x)))

    ok(run(body))
    assert seen == {(0, True), (5, False)}
