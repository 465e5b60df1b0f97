"""SRCU: sleepable readers, per-srcu_struct grace periods, index checks, SRCU deadlocks."""

from __future__ import annotations

from typing import Any

import pytest

from kvmcheck import join, spawn
from kvmcheck.kernel import (
    READ_ONCE,
    WRITE_ONCE,
    Mutex,
    Srcu,
    Struct,
    call_srcu,
    cleanup_srcu_struct,
    kfree,
    kmalloc,
    might_sleep,
    mutex_lock,
    mutex_unlock,
    rcu_assign_pointer,
    rcu_dereference_protected,
    rcu_read_lock,
    rcu_read_unlock,
    srcu_barrier,
    srcu_dereference,
    srcu_dereference_check,
    srcu_read_lock,
    srcu_read_lock_held,
    srcu_read_unlock,
    synchronize_srcu,
)
from tests.kernel.helpers import found, ok, run


class Slots(Struct):
    val: int = 0


class Kvm(Struct):
    memslots: Any = None
    flag: int = 0


def _replace_and_free(kvm: Kvm, ssp: Srcu) -> None:
    old = rcu_dereference_protected(kvm, "memslots", True)
    rcu_assign_pointer(kvm, "memslots", kmalloc(Slots, val=2))
    synchronize_srcu(ssp)
    kfree(old)


@pytest.mark.parametrize("locked", [True, False])
def test_synchronize_srcu_then_kfree(locked: bool) -> None:
    def body() -> None:
        kvm = Kvm(memslots=kmalloc(Slots, val=1))
        ssp = Srcu("kvm->srcu")

        def reader() -> int:
            idx = srcu_read_lock(ssp) if locked else 0
            s = srcu_dereference_check(kvm, "memslots", ssp, not locked)
            v = int(s.val)
            if locked:
                srcu_read_unlock(ssp, idx)
            return v

        join(spawn(reader), spawn(_replace_and_free, kvm, ssp))

    r = run(body)
    if locked:
        ok(r)
    else:
        found(r, "use-after-free")


@pytest.mark.parametrize("same", [True, False])
def test_srcu_domains_are_separate(same: bool) -> None:
    """A reader of one srcu_struct is not waited for by another's grace period."""

    def body() -> None:
        kvm = Kvm(memslots=kmalloc(Slots, val=1))
        ssp, other = Srcu("kvm->srcu"), Srcu("other")
        mine = ssp if same else other

        def reader() -> None:
            idx = srcu_read_lock(mine)
            s = srcu_dereference_check(kvm, "memslots", mine, True)
            _ = s.val
            srcu_read_unlock(mine, idx)

        join(spawn(reader), spawn(_replace_and_free, kvm, ssp))

    r = run(body)
    if same:
        ok(r)
    else:
        found(r, "use-after-free")


@pytest.mark.parametrize("flavour", ["srcu", "rcu"])
def test_srcu_readers_may_sleep(flavour: str) -> None:
    def body() -> None:
        ssp = Srcu("kvm->srcu")
        m = Mutex("kvm->lock")
        idx = 0
        if flavour == "srcu":
            idx = srcu_read_lock(ssp)
        else:
            rcu_read_lock()
        might_sleep()
        mutex_lock(m)
        mutex_unlock(m)
        if flavour == "srcu":
            srcu_read_unlock(ssp, idx)
        else:
            rcu_read_unlock()

    r = run(body)
    if flavour == "srcu":
        ok(r)
    else:
        found(r, "sleep-in-atomic")


@pytest.mark.parametrize("same", [True, False])
def test_synchronize_srcu_in_own_read_section_deadlocks(same: bool) -> None:
    def body() -> None:
        ssp, other = Srcu("kvm->srcu"), Srcu("other")
        idx = srcu_read_lock(ssp)
        synchronize_srcu(ssp if same else other)
        srcu_read_unlock(ssp, idx)

    r = run(body)
    if same:  # lockdep-RCU's "Illegal synchronize_srcu()" WARN comes first, then the hang
        found(r, "suspicious-rcu")
        assert "deadlock" in [w.kind for w in r.warnings]
    else:
        ok(r)


