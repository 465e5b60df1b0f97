"""Sequence counter and seqlock guarantees as include/linux/seqlock.h states them.

Read in the index's copies of include/linux/seqlock.h (v5.10+: the "Sequence counters
(seqcount_t)" comment, seqcount_LOCKNAME_t, KCSAN_SEQLOCK_REGION_MAX, seqlock_t) and
Documentation/locking/seqlock.rst.  One case per documented guarantee; each ``why`` quotes it.
"""

from __future__ import annotations

from typing import Any

import pytest

from kvmcheck import check, join, scenario, spawn
from kvmcheck.kernel import (
    Mutex,
    SeqCount,
    SeqLock,
    SpinLock,
    Struct,
    kfree,
    kmalloc,
    mutex_lock,
    mutex_unlock,
    read_seqbegin,
    read_seqcount_begin,
    read_seqcount_retry,
    read_seqlock_excl,
    read_seqretry,
    read_sequnlock_excl,
    spawn_irq,
    spin_lock,
    spin_unlock,
    synchronize_rcu,
    write_seqcount_begin,
    write_seqcount_end,
    write_seqcount_invalidate,
    write_seqlock,
    write_seqlock_irq,
    write_sequnlock,
    write_sequnlock_irq,
)
from tests.conformance.case import KernelCase, check_case

SEQLOCK_H = "include/linux/seqlock.h"


class Clock(Struct):
    """Two words a reader must see from the same write (``sec``, ``nsec``), and a pointer."""

    sec: int = 0
    nsec: int = 0
    ptr: Any = None

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.sl = SeqLock()


class Node(Struct):
    val: int = 0


def _read(c: Clock) -> tuple[int, int]:
    while True:
        start = read_seqbegin(c.sl)
        pair = (c.sec, c.nsec)
        if not read_seqretry(c.sl, start):
            return pair


def _write(c: Clock, v: int) -> None:
    write_seqlock(c.sl)
    c.sec = v
    c.nsec = v
    write_sequnlock(c.sl)


def reader_retry_sees_one_write(seen: set[tuple[int, int]] | None = None) -> None:
    c = Clock()

    def reader() -> None:
        a, b = _read(c)
        assert a == b, "torn snapshot"
        if seen is not None:
            seen.add((a, b))

    join(spawn(reader), spawn(_write, c, 1))


def reader_without_retry_is_torn() -> None:
    c = Clock()

    def reader() -> None:
        read_seqbegin(c.sl)
        a, b = c.sec, c.nsec
        assert a == b, "torn snapshot"

    join(spawn(reader), spawn(_write, c, 1))


def writers_are_serialised_by_seqlock() -> None:
    c = Clock()
    join(spawn(_write, c, 1), spawn(_write, c, 2))
    a, b = _read(c)
    assert a == b


def plain_seqcount_preemptible_writer() -> None:
    s = SeqCount()
    write_seqcount_begin(s)
    write_seqcount_end(s)


def plain_seqcount_writer_non_preemptible() -> None:
    lock = SpinLock()
    s = SeqCount()
    spin_lock(lock)
    write_seqcount_begin(s)
    write_seqcount_end(s)
    spin_unlock(lock)
    start = read_seqcount_begin(s)
    assert not read_seqcount_retry(s, start)  # no writer since: the snapshot stands


def locktype_writer_without_its_lock() -> None:
    lock = SpinLock()
    s = SeqCount(lock=lock)
    other = SpinLock()
    spin_lock(other)
    write_seqcount_begin(s)
    write_seqcount_end(s)
    spin_unlock(other)


def mutex_seqcount_disables_preemption_itself() -> None:
    m = Mutex()
    s = SeqCount(lock=m)
    mutex_lock(m)
    write_seqcount_begin(s)  # no WARN: the write side disables preemption for a mutex
    write_seqcount_end(s)
    mutex_unlock(m)


def irq_reader_writer_with_irqs_on() -> None:
    c = Clock()
    spawn_irq(lambda: _read(c))
    _write(c, 1)


def irq_reader_writer_with_irqs_off() -> None:
    c = Clock()
    irq = spawn_irq(lambda: _read(c))
    write_seqlock_irq(c.sl)
    c.sec = 1
    c.nsec = 1
    write_sequnlock_irq(c.sl)
    join(irq)


def reader_inside_its_write_section() -> None:
    c = Clock()
    write_seqlock(c.sl)
    _read(c)
    write_sequnlock(c.sl)


def reader_follows_a_pointer_the_writer_frees() -> None:
    c = Clock(ptr=kmalloc(Node, val=1))

    def reader() -> None:
        while True:
            start = read_seqbegin(c.sl)
            p = c.ptr
            v = p.val  # dereferences what a writer may have freed already
            if not read_seqretry(c.sl, start):
                assert v == 1
                return

    def writer() -> None:
        write_seqlock(c.sl)
        old = c.ptr
        c.ptr = kmalloc(Node, val=1)
        write_sequnlock(c.sl)
        kfree(old)

    join(spawn(reader), spawn(writer))
    synchronize_rcu()
    kfree(c.ptr)


def locking_reader_excludes_writers() -> None:
    c = Clock()

    def reader() -> None:
        read_seqlock_excl(c.sl)
        a, b = c.sec, c.nsec
        read_sequnlock_excl(c.sl)
        assert a == b

    join(spawn(reader), spawn(_write, c, 1))


def invalidate_makes_readers_retry() -> None:
    lock = SpinLock()
    s = SeqCount(lock=lock)
    start = read_seqcount_begin(s)
    spin_lock(lock)
    write_seqcount_invalidate(s)
    spin_unlock(lock)
    assert read_seqcount_retry(s, start)


