"""RCU: read-side sections, grace periods, callbacks, published pointers, RCU lists.

Every check has a scenario where it fires and a twin where it must not.
"""

from __future__ import annotations

from typing import Any

import pytest

from kvmcheck import check, join, scenario, spawn
from kvmcheck.kernel import (
    READ_ONCE,
    WRITE_ONCE,
    Mutex,
    SpinLock,
    Struct,
    call_rcu,
    kfree,
    kfree_rcu,
    kmalloc,
    list_add_rcu,
    list_add_tail_rcu,
    list_del_rcu,
    list_first_or_null_rcu,
    list_for_each_entry_rcu,
    lockdep_is_held,
    might_sleep,
    mutex_lock,
    mutex_unlock,
    rcu_access_pointer,
    rcu_assign_pointer,
    rcu_barrier,
    rcu_dereference,
    rcu_dereference_check,
    rcu_dereference_protected,
    rcu_read_lock,
    rcu_read_lock_held,
    rcu_read_unlock,
    rcu_replace_pointer,
    spin_lock,
    spin_unlock,
    synchronize_rcu,
)
from tests.kernel.helpers import found, ok, run


class Node(Struct):
    val: int = 0


class Global(Struct):
    ptr: Any = None
    flag: int = 0
    inside: int = 0
    items: tuple[Any, ...] = ()  # an RCU list: the list functions replace it whole


def reader_of(g: Global, locked: bool = True) -> Any:
    def reader() -> Any:
        if locked:
            rcu_read_lock()
        p = rcu_dereference_check(g, "ptr", not locked)
        v = p.val if p is not None else None
        if locked:
            rcu_read_unlock()
        return v

    return reader


# -- the grace-period guarantee ---------------------------------------------------------
@pytest.mark.parametrize("locked", [True, False])
def test_synchronize_rcu_then_kfree(locked: bool) -> None:
    """Without rcu_read_lock the reader dereferences after synchronize_rcu()+kfree: KASAN."""

    def body() -> None:
        g = Global(ptr=kmalloc(Node, val=1))

        def updater() -> None:
            old = rcu_dereference_protected(g, "ptr", True)
            rcu_assign_pointer(g, "ptr", None)
            synchronize_rcu()
            kfree(old)

        join(spawn(reader_of(g, locked)), spawn(updater))

    r = run(body)
    if locked:
        ok(r)
    else:
        found(r, "use-after-free")


def test_grace_period_waits_for_preexisting_reader() -> None:
    """A reader inside when the grace period began never sees what follows its end."""

    def body() -> None:
        g = Global()

        def updater() -> int:
            seen = READ_ONCE(g, "inside")
            synchronize_rcu()
            WRITE_ONCE(g, "flag", 1)
            return int(seen)

        def reader() -> int:
            rcu_read_lock()
            WRITE_ONCE(g, "inside", 1)
            v = READ_ONCE(g, "flag")
            rcu_read_unlock()
            return int(v)

        seen, v = join(spawn(updater), spawn(reader))
        assert not (seen and v)

    ok(run(body))


def test_grace_period_does_not_wait_for_later_reader() -> None:
    """A reader that begins after the grace period began is not waited for."""

    def body() -> None:
        g = Global()

        def updater() -> None:
            synchronize_rcu()
            WRITE_ONCE(g, "flag", 1)

        def reader() -> int:
            rcu_read_lock()
            v = READ_ONCE(g, "flag")
            rcu_read_unlock()
            return int(v)

        _, v = join(spawn(updater), spawn(reader))
        assert not v, "a reader saw the end of a grace period that began before it"

    found(run(body), "assertion")


@pytest.mark.parametrize("sync", [True, False])
def test_grace_period_orders_reader_before_update(sync: bool) -> None:
    """The end of a grace period happens after the readers: no race with a plain update."""

    def body() -> None:
        g = Global(ptr=kmalloc(Node, val=1))

        def updater() -> Any:
            old = rcu_dereference_protected(g, "ptr", True)
            rcu_assign_pointer(g, "ptr", None)
            if sync:
                synchronize_rcu()
            old.val = 2
            return old

        _, old = join(spawn(reader_of(g)), spawn(updater))
        kfree(old)

    r = run(body)
    if sync:
        ok(r)
    else:
        found(r, "data-race")


def test_two_readers_are_independent() -> None:
    def body() -> Any:
        g = Global(ptr=kmalloc(Node, val=7))
        return join(spawn(reader_of(g)), spawn(reader_of(g)))

    r = run(body)
    ok(r)
    assert r.executions == 1


