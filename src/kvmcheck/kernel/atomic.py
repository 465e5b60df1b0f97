"""atomic_t, and the kernel's explicit orderings: acquire loads, release stores, barriers.

``Atomic`` is an ``atomic_t``: an object of its own (one key), whose every
operation is one visible step -- ``atomic_read`` shared, every other
operation exclusive.  Atomic operations are marked accesses: they never take
part in a KCSAN data race.

Ordering, as in Documentation/atomic_t.txt, for the happens-before KCSAN
uses (each thread's synchronisation clock):

* ``atomic_read``/``atomic_set`` and the non-value-returning RMWs
  (``atomic_inc``, ``atomic_add``, ...) are relaxed: no ordering;
* the value-returning RMWs (``atomic_inc_return``, ``atomic_dec_and_test``,
  a successful ``atomic_cmpxchg`` or ``atomic_inc_not_zero``, ...) are fully
  ordered: each acquires what earlier ordered RMWs on the variable released,
  and releases the thread's own clock.  A failed conditional RMW orders
  nothing.  Relaxed RMWs continue a release sequence; a plain
  ``atomic_set`` ends it (what it stored was not released by anyone).

``smp_store_release(obj, "field", v)`` publishes the thread's clock for that
field; ``smp_load_acquire`` joins it when the value it reads is the one that
release store wrote (a later plain or WRITE_ONCE store to the field breaks
the pairing).  ``rcu_assign_pointer``/``rcu_dereference`` use the same pair.

The model runs under sequential consistency, so ``smp_mb``/``smp_rmb``/
``smp_wmb`` have nothing to forbid: they are no-ops, kept so that models read
like the C source.  (A fence does not create happens-before on its own in
the kernel memory model either; what it orders is visible only through
reads-from, which the model does not reorder.)  ``smp_mb__before_atomic``
and ``smp_mb__after_atomic`` do matter: they make the adjacent relaxed RMW
fully ordered (a release, resp. an acquire, for KCSAN).
"""

from __future__ import annotations

from typing import Any

from kvmcheck._engine import runtime
from kvmcheck._engine.clock import Clock, vc_get, vc_join, vc_tick
from kvmcheck._engine.execution import Execution, Thread
from kvmcheck._engine.ops import object_key
from kvmcheck.kernel import barrier
from kvmcheck.kernel._core import Primitive
from kvmcheck.kernel.struct import access, field_of
from kvmcheck.kernel.trace_values import note_counter

__all__ = [
    "Atomic",
    "atomic_add",
    "atomic_add_return",
    "atomic_add_unless",
    "atomic_cmpxchg",
    "atomic_dec",
    "atomic_dec_and_test",
    "atomic_dec_return",
    "atomic_fetch_add",
    "atomic_inc",
    "atomic_inc_and_test",
    "atomic_inc_not_zero",
    "atomic_inc_return",
    "atomic_read",
    "atomic_read_acquire",
    "atomic_set",
    "atomic_set_release",
    "atomic_sub",
    "atomic_sub_and_test",
    "atomic_sub_return",
    "atomic_xchg",
    "smp_load_acquire",
    "smp_mb",
    "smp_mb__after_atomic",
    "smp_mb__before_atomic",
    "smp_rmb",
    "smp_store_release",
    "smp_wmb",
]

_U32 = 0xFFFF_FFFF


def s32(v: int) -> int:
    """``v`` wrapped to a C ``int`` (the kernel builds with -fno-strict-overflow)."""
    v &= _U32
    return v - (1 << 32) if v & 0x8000_0000 else v


class Counter(Primitive):
    """What atomic_t and refcount_t share: one key, one ``int`` counter, a release clock."""

    kind = "atomic_t"
    prefix = "atomic"

    def __init__(self, i: int = 0, name: str | None = None) -> None:
        super().__init__(name)
        self.counter = s32(i)
        self.rel: Clock = []  # join of the clocks released into the current release sequence

    def __repr__(self) -> str:
        return f"<{self.kind} {self.name} = {self.counter}>"

    def _kc_traced(self, ex: Execution, label: str) -> None:
        note_counter(ex, self, label)


def step(c: Counter, excl: bool, label: str) -> Thread | None:
    """Announce one operation on ``c``; the running thread once it is granted (None outside a check)."""
    return c.step(excl, label)


def acquire(c: Counter, t: Thread | None) -> None:
    if t is not None:
        t.vc = vc_join(t.vc, c.rel)


def release(c: Counter, t: Thread | None) -> None:
    if t is not None:
        c.rel = vc_join(c.rel, t.vc)
        vc_tick(t.vc, t.tid)


