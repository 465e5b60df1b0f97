"""seqcount_t / seqlock_t (kernel/seqlock.py): readers retry, writers are serialised and
non-preemptible, lockdep and KCSAN as include/linux/seqlock.h annotates them."""

from __future__ import annotations

from typing import Any

from kvmcheck import join, spawn
from kvmcheck.kernel import (
    SeqCount,
    SeqLock,
    SpinLock,
    Struct,
    local_irq_disable,
    local_irq_enable,
    read_seqbegin,
    read_seqcount_begin,
    read_seqcount_retry,
    read_seqretry,
    spawn_irq,
    spin_lock,
    spin_unlock,
    write_seqcount_begin,
    write_seqcount_end,
    write_seqlock,
    write_seqlock_irq,
    write_sequnlock,
    write_sequnlock_irq,
)
from tests.kernel.helpers import found, ok, run


class Time(Struct):
    """Two fields a reader must see from the same write: ``sec`` and ``nsec``."""

    sec: int = 0
    nsec: int = 0

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.seq = SeqLock()


def _read(t: Time) -> tuple[int, int]:
    while True:
        start = read_seqbegin(t.seq)
        pair = (t.sec, t.nsec)
        if not read_seqretry(t.seq, start):
            return pair


def _write(t: Time, v: int) -> None:
    write_seqlock(t.seq)
    t.sec = v
    t.nsec = v
    write_sequnlock(t.seq)


def test_a_reader_never_returns_a_torn_pair_and_kcsan_is_quiet() -> None:
    """The racy data reads between begin and retry are KCSAN-atomic, as seqlock.h marks them."""
    seen: set[tuple[int, int]] = set()

    def body() -> None:
        t = Time()
        r = spawn(lambda: seen.add(_read(t)))
        w = spawn(_write, t, 1)
        join(r, w)

    ok(run(body))
    assert seen == {(0, 0), (1, 1)}


def test_without_the_retry_check_the_reader_can_see_a_torn_pair() -> None:
    def body() -> None:
        t = Time()

        def reader() -> None:
            read_seqbegin(t.seq)
            a, b = t.sec, t.nsec
            assert a == b, "torn read"

        join(spawn(reader), spawn(_write, t, 1))

    found(run(body, kcsan=False), "assertion")


def test_plain_seqcount_writer_must_be_non_preemptible() -> None:
    """lockdep_assert_preemption_disabled() in write_seqcount_begin() of a plain seqcount_t."""

    def body() -> None:
        s = SeqCount()
        write_seqcount_begin(s)
        write_seqcount_end(s)

    found(run(body), "warn", "lockdep_assert_preemption_disabled")


def test_plain_seqcount_writer_under_a_spinlock_is_fine() -> None:
    def body() -> None:
        lock = SpinLock()
        s = SeqCount()
        spin_lock(lock)
        write_seqcount_begin(s)
        write_seqcount_end(s)
        spin_unlock(lock)
        start = read_seqcount_begin(s)
        assert not read_seqcount_retry(s, start)

    ok(run(body))


def test_seqcount_with_a_lock_asserts_the_lock_is_held() -> None:
    def body() -> None:
        lock = SpinLock()
        s = SeqCount(lock=lock)
        local_irq_disable()
        write_seqcount_begin(s)
        write_seqcount_end(s)
        local_irq_enable()

    found(run(body), "assert-held", "lockdep_assert_held")


def test_an_irq_reader_interrupting_its_cpus_writer_spins_for_ever() -> None:
    """The reason writers disable irqs when readers run in irq context: here they do not, and
    lockdep says so (inconsistent lock state) before any run hangs."""

    def body() -> None:
        t = Time()
        spawn_irq(lambda: _read(t))
        _write(t, 1)

    r = run(body, keep_going=True)
    heads = [w.headline for w in r.warnings] + ([r.finding.headline] if r.finding else [])
    assert any("inconsistent lock state" in h for h in heads), heads


def test_irq_safe_writer_with_irq_reader_is_fine() -> None:
    def body() -> None:
        t = Time()
        irq = spawn_irq(lambda: _read(t))
        write_seqlock_irq(t.seq)
        t.sec = 1
        t.nsec = 1
        write_sequnlock_irq(t.seq)
        join(irq)

    ok(run(body))


def test_a_reader_inside_its_own_write_section_is_recursive_and_hangs() -> None:
    def body() -> None:
        t = Time()
        write_seqlock(t.seq)
        _read(t)
        write_sequnlock(t.seq)

    r = run(body, keep_going=True)
    heads = [w.headline for w in r.warnings] + ([r.finding.headline] if r.finding else [])
    assert heads[0] == "WARNING: possible recursive locking detected", heads
    assert r.finding is not None and r.finding.kind == "deadlock", heads


def test_sleeping_inside_a_write_section_is_sleep_in_atomic() -> None:
    from kvmcheck.kernel import Mutex, mutex_lock, mutex_unlock

    def body() -> None:
        t = Time()
        m = Mutex()
        write_seqlock(t.seq)
        mutex_lock(m)
        mutex_unlock(m)
        write_sequnlock(t.seq)

    found(run(body), "sleep-in-atomic")


def test_raw_write_section_skips_lockdep_but_readers_still_retry() -> None:
    from kvmcheck.kernel import raw_write_seqcount_begin, raw_write_seqcount_end

    seen: set[tuple[int, int]] = set()

    def body() -> None:
        t = Time()
        s = SeqCount()  # raw writer: no preemption assertion, no lockdep map

        def reader() -> None:
            while True:
                start = read_seqcount_begin(s)
                pair = (t.sec, t.nsec)
                if not read_seqcount_retry(s, start):
                    seen.add(pair)
                    return

        def writer() -> None:
            raw_write_seqcount_begin(s)
            t.sec = 1
            t.nsec = 1
            raw_write_seqcount_end(s)

        join(spawn(reader), spawn(writer))

    ok(run(body))
    assert seen == {(0, 0), (1, 1)}
