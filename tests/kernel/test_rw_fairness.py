"""Writer fairness of rw_semaphore and rwlock_t (qrwlock), as kernel/locking/rwsem.c and
kernel/locking/qrwlock.c have it: a queued writer is a visible state that new readers wait behind.

Each "deadlock" test here failed before the fix (readers never waited for a *waiting*
writer, so the recursive read went through and the check said "ok, complete").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kvmcheck import join, spawn
from kvmcheck.kernel import (
    RwLock,
    RwSem,
    Struct,
    down_read,
    down_read_trylock,
    down_write,
    read_lock,
    read_trylock,
    read_unlock,
    spawn_irq,
    spin_until_cond,
    up_read,
    up_write,
    write_lock,
    write_lock_irq,
    write_unlock,
    write_unlock_irq,
)
from tests.kernel.helpers import found, ok, run

RSEM = (RwSem, down_read, up_read, down_write, up_write)
RWLOCK = (RwLock, read_lock, read_unlock, write_lock, write_unlock)


class Flag(Struct):
    go: int = 0


def _reader_writer_reader(flavour: tuple[Any, ...], with_writer: bool) -> Callable[[], None]:
    cls, rlock, runlock, wlock, wunlock = flavour

    def body() -> None:
        lk = cls("mmap_lock")

        def reader() -> None:
            rlock(lk)
            rlock(lk)  # a writer may queue between the two acquisitions
            runlock(lk)
            runlock(lk)

        def writer() -> None:
            wlock(lk)
            wunlock(lk)

        threads = [spawn(reader, name="reader")]
        if with_writer:
            threads.append(spawn(writer, name="writer"))
        join(*threads)

    return body


@pytest.mark.parametrize("flavour", [RSEM, RWLOCK], ids=["rwsem", "rwlock"])
def test_reader_queued_writer_reader_again_is_a_deadlock(flavour: tuple[Any, ...]) -> None:
    # lockdep's recursive-read WARN comes first and now stops the search; keep going to the hang
    r = run(_reader_writer_reader(flavour, with_writer=True), keep_going=True)
    found(r, "deadlock")
    msg = r.finding.message  # type: ignore[union-attr]
    assert "writer" in msg and "reader" in msg, msg  # the cycle names the queued writer
    assert "reader [mmap_lock (behind a queued writer)] -> writer" in msg, msg


@pytest.mark.parametrize("flavour", [RSEM, RWLOCK], ids=["rwsem", "rwlock"])
def test_without_the_writer_the_recursive_read_does_not_block(flavour: tuple[Any, ...]) -> None:
    """No deadlock, and every interleaving explored; what remains is lockdep's own warning
    (the kernel's check_deadlock(): down_read() and a process-context read_lock() on x86
    are non-recursive reads, read=1), which is a WARN, not a hang."""
    r = run(_reader_writer_reader(flavour, with_writer=False))
    found(r, "lock-order", "possible recursive locking")
    assert r.executions == 1


def test_irq_reader_does_not_wait_for_a_queued_writer() -> None:
    """qrwlock: a reader in interrupt context spins only while a writer holds the lock, so
    an irq handler nesting read_lock() with a writer queued in between is fine (and lockdep
    takes it as a recursive read): ok, complete."""

    def body() -> None:
        lk = RwLock("evtchn_lock")

        def handler() -> None:
            read_lock(lk)
            read_lock(lk)
            read_unlock(lk)
            read_unlock(lk)

        def writer() -> None:  # irqs off: the handler runs on another CPU
            write_lock_irq(lk)
            write_unlock_irq(lk)

        join(spawn_irq(handler), spawn(writer))

    ok(run(body))


@pytest.mark.parametrize("flavour", [RSEM, RWLOCK], ids=["rwsem", "rwlock"])
def test_second_reader_waits_behind_a_queued_writer(flavour: tuple[Any, ...]) -> None:
    """r1 holds the lock and waits for r2; w queues; r2 must wait behind w: a three-task
    deadlock (r1 -> r2 -> w -> r1) that needs the queued writer to exist."""
    cls, rlock, runlock, wlock, wunlock = flavour

    def body() -> None:
        lk = cls("lk")
        f = Flag()

        def r1() -> None:
            rlock(lk)
            spin_until_cond(f, "go", bool)  # waits for r2
            runlock(lk)

        def w() -> None:
            wlock(lk)
            wunlock(lk)

        def r2() -> None:
            rlock(lk)
            f.go = 1
            runlock(lk)

        join(spawn(r1, name="r1"), spawn(w, name="w"), spawn(r2, name="r2"))

    r = run(body)
    found(r, "deadlock")
    assert "r2 waits for lk (behind a queued writer) held by w" in r.finding.message  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("flavour", "trylock"),
    [(RSEM, down_read_trylock), (RWLOCK, read_trylock)],
    ids=["down_read_trylock", "read_trylock"],
)
def test_read_trylock_fails_while_a_writer_is_queued(flavour: tuple[Any, ...], trylock: Any) -> None:
    """RWSEM_READ_FAILED_MASK / _QW_WMASK: a read trylock fails once a writer waits, even
    though only readers hold the lock."""
    cls, rlock, runlock, wlock, wunlock = flavour
    outcomes: set[bool] = set()

    def body() -> None:
        lk = cls("lk")
        f = Flag()

        def holder() -> None:
            rlock(lk)
            spin_until_cond(f, "go", bool)  # holds the lock for read until the trier is done
            runlock(lk)

        def writer() -> None:
            wlock(lk)
            wunlock(lk)

        def trier() -> bool:
            got = bool(trylock(lk))
            if got:
                runlock(lk)
            f.go = 1
            return got

        t = spawn(trier)
        join(spawn(holder), spawn(writer))
        outcomes.add(join(t))

    ok(run(body, kcsan=False))
    assert outcomes == {True, False}
