"""Sequence counters and sequential locks: seqcount_t, seqcount_LOCKNAME_t, seqlock_t
(include/linux/seqlock.h, v5.10+ -- the seqcount_LOCKNAME_t / seqprop_* shape).

What the header promises, and how it is modelled:

* A *reader* samples the sequence with ``read_seqcount_begin()`` -- which spins while it is
  odd (a write in progress), then orders the later data loads after it (smp_rmb) -- reads the
  data, and asks ``read_seqcount_retry(s, start)`` whether a writer came in between (the
  sequence changed); if so it must retry.  Here the begin is one visible step that *waits*
  (is not runnable) while the sequence is odd, so the search never unrolls the spin; the retry
  is one shared read.  ``raw_read_seqcount_begin`` is the begin without the lockdep annotation,
  ``raw_write_seqcount_begin``/``_end`` the write side without lockdep's map and assertions.
* A *writer* brackets its stores with ``write_seqcount_begin()``/``write_seqcount_end()``
  (sequence odd, then even again, each with smp_wmb).  "Write side critical sections must be
  serialized and non-preemptible": for a plain ``seqcount_t`` the begin asserts it
  (lockdep_assert_preemption_disabled -- a WARN when the writer could be preempted), because "if
  readers can be invoked from hardirq or softirq contexts, interrupts or bottom halves must also
  be respectively disabled before entering the write section"; otherwise a reader that
  preempts or interrupts the writer on its CPU spins for ever.  A seqcount with an associated
  lock (``SeqCount(lock=L)``, seqcount_spinlock_t / seqcount_mutex_t ...) asserts instead that
  ``L`` is held (lockdep_assert_held), and with a sleeping lock (mutex) the write section
  disables preemption itself.
* lockdep: the seqcount has a lockdep map.  The writer holds it from begin to end
  (seqcount_acquire / seqcount_release), so the write section is atomic (no sleeping) and its
  lock dependencies are recorded; each reader's begin is a read acquire-and-release of it
  (seqcount_lockdep_reader_access), so a reader running inside a write section of the same
  seqcount on the same task is "possible recursive locking" -- and then the spin that never
  ends, reported as the hang it is.  Irq usage is tracked as for a spinning lock (a reader in
  an irq and a writer with irqs on is lockdep's "inconsistent lock state").
* KCSAN: seqlock.h marks a reader's accesses between begin and retry as atomic
  (kcsan_atomic_next(KCSAN_SEQLOCK_REGION_MAX)) and the writer's inside its section
  (kcsan_nestable_atomic_begin/end), so the racy-by-design data accesses are not data races.
  Happens-before: a write section's end happens before a begin that reads its sequence.
* ``seqlock_t`` (``SeqLock``) is a ``seqcount_spinlock_t`` and its spinlock:
  ``read_seqbegin``/``read_seqretry`` for readers, ``write_seqlock``/``write_sequnlock`` (and
  the ``_irq``/``_bh``/``_irqsave`` forms) take the spinlock and open the write section;
  ``read_seqlock_excl``/``read_sequnlock_excl`` are the locking reader.

Not modelled: seqcount_latch_t, the raw_write_seqcount_barrier and the _nested subclasses.
"""

from __future__ import annotations

from typing import Any

from kvmcheck._engine import runtime
from kvmcheck._engine.clock import Clock, vc_join, vc_tick
from kvmcheck._engine.finding import UsageError
from kvmcheck._engine.ops import Op
from kvmcheck.kernel import lockdep
from kvmcheck.kernel._core import Held, Primitive, kthread, warn
from kvmcheck.kernel.locking import (
    SpinLock,
    spin_lock,
    spin_lock_bh,
    spin_lock_irq,
    spin_lock_irqsave,
    spin_unlock,
    spin_unlock_bh,
    spin_unlock_irq,
    spin_unlock_irqrestore,
)