def relaxed(c: Counter, t: Thread | None) -> None:
    """A relaxed RMW: ordered only by an adjacent smp_mb__before_atomic/smp_mb__after_atomic."""
    if t is None:
        return
    mb = runtime.current.k.mb  # type: ignore[union-attr]
    if mb.pop(("before", t.tid), None):
        release(c, t)
    mb[("after", t.tid)] = c.rel


def full(c: Counter, t: Thread | None) -> None:
    """A fully ordered RMW: acquire what the sequence released, then release."""
    if t is not None:
        runtime.current.k.mb.pop(("before", t.tid), None)  # type: ignore[union-attr]
        t.vc = vc_join(t.vc, c.rel)
        c.rel = t.vc[:]
        vc_tick(t.vc, t.tid)


# -- atomic_t ----------------------------------------------------------------------------
class Atomic(Counter):
    """``atomic_t``: ``Atomic(0)`` is ``ATOMIC_INIT(0)``.

    Built in a Struct's constructor (``self.count = Atomic(0)``) or given to
    ``kmalloc(Obj, count=Atomic(0))``, it is embedded in that object: an
    operation on it after the object is freed is a use-after-free, even through
    a pointer taken before the free (see ``Primitive``).
    """


def atomic_read(v: Atomic) -> int:
    """atomic_read(v): a relaxed (shared) read."""
    step(v, False, f"atomic_read({v.name})")
    return v.counter


def atomic_set(v: Atomic, i: int) -> None:
    """atomic_set(v, i): a relaxed store (ends a release sequence)."""
    step(v, True, f"atomic_set({v.name}, {i})")
    v.counter = s32(i)
    v.rel = []


def atomic_read_acquire(v: Atomic) -> int:
    """atomic_read_acquire(v): read with acquire ordering."""
    t = step(v, False, f"atomic_read_acquire({v.name})")
    acquire(v, t)
    return v.counter


def atomic_set_release(v: Atomic, i: int) -> None:
    """atomic_set_release(v, i): store with release ordering."""
    t = step(v, True, f"atomic_set_release({v.name}, {i})")
    v.counter = s32(i)
    if t is not None:
        v.rel = t.vc[:]
        vc_tick(t.vc, t.tid)


def atomic_add(i: int, v: Atomic) -> None:
    """atomic_add(i, v): relaxed add."""
    t = step(v, True, f"atomic_add({i}, {v.name})")
    v.counter = s32(v.counter + i)
    relaxed(v, t)


def atomic_sub(i: int, v: Atomic) -> None:
    """atomic_sub(i, v): relaxed subtract."""
    t = step(v, True, f"atomic_sub({i}, {v.name})")
    v.counter = s32(v.counter - i)
    relaxed(v, t)


def atomic_inc(v: Atomic) -> None:
    """atomic_inc(v): relaxed increment."""
    t = step(v, True, f"atomic_inc({v.name})")
    v.counter = s32(v.counter + 1)
    relaxed(v, t)


def atomic_dec(v: Atomic) -> None:
    """atomic_dec(v): relaxed decrement."""
    t = step(v, True, f"atomic_dec({v.name})")
    v.counter = s32(v.counter - 1)
    relaxed(v, t)


def _add_return(i: int, v: Atomic, label: str) -> int:
    t = step(v, True, label)
    v.counter = s32(v.counter + i)
    full(v, t)
    return v.counter


def atomic_add_return(i: int, v: Atomic) -> int:
    """atomic_add_return(i, v): add, return the new value; fully ordered."""
    return _add_return(i, v, f"atomic_add_return({i}, {v.name})")


def atomic_sub_return(i: int, v: Atomic) -> int:
    """atomic_sub_return(i, v): subtract, return the new value; fully ordered."""
    return _add_return(-i, v, f"atomic_sub_return({i}, {v.name})")


def atomic_inc_return(v: Atomic) -> int:
    """atomic_inc_return(v): increment, return the new value; fully ordered."""
    return _add_return(1, v, f"atomic_inc_return({v.name})")


def atomic_dec_return(v: Atomic) -> int:
    """atomic_dec_return(v): decrement, return the new value; fully ordered."""
    return _add_return(-1, v, f"atomic_dec_return({v.name})")


def atomic_dec_and_test(v: Atomic) -> bool:
    """atomic_dec_and_test(v): decrement; True if it reached 0; fully ordered."""
    return _add_return(-1, v, f"atomic_dec_and_test({v.name})") == 0


def atomic_inc_and_test(v: Atomic) -> bool:
    """atomic_inc_and_test(v): increment; True if it reached 0; fully ordered."""
    return _add_return(1, v, f"atomic_inc_and_test({v.name})") == 0


def atomic_sub_and_test(i: int, v: Atomic) -> bool:
    """atomic_sub_and_test(i, v): subtract; True if it reached 0; fully ordered."""
    return _add_return(-i, v, f"atomic_sub_and_test({i}, {v.name})") == 0