def test_nested_read_lock_is_one_section() -> None:
    def body() -> None:
        g = Global(ptr=kmalloc(Node, val=1))

        def reader() -> None:
            rcu_read_lock()
            rcu_read_lock()
            p = rcu_dereference(g, "ptr")
            rcu_read_unlock()
            assert rcu_read_lock_held()
            if p is not None:
                _ = p.val  # still protected: the outer section is open
            rcu_read_unlock()
            assert not rcu_read_lock_held()

        def updater() -> None:
            old = rcu_dereference_protected(g, "ptr", True)
            rcu_assign_pointer(g, "ptr", None)
            synchronize_rcu()
            kfree(old)

        join(spawn(reader), spawn(updater))

    ok(run(body))


# -- atomic context --------------------------------------------------------------------
@pytest.mark.parametrize("inside", [True, False])
def test_synchronize_rcu_in_reader_sleeps_in_atomic(inside: bool) -> None:
    def body() -> None:
        if inside:
            rcu_read_lock()
        synchronize_rcu()
        if inside:
            rcu_read_unlock()

    r = run(body)
    if inside:
        found(r, "sleep-in-atomic")
    else:
        ok(r)


@pytest.mark.parametrize("inside", [True, False])
def test_rcu_reader_is_atomic(inside: bool) -> None:
    def body() -> None:
        m = Mutex("m")
        if inside:
            rcu_read_lock()
        mutex_lock(m)
        mutex_unlock(m)
        if inside:
            rcu_read_unlock()

    r = run(body)
    if inside:
        found(r, "sleep-in-atomic")
    else:
        ok(r)


@pytest.mark.parametrize("balanced", [True, False])
def test_unbalanced_rcu_read_unlock(balanced: bool) -> None:
    def body() -> None:
        if balanced:
            rcu_read_lock()
        rcu_read_unlock()

    r = run(body)
    if balanced:
        ok(r)
    else:
        found(r, "unlock-unheld")


@pytest.mark.parametrize("leak", [True, False])
def test_exit_inside_read_section(leak: bool) -> None:
    def body() -> None:
        def t() -> None:
            rcu_read_lock()
            if not leak:
                rcu_read_unlock()

        join(spawn(t))

    r = run(body)
    if leak:
        found(r, "warn")
    else:
        ok(r)


# -- published pointers ---------------------------------------------------------------------
@pytest.mark.parametrize("rcu", [True, False])
def test_rcu_assign_pointer_publishes_initialisation(rcu: bool) -> None:
    """rcu_dereference acquires what rcu_assign_pointer published; WRITE_ONCE publishes nothing."""

    def body() -> None:
        g = Global()

        def updater() -> None:
            n = kmalloc(Node)
            n.val = 5  # plain initialisation before publishing
            if rcu:
                rcu_assign_pointer(g, "ptr", n)
            else:
                WRITE_ONCE(g, "ptr", n)

        def reader() -> Any:
            rcu_read_lock()
            p = rcu_dereference(g, "ptr") if rcu else READ_ONCE(g, "ptr")
            v = p.val if p is not None else None
            rcu_read_unlock()
            return v

        join(spawn(updater), spawn(reader))

    r = run(body)
    if rcu:
        ok(r)
    else:
        found(r, "data-race")


@pytest.mark.parametrize("overwrite", [True, False])
def test_later_plain_store_breaks_the_publication(overwrite: bool) -> None:
    """The acquire pairs with *the* release store it reads from, not an earlier one."""

    def body() -> None:
        g = Global()
        n = kmalloc(Node)

        def publisher() -> None:
            n.val = 1
            rcu_assign_pointer(g, "ptr", n)

        def overwriter() -> None:
            if overwrite:
                WRITE_ONCE(g, "ptr", n)  # same value, but no release: a reader syncs with nobody

        def reader() -> None:
            rcu_read_lock()
            if rcu_dereference(g, "ptr") is not None:
                _ = n.val
            rcu_read_unlock()

        join(spawn(publisher), spawn(overwriter), spawn(reader))
        kfree(n)

    r = run(body)
    if overwrite:
        found(r, "data-race")
    else:
        ok(r)


@pytest.mark.parametrize("locked", [True, False])
def test_rcu_dereference_outside_reader_is_suspicious(locked: bool) -> None:
    def body() -> None:
        g = Global(ptr=None)
        if locked:
            rcu_read_lock()
        rcu_dereference(g, "ptr")
        if locked:
            rcu_read_unlock()

    r = run(body)
    if locked:
        ok(r)
    else:
        found(r, "suspicious-rcu")
        assert r.finding is not None
        assert r.finding.headline == "WARNING: suspicious RCU usage"