CASES: tuple[KernelCase, ...] = (
    KernelCase(
        SEQLOCK_H,
        "read_seqcount_retry:consistent-snapshot",
        "ok",
        reader_retry_sees_one_write,
        why='read_seqcount_retry(): "If the critical section was invalid, it must be ignored (and '
        'typically retried)."; with the KCSAN region the racy reads are no data race',
    ),
    KernelCase(
        SEQLOCK_H,
        "read_seqcount_retry:omitted",
        "bug",
        reader_without_retry_is_torn,
        kind="assertion",
        why="seqlock.rst read path: do { seq = read_seqcount_begin(); ... } while "
        "(read_seqcount_retry(...)) -- without the retry a reader may see half a write",
    ),
    KernelCase(
        SEQLOCK_H,
        "seqlock_t:writer-serialisation",
        "ok",
        writers_are_serialised_by_seqlock,
        why="seqlock_t: \"If it's desired to automatically handle the sequence counter writer "
        'serialization and non-preemptibility requirements, use a sequential lock (seqlock_t)"',
    ),
    KernelCase(
        SEQLOCK_H,
        "seqcount_t:non-preemptible-writer",
        "bug",
        plain_seqcount_preemptible_writer,
        kind="warn",
        why='seqcount_t: "Write side critical sections must be serialized and non-preemptible." '
        "(seqprop_assert(): lockdep_assert_preemption_disabled())",
        report="lockdep_assert_preemption_disabled",
    ),
    KernelCase(
        SEQLOCK_H,
        "seqcount_t:writer-under-spinlock",
        "ok",
        plain_seqcount_writer_non_preemptible,
        why='seqlock.rst: "/* Serialized context with disabled preemption */ write_seqcount_begin()"',
    ),
    KernelCase(
        SEQLOCK_H,
        "seqcount_LOCKNAME_t:lock-held",
        "bug",
        locktype_writer_without_its_lock,
        kind="assert-held",
        why='seqcount_LOCKNAME_t: "lockdep\'s \\"lock is held\\" assertions are injected at the '
        'beginning of the write side critical section"',
        report="lockdep_assert_held",
    ),
    KernelCase(
        SEQLOCK_H,
        "seqcount_mutex_t:preemption",
        "ok",
        mutex_seqcount_disables_preemption_itself,
        why='seqlock.rst: "For lock types which do not implicitly disable preemption, preemption '
        'protection is enforced in the write side function."',
    ),
    KernelCase(
        SEQLOCK_H,
        "seqcount_t:irq-readers",
        "bug",
        irq_reader_writer_with_irqs_on,
        kind="lock-order",
        why='seqcount_t: "If readers can be invoked from hardirq or softirq contexts, interrupts or '
        'bottom halves must also be respectively disabled before entering the write section." '
        "(lockdep: inconsistent lock state on the seqcount's map)",
        report="WARNING: inconsistent lock state",
    ),
    KernelCase(
        SEQLOCK_H,
        "write_seqlock_irq:irq-readers",
        "ok",
        irq_reader_writer_with_irqs_off,
        why="write_seqlock_irq(): the _irq writer for readers in hard-irq context",
    ),
    KernelCase(
        SEQLOCK_H,
        "seqcount:reader-in-own-write-section",
        "bug",
        reader_inside_its_write_section,
        kind="lock-order",
        why="a reader that runs while its CPU's writer is inside the write section spins for ever "
        "(the reason writers are non-preemptible); lockdep: the reader's seqcount_acquire_read on the "
        "held seqcount map",
        report="WARNING: possible recursive locking detected",
    ),
    KernelCase(
        SEQLOCK_H,
        "seqcount_t:no-pointers",
        "bug",
        reader_follows_a_pointer_the_writer_frees,
        kind="use-after-free",
        why="seqcount_t: \"This mechanism can't be used if the protected data contains pointers, as "
        'the writer can invalidate a pointer that a reader is following."',
    ),
    KernelCase(
        SEQLOCK_H,
        "read_seqlock_excl",
        "ok",
        locking_reader_excludes_writers,
        why="read_seqlock_excl(): a locking reader; it takes the seqlock's spinlock and so excludes "
        "writers and other locking readers",
    ),
    KernelCase(
        SEQLOCK_H,
        "write_seqcount_invalidate",
        "ok",
        invalidate_makes_readers_retry,
        why="write_seqcount_invalidate(): invalidate in-progress read-side critical sections "
        "(sequence += 2), so read_seqcount_retry() says retry",
    ),
    KernelCase(
        SEQLOCK_H,
        "seqcount_latch_t",
        "ok",
        None,
        why="not applicable: seqcount_latch_t (raw_write_seqcount_latch) is not modelled",
    ),
    KernelCase(
        SEQLOCK_H,
        "seqcount_LOCKNAME_t:PREEMPT_RT",
        "ok",
        None,
        why="not applicable: the PREEMPT_RT reader that takes the writer's lock is not modelled "
        "(kvmcheck models a !PREEMPT_RT kernel)",
    ),
)


@pytest.mark.parametrize("case", [c for c in CASES if c.applicable], ids=lambda c: c.case)
def test_kernel_guarantee(case: KernelCase) -> None:
    check_case(case)


def test_a_retrying_reader_sees_each_write_whole_and_both_of_them() -> None:
    """read_seqcount_retry:consistent-snapshot beyond its verdict: the check reaches the snapshot
    before the write and the one after it, never a mix."""
    seen: set[tuple[int, int]] = set()
    r = check(scenario(lambda: reader_retry_sees_one_write(seen)))
    assert r.verdict == "ok" and r.complete, r.finding
    assert seen == {(0, 0), (1, 1)}