__all__ = [
    "SeqCount",
    "SeqLock",
    "raw_read_seqcount_begin",
    "raw_write_seqcount_begin",
    "raw_write_seqcount_end",
    "read_seqbegin",
    "read_seqcount_begin",
    "read_seqcount_retry",
    "read_seqlock_excl",
    "read_seqretry",
    "read_sequnlock_excl",
    "write_seqcount_begin",
    "write_seqcount_end",
    "write_seqcount_invalidate",
    "write_seqlock",
    "write_seqlock_bh",
    "write_seqlock_irq",
    "write_seqlock_irqsave",
    "write_sequnlock",
    "write_sequnlock_bh",
    "write_sequnlock_irq",
    "write_sequnlock_irqrestore",
]

BEGIN = "begin"  # a reader's begin: waits while the sequence is odd
KCSAN_SEQLOCK_REGION_MAX = 1000


class SeqCount(Primitive):
    """``seqcount_t`` (``seqcount_init``); ``SeqCount(lock=L)`` is seqcount_LOCKNAME_t of ``L``."""

    kind = "seqcount_t"
    prefix = "seqcount"
    sleeps = False  # the write section is non-preemptible
    recursive_read = False

    def __init__(self, name: str | None = None, lock: Any = None) -> None:
        super().__init__(name)
        self.sequence = 0
        self.lock = lock  # the associated lock (seqcount_LOCKNAME_t), or None
        self.writer = -1  # the task in the write section (for the hang's report)
        self.clock: Clock = []  # released by the last write_seqcount_end

    def _kc_state(self) -> int:
        return self.sequence

    def _kc_enabled(self, op: Op, tid: int, state: Any) -> bool:
        if op.arg != BEGIN:
            return True
        return not (self.sequence if state is None else state) & 1

    def _kc_holders(self) -> list[int]:
        return [self.writer] if self.sequence & 1 and self.writer >= 0 else []


def _check(s: Any, fn: str) -> None:
    if not isinstance(s, SeqCount):
        raise UsageError(f"{fn}() takes a SeqCount (seqcount_t), not {s!r}")


def _reader_lockdep(s: SeqCount) -> None:
    """seqcount_lockdep_reader_access(): acquire the map for read and release it at once."""
    kt = kthread()
    for h in kt.held:
        if h.lock is s:  # a reader inside this task's own write section
            new = Held(s, True, False)
            warn(
                "lock-order",
                f"read_seqcount_begin({s.name}) inside this task's own write section of it",
                headline="WARNING: possible recursive locking detected",
                details=lockdep.recursive_details(kt, new, h),
            )
            return
    lockdep.on_acquire(kt, Held(s, True, False))


def _begin(s: SeqCount, fn: str, annotate: bool) -> int:
    _check(s, fn)
    if annotate:
        _reader_lockdep(s)
    ex = runtime.current
    if ex is None or ex.current is None:
        return s.sequence
    ex.visible(s.op(False, f"{fn}({s.name})", BEGIN))
    t = ex.current
    assert t is not None
    t.vc = vc_join(t.vc, s.clock)  # smp_rmb() after reading an even sequence
    k = t.k if t.k is not None else kthread(t)
    k.kcsan_next = KCSAN_SEQLOCK_REGION_MAX  # kcsan_atomic_next(): the section's reads
    return s.sequence


def read_seqcount_begin(s: SeqCount) -> int:
    """``read_seqcount_begin(s)``: wait for an even sequence and return it (a reader's start)."""
    return _begin(s, "read_seqcount_begin", annotate=True)


def raw_read_seqcount_begin(s: SeqCount) -> int:
    """``raw_read_seqcount_begin(s)``: read_seqcount_begin() without the lockdep annotation."""
    return _begin(s, "raw_read_seqcount_begin", annotate=False)