@pytest.mark.parametrize("held", [True, False])
def test_rcu_dereference_protected_condition(held: bool) -> None:
    def body() -> None:
        g = Global(ptr=None)
        lock = SpinLock("lock")
        if held:
            spin_lock(lock)
        rcu_dereference_protected(g, "ptr", lockdep_is_held(lock))
        rcu_dereference_check(g, "ptr", lockdep_is_held(lock))
        if held:
            spin_unlock(lock)

    r = run(body)
    if held:
        ok(r)
    else:
        found(r, "suspicious-rcu")


def test_rcu_access_pointer_and_replace() -> None:
    def body() -> None:
        g = Global(ptr=None)
        a, b = kmalloc(Node, val=1), kmalloc(Node, val=2)
        assert rcu_replace_pointer(g, "ptr", a, True) is None
        assert rcu_access_pointer(g, "ptr") is a
        assert rcu_replace_pointer(g, "ptr", b, True) is a
        kfree(a)
        g.ptr = None
        kfree(b)

    ok(run(body))


# -- call_rcu, kfree_rcu, rcu_barrier -------------------------------------------------------------
@pytest.mark.parametrize("deferred", [True, False])
def test_kfree_rcu(deferred: bool) -> None:
    def body() -> None:
        g = Global(ptr=kmalloc(Node, val=1))

        def updater() -> None:
            old = rcu_dereference_protected(g, "ptr", True)
            rcu_assign_pointer(g, "ptr", None)
            if deferred:
                kfree_rcu(old)
            else:
                kfree(old)

        join(spawn(reader_of(g)), spawn(updater))

    r = run(body)
    if deferred:
        ok(r)
    else:
        found(r, "use-after-free")


def test_call_rcu_from_inside_a_reader_waits_for_the_caller() -> None:
    """call_rcu's grace period includes the caller's own read-side section."""

    def body() -> None:
        g = Global(ptr=kmalloc(Node, val=1))
        rcu_read_lock()
        old = rcu_dereference(g, "ptr")
        rcu_assign_pointer(g, "ptr", None)
        call_rcu(old, kfree)
        _ = old.val  # still inside the section: not freed yet
        rcu_read_unlock()

    ok(run(body))


@pytest.mark.parametrize("sleeps", [True, False])
def test_rcu_callback_runs_in_softirq_context(sleeps: bool) -> None:
    def body() -> None:
        def cb(head: Any) -> None:
            if sleeps:
                might_sleep()

        call_rcu(None, cb)

    r = run(body)
    if sleeps:
        found(r, "sleep-in-atomic")
        assert r.finding is not None
        assert "softirqs disabled" in r.finding.message
    else:
        ok(r)


@pytest.mark.parametrize("barrier", [True, False])
def test_rcu_barrier_waits_for_callbacks(barrier: bool) -> None:
    def body() -> None:
        g = Global()

        def cb(head: Any) -> None:
            WRITE_ONCE(g, "flag", 1)

        call_rcu(None, cb)
        if barrier:
            rcu_barrier()
        assert READ_ONCE(g, "flag") == 1, "callback not run yet"

    r = run(body)
    if barrier:
        ok(r)
    else:
        found(r, "assertion")


def test_call_rcu_thread_is_named_rcu_callback() -> None:
    names: list[str] = []

    def body() -> None:
        names.append(call_rcu(None, lambda head: None).name)

    ok(run(body))
    assert set(names) == {"rcu_callback"}


# -- RCU lists ----------------------------------------------------------------------------
def _abc(g: Global) -> tuple[Node, Node, Node]:
    a, b, c = kmalloc(Node, val=1), kmalloc(Node, val=2), kmalloc(Node, val=3)
    for x in (a, b, c):
        list_add_tail_rcu(x, g, "items")
    return a, b, c


def _traverse(g: Global, locked: bool = True) -> tuple[int, ...]:
    if locked:
        rcu_read_lock()
    vals = tuple(e.val for e in list_for_each_entry_rcu(g, "items"))
    if locked:
        rcu_read_unlock()
    return vals


@pytest.mark.parametrize("sync", [True, False])
def test_list_del_rcu_then_free(sync: bool) -> None:
    def body() -> None:
        g = Global()
        _, b, _ = _abc(g)

        def updater() -> None:
            list_del_rcu(b, g, "items")
            if sync:
                synchronize_rcu()
            kfree(b)

        vals, _ = join(spawn(_traverse, g), spawn(updater))
        assert vals in ((1, 2, 3), (1, 3)), vals

    r = run(body)
    if sync:
        ok(r)
    else:
        found(r, "use-after-free")


