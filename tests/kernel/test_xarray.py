"""The XArray: xa_store/xa_erase take xa_lock, xa_load and xa_for_each are RCU-safe."""

from __future__ import annotations

from typing import Any

import pytest

from kvmcheck import check, join, scenario, spawn
from kvmcheck._engine.finding import UsageError
from kvmcheck.kernel import (
    GFP_ATOMIC,
    SpinLock,
    Struct,
    XArray,
    spin_lock,
    spin_unlock,
    xa_empty,
    xa_erase,
    xa_for_each,
    xa_init,
    xa_load,
    xa_lock,
    xa_store,
    xa_unlock,
)
from tests.kernel.helpers import found, ok, run


class Obj(Struct):
    val: int = 0


def test_store_load_erase() -> None:
    def body() -> None:
        xa = XArray("kvm->vcpu_array")
        xa_init(xa)
        assert xa_empty(xa)
        assert xa_store(xa, 3, "a") is None
        assert xa_store(xa, 3, "b") == "a"
        xa_store(xa, 1, "c")
        assert xa_load(xa, 3) == "b"
        assert [i for i, _ in xa_for_each(xa)] == [1, 3]
        assert xa_erase(xa, 3) == "b"
        assert xa_load(xa, 3) is None
        assert xa_erase(xa, 7) is None

    ok(run(body))


def test_load_concurrent_with_store_is_not_a_race_and_publishes_the_entry() -> None:
    """xa_load needs no lock, and what the storer wrote into the entry is visible to the loader."""

    def body() -> None:
        xa = XArray("xa")

        def storer() -> None:
            o = Obj()
            o.val = 5  # plain write, published by the store
            xa_store(xa, 0, o)

        def loader() -> int:
            o = xa_load(xa, 0)
            return -1 if o is None else int(o.val)

        _, v = join(spawn(storer), spawn(loader))
        assert v in (-1, 5)

    ok(run(body))


def test_two_storers_are_serialised_by_xa_lock() -> None:
    def body() -> None:
        xa = XArray("xa")
        join(spawn(xa_store, xa, 0, "x"), spawn(xa_store, xa, 0, "y"))
        assert xa_load(xa, 0) in ("x", "y")

    ok(run(body))


def test_xa_lock_held_blocks_xa_store_and_lockdep_sees_it() -> None:
    """xa_store() under the caller's own xa_lock: it takes xa_lock again (recursive locking)."""

    def body() -> None:
        xa = XArray("xa")
        xa_lock(xa)
        xa_store(xa, 0, "x", GFP_ATOMIC)
        xa_unlock(xa)

    found(run(body), "deadlock", "possible recursive locking")


def test_xa_store_gfp_kernel_under_a_spinlock_may_sleep() -> None:
    def body() -> None:
        xa = XArray("xa")
        lk = SpinLock("lk")
        spin_lock(lk)
        xa_store(xa, 0, "x")
        spin_unlock(lk)

    found(run(body), "sleep-in-atomic")


def test_for_each_sees_entries_as_they_are_at_each_step() -> None:
    walks: set[tuple[Any, ...]] = set()

    def body() -> None:
        xa = XArray("xa")
        xa_store(xa, 1, "a")
        xa_store(xa, 2, "b")

        def walker() -> tuple[Any, ...]:
            return tuple(e for _, e in xa_for_each(xa))

        def eraser() -> None:
            xa_erase(xa, 1)
            xa_erase(xa, 2)

        w = spawn(walker)
        join(spawn(eraser))
        walks.add(join(w))

    check(scenario(body))
    assert walks == {("a", "b"), ("a",), ("b",), ()}


@pytest.mark.parametrize("bad", ["xa", "index"])
def test_misuse_is_a_usage_error(bad: str) -> None:
    def body() -> None:
        if bad == "xa":
            xa_load({}, 0)  # type: ignore[arg-type]
        else:
            xa_store(XArray("xa"), -1, "x")

    with pytest.raises(UsageError):
        check(scenario(body))