def atomic_fetch_add(i: int, v: Atomic) -> int:
    """atomic_fetch_add(i, v): add, return the old value; fully ordered."""
    return _add_return(i, v, f"atomic_fetch_add({i}, {v.name})") - i


def atomic_xchg(v: Atomic, new: int) -> int:
    """atomic_xchg(v, new): store ``new``, return the old value; fully ordered."""
    t = step(v, True, f"atomic_xchg({v.name}, {new})")
    old = v.counter
    v.counter = s32(new)
    full(v, t)
    return old


def atomic_cmpxchg(v: Atomic, old: int, new: int) -> int:
    """Store ``new`` if the value is ``old``; returns the value found.  Ordered only on success."""
    t = step(v, True, f"atomic_cmpxchg({v.name}, {old}, {new})")
    cur = v.counter
    if cur == s32(old):
        v.counter = s32(new)
        full(v, t)
    return cur


def atomic_add_unless(v: Atomic, a: int, u: int) -> bool:
    """Add ``a`` unless the value is ``u``; True if it added.  Ordered only on success."""
    t = step(v, True, f"atomic_add_unless({v.name}, {a}, {u})")
    if v.counter == s32(u):
        return False
    v.counter = s32(v.counter + a)
    full(v, t)
    return True


def atomic_inc_not_zero(v: Atomic) -> bool:
    """atomic_inc_not_zero(v): increment unless 0; True if it did (ordered on success)."""
    t = step(v, True, f"atomic_inc_not_zero({v.name})")
    if v.counter == 0:
        return False
    v.counter = s32(v.counter + 1)
    full(v, t)
    return True


# -- release / acquire on a Struct field --------------------------------------------------
def store_release(obj: Any, name: str, value: Any, what: str) -> None:
    """A marked store that publishes the thread's clock for ``obj.<name>``."""
    ex = runtime.current
    if ex is None or not obj._kc_num:
        setattr(obj, name, value)
        return
    f = field_of(obj, name)
    access(obj, f, True, True, value, what=what)
    t = ex.current
    assert t is not None
    if ex.k.kcsan_on:
        ex.k.rel[object_key(obj._kc_num, f.index)] = (t.vc[:], t.tid, vc_get(t.vc, t.tid))
        vc_tick(t.vc, t.tid)


def load_acquire(obj: Any, name: str, what: str) -> Any:
    """A marked load that joins the clock of the release store it reads from (if it does)."""
    ex = runtime.current
    if ex is None or not obj._kc_num:
        return getattr(obj, name)
    f = field_of(obj, name)
    value = access(obj, f, False, True, what=what)
    if ex.k.kcsan_on:
        key = object_key(obj._kc_num, f.index)
        rel = ex.k.rel.get(key)
        if rel is not None:
            rec = ex.k.kcsan.get(key)
            w = rec[0] if rec is not None else None
            if w is not None and w[0] == rel[1] and w[1] == rel[2]:
                t = ex.current
                assert t is not None
                t.vc = vc_join(t.vc, rel[0])
    return value


def smp_store_release(obj: Any, name: str, value: Any) -> None:
    """``smp_store_release(&obj->name, value)``."""
    store_release(obj, name, value, f"smp_store_release({type(obj).__name__}.{name})")


def smp_load_acquire(obj: Any, name: str) -> Any:
    """``smp_load_acquire(&obj->name)``."""
    return load_acquire(obj, name, f"smp_load_acquire({type(obj).__name__}.{name})")


def smp_mb() -> None:
    """Full barrier: a no-op under SC; an LKMM fence under memory_model="lkmm"."""
    barrier.fence("mb")


def smp_rmb() -> None:
    """Read barrier: a no-op under SC; an LKMM fence under memory_model="lkmm"."""
    barrier.fence("rmb")


def smp_wmb() -> None:
    """Write barrier: a no-op under SC; an LKMM fence under memory_model="lkmm"."""
    barrier.fence("wmb")


def smp_mb__before_atomic() -> None:
    """Makes the thread's next relaxed RMW (atomic_inc, refcount_inc, ...) fully ordered after
    everything before it: for KCSAN, that RMW releases the thread's clock."""
    barrier.fence("before-atomic")
    ex = runtime.current
    if ex is not None and ex.current is not None:
        ex.k.mb[("before", ex.current.tid)] = True


def smp_mb__after_atomic() -> None:
    """Orders the thread's last relaxed RMW before everything after it: for KCSAN, the thread
    acquires what that RMW read (the clocks released into the variable before it)."""
    barrier.fence("after-atomic")
    ex = runtime.current
    if ex is None or ex.current is None:
        return
    t = ex.current
    rel = ex.k.mb.pop(("after", t.tid), None)
    if rel is not None:
        t.vc = vc_join(t.vc, rel)
