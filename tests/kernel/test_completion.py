"""struct completion (kernel/completion.py) beyond the guarantees kernel/sched/completion.c states.

complete()/complete_all()/wait_for_completion()'s documented rules (one waiter per complete(), every
waiter on complete_all(), no timeout, might_sleep, the ordering, the timeout's return) are
conformance cases, each with the comment it rests on: tests/conformance/test_completion.py.
Here: the race without one, the count as completion_done() sees it, try_wait and reinit.
"""

from __future__ import annotations

from typing import Any

import pytest

from kvmcheck import join, spawn
from kvmcheck.kernel import (
    Completion,
    Struct,
    complete,
    complete_all,
    completion_done,
    init_completion,
    reinit_completion,
    try_wait_for_completion,
    wait_for_completion,
)
from tests.kernel.helpers import found, ok, run


class Box(Struct):
    data: int = 0


def test_without_the_completion_the_plain_read_races() -> None:
    """The contrast to complete:memory-ordering (a conformance case): no complete()/wait, a race."""

    def body() -> None:
        b = Box()
        join(spawn(lambda: setattr(b, "data", 1)), spawn(lambda: b.data))

    found(run(body), "data-race")


def test_each_complete_satisfies_one_wait() -> None:
    def body() -> None:
        done = Completion("done")
        init_completion(done)  # as DECLARE_COMPLETION: nothing done yet
        assert not completion_done(done)
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
