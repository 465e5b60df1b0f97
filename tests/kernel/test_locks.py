"""Locks in the kernel's names: exclusion, trylocks, lock-break points, unlock
balance, recursive locking, ABBA deadlock, reader independence, lockdep asserts.

Every check is shown firing in one scenario and silent in its twin.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kvmcheck import join, spawn
from kvmcheck.kernel import (
    Mutex,
    RwLock,
    RwSem,
    SpinLock,
    Struct,
    cond_resched_lock,
    cond_resched_rwlock_read,
    cond_resched_rwlock_write,
    down_read,
    down_read_trylock,
    down_write,
    down_write_trylock,
    guard,
    in_atomic,
    irqs_disabled,
    lockdep_assert_held,
    lockdep_assert_held_read,
    lockdep_assert_held_write,
    lockdep_assert_not_held,
    mutex_is_locked,
    mutex_lock,
    mutex_trylock,
    mutex_unlock,
    read_lock,
    read_lock_irq,
    read_lock_irqsave,
    read_trylock,
    read_unlock,
    read_unlock_irq,
    read_unlock_irqrestore,
    spawn_irq,
    spin_lock,
    spin_lock_bh,
    spin_lock_irq,
    spin_lock_irqsave,
    spin_trylock,
    spin_unlock,
    spin_unlock_bh,
    spin_unlock_irq,
    spin_unlock_irqrestore,
    up_read,
    up_write,
    write_lock,
    write_lock_irq,
    write_lock_irqsave,
    write_trylock,
    write_unlock,
    write_unlock_irq,
    write_unlock_irqrestore,
)
from tests.kernel.helpers import found, ok, run


class Counter(Struct):
    n: int = 0
    a: int = 0
    b: int = 0


# -- exclusive flavours: (lock type, acquire -> token, release(lock, token), atomic, irqs off) --------
Acquire = Callable[[Any], Any]
Release = Callable[[Any, Any], None]


EXCLUSIVE: dict[str, tuple[type, Acquire, Release, bool, bool]] = {
    "spin_lock": (SpinLock, spin_lock, lambda lk, _: spin_unlock(lk), True, False),
    "spin_lock_irq": (SpinLock, spin_lock_irq, lambda lk, _: spin_unlock_irq(lk), True, True),
    "spin_lock_irqsave": (SpinLock, spin_lock_irqsave, spin_unlock_irqrestore, True, True),
    "spin_lock_bh": (SpinLock, spin_lock_bh, lambda lk, _: spin_unlock_bh(lk), True, False),
    "write_lock": (RwLock, write_lock, lambda lk, _: write_unlock(lk), True, False),
    "write_lock_irq": (RwLock, write_lock_irq, lambda lk, _: write_unlock_irq(lk), True, True),
    "write_lock_irqsave": (RwLock, write_lock_irqsave, write_unlock_irqrestore, True, True),
    "mutex_lock": (Mutex, mutex_lock, lambda lk, _: mutex_unlock(lk), False, False),
    "down_write": (RwSem, down_write, lambda lk, _: up_write(lk), False, False),
}


@pytest.mark.parametrize("flavour", sorted(EXCLUSIVE))
def test_exclusive_lock_prevents_lost_update(flavour: str) -> None:
    cls, acquire, release, atomic, irqs_off = EXCLUSIVE[flavour]

    def body() -> None:
        c, lk = Counter(), cls(f"{flavour}-lock")

        def inc() -> None:
            assert not in_atomic() and not irqs_disabled()
            token = acquire(lk)
            assert in_atomic() == atomic
            assert irqs_disabled() == irqs_off
            lockdep_assert_held(lk)
            lockdep_assert_held_write(lk)
            c.n = c.n + 1
            release(lk, token)
            assert not in_atomic() and not irqs_disabled()
            lockdep_assert_not_held(lk)

        join(spawn(inc), spawn(inc))
        assert c.n == 2

    r = run(body)
    ok(r)
    assert r.executions >= 2  # both orders of the two critical sections


def test_unlocked_increment_is_a_lost_update() -> None:
    """The twin without a lock: the assert fails in some interleaving, KCSAN reports the race too."""

    def body() -> None:
        c = Counter()

        def inc() -> None:
            c.n = c.n + 1

        join(spawn(inc), spawn(inc))
        assert c.n == 2

    r = run(body, keep_going=True)
    found(r, "assertion", "assertion failed")
    assert any(w.kind == "data-race" for w in r.warnings)


def test_guard_holds_the_mutex_for_the_with_block() -> None:
    def body() -> None:
        c, m = Counter(), Mutex("guarded")

        def inc() -> None:
            with guard(m):
                lockdep_assert_held(m)
                assert mutex_is_locked(m)
                c.n = c.n + 1
            lockdep_assert_not_held(m)

        join(spawn(inc), spawn(inc))
        assert c.n == 2
        assert not mutex_is_locked(m)

    ok(run(body))


def test_guard_releases_on_exception() -> None:
    def body() -> None:
        m = Mutex("guarded")
        try:
            with guard(m):
                raise KeyError("out")
        except KeyError:
            pass
        lockdep_assert_not_held(m)
        mutex_lock(m)
        mutex_unlock(m)

    ok(run(body))


# -- shared flavours -------------------------------------------------------------------------------
SHARED: dict[str, tuple[type, Acquire, Release, Acquire, Release, bool]] = {
    "read_lock": (
        RwLock,
        read_lock,
        lambda lk, _: read_unlock(lk),
        write_lock,
        lambda lk, _: write_unlock(lk),
        False,
    ),
    "read_lock_irq": (
        RwLock,
        read_lock_irq,
        lambda lk, _: read_unlock_irq(lk),
        write_lock,
        lambda lk, _: write_unlock(lk),
        True,
    ),
    "read_lock_irqsave": (
        RwLock,
        read_lock_irqsave,
        read_unlock_irqrestore,
        write_lock,
        lambda lk, _: write_unlock(lk),
        True,
    ),
    "down_read": (RwSem, down_read, lambda lk, _: up_read(lk), down_write, lambda lk, _: up_write(lk), False),
}


@pytest.mark.parametrize("flavour", sorted(SHARED))
@pytest.mark.parametrize("reader_locks", [True, False])
def test_reader_excludes_writer(flavour: str, reader_locks: bool) -> None:
    """A writer updates two fields under the lock; a reader under the read lock sees both or neither.

    Twin: the reader without the lock sees a torn pair in some interleaving.
    """
    cls, racq, rrel, wacq, wrel, irqs_off = SHARED[flavour]

    def body() -> None:
        c, lk = Counter(), cls(f"{flavour}-lock")

        def writer() -> None:
            t = wacq(lk)
            c.a = 1
            c.b = 1
            wrel(lk, t)

        def reader() -> None:
            if reader_locks:
                t = racq(lk)
                assert irqs_disabled() == irqs_off
                lockdep_assert_held(lk)
                lockdep_assert_held_read(lk)
                a, b = c.a, c.b
                rrel(lk, t)
                assert not irqs_disabled()
            else:
                a, b = c.a, c.b
            assert a == b, "torn read"

        join(spawn(writer), spawn(reader))

    r = run(body, keep_going=True)
    if reader_locks:
        ok(r)
    else:
        found(r, "assertion", "assertion failed")
        assert "torn read" in r.finding.message  # type: ignore[union-attr]


@pytest.mark.parametrize("shared", ["rwlock", "rwsem"])
def test_two_readers_are_independent(shared: str) -> None:
    """Two readers that only read never need ordering: DPOR runs exactly one execution."""

    def body() -> None:
        c = Counter()
        lk: Any = RwLock("rw") if shared == "rwlock" else RwSem("sem")
        lock, unlock = (read_lock, read_unlock) if shared == "rwlock" else (down_read, up_read)

        def reader() -> None:
            lock(lk)
            _ = c.n
            unlock(lk)

        join(spawn(reader), spawn(reader))

    r = run(body)
    ok(r)
    assert r.executions == 1


def test_two_writers_are_ordered() -> None:
    """The twin: two write_lock holders are dependent, so both orders are explored."""

    def body() -> None:
        c, lk = Counter(), RwLock("rw")

        def writer() -> None:
            write_lock(lk)
            _ = c.n
            write_unlock(lk)

        join(spawn(writer), spawn(writer))

    r = run(body)
    ok(r)
    # Both orders, and for each whether the second writer queued while the first held the lock
    # (a state readers would wait behind: writer fairness) or came after the unlock.
    assert r.executions == 4


# -- trylocks --------------------------------------------------------------------------------------
TRY: dict[str, tuple[type, Acquire, Release, Acquire, Release]] = {
    "spin_trylock": (
        SpinLock,
        spin_trylock,
        lambda lk, _: spin_unlock(lk),
        spin_lock,
        lambda lk, _: spin_unlock(lk),
    ),
    "mutex_trylock": (
        Mutex,
        mutex_trylock,
        lambda lk, _: mutex_unlock(lk),
        mutex_lock,
        lambda lk, _: mutex_unlock(lk),
    ),
    "write_trylock": (
        RwLock,
        write_trylock,
        lambda lk, _: write_unlock(lk),
        write_lock,
        lambda lk, _: write_unlock(lk),
    ),
    "read_trylock": (
        RwLock,
        read_trylock,
        lambda lk, _: read_unlock(lk),
        write_lock,
        lambda lk, _: write_unlock(lk),
    ),
    "down_write_trylock": (
        RwSem,
        down_write_trylock,
        lambda lk, _: up_write(lk),
        down_write,
        lambda lk, _: up_write(lk),
    ),
    "down_read_trylock": (
        RwSem,
        down_read_trylock,
        lambda lk, _: up_read(lk),
        down_write,
        lambda lk, _: up_write(lk),
    ),
}


@pytest.mark.parametrize("flavour", sorted(TRY))
@pytest.mark.parametrize("contended", [True, False])
def test_trylock_fails_only_when_contended(flavour: str, contended: bool) -> None:
    """Against a concurrent (exclusive) holder, a trylock fails in some interleaving;
    once the holder is joined it always succeeds and the lock is then held."""
    cls, trylock, unlock, hold, release = TRY[flavour]

    def body() -> None:
        lk = cls(f"{flavour}-lock")

        def holder() -> None:
            t = hold(lk)
            release(lk, t)

        t = spawn(holder)
        if not contended:
            join(t)
        assert trylock(lk), "trylock failed"
        lockdep_assert_held(lk)
        unlock(lk, None)
        lockdep_assert_not_held(lk)
        if contended:
            join(t)

    r = run(body)
    if contended:
        found(r, "assertion", "assertion failed")
        assert "trylock failed" in r.finding.message  # type: ignore[union-attr]
    else:
        ok(r)


@pytest.mark.parametrize(
    ("flavour", "succeeds"),
    [
        ("read_trylock", True),
        ("write_trylock", False),
        ("down_read_trylock", True),
        ("down_write_trylock", False),
    ],
)
def test_trylock_against_a_reader(flavour: str, succeeds: bool) -> None:
    """A read trylock succeeds beside another reader; a write trylock does not."""
    cls, trylock, unlock, _, _ = TRY[flavour]
    rlock, runlock = (read_lock, read_unlock) if cls is RwLock else (down_read, up_read)

    def body() -> None:
        lk = cls("rw")
        rlock(lk)

        def other() -> bool:
            got = bool(trylock(lk))
            if got:
                unlock(lk, None)
            return got

        got = join(spawn(other))
        runlock(lk)
        assert got == succeeds

    ok(run(body))


def test_trylock_gives_mutual_exclusion() -> None:
    def body() -> None:
        c, lk = Counter(), SpinLock("try")

        def maybe_inc() -> None:
            if spin_trylock(lk):
                c.n = c.n + 1
                spin_unlock(lk)

        join(spawn(maybe_inc), spawn(maybe_inc))
        assert c.n in (1, 2)

    r = run(body)
    ok(r)
    assert r.executions >= 2


# -- lock-break points -----------------------------------------------------------------------------
BREAK: dict[str, tuple[type, Acquire, Release, Callable[[Any], bool], Acquire, Release]] = {
    "cond_resched_lock": (SpinLock, spin_lock, spin_unlock, cond_resched_lock, spin_lock, spin_unlock),
    "cond_resched_rwlock_read": (
        RwLock,
        read_lock,
        read_unlock,
        cond_resched_rwlock_read,
        write_lock,
        write_unlock,
    ),
    "cond_resched_rwlock_write": (
        RwLock,
        write_lock,
        write_unlock,
        cond_resched_rwlock_write,
        write_lock,
        write_unlock,
    ),
}


@pytest.mark.parametrize("flavour", sorted(BREAK))
@pytest.mark.parametrize("with_break", [True, False])
def test_cond_resched_lock_drops_and_retakes(flavour: str, with_break: bool) -> None:
    """A value read under the lock may change across the lock break, never without it."""
    cls, lock, unlock, brk, wlock, wunlock = BREAK[flavour]

    def body() -> None:
        c, lk = Counter(), cls(f"{flavour}-lock")

        def walker() -> None:
            lock(lk)
            before = c.n
            if with_break:
                assert brk(lk) is True
            lockdep_assert_held(lk)
            after = c.n
            unlock(lk)
            assert before == after, "changed across the lock break"

        def writer() -> None:
            wlock(lk)
            c.n = 1
            wunlock(lk)

        join(spawn(walker), spawn(writer))

    r = run(body)
    if with_break:
        found(r, "assertion", "assertion failed")
        assert "changed across the lock break" in r.finding.message  # type: ignore[union-attr]
    else:
        ok(r)


# -- unlock balance --------------------------------------------------------------------------------
def _unlock_never_locked() -> None:
    spin_unlock(SpinLock("never-taken"))


def _unlock_other_threads_mutex() -> None:
    m = Mutex("theirs")
    mutex_lock(m)
    join(spawn(lambda: mutex_unlock(m)))


def _read_unlock_write_held() -> None:
    lk = RwLock("rw")
    write_lock(lk)
    read_unlock(lk)


def _up_write_read_held() -> None:
    s = RwSem("sem")
    down_read(s)
    up_write(s)


def _double_unlock() -> None:
    m = Mutex("once")
    mutex_lock(m)
    mutex_unlock(m)
    mutex_unlock(m)


@pytest.mark.parametrize(
    "body",
    [
        _unlock_never_locked,
        _unlock_other_threads_mutex,
        _read_unlock_write_held,
        _up_write_read_held,
        _double_unlock,
    ],
)
def test_unlock_of_unheld_lock(body: Callable[[], None]) -> None:
    r = run(body)
    found(r, "unlock-unheld", "bad unlock balance detected")
    assert "is not held by this task" in r.finding.message  # type: ignore[union-attr]


def test_balanced_unlocks_are_fine() -> None:
    def body() -> None:
        m, lk, s = Mutex("m"), RwLock("rw"), RwSem("sem")
        mutex_lock(m)
        mutex_unlock(m)
        write_lock(lk)
        write_unlock(lk)
        read_lock(lk)
        read_unlock(lk)
        down_read(s)
        up_read(s)
        down_write(s)
        up_write(s)

    ok(run(body))


# -- recursive locking ------------------------------------------------------------------------------
def _recursive_mutex() -> None:
    m = Mutex("kvm->lock")
    mutex_lock(m)
    mutex_lock(m)


def _recursive_spin() -> None:
    lk = SpinLock("gpc_lock")
    spin_lock(lk)
    spin_lock(lk)


def _write_after_read() -> None:
    lk = RwLock("mmu_lock")
    read_lock(lk)
    write_lock(lk)


def _recursive_down_read() -> None:
    s = RwSem("mmap_lock")
    down_read(s)
    down_read(s)


@pytest.mark.parametrize(
    ("body", "name"),
    [
        (_recursive_mutex, "kvm->lock"),
        (_recursive_spin, "gpc_lock"),
        (_write_after_read, "mmu_lock"),
    ],
)
def test_recursive_locking_is_a_deadlock(body: Callable[[], None], name: str) -> None:
    r = run(body)
    found(r, "deadlock", "possible recursive locking")
    assert name in r.finding.message  # type: ignore[union-attr]
    assert "already held by this task" in r.finding.message  # type: ignore[union-attr]


def test_recursive_down_read_alone_is_lockdeps_warning_not_a_deadlock() -> None:
    """down_read() twice by one task does not block by itself (it blocks only behind a queued
    writer, see test_rw_fairness.py), but lockdep warns, as the kernel's check_deadlock() does:
    down_read() is a non-recursive read (read=1), and only read=2 may nest."""
    r = run(_recursive_down_read)
    found(r, "lock-order", "possible recursive locking")
    assert "mmap_lock" in r.finding.message  # type: ignore[union-attr]


def test_recursive_read_lock_on_rwlock_is_not_a_deadlock() -> None:
    """rwlock_t readers may nest: the second read_lock() does not block, the run goes on.

    In process context lockdep still warns ("possible recursive locking"): with
    queued rwlocks (x86) read_lock() is a recursive read only in interrupt
    context, because a writer queued between the two read_lock()s deadlocks
    them.  The WARN is soft, so the thread continues past it.
    """

    def body() -> None:
        lk = RwLock("rw")
        read_lock(lk)
        read_lock(lk)
        read_unlock(lk)
        lockdep_assert_held_read(lk)  # still held once
        read_unlock(lk)
        lockdep_assert_not_held(lk)
        raise AssertionError("ran past the nested read_lock")

    r = run(body)
    found(r, "lock-order", "WARNING: possible recursive locking detected")  # printed first
    # the thread ran on: no deadlock, no hard stop -- the assertion after it is listed
    assert [w.kind for w in r.warnings] == ["assertion"]
    assert "ran past the nested read_lock" in r.warnings[0].message


def test_recursive_read_lock_in_irq_context_is_allowed() -> None:
    def body() -> None:
        lk = RwLock("rw")

        def handler() -> None:
            read_lock(lk)
            read_lock(lk)
            read_unlock(lk)
            read_unlock(lk)

        join(spawn_irq(handler))
        write_lock_irq(lk)  # still free afterwards: both read holds were released
        write_unlock_irq(lk)

    ok(run(body))


# -- ABBA ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("same_order", [False, True])
def test_abba_deadlock(same_order: bool) -> None:
    def body() -> None:
        a, b = SpinLock("lock_A"), SpinLock("lock_B")

        def ab() -> None:
            spin_lock(a)
            spin_lock(b)
            spin_unlock(b)
            spin_unlock(a)

        def ba() -> None:
            first, second = (a, b) if same_order else (b, a)
            spin_lock(first)
            spin_lock(second)
            spin_unlock(second)
            spin_unlock(first)

        join(spawn(ab), spawn(ba))

    r = run(body, keep_going=True)
    if same_order:
        ok(r)
        assert r.executions >= 2
        return
    found(r, "deadlock", "deadlock")
    f = r.finding
    assert f is not None
    assert "wait-for cycle" in f.message
    assert "lock_A" in f.message and "lock_B" in f.message
    assert any("lock_A" in d for d in f.details) and any("lock_B" in d for d in f.details)
    # lockdep saw the inversion as well (a soft report listed beside the deadlock)
    assert any(w.headline == "WARNING: possible circular locking dependency detected" for w in r.warnings)


def test_abba_with_mutexes() -> None:
    def body() -> None:
        a, b = Mutex("mutex_A"), Mutex("mutex_B")

        def ab() -> None:
            mutex_lock(a)
            mutex_lock(b)
            mutex_unlock(b)
            mutex_unlock(a)

        def ba() -> None:
            mutex_lock(b)
            mutex_lock(a)
            mutex_unlock(a)
            mutex_unlock(b)

        join(spawn(ab), spawn(ba))

    r = run(body, keep_going=True)
    found(r, "deadlock", "deadlock")
    assert "mutex_A" in r.finding.message and "mutex_B" in r.finding.message  # type: ignore[union-attr]


# -- lockdep_assert_held and friends ---------------------------------------------------------------
Assert = Callable[[Any], None]
_ASSERTS: dict[str, Assert] = {
    "lockdep_assert_held": lockdep_assert_held,
    "lockdep_assert_held_write": lockdep_assert_held_write,
    "lockdep_assert_held_read": lockdep_assert_held_read,
    "lockdep_assert_not_held": lockdep_assert_not_held,
}

# state of the lock when the assertion runs -> which assertions must fire
_FIRES: dict[str, set[str]] = {
    "unheld": {"lockdep_assert_held", "lockdep_assert_held_write", "lockdep_assert_held_read"},
    "write": {"lockdep_assert_held_read", "lockdep_assert_not_held"},
    "read": {"lockdep_assert_held_write", "lockdep_assert_not_held"},
    "other-thread": {"lockdep_assert_held", "lockdep_assert_held_write", "lockdep_assert_held_read"},
}


@pytest.mark.parametrize("state", sorted(_FIRES))
@pytest.mark.parametrize("which", sorted(_ASSERTS))
def test_lockdep_asserts(which: str, state: str) -> None:
    assertion = _ASSERTS[which]

    def body() -> None:
        lk = RwLock("kvm->mmu_lock")
        if state == "write":
            write_lock(lk)
        elif state == "read":
            read_lock(lk)
        elif state == "other-thread":
            read_lock(lk)
            join(spawn(lambda: assertion(lk)))
            read_unlock(lk)
            return
        assertion(lk)
        if state == "write":
            write_unlock(lk)
        elif state == "read":
            read_unlock(lk)

    r = run(body)
    if which in _FIRES[state]:
        found(r, "assert-held", f"WARNING: {which}() failed")
        assert "kvm->mmu_lock" in r.finding.message  # type: ignore[union-attr]
    else:
        ok(r)


@pytest.mark.parametrize("cls", [SpinLock, Mutex])
def test_lockdep_assert_held_on_exclusive_locks(cls: type) -> None:
    lock, unlock = (spin_lock, spin_unlock) if cls is SpinLock else (mutex_lock, mutex_unlock)

    def held() -> None:
        lk = cls("x")
        lock(lk)
        lockdep_assert_held(lk)
        lockdep_assert_held_write(lk)
        unlock(lk)
        lockdep_assert_not_held(lk)

    def not_held() -> None:
        lk = cls("x")
        lock(lk)
        unlock(lk)
        lockdep_assert_held(lk)

    ok(run(held))
    found(run(not_held), "assert-held", "lockdep_assert_held() failed")


def test_failed_lockdep_assert_does_not_stop_the_run() -> None:
    """A failed lockdep_assert_held is a WARN: a later hard bug in the same run is the finding."""

    def body() -> None:
        lockdep_assert_held(SpinLock("x"))
        raise AssertionError("after the WARN")

    r = run(body)
    found(r, "assert-held")  # reported first, so it is the headline; the later bug is listed
    assert [w.kind for w in r.warnings] == ["assertion"]
