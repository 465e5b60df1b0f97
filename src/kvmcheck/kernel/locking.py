"""Locks in the kernel's names: spinlock_t, rwlock_t, struct mutex, struct rw_semaphore.

Each acquisition is one visible operation on the lock: exclusive for
spin_lock/mutex_lock/write_lock/down_write, shared for read_lock/down_read
(two readers are independent, so DPOR never orders them).  A blocked
acquisition is simply not enabled.  Unlocking publishes the holder's
synchronisation clock, and acquiring joins it: that is the happens-before
KCSAN uses.

Writer fairness, as the kernel has it (a *queued* writer is a visible state,
so the search orders it against the readers):

* ``down_write``/``write_lock`` on a busy lock is two steps: the writer
  *queues* (always enabled), then waits until the lock is free.  On a free
  lock it is one step, as before.
* ``struct rw_semaphore`` (kernel/locking/rwsem.c, v6.x): ``down_read``'s
  fast path (``rwsem_read_trylock``) fails once RWSEM_FLAG_WAITERS is set;
  in ``rwsem_down_read_slowpath`` a reader may still *steal* the lock when
  no writer holds it and no handoff is pending, but not when the lock is
  reader-owned and other readers hold it (``rcnt > 1``: it queues).  So a
  new ``down_read`` waits while a writer is queued and some reader holds the
  lock (the caller included: a recursive read with a writer queued in
  between deadlocks); on a free lock with a queued writer it may steal.
  (The handoff bit, set after a 4 ms wait, makes the reader queue even then;
  a blocked reader there only waits for the writer, an order the search
  explores anyway.)
* ``rwlock_t`` (qrwlock, kernel/locking/qrwlock.c): ``queued_read_lock``
  fails its fast path when _QW_WAITING or _QW_LOCKED is set; in
  ``queued_read_lock_slowpath`` a reader in interrupt context spins only
  while a writer *holds* the lock (_QW_LOCKED), one in process context
  takes the wait_lock and so queues behind every waiting writer.  So a
  process-context ``read_lock`` waits while any writer is queued; a
  hard-irq one only while a writer holds the lock (in_interrupt(); here:
  ``spawn_irq`` handlers).
* trylocks fail while a writer is queued (``RWSEM_READ_FAILED_MASK``,
  ``_QW_WMASK``; a write trylock needs a count of exactly 0).
* Queued writers may take the lock in any order once it is free (qrwlock
  serialises them on its wait_lock; rwsem writers may steal): an
  over-approximation, which only adds interleavings.

A trylock is modelled as exclusive on the lock even when it fails, which is
sound and costs a few extra interleavings.  Every lock is a
:class:`~kvmcheck.kernel._core.Primitive`: one embedded in a freed object is
a use-after-free when used.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kvmcheck._engine import runtime
from kvmcheck._engine.clock import Clock, vc_join, vc_tick
from kvmcheck._engine.finding import UsageError
from kvmcheck._engine.ops import Op
from kvmcheck.kernel import lockdep
from kvmcheck.kernel._core import Held, Primitive, bug, current_thread, kthread, report_embedded, warn
from kvmcheck.kernel.context import cond_resched, local_bh_enable, might_sleep_check

__all__ = [
    "Mutex",
    "RwLock",
    "RwSem",
    "SpinLock",
    "cond_resched_lock",
    "cond_resched_rwlock_read",
    "cond_resched_rwlock_write",
    "down_read",
    "down_read_trylock",
    "down_write",
    "down_write_trylock",
    "guard",
    "init_rwsem",
    "irqs_disabled",
    "lockdep_assert_held",
    "lockdep_assert_held_read",
    "lockdep_assert_held_write",
    "lockdep_assert_not_held",
    "mutex_init",
    "mutex_is_locked",
    "mutex_lock",
    "mutex_lock_nested",
    "mutex_trylock",
    "mutex_unlock",
    "read_lock",
    "read_lock_irq",
    "read_lock_irqsave",
    "read_trylock",
    "read_unlock",
    "read_unlock_irq",
    "read_unlock_irqrestore",
    "rwlock_init",
    "spin_lock",
    "spin_lock_bh",
    "spin_lock_init",
    "spin_lock_irq",
    "spin_lock_irqsave",
    "spin_lock_nested",
    "spin_trylock",
    "spin_unlock",
    "spin_unlock_bh",
    "spin_unlock_irq",
    "spin_unlock_irqrestore",
    "up_read",
    "up_write",
    "write_lock",
    "write_lock_irq",
    "write_lock_irqsave",
    "write_trylock",
    "write_unlock",
    "write_unlock_irq",
    "write_unlock_irqrestore",
]

EXCL = "x"
SHARED = "s"  # a reader only an active writer blocks (qrwlock reader in interrupt context)
SHARED_Q = "sq"  # qrwlock reader in process context: also waits behind queued writers
SHARED_S = "ss"  # rwsem reader: waits behind queued writers while readers hold the lock
QUEUE = "wq"  # a writer's first step: take the lock if free, else queue


class _Lock(Primitive):
    kind = "lock"
    sleeps = False  # mutex and rwsem sleep; spinning locks make the holder atomic
    recursive_read = False  # a task may take it for read again (lockdep decides if that is legal)
    fair_rw = False  # readers wait behind queued writers (rwsem, qrwlock)

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name)
        self.owner: int | None = None
        self.readers: dict[int, int] = {}
        self.w_rel: Clock = []  # clock published by the last exclusive release
        self.r_rel: Clock = []  # join of clocks published by shared releases
        self._ops: dict[tuple[str, int, str], Op] = {}

    def _op(self, fn: str, excl: bool, arg: str, subclass: int = 0) -> Op:
        """The (immutable) visible operation ``fn(lock)``, built once per lock."""
        op = self._ops.get((fn, subclass, arg))
        if op is None:
            label = f"{fn}({self.name}, {subclass})" if subclass else f"{fn}({self.name})"
            op = self._ops[(fn, subclass, arg)] = self.op(excl, label, arg)
        return op

    # -- the engine's Blocker protocol --------------------------------------------
    def _kc_state(self) -> Any:
        return (self.owner, len(self.readers))

    def _kc_enabled(self, op: Op, tid: int, state: Any) -> bool:
        owner, nreaders = (self.owner, len(self.readers)) if state is None else state
        if op.arg == EXCL:
            return owner is None and nreaders == 0
        if op.arg == SHARED:
            return owner is None
        return True

    def _kc_holders(self) -> list[int]:
        return [self.owner] if self.owner is not None else sorted(self.readers)


class _FairRw(_Lock):
    """A reader-writer lock whose readers wait behind queued writers (see the module docstring)."""

    fair_rw = True
    recursive_read = True

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name)
        self.queued: list[int] = []  # writers waiting for the lock, in queueing order
        self.reader_view = _ReaderWait(self)

    def _op(self, fn: str, excl: bool, arg: str, subclass: int = 0) -> Op:
        op = super()._op(fn, excl, arg, subclass)
        if arg in (SHARED_Q, SHARED_S) and op.obj is self:  # readers blocked by writers name them
            op.obj = self.reader_view
        return op

    def _kc_state(self) -> Any:
        return (self.owner, len(self.readers), len(self.queued))

    def _kc_enabled(self, op: Op, tid: int, state: Any) -> bool:
        owner, nreaders, nqueued = (
            (self.owner, len(self.readers), len(self.queued)) if state is None else state
        )
        arg = op.arg
        if arg == EXCL:
            return owner is None and nreaders == 0
        if arg == SHARED_S:
            return owner is None and not (nqueued and nreaders)
        if arg == SHARED_Q:
            return owner is None and not nqueued
        if arg == SHARED:
            return owner is None
        return True


class _ReaderWait:
    """What a reader of a fair rw lock waits on: the lock's own state, but the tasks it waits
    for are the writer holding the lock or, failing that, the queued writers (so a deadlock
    report names the queued writer a recursive reader waits behind)."""

    __slots__ = ("lock",)

    def __init__(self, lock: _FairRw) -> None:
        self.lock = lock

    def _kc_state(self) -> Any:
        return self.lock._kc_state()

    def _kc_enabled(self, op: Op, tid: int, state: Any) -> bool:
        return self.lock._kc_enabled(op, tid, state)

    def _kc_holders(self) -> list[int]:
        lk = self.lock
        return [lk.owner] if lk.owner is not None else list(lk.queued)

    def _kc_label(self) -> str:
        return self.lock.name + (" (behind a queued writer)" if self.lock.queued else "")


def _wrong_api(lock: Any, fn: str) -> None:
    """A lock used with another lock type's API (spin_lock on a Mutex), or no lock at all."""
    if lock is None:
        bug("null-deref", f"{fn}(NULL)", headline="BUG: kernel NULL pointer dereference")
    want = _API[fn.split("_", 1)[0]]
    got = getattr(lock, "kind", type(lock).__name__)
    raise UsageError(
        f"{fn}() takes a {want.kind} ({want.__name__}), not a {got} ({lock!r}): "
        f"use the {got} API, as C would not compile this"
    )


