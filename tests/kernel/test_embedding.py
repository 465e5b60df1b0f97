"""Which primitives live in an object (freed with it) and which are pointers to another's (issue 22)."""

from __future__ import annotations

from typing import Any

from kvmcheck.kernel import (
    SpinLock,
    Struct,
    alloc_workqueue,
    kfree,
    kmalloc,
    spin_lock,
    spin_unlock,
)
from tests.kernel.helpers import found, ok, run


class Owner(Struct):
    """Has its own lock (``struct owner { spinlock_t lock; }``)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.lock = SpinLock()


class User(Struct):
    """Points at another object's lock (``spinlock_t *lock``), as ``self.lock = other.lock``."""

    def __init__(self, other: Any = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.lock = other.lock


def test_another_objects_lock_stored_in_init_is_not_embedded() -> None:
    """Before: kmalloc(User) re-homed Owner's lock into User, so kfree(user) 'freed' it."""

    def body() -> None:
        owner = kmalloc(Owner)
        user = kmalloc(User, other=owner)
        kfree(user)
        spin_lock(owner.lock)  # the owner is alive: its lock is too
        spin_unlock(owner.lock)
        kfree(owner)

    ok(run(body))


def test_the_owners_lock_still_dies_with_the_owner() -> None:
    def body() -> None:
        owner = kmalloc(Owner)
        user = kmalloc(User, other=owner)
        kfree(owner)
        spin_lock(user.lock)

    found(run(body), "use-after-free")


def test_a_workqueue_pointer_set_after_kmalloc_is_not_embedded() -> None:
    """``obj->wq = alloc_workqueue()``: a pointer; kfree(obj) does not free the workqueue."""

    class Obj(Struct):
        wq: Any = None

    def body() -> None:
        o = kmalloc(Obj)
        wq = alloc_workqueue("wq")
        o.wq = wq
        kfree(o)
        from kvmcheck.kernel import flush_workqueue

        flush_workqueue(wq)

    ok(run(body))


def test_a_lock_built_for_the_object_after_kmalloc_is_embedded() -> None:
    """``o = kmalloc(); o.lock = SpinLock()`` (spin_lock_init(&o->lock)) still lives in ``o``."""

    class Obj(Struct):
        lock: Any = None

    def body() -> None:
        o = kmalloc(Obj)
        o.lock = SpinLock()
        lk = o.lock
        kfree(o)
        spin_lock(lk)

    found(run(body), "use-after-free")