@pytest.mark.parametrize("inside", [True, False])
def test_srcu_vs_mutex_deadlock(inside: bool) -> None:
    """synchronize_srcu() under a mutex that an SRCU reader takes: the classic SRCU deadlock."""

    def body() -> None:
        ssp = Srcu("kvm->srcu")
        m = Mutex("kvm->slots_lock")

        def reader() -> None:
            idx = srcu_read_lock(ssp)
            if inside:
                mutex_lock(m)
                mutex_unlock(m)
            srcu_read_unlock(ssp, idx)
            if not inside:
                mutex_lock(m)
                mutex_unlock(m)

        def updater() -> None:
            mutex_lock(m)
            synchronize_srcu(ssp)
            mutex_unlock(m)

        join(spawn(reader), spawn(updater))

    r = run(body)
    if inside:
        found(r, "deadlock")
        assert r.finding is not None
        assert "kvm->srcu" in r.finding.message
    else:
        ok(r)


@pytest.mark.parametrize("case", ["right", "wrong", "unheld"])
def test_srcu_read_unlock_index(case: str) -> None:
    def body() -> None:
        ssp = Srcu("kvm->srcu")
        if case == "unheld":
            srcu_read_unlock(ssp, 0)
            return
        idx = srcu_read_lock(ssp)
        srcu_read_unlock(ssp, idx if case == "right" else idx ^ 1)
        assert not srcu_read_lock_held(ssp)

    r = run(body)
    if case == "right":
        ok(r)
    elif case == "wrong":
        found(r, "warn")
    else:
        found(r, "unlock-unheld")


def test_srcu_index_flips_with_grace_periods() -> None:
    def body() -> None:
        ssp = Srcu("kvm->srcu")
        a = srcu_read_lock(ssp)
        b = srcu_read_lock(ssp)  # nested, same phase
        srcu_read_unlock(ssp, a)  # out of order is fine
        srcu_read_unlock(ssp, b)
        synchronize_srcu(ssp)
        c = srcu_read_lock(ssp)
        srcu_read_unlock(ssp, c)
        assert (a, b, c) == (0, 0, 1)

    ok(run(body))


@pytest.mark.parametrize("locked", [True, False])
def test_srcu_dereference_needs_the_read_lock(locked: bool) -> None:
    def body() -> None:
        kvm = Kvm()
        ssp = Srcu("kvm->srcu")
        idx = srcu_read_lock(ssp) if locked else 0
        srcu_dereference(kvm, "memslots", ssp)
        if locked:
            srcu_read_unlock(ssp, idx)

    r = run(body)
    if locked:
        ok(r)
    else:
        found(r, "suspicious-rcu")


@pytest.mark.parametrize("barrier", [True, False])
def test_call_srcu_and_srcu_barrier(barrier: bool) -> None:
    def body() -> None:
        kvm = Kvm()
        ssp = Srcu("kvm->srcu")

        def cb(head: Any) -> None:
            WRITE_ONCE(kvm, "flag", 1)

        def reader() -> int:
            idx = srcu_read_lock(ssp)
            v = READ_ONCE(kvm, "flag")
            srcu_read_unlock(ssp, idx)
            return int(v)

        t = spawn(reader)
        assert call_srcu(ssp, None, cb).name == "srcu_callback"
        if barrier:
            srcu_barrier(ssp)
            assert READ_ONCE(kvm, "flag") == 1
        else:
            assert READ_ONCE(kvm, "flag") == 1, "callback not run yet"
        join(t)

    r = run(body)
    if barrier:
        ok(r)
    else:
        found(r, "assertion")


@pytest.mark.parametrize("active", [True, False])
def test_cleanup_srcu_struct_with_active_reader(active: bool) -> None:
    def body() -> None:
        ssp = Srcu("kvm->srcu")
        idx = srcu_read_lock(ssp)
        if not active:
            srcu_read_unlock(ssp, idx)
        cleanup_srcu_struct(ssp)
        if active:
            srcu_read_unlock(ssp, idx)

    r = run(body)
    if active:
        found(r, "warn")
    else:
        ok(r)


def test_two_srcu_readers_are_independent() -> None:
    def body() -> Any:
        kvm = Kvm(memslots=kmalloc(Slots, val=1))
        ssp = Srcu("kvm->srcu")

        def reader() -> int:
            idx = srcu_read_lock(ssp)
            v = int(srcu_dereference(kvm, "memslots", ssp).val)
            srcu_read_unlock(ssp, idx)
            return v

        return join(spawn(reader), spawn(reader))

    r = run(body)
    ok(r)
    assert r.executions == 1