def test_reader_on_deleted_entry_continues_to_its_successor() -> None:
    """Deleting the entry a reader stands on never cuts the traversal short."""

    def body() -> None:
        g = Global()
        _, b, c = _abc(g)

        def updater() -> None:
            list_del_rcu(b, g, "items")
            list_del_rcu(c, g, "items")
            synchronize_rcu()
            kfree(b)
            kfree(c)

        vals, _ = join(spawn(_traverse, g), spawn(updater))
        # A reader standing on b when it is unlinked follows b->next, which still
        # points to c, even after c is unlinked too: it never stops at (1, 2).
        assert vals in ((1, 2, 3), (1, 3), (1,)), vals

    ok(run(body))


def test_list_add_rcu_publishes_the_entry() -> None:
    def body() -> None:
        g = Global()

        def updater() -> None:
            n = kmalloc(Node)
            n.val = 9  # plain initialisation, published by list_add_rcu
            list_add_rcu(n, g, "items")

        vals, _ = join(spawn(_traverse, g), spawn(updater))
        assert vals in ((), (9,))
        rcu_read_lock()
        assert list_first_or_null_rcu(g, "items") is not None
        rcu_read_unlock()

    ok(run(body))


@pytest.mark.parametrize("where", ["rcu", "spinlock", "cond", "none"])
def test_list_traversal_needs_a_reader(where: str) -> None:
    def body() -> None:
        g = Global()
        lock = SpinLock("lock")
        n = kmalloc(Node)
        list_add_rcu(n, g, "items")
        if where == "rcu":
            rcu_read_lock()
        if where in ("spinlock", "cond"):
            spin_lock(lock)
        for _ in list_for_each_entry_rcu(g, "items", cond=where == "cond" and lockdep_is_held(lock)):
            pass
        if where == "rcu":
            rcu_read_unlock()
        if where in ("spinlock", "cond"):
            spin_unlock(lock)

    r = run(body)
    if where == "none":
        found(r, "suspicious-rcu")
    else:
        ok(r)


@pytest.mark.parametrize("locked", [True, False])
def test_unlocked_list_updaters_race(locked: bool) -> None:
    def body() -> None:
        g = Global()
        lock = SpinLock("lock")

        def adder(v: int) -> None:
            n = kmalloc(Node, val=v)
            if locked:
                spin_lock(lock)
            list_add_rcu(n, g, "items")
            if locked:
                spin_unlock(lock)

        join(spawn(adder, 1), spawn(adder, 2))

    r = run(body)
    if locked:
        ok(r)
    else:
        found(r, "data-race")


@pytest.mark.parametrize("twice", [True, False])
def test_list_del_rcu_twice_is_corruption(twice: bool) -> None:
    def body() -> None:
        g = Global()
        n = kmalloc(Node)
        list_add_rcu(n, g, "items")
        list_del_rcu(n, g, "items")
        if twice:
            list_del_rcu(n, g, "items")
        kfree_rcu(n)

    r = run(body)
    if twice:
        found(r, "list-corruption")
    else:
        ok(r)


@pytest.mark.parametrize("twice", [True, False])
def test_list_add_rcu_twice_is_corruption(twice: bool) -> None:
    def body() -> None:
        g = Global()
        n = kmalloc(Node)
        list_add_rcu(n, g, "items")
        if twice:
            list_add_tail_rcu(n, g, "items")

    r = run(body)
    if twice:
        found(r, "list-corruption")
    else:
        ok(r)


# -- deadlocks and replay -------------------------------------------------------------------
@pytest.mark.parametrize("inside", [True, False])
def test_synchronize_rcu_under_a_lock_a_reader_needs(inside: bool) -> None:
    def body() -> None:
        m = Mutex("m")

        def reader() -> None:
            rcu_read_lock()
            if inside:
                mutex_lock(m)
                mutex_unlock(m)
            rcu_read_unlock()
            if not inside:
                mutex_lock(m)
                mutex_unlock(m)

        def updater() -> None:
            mutex_lock(m)
            synchronize_rcu()
            mutex_unlock(m)

        join(spawn(reader), spawn(updater))

    r = run(body, keep_going=True)
    if inside:
        found(r, "deadlock")
        assert r.finding is not None
        assert "rcu" in r.finding.message
    else:
        ok(r)


def test_rcu_finding_replays() -> None:
    from kvmcheck import replay

    @scenario
    def uaf() -> None:
        g = Global(ptr=kmalloc(Node, val=1))

        def updater() -> None:
            old = rcu_dereference_protected(g, "ptr", True)
            rcu_assign_pointer(g, "ptr", None)
            kfree_rcu(old)

        join(spawn(reader_of(g, locked=False)), spawn(updater))

    r = check(uaf)
    found(r, "use-after-free")
    assert r.finding is not None
    again = replay(uaf, r.finding.schedule)
    assert again.finding is not None
    assert again.finding.kind == "use-after-free"
    assert any(step.thread_name == "rcu_callback" for step in again.finding.trace)