def _acquire(lock: _Lock, shared: bool, fn: str, *, subclass: int = 0, irqsave: bool = False) -> Held:
    if not isinstance(lock, _API_OF[fn]):
        _wrong_api(lock, fn)
    ex = runtime.current
    t = ex.current if ex is not None else None
    if t is None:
        t = current_thread()  # raises: outside a running check
    kt = t.k
    if kt is None:
        kt = kthread(t)
    busy = kt.held or kt.rcu_depth or kt.irq_off or kt.bh_off or kt.hardirq  # else: nothing to check
    if busy and lock.sleeps and kt.atomic_reason() is not None:
        might_sleep_check(f"{fn}({lock.name})")
    if lock.owner == t.tid or (t.tid in lock.readers and not (shared and lock.recursive_read)):
        bug(
            "deadlock",
            f"{fn}: {lock.name} is already held by this task",
            headline="WARNING: possible recursive locking detected",
        )
    held = Held(lock, shared, False, subclass, irqsave)
    lockdep.on_acquire(kt, held)  # dependencies on held locks, irq-usage bits
    if lock.fair_rw:
        _fair_wait(lock, t.tid, shared, fn, subclass, kt.in_interrupt())  # type: ignore[arg-type]
    else:
        assert ex is not None
        ex.visible(lock._op(fn, not shared, SHARED if shared else EXCL, subclass))
    home = lock._kc_home
    if home is not None and home._kc_freed is not None:
        _embedded_uaf(lock, fn)
    if shared:
        lock.readers[t.tid] = lock.readers.get(t.tid, 0) + 1
        if lock.w_rel:
            t.vc = vc_join(t.vc, lock.w_rel)
    else:
        lock.owner = t.tid
        if lock.w_rel:
            t.vc = vc_join(t.vc, lock.w_rel)
        if lock.r_rel:
            t.vc = vc_join(t.vc, lock.r_rel)
    if irqsave:
        kt.irq_off += 1
    kt.held.append(held)
    return held


