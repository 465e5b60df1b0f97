"""atomic_t, acquire/release accesses and barriers."""

from __future__ import annotations

from typing import Any

import pytest

from kvmcheck import join, spawn
from kvmcheck.kernel import (
    READ_ONCE,
    WRITE_ONCE,
    Atomic,
    Struct,
    atomic_add,
    atomic_add_return,
    atomic_add_unless,
    atomic_cmpxchg,
    atomic_dec,
    atomic_dec_and_test,
    atomic_dec_return,
    atomic_fetch_add,
    atomic_inc,
    atomic_inc_and_test,
    atomic_inc_not_zero,
    atomic_inc_return,
    atomic_read,
    atomic_read_acquire,
    atomic_set,
    atomic_set_release,
    atomic_sub,
    atomic_sub_and_test,
    atomic_sub_return,
    atomic_xchg,
    smp_load_acquire,
    smp_mb,
    smp_mb__after_atomic,
    smp_mb__before_atomic,
    smp_rmb,
    smp_store_release,
    smp_wmb,
)
from tests.kernel.helpers import found, ok, run


class Box(Struct):
    data: int = 0
    flag: int = 0
    count: int = 0


@pytest.mark.parametrize("atomic", [True, False])
def test_atomic_inc_loses_no_update(atomic: bool) -> None:
    def body() -> None:
        v = Atomic(0)
        b = Box()

        def inc() -> None:
            if atomic:
                atomic_inc(v)
            else:
                b.count = b.count + 1

        join(spawn(inc), spawn(inc))
        assert (atomic_read(v) if atomic else b.count) == 2, "lost update"

    r = run(body, keep_going=True)
    if atomic:
        ok(r)
    else:
        found(r, "assertion")


def test_atomic_values() -> None:
    def body() -> None:
        v = Atomic(5)
        assert atomic_read(v) == 5
        atomic_set(v, 1)
        atomic_add(3, v)
        atomic_sub(1, v)
        atomic_inc(v)
        atomic_dec(v)
        assert atomic_read(v) == 3
        assert atomic_add_return(2, v) == 5
        assert atomic_sub_return(1, v) == 4
        assert atomic_inc_return(v) == 5
        assert atomic_dec_return(v) == 4
        assert atomic_fetch_add(1, v) == 4
        assert not atomic_sub_and_test(4, v)
        assert atomic_sub_and_test(1, v)
        assert atomic_read(v) == 0
        assert not atomic_inc_not_zero(v)
        assert atomic_read(v) == 0
        assert atomic_cmpxchg(v, 1, 7) == 0  # fails: value is 0
        assert atomic_cmpxchg(v, 0, 7) == 0  # succeeds
        assert atomic_xchg(v, 1) == 7
        assert atomic_inc_not_zero(v)
        assert atomic_dec_and_test(v) is False
        assert atomic_dec_and_test(v) is True
        assert not atomic_add_unless(v, 1, 0)
        assert atomic_add_unless(v, -1, 5)
        assert atomic_inc_and_test(v)
        atomic_set(v, 0x7FFF_FFFF)
        atomic_inc(v)
        assert atomic_read(v) == -(2**31)  # atomic_t wraps
        atomic_set_release(v, 3)
        assert atomic_read_acquire(v) == 3

    ok(run(body))


def test_atomics_never_race() -> None:
    def body() -> None:
        v = Atomic(0)

        def writer() -> None:
            atomic_set(v, 1)
            atomic_inc(v)

        def reader() -> int:
            return atomic_read(v)

        join(spawn(writer), spawn(reader))

    ok(run(body))


def test_readers_are_independent_writers_are_not() -> None:
    def readers() -> None:
        v = Atomic(1)
        join(spawn(atomic_read, v), spawn(atomic_read, v))

    def writers() -> None:
        v = Atomic(1)
        join(spawn(atomic_inc, v), spawn(atomic_inc, v))

    assert run(readers).executions == 1
    assert run(writers).executions == 2


# -- ordering ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("publish", "consume", "racy"),
    [
        ("inc_return", "read_acquire", False),  # fully ordered RMW releases
        ("set_release", "read_acquire", False),
        ("set_release", "dec_and_test", False),  # a value-returning RMW acquires
        ("mb_inc", "read_acquire", False),  # smp_mb__before_atomic() orders the relaxed inc
        ("inc", "read_acquire", True),  # a relaxed RMW releases nothing
        ("set_release", "read", True),  # a relaxed read acquires nothing
        ("set", "read_acquire", True),  # neither does a plain atomic_set release
    ],
)
def test_atomic_message_passing(publish: str, consume: str, racy: bool) -> None:
    def body() -> None:
        b = Box()
        v = Atomic(0)

        def producer() -> None:
            b.data = 42  # plain
            if publish == "inc_return":
                atomic_inc_return(v)
            elif publish == "set_release":
                atomic_set_release(v, 1)
            elif publish == "mb_inc":
                smp_mb__before_atomic()
                atomic_inc(v)
            elif publish == "inc":
                atomic_inc(v)
            else:
                atomic_set(v, 1)

        def consumer() -> None:
            if consume == "read_acquire":
                seen = atomic_read_acquire(v)
            elif consume == "read":
                seen = atomic_read(v)
            else:
                seen = 1 if atomic_dec_and_test(v) else 0
            if seen:
                _ = b.data  # plain

        join(spawn(producer), spawn(consumer))

    r = run(body)
    if racy:
        found(r, "data-race")
    else:
        ok(r)


@pytest.mark.parametrize("barrier", [True, False])
def test_smp_mb__after_atomic(barrier: bool) -> None:
    def body() -> None:
        b = Box()
        v = Atomic(0)

        def producer() -> None:
            b.data = 1
            atomic_set_release(v, 1)

        def consumer() -> None:
            atomic_inc(v)  # relaxed: reads the released value
            if barrier:
                smp_mb__after_atomic()
            if atomic_read(v) == 2:
                _ = b.data

        join(spawn(producer), spawn(consumer))

    r = run(body)
    if barrier:
        ok(r)
    else:
        found(r, "data-race")


@pytest.mark.parametrize("ordered", [True, False])
def test_smp_store_release_load_acquire(ordered: bool) -> None:
    def body() -> Any:
        b = Box()

        def producer() -> None:
            b.data = 1
            if ordered:
                smp_store_release(b, "flag", 1)
            else:
                WRITE_ONCE(b, "flag", 1)

        def consumer() -> tuple[int, int]:
            f = smp_load_acquire(b, "flag") if ordered else READ_ONCE(b, "flag")
            return (f, b.data if f else -1)

        _, seen = join(spawn(producer), spawn(consumer))
        assert seen in ((0, -1), (1, 1))
        return seen

    r = run(body)
    if ordered:
        ok(r)
    else:
        found(r, "data-race")


def test_barriers_are_callable_noops() -> None:
    smp_mb()
    smp_rmb()
    smp_wmb()

    def body() -> None:
        smp_mb()
        smp_rmb()
        smp_wmb()

    r = run(body)
    ok(r)
    assert r.steps == 1  # main's exit