def read_seqcount_retry(s: SeqCount, start: int) -> bool:
    """``read_seqcount_retry(s, start)``: True if a writer came since ``start`` (retry the read)."""
    _check(s, "read_seqcount_retry")
    t = s.step(False, f"read_seqcount_retry({s.name})")
    if t is not None:
        k = t.k if t.k is not None else kthread(t)
        k.kcsan_next = 0  # kcsan_atomic_next(0): the reader's region is over
    return s.sequence != start


def raw_write_seqcount_begin(s: SeqCount) -> None:
    """``raw_write_seqcount_begin(s)``: open a write section without the lockdep checks."""
    _check(s, "raw_write_seqcount_begin")
    t = s.step(True, f"raw_write_seqcount_begin({s.name})")
    kt = kthread()
    kt.kcsan_atomic += 1
    s.sequence += 1
    if t is not None:
        s.writer = t.tid


def raw_write_seqcount_end(s: SeqCount) -> None:
    """``raw_write_seqcount_end(s)``: close a raw write section."""
    _check(s, "raw_write_seqcount_end")
    t = s.step(True, f"raw_write_seqcount_end({s.name})")
    kt = kthread()
    kt.kcsan_atomic = max(0, kt.kcsan_atomic - 1)
    s.sequence += 1
    s.writer = -1
    if t is not None:
        s.clock = vc_join(s.clock, t.vc)
        vc_tick(t.vc, t.tid)


def write_seqcount_begin(s: SeqCount) -> None:
    """``write_seqcount_begin(s)``: open a write section (non-preemptible, writers serialised)."""
    _check(s, "write_seqcount_begin")
    kt = kthread()
    lock = s.lock
    if lock is None:
        if kt.atomic_reason() is None:  # lockdep_assert_preemption_disabled()
            warn(
                "warn",
                f"write_seqcount_begin({s.name}) in preemptible context: a reader that preempts "
                "the writer on its CPU spins for ever (disable preemption, or take the writer lock)",
                headline="WARNING: at write_seqcount_begin (lockdep_assert_preemption_disabled)",
            )
    elif lockdep.held_by(kt, lock) is None:  # seqprop_assert(): lockdep_assert_held(s->lock)
        warn(
            "assert-held",
            f"write_seqcount_begin({s.name}) without its lock {lock.name} held",
            headline="WARNING: at write_seqcount_begin (lockdep_assert_held)",
        )
    held = Held(s, False, False)
    lockdep.on_acquire(kt, held)  # seqcount_acquire()
    t = s.step(True, f"write_seqcount_begin({s.name})")
    kt.held.append(held)
    kt.kcsan_atomic += 1  # kcsan_nestable_atomic_begin()
    s.sequence += 1
    if t is not None:
        s.writer = t.tid


def write_seqcount_end(s: SeqCount) -> None:
    """``write_seqcount_end(s)``: close the write section (the sequence is even again)."""
    _check(s, "write_seqcount_end")
    kt = kthread()
    h = lockdep.held_by(kt, s)
    if h is None or not s.sequence & 1:
        warn(
            "unlock-unheld",
            f"write_seqcount_end({s.name}) without write_seqcount_begin()",
            headline="WARNING: bad unlock balance detected!",
        )
        return
    t = s.step(True, f"write_seqcount_end({s.name})")
    s.sequence += 1
    s.writer = -1
    kt.held.remove(h)
    kt.kcsan_atomic = max(0, kt.kcsan_atomic - 1)  # kcsan_nestable_atomic_end()
    if t is not None:
        s.clock = vc_join(s.clock, t.vc)
        vc_tick(t.vc, t.tid)


def write_seqcount_invalidate(s: SeqCount) -> None:
    """``write_seqcount_invalidate(s)``: make every reader in progress retry (sequence += 2)."""
    _check(s, "write_seqcount_invalidate")
    s.step(True, f"write_seqcount_invalidate({s.name})")
    s.sequence += 2