def _fair_wait(lock: _FairRw, tid: int, shared: bool, fn: str, subclass: int, irq: bool) -> None:
    """The acquisition steps of a reader-writer lock with writer fairness (module docstring)."""
    ex = runtime.current
    assert ex is not None
    if shared:
        arg = SHARED_S if lock.sleeps else (SHARED if irq else SHARED_Q)
        ex.visible(lock._op(fn, False, arg, subclass))
        return
    ex.visible(lock._op(fn, True, QUEUE, subclass))
    if lock.owner is None and not lock.readers:
        return
    lock.queued.append(tid)  # the writer is queued: new readers now wait behind it
    ex.visible(lock._op(fn, True, EXCL, subclass))
    lock.queued.remove(tid)


def _embedded_uaf(lock: _Lock, fn: str) -> None:
    report_embedded(lock._kc_home, lock, f"{fn}({lock.name})")


def _trylock(lock: _Lock, shared: bool, fn: str) -> bool:
    if not isinstance(lock, _API_OF[fn]):
        _wrong_api(lock, fn)
    t = current_thread()
    kt = kthread(t)
    ex = runtime.current
    assert ex is not None
    ex.visible(lock._op(fn, True, "try"))
    home = lock._kc_home
    if home is not None and home._kc_freed is not None:
        _embedded_uaf(lock, fn)
    # A queued writer makes every rw trylock fail (RWSEM_READ_FAILED_MASK, _QW_WMASK; a
    # write trylock needs the count to be exactly 0).
    ok = lock.owner is None and (shared or not lock.readers) and not (lock.fair_rw and lock.queued)  # type: ignore[attr-defined]
    if not ok:
        return False
    held = Held(lock, shared, True)
    lockdep.on_acquire(kt, held)
    if shared:
        lock.readers[t.tid] = lock.readers.get(t.tid, 0) + 1
        t.vc = vc_join(t.vc, lock.w_rel)
    else:
        lock.owner = t.tid
        t.vc = vc_join(vc_join(t.vc, lock.w_rel), lock.r_rel)
    kt.held.append(held)
    return True


