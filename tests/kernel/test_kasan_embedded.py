"""KASAN on primitives embedded in a freed object: atomics, refcount_t, kref, locks, completions.

Each test takes a pointer to the primitive before the object is freed and uses it after
(``ref = obj->ref; kfree(obj); refcount_inc(ref)``).  Before the fix KASAN checked only
Struct field reads, so every one of these was "ok, complete".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kvmcheck import check, join, scenario, spawn
from kvmcheck.kernel import (
    Atomic,
    Completion,
    Kref,
    Mutex,
    Refcount,
    RwSem,
    SpinLock,
    Struct,
    atomic_inc,
    atomic_read,
    complete,
    down_read,
    kfree,
    kmalloc,
    kref_get,
    mutex_lock,
    mutex_unlock,
    refcount_inc,
    spin_lock,
    spin_unlock,
    up_read,
)
from tests.kernel.helpers import ok, run


class Group(Struct):
    """An object with its primitives built in its constructor (``self.x = ...``)."""

    users: int = 0

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.ref = Refcount(1)
        self.kref = Kref(1)
        self.count = Atomic(0)
        self.lock = SpinLock()
        self.mutex = Mutex()
        self.sem = RwSem()
        self.done = Completion()


USES: dict[str, tuple[str, Callable[[Group], Any]]] = {
    "refcount_inc": ("ref", refcount_inc),
    "kref_get": ("kref", kref_get),
    "atomic_inc": ("count", atomic_inc),
    "atomic_read": ("count", atomic_read),
    "spin_lock": ("lock", spin_lock),
    "mutex_lock": ("mutex", mutex_lock),
    "down_read": ("sem", down_read),
    "complete": ("done", complete),
}


@pytest.mark.parametrize("op", sorted(USES))
def test_use_of_embedded_primitive_after_kfree(op: str) -> None:
    attr, use = USES[op]

    def body() -> None:
        g = kmalloc(Group)
        prim = getattr(g, attr)  # the pointer, taken while the object is alive

        def user() -> None:
            use(prim)

        def freer() -> None:
            kfree(g)

        join(spawn(user), spawn(freer))

    # the user may take a lock and return holding it (a WARN that would stop the search): keep going
    r = run(body, kcsan=False, keep_going=True)
    assert r.finding is not None, op
    assert r.finding.kind == "use-after-free", r.finding
    assert f"{op} on freed object" in r.finding.message, r.finding.message
    details = "\n".join(r.finding.details)
    assert "Allocated at: body (test_kasan_embedded.py:" in details, details
    assert "Freed by task freer" in details and "freer (test_kasan_embedded.py:" in details, details


def test_primitive_given_as_a_field_value_is_embedded() -> None:
    """kmalloc(Obj, ref=Refcount(1)): the refcount lives in the object all the same."""

    class Obj(Struct):
        ref: Any = None

    def body() -> None:
        o = kmalloc(Obj, ref=Refcount(1))
        r = o.ref
        kfree(o)
        refcount_inc(r)

    res = run(body)
    assert res.finding is not None
    assert res.finding.kind == "use-after-free"
    assert "refcount_inc on freed object: refcount_inc(" in res.finding.message


def test_unlock_after_free_is_reported_and_the_free_is_ordered_against_the_lock() -> None:
    """The lock's ops also touch the object, so the search tries the free between them."""

    def body() -> None:
        g = kmalloc(Group)
        lk = g.lock

        def user() -> None:
            spin_lock(lk)
            spin_unlock(lk)

        def freer() -> None:
            kfree(g)

        join(spawn(user), spawn(freer))

    r = check(scenario(body))
    assert r.finding is not None
    assert r.finding.kind == "use-after-free"


def test_no_false_report_while_the_object_lives() -> None:
    def body() -> None:
        g = kmalloc(Group)

        def user() -> None:
            mutex_lock(g.mutex)
            refcount_inc(g.ref)
            mutex_unlock(g.mutex)
            down_read(g.sem)
            up_read(g.sem)

        join(spawn(user), spawn(user))
        kfree(g)

    ok(run(body))


def test_embedded_lock_names_its_class_after_the_field() -> None:
    seen: list[Any] = []

    def body2() -> None:
        g = Group()
        seen.append((g.lock.name, g.sem.name, g.ref.name))

    check(scenario(body2))
    assert seen[0] == ("Group.lock", "Group.sem", "Group.ref")
