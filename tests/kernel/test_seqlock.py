"""seqcount_t / seqlock_t (kernel/seqlock.py) beyond the guarantees include/linux/seqlock.h states.

The documented guarantees -- readers retry, writers serialised and non-preemptible, lockdep's
assertions and irq-safety, KCSAN's reader region -- are conformance cases, each with the comment it
rests on: tests/conformance/test_seqlock.py.  Here: what the write section is (a spinlock: no sleeping
in it), and the raw writer.
"""

from __future__ import annotations

from typing import Any

from kvmcheck import join, spawn
from kvmcheck.kernel import (
    Mutex,
    SeqCount,
    SeqLock,
    Struct,
    mutex_lock,
    mutex_unlock,
    raw_write_seqcount_begin,
    raw_write_seqcount_end,
    read_seqcount_begin,
    read_seqcount_retry,
    write_seqlock,
    write_sequnlock,
)
from tests.kernel.helpers import found, ok, run


class Time(Struct):
    """Two fields a reader must see from the same write: ``sec`` and ``nsec``."""

    sec: int = 0
    nsec: int = 0

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.seq = SeqLock()


def test_sleeping_inside_a_write_section_is_sleep_in_atomic() -> None:
    def body() -> None:
        t = Time()
        m = Mutex()
        write_seqlock(t.seq)
        mutex_lock(m)
        mutex_unlock(m)
        write_sequnlock(t.seq)

    found(run(body), "sleep-in-atomic")


def test_raw_write_section_skips_lockdep_but_readers_still_retry() -> None:
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