def _release(lock: _Lock, shared: bool, fn: str, *, irqrestore: bool = False) -> None:
    if not isinstance(lock, _API_OF[fn]):
        _wrong_api(lock, fn)
    ex = runtime.current
    t = ex.current if ex is not None else None
    if t is None:
        t = current_thread()  # raises: outside a running check
    kt = t.k
    if kt is None:
        kt = kthread(t)
    mine = lock.readers.get(t.tid, 0) > 0 if shared else lock.owner == t.tid
    if not mine:
        warn(
            "unlock-unheld",
            f"{fn}: {lock.name} is not held by this task",
            headline="WARNING: bad unlock balance detected!",
        )
        return  # lockdep's print_unlock_imbalance_bug(): reported, the lock is left alone
    assert ex is not None
    ex.visible(lock._op(fn, not shared, "rel"))
    home = lock._kc_home
    if home is not None and home._kc_freed is not None:
        _embedded_uaf(lock, fn)
    if shared:
        lock.r_rel = vc_join(lock.r_rel, t.vc)
        n = lock.readers[t.tid] - 1
        if n:
            lock.readers[t.tid] = n
        else:
            del lock.readers[t.tid]
    else:
        lock.w_rel = t.vc[:]
        lock.owner = None
    vc_tick(t.vc, t.tid)
    held = kt.held
    for i in range(len(held) - 1, -1, -1):
        h = held[i]
        if h.lock is lock and h.shared == shared:
            del held[i]
            if h.irqsave or irqrestore:
                kt.irq_off -= 1
                if held and kt.irqs_enabled():
                    lockdep.hardirqs_on(kt)  # the locks still held are now taken with irqs on
            return


# -- spinlock_t ------------------------------------------------------------------
class SpinLock(_Lock):
    """``spinlock_t``: holding it makes the task atomic (no sleeping)."""

    kind = "spinlock_t"


def spin_lock(lock: SpinLock) -> None:
    """spin_lock(lock): take a spinlock_t (the task is atomic while it holds it)."""
    _acquire(lock, False, "spin_lock")


def spin_lock_nested(lock: SpinLock, subclass: int) -> None:
    """spin_lock_nested(lock, subclass): spin_lock with a lockdep subclass."""
    _acquire(lock, False, "spin_lock_nested", subclass=subclass)