class SeqLock(Primitive):
    """``seqlock_t`` (``DEFINE_SEQLOCK`` / ``seqlock_init``): a seqcount_spinlock_t and its spinlock."""

    kind = "seqlock_t"
    prefix = "seqlock"

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name)
        self.lock = SpinLock(f"{self.name}.lock")
        self.lock.cls = f"{self.cls}.lock"
        self.seqcount = SeqCount(f"{self.name}.seqcount", lock=self.lock)
        self.seqcount.cls = f"{self.cls}.seqcount"
        for p in (self.lock, self.seqcount):  # they live where the seqlock lives
            p._kc_home = self._kc_home


def _sl(sl: Any, fn: str) -> SeqLock:
    if not isinstance(sl, SeqLock):
        raise UsageError(f"{fn}() takes a SeqLock (seqlock_t), not {sl!r}")
    return sl


def read_seqbegin(sl: SeqLock) -> int:
    """``read_seqbegin(sl)``: read_seqcount_begin() of the seqlock's counter."""
    return _begin(_sl(sl, "read_seqbegin").seqcount, "read_seqbegin", annotate=True)


def read_seqretry(sl: SeqLock, start: int) -> bool:
    """``read_seqretry(sl, start)``: True if a writer came since ``start`` (retry)."""
    return read_seqcount_retry(_sl(sl, "read_seqretry").seqcount, start)


def write_seqlock(sl: SeqLock) -> None:
    """``write_seqlock(sl)``: spin_lock(&sl->lock), then open the write section."""
    spin_lock(_sl(sl, "write_seqlock").lock)
    write_seqcount_begin(sl.seqcount)


def write_sequnlock(sl: SeqLock) -> None:
    """``write_sequnlock(sl)``: close the write section, then spin_unlock(&sl->lock)."""
    write_seqcount_end(_sl(sl, "write_sequnlock").seqcount)
    spin_unlock(sl.lock)


def write_seqlock_irq(sl: SeqLock) -> None:
    """``write_seqlock_irq(sl)``: write_seqlock() with irqs disabled (readers in hard irq)."""
    spin_lock_irq(_sl(sl, "write_seqlock_irq").lock)
    write_seqcount_begin(sl.seqcount)


def write_sequnlock_irq(sl: SeqLock) -> None:
    """``write_sequnlock_irq(sl)``."""
    write_seqcount_end(_sl(sl, "write_sequnlock_irq").seqcount)
    spin_unlock_irq(sl.lock)


def write_seqlock_irqsave(sl: SeqLock) -> int:
    """``write_seqlock_irqsave(sl, flags)``: returns the flags to restore."""
    flags = spin_lock_irqsave(_sl(sl, "write_seqlock_irqsave").lock)
    write_seqcount_begin(sl.seqcount)
    return flags


def write_sequnlock_irqrestore(sl: SeqLock, flags: int) -> None:
    """``write_sequnlock_irqrestore(sl, flags)``."""
    write_seqcount_end(_sl(sl, "write_sequnlock_irqrestore").seqcount)
    spin_unlock_irqrestore(sl.lock, flags)


def write_seqlock_bh(sl: SeqLock) -> None:
    """``write_seqlock_bh(sl)``: write_seqlock() with softirqs disabled."""
    spin_lock_bh(_sl(sl, "write_seqlock_bh").lock)
    write_seqcount_begin(sl.seqcount)


def write_sequnlock_bh(sl: SeqLock) -> None:
    """``write_sequnlock_bh(sl)``."""
    write_seqcount_end(_sl(sl, "write_sequnlock_bh").seqcount)
    spin_unlock_bh(sl.lock)


def read_seqlock_excl(sl: SeqLock) -> None:
    """``read_seqlock_excl(sl)``: a locking reader (excludes writers and other locking readers)."""
    spin_lock(_sl(sl, "read_seqlock_excl").lock)


def read_sequnlock_excl(sl: SeqLock) -> None:
    """``read_sequnlock_excl(sl)``."""
    spin_unlock(_sl(sl, "read_sequnlock_excl").lock)
