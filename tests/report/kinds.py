"""Small models, one per finding kind, for the report's golden files.

Each is the smallest program showing its kind; the golden text reports live
in ``tests/report/golden/`` (see test_golden.py for how to regenerate them).
"""

from __future__ import annotations

from kvmcheck import join, scenario, spawn
from kvmcheck.kernel import (
    Mutex,
    Refcount,
    RwSem,
    SpinLock,
    Struct,
    down_read,
    kfree,
    kmalloc,
    memremap,
    memunmap,
    mutex_lock,
    mutex_unlock,
    refcount_dec_and_test,
    spin_lock,
    spin_unlock,
    up_read,
)


class Obj(Struct):
    """A refcounted object with one plain field."""

    ref: Refcount
    data: int = 0


@scenario(name="kinds.deadlock", expect="bug")
def deadlock() -> None:
    """ABBA: T1 takes a then b, T2 takes b then a; both block."""
    a, b = Mutex("a"), Mutex("b")

    def t1() -> None:
        mutex_lock(a)
        mutex_lock(b)
        mutex_unlock(b)
        mutex_unlock(a)

    def t2() -> None:
        mutex_lock(b)
        mutex_lock(a)
        mutex_unlock(a)
        mutex_unlock(b)

    join(spawn(t1, name="t1"), spawn(t2, name="t2"))


@scenario(name="kinds.lock_order", expect="bug")
def lock_order() -> None:
    """a then b in one thread, later b then a: lockdep's circular dependency without a hang."""
    a, b = Mutex("a"), Mutex("b")

    def t1() -> None:
        mutex_lock(a)
        mutex_lock(b)
        mutex_unlock(b)
        mutex_unlock(a)
        mutex_lock(b)
        mutex_lock(a)
        mutex_unlock(a)
        mutex_unlock(b)

    join(spawn(t1, name="t1"))


@scenario(name="kinds.use_after_free", expect="bug")
def use_after_free() -> None:
    """Two puts race with a reader that holds no reference."""
    o = kmalloc(Obj, ref=Refcount(1))

    def put() -> None:
        if refcount_dec_and_test(o.ref):
            kfree(o)

    def reader() -> None:
        _ = o.data

    join(spawn(put, name="put"), spawn(reader, name="reader"))


@scenario(name="kinds.data_race", expect="bug")
def data_race() -> None:
    """Two plain writers, one under a lock and one without."""
    o = kmalloc(Obj, ref=Refcount(1))
    lock = SpinLock("lock")

    def locked() -> None:
        spin_lock(lock)
        o.data = 1
        spin_unlock(lock)

    def unlocked() -> None:
        o.data = 2

    join(spawn(locked, name="locked"), spawn(unlocked, name="unlocked"))
    kfree(o)


@scenario(name="kinds.sleep_in_atomic", expect="bug")
def sleep_in_atomic() -> None:
    """A down_read (may sleep) under a spinlock."""
    lock = SpinLock("lock")
    sem = RwSem("sem")

    def t1() -> None:
        spin_lock(lock)
        down_read(sem)
        up_read(sem)
        spin_unlock(lock)

    join(spawn(t1, name="t1"))


@scenario(name="kinds.recursive_lock", expect="bug")
def recursive_lock() -> None:
    """The same mutex taken twice by one thread."""
    m = Mutex("m")

    def t1() -> None:
        mutex_lock(m)
        mutex_lock(m)

    join(spawn(t1, name="t1"))


@scenario(name="kinds.double_memunmap", expect="bug")
def double_memunmap() -> None:
    """Two threads tear down one memremap() mapping."""
    m = memremap(1)

    def unmap() -> None:
        memunmap(m)

    join(spawn(unmap, name="u1"), spawn(unmap, name="u2"))