def spin_unlock(lock: SpinLock) -> None:
    """spin_unlock(lock): release a spinlock_t this task holds."""
    _release(lock, False, "spin_unlock")


def spin_lock_irq(lock: SpinLock) -> None:
    """spin_lock with irqs disabled."""
    _acquire(lock, False, "spin_lock_irq", irqsave=True)


def spin_unlock_irq(lock: SpinLock) -> None:
    """spin_unlock and re-enable irqs."""
    _release(lock, False, "spin_unlock_irq")


def spin_lock_irqsave(lock: SpinLock) -> int:
    """Returns the saved flags; pass them to spin_unlock_irqrestore."""
    _acquire(lock, False, "spin_lock_irqsave", irqsave=True)
    return kthread().irq_off


def spin_unlock_irqrestore(lock: SpinLock, flags: int) -> None:
    """spin_unlock and restore the irq flags."""
    _release(lock, False, "spin_unlock_irqrestore")


def spin_lock_bh(lock: SpinLock) -> None:
    """spin_lock with softirqs disabled (local_bh_disable() first, so lockdep sees them off)."""
    kthread().bh_off += 1
    _acquire(lock, False, "spin_lock_bh")


def spin_unlock_bh(lock: SpinLock) -> None:
    """spin_unlock and re-enable softirqs."""
    _release(lock, False, "spin_unlock_bh")
    local_bh_enable()


def spin_trylock(lock: SpinLock) -> bool:
    """spin_trylock(lock): True if taken (never adds a lockdep dependency)."""
    return _trylock(lock, False, "spin_trylock")


# -- rwlock_t ----------------------------------------------------------------------
class RwLock(_FairRw):
    """``rwlock_t``: a spinning reader-writer lock; readers may nest."""

    kind = "rwlock_t"


def read_lock(lock: RwLock) -> None:
    """read_lock(lock): take an rwlock_t for read; waits behind a queued writer (in hard irq: not)."""
    _acquire(lock, True, "read_lock")


def read_unlock(lock: RwLock) -> None:
    """read_unlock(lock): release a read hold of an rwlock_t."""
    _release(lock, True, "read_unlock")


def write_lock(lock: RwLock) -> None:
    """write_lock(lock): take an rwlock_t for write; queues (new readers wait behind it) until free."""
    _acquire(lock, False, "write_lock")


def write_unlock(lock: RwLock) -> None:
    """write_unlock(lock): release a write hold of an rwlock_t."""
    _release(lock, False, "write_unlock")


def read_lock_irq(lock: RwLock) -> None:
    """read_lock with irqs disabled."""
    _acquire(lock, True, "read_lock_irq", irqsave=True)


def read_unlock_irq(lock: RwLock) -> None:
    """read_unlock and re-enable irqs."""
    _release(lock, True, "read_unlock_irq")


def write_lock_irq(lock: RwLock) -> None:
    """write_lock with irqs disabled."""
    _acquire(lock, False, "write_lock_irq", irqsave=True)


def write_unlock_irq(lock: RwLock) -> None:
    """write_unlock and re-enable irqs."""
    _release(lock, False, "write_unlock_irq")


def read_lock_irqsave(lock: RwLock) -> int:
    """read_lock with irqs disabled; returns the flags for read_unlock_irqrestore."""
    _acquire(lock, True, "read_lock_irqsave", irqsave=True)
    return kthread().irq_off


def read_unlock_irqrestore(lock: RwLock, flags: int) -> None:
    """read_unlock and restore the irq flags."""
    _release(lock, True, "read_unlock_irqrestore")


def write_lock_irqsave(lock: RwLock) -> int:
    """write_lock with irqs disabled; returns the flags for write_unlock_irqrestore."""
    _acquire(lock, False, "write_lock_irqsave", irqsave=True)
    return kthread().irq_off


def write_unlock_irqrestore(lock: RwLock, flags: int) -> None:
    """write_unlock and restore the irq flags."""
    _release(lock, False, "write_unlock_irqrestore")


def read_trylock(lock: RwLock) -> bool:
    """read_trylock(lock): True if taken for read; fails while a writer holds or waits."""
    return _trylock(lock, True, "read_trylock")


def write_trylock(lock: RwLock) -> bool:
    """write_trylock(lock): True if taken for write; fails unless free with no waiting writer."""
    return _trylock(lock, False, "write_trylock")


# -- struct mutex ----------------------------------------------------------------------
class Mutex(_Lock):
    """``struct mutex``: a sleeping lock; taking it is a might_sleep point."""

    kind = "mutex"
    sleeps = True


def mutex_lock(lock: Mutex) -> None:
    """mutex_lock(lock): take a struct mutex (sleeps while held by another task; a might_sleep point)."""
    _acquire(lock, False, "mutex_lock")


def mutex_lock_nested(lock: Mutex, subclass: int) -> None:
    """mutex_lock_nested(lock, subclass): mutex_lock with a lockdep subclass."""
    _acquire(lock, False, "mutex_lock_nested", subclass=subclass)


def mutex_unlock(lock: Mutex) -> None:
    """mutex_unlock(lock): release a mutex this task holds."""
    _release(lock, False, "mutex_unlock")


def mutex_trylock(lock: Mutex) -> bool:
    """1 if taken; never sleeps (so no might_sleep), never adds a lockdep dependency."""
    return _trylock(lock, False, "mutex_trylock")


def mutex_is_locked(lock: Mutex) -> bool:
    """mutex_is_locked(lock): True if some task holds it (a lockless peek)."""
    ex = runtime.current
    assert ex is not None
    # Named object (never blocks): every op on a lock's key must record the lock's
    # state, or DPOR's reversibility test would read the current state instead.
    ex.visible(lock._op("mutex_is_locked", False, "peek"))
    home = lock._kc_home
    if home is not None and home._kc_freed is not None:
        _embedded_uaf(lock, "mutex_is_locked")
    return lock.owner is not None


@contextmanager
def guard(lock: Mutex) -> Iterator[None]:
    """``guard(mutex)(&lock)`` from cleanup.h: held until the end of the ``with`` block."""
    mutex_lock(lock)
    try:
        yield
    finally:
        mutex_unlock(lock)


# -- struct rw_semaphore ------------------------------------------------------------------
class RwSem(_FairRw):
    """``struct rw_semaphore``: a sleeping reader-writer lock."""

    kind = "rw_semaphore"
    sleeps = True


def down_read(sem: RwSem) -> None:
    """down_read(sem): take an rw_semaphore for read; waits behind a queued writer while readers hold it."""
    _acquire(sem, True, "down_read")


def up_read(sem: RwSem) -> None:
    """up_read(sem): release a read hold of an rw_semaphore."""
    _release(sem, True, "up_read")


def down_write(sem: RwSem) -> None:
    """down_write(sem): take an rw_semaphore for write; queues (new readers wait behind it) until free."""
    _acquire(sem, False, "down_write")


def up_write(sem: RwSem) -> None:
    """up_write(sem): release a write hold of an rw_semaphore."""
    _release(sem, False, "up_write")


def down_read_trylock(sem: RwSem) -> bool:
    """down_read_trylock(sem): 1 if taken for read; fails while a writer holds or waits."""
    return _trylock(sem, True, "down_read_trylock")


def down_write_trylock(sem: RwSem) -> bool:
    """down_write_trylock(sem): 1 if taken for write; fails unless it is free with no waiter."""
    return _trylock(sem, False, "down_write_trylock")


# Which lock type each API family takes (by the prefix of the function's name).
_API: dict[str, type[_Lock]] = {
    "spin": SpinLock,
    "read": RwLock,
    "write": RwLock,
    "mutex": Mutex,
    "down": RwSem,
    "up": RwSem,
}


class _ApiOf(dict[str, type]):
    def __missing__(self, fn: str) -> type:
        cls = self[fn] = _API[fn.split("_", 1)[0]]
        return cls


_API_OF = _ApiOf()


# -- initialisation of a lock in place -------------------------------------------------------------
def _reinit(lock: _Lock, fn: str, typ: type[_Lock]) -> None:
    """spin_lock_init() and friends on an existing lock: debug_check_no_locks_freed() over it
    (initialising a lock the task holds is "held lock freed!", as lib/locking-selftest.c's
    init_held_* cases expect), then an unlocked lock of the same class."""
    if not isinstance(lock, typ):
        raise UsageError(f"{fn}() takes a {typ.kind} ({typ.__name__}), not {lock!r}")
    lockdep.check_no_held_locks(lock, [lock], f"{fn}({lock.name})")
    lock.owner = None
    lock.readers = {}
    if lock.fair_rw:
        lock.queued = []  # type: ignore[attr-defined]


def spin_lock_init(lock: SpinLock) -> None:
    """spin_lock_init(lock): (re)initialise a spinlock_t as unlocked."""
    _reinit(lock, "spin_lock_init", SpinLock)


def rwlock_init(lock: RwLock) -> None:
    """rwlock_init(lock): (re)initialise an rwlock_t as unlocked."""
    _reinit(lock, "rwlock_init", RwLock)


def mutex_init(lock: Mutex) -> None:
    """mutex_init(lock): (re)initialise a struct mutex as unlocked."""
    _reinit(lock, "mutex_init", Mutex)


def init_rwsem(sem: RwSem) -> None:
    """init_rwsem(sem): (re)initialise a struct rw_semaphore as unlocked."""
    _reinit(sem, "init_rwsem", RwSem)


# -- lock-break points ----------------------------------------------------------------------
def cond_resched_lock(lock: SpinLock) -> bool:
    """Drop ``lock``, offer a reschedule point, retake it.  Returns True (it always yields here)."""
    spin_unlock(lock)
    cond_resched()
    spin_lock(lock)
    return True


def cond_resched_rwlock_read(lock: RwLock) -> bool:
    """Drop a read-held rwlock_t, offer a reschedule point, retake it."""
    read_unlock(lock)
    cond_resched()
    read_lock(lock)
    return True


def cond_resched_rwlock_write(lock: RwLock) -> bool:
    """Drop a write-held rwlock_t, offer a reschedule point, retake it."""
    write_unlock(lock)
    cond_resched()
    write_lock(lock)
    return True


# -- lockdep assertions ---------------------------------------------------------------------
def _held(lock: _Lock) -> Any:
    return lockdep.held_by(kthread(), lock)


def lockdep_assert_held(lock: _Lock) -> None:
    """WARN unless this task holds ``lock`` (any mode)."""
    if _held(lock) is None:
        warn("assert-held", f"{lock.name} is not held", headline="WARNING: lockdep_assert_held() failed")


def lockdep_assert_held_write(lock: _Lock) -> None:
    """WARN unless this task holds ``lock`` for write (exclusively)."""
    h = _held(lock)
    if h is None or h.shared:
        warn(
            "assert-held",
            f"{lock.name} is not held for write",
            headline="WARNING: lockdep_assert_held_write() failed",
        )


def lockdep_assert_held_read(lock: _Lock) -> None:
    """WARN unless this task holds ``lock`` for read."""
    h = _held(lock)
    if h is None or not h.shared:
        warn(
            "assert-held",
            f"{lock.name} is not held for read",
            headline="WARNING: lockdep_assert_held_read() failed",
        )


def lockdep_assert_not_held(lock: _Lock) -> None:
    """WARN if this task holds ``lock``."""
    if _held(lock) is not None:
        warn("assert-held", f"{lock.name} is held", headline="WARNING: lockdep_assert_not_held() failed")


def irqs_disabled() -> bool:
    """True if local irqs are disabled for this task (or it is a hard-irq handler)."""
    return not kthread().irqs_enabled()
