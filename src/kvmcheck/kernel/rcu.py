"""RCU: read-side critical sections, synchronize_rcu, callbacks, published pointers.

The grace periods themselves are :mod:`kvmcheck.kernel.gp`; RCU lists are
:mod:`kvmcheck.kernel.rculist`.

``rcu_read_lock`` makes the thread atomic (``KThread.rcu_depth``);
``synchronize_rcu`` may sleep.  Called inside a read-side section it is
reported as sleeping in atomic context (and as illegal, the lockdep-RCU
splat) and does not wait for the caller's own section -- with non-preemptible
RCU the caller's context switch is a quiescent state -- so the run goes on.

``call_rcu(head, func)`` starts a grace period in the caller (its snapshot
includes the caller's own section) and spawns a thread named
``rcu_callback`` that waits for it and then calls ``func(head)`` with
softirqs disabled, as RCU core invokes callbacks.  ``kfree_rcu(obj)`` is
``call_rcu(obj, kfree)``; ``rcu_barrier()`` waits for every queued callback.

Pointers: ``rcu_assign_pointer(obj, "field", v)`` is a release store,
``rcu_dereference(obj, "field")`` a marked load that acquires what the
matching ``rcu_assign_pointer`` published, and warns ("suspicious RCU
usage", kind ``suspicious-rcu``) outside ``rcu_read_lock()`` unless the
``_check`` condition holds, as CONFIG_PROVE_RCU does.

Simplifications: only explicit ``rcu_read_lock`` sections are readers
(since v4.20 a preempt-/irq-/bh-disabled region is one too, but holding a
spinlock does not delay a grace period here); callbacks are not batched
(each has its own grace period and thread); lockdep does not see RCU/SRCU
read sections as locks (an SRCU deadlock is found when an explored
execution deadlocks, not predicted from lock order alone).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvmcheck._engine import runtime
from kvmcheck._engine.execution import Thread
from kvmcheck._engine.finding import UsageError
from kvmcheck.kernel._core import current_thread, kthread, warn
from kvmcheck.kernel.atomic import load_acquire, store_release
from kvmcheck.kernel.context import might_sleep_check
from kvmcheck.kernel.gp import GpDomain
from kvmcheck.kernel.lockdep import held_by
from kvmcheck.kernel.memory import kfree
from kvmcheck.kernel.struct import READ_ONCE, WRITE_ONCE, access, field_of

__all__ = [
    "RCU_INIT_POINTER",
    "call_rcu",
    "kfree_rcu",
    "lockdep_is_held",
    "rcu_access_pointer",
    "rcu_assign_pointer",
    "rcu_barrier",
    "rcu_dereference",
    "rcu_dereference_check",
    "rcu_dereference_protected",
    "rcu_dereference_raw",
    "rcu_read_lock",
    "rcu_read_lock_any_held",
    "rcu_read_lock_held",
    "rcu_read_unlock",
    "rcu_replace_pointer",
    "synchronize_rcu",
    "synchronize_rcu_expedited",
]


def _rcu() -> GpDomain:
    ex = runtime.current
    if ex is None:
        raise UsageError("RCU used outside a running check (call it from a scenario)")
    d: GpDomain | None = ex.k.rcu
    if d is None:
        d = ex.k.rcu = GpDomain("rcu")
    return d


def suspicious(what: str) -> None:
    """lockdep-RCU's splat (CONFIG_PROVE_RCU), once per message per check."""
    ex = runtime.current
    if ex is not None:
        once = f"suspicious-rcu:{what}"
        if once in ex.session:
            return
        ex.session[once] = True
    t = current_thread()
    kt = kthread(t)
    held = kt.held_names()
    warn(
        "suspicious-rcu",
        f"{what} (in {t.name})",
        headline="WARNING: suspicious RCU usage",
        details=[
            f"rcu_read_lock() nesting {kt.rcu_depth}; "
            + (f"locks held: {', '.join(held)}" if held else f"no locks held by {t.name}")
        ],
    )


# -- read side ------------------------------------------------------------------------
def rcu_read_lock() -> None:
    """Enter an RCU read-side critical section (nests; the task is atomic inside)."""
    kt = kthread()
    if kt.rcu_depth == 0:
        _rcu().enter("rcu_read_lock()")
    kt.rcu_depth += 1


def rcu_read_unlock() -> None:
    """Leave an RCU read-side critical section."""
    kt = kthread()
    if kt.rcu_depth == 0:
        warn(
            "unlock-unheld",
            "rcu_read_unlock() without rcu_read_lock()",
            headline="WARNING: bad unlock balance detected!",
        )
        return
    kt.rcu_depth -= 1
    if kt.rcu_depth == 0:
        _rcu().exit("rcu_read_unlock()")


def rcu_read_lock_held() -> bool:
    """True inside rcu_read_lock()."""
    return kthread().rcu_depth > 0


def rcu_read_lock_any_held() -> bool:
    """Inside rcu_read_lock(), or non-preemptible (a spinlock held, irqs or bh off)."""
    kt = kthread()
    return kt.rcu_depth > 0 or kt.atomic_reason() is not None


def lockdep_is_held(lock: Any) -> bool:
    """``lockdep_is_held(&lock)``: for the conditions of ``*_dereference_check``."""
    return held_by(kthread(), lock) is not None


# -- grace periods and callbacks --------------------------------------------------------------
def synchronize_rcu() -> None:
    """Wait until every reader section open now has closed.  May sleep."""
    might_sleep_check("synchronize_rcu()")
    if rcu_read_lock_held():
        suspicious("Illegal synchronize_rcu() in RCU read-side critical section")
    d = _rcu()
    gp = d.gp_start("synchronize_rcu()", exclude_self=True)
    d.gp_wait(gp, "synchronize_rcu(): grace period ends")


def synchronize_rcu_expedited() -> None:
    """As synchronize_rcu()."""
    synchronize_rcu()


def call_rcu(head: Any, func: Callable[[Any], Any]) -> Thread:
    """Run ``func(head)`` after a grace period, in a thread named ``rcu_callback``; returns it."""
    d = _rcu()
    gp = d.gp_start(f"call_rcu({getattr(func, '__name__', 'func')})", exclude_self=False)
    return d.queue_callback(gp, head, func, "rcu_callback")


def kfree_rcu(obj: Any, rhf: str | None = None) -> Thread:
    """``kfree_rcu(obj, rhf)`` / ``kfree_rcu_mightsleep(obj)``: kfree after a grace period."""
    return call_rcu(obj, kfree)


def rcu_barrier() -> None:
    """Wait for every callback queued by call_rcu()/kfree_rcu() so far.  May sleep."""
    might_sleep_check("rcu_barrier()")
    ex = runtime.current
    if ex is not None and ex.k.rcu is not None:
        ex.k.rcu.barrier()


# -- published pointers ----------------------------------------------------------------------
def _label(fn: str, obj: Any, name: str) -> str:
    return f"{fn}({type(obj).__name__}.{name})"


def rcu_assign_pointer(obj: Any, name: str, value: Any) -> None:
    """``rcu_assign_pointer(obj->name, value)``: a release store."""
    store_release(obj, name, value, _label("rcu_assign_pointer", obj, name))


def RCU_INIT_POINTER(obj: Any, name: str, value: Any) -> None:
    """A marked store without release (for NULL, or before the structure is published)."""
    WRITE_ONCE(obj, name, value)


def _check(ok: bool, what: str) -> None:
    if not ok and runtime.current is not None:
        suspicious(what)


def rcu_dereference(obj: Any, name: str) -> Any:
    """``rcu_dereference(obj->name)``: a marked acquire-load, legal inside rcu_read_lock()."""
    return rcu_dereference_check(obj, name, False, "rcu_dereference")


def rcu_dereference_check(obj: Any, name: str, cond: bool, _fn: str = "rcu_dereference_check") -> Any:
    """``rcu_dereference_check(obj->name, cond)``: legal inside rcu_read_lock() or when ``cond``."""
    label = _label(_fn, obj, name)
    v = load_acquire(obj, name, label)
    if runtime.current is not None:
        _check(cond or rcu_read_lock_held(), f"suspicious rcu_dereference_check() usage: {label}")
    return v


def rcu_dereference_raw(obj: Any, name: str) -> Any:
    """rcu_dereference_raw(obj->name): an acquire-load with no lockdep-RCU check."""
    return load_acquire(obj, name, _label("rcu_dereference_raw", obj, name))


def rcu_dereference_protected(obj: Any, name: str, cond: bool) -> Any:
    """The update side's read (a plain load): ``cond`` says why no reader-side protection is needed."""
    label = _label("rcu_dereference_protected", obj, name)
    if runtime.current is None or not obj._kc_num:
        return getattr(obj, name)
    v = access(obj, field_of(obj, name), False, False, what=label)
    _check(cond, f"suspicious rcu_dereference_protected() usage: {label}")
    return v


def rcu_access_pointer(obj: Any, name: str) -> Any:
    """Fetch the pointer's value without dereferencing it (a marked load, no protection needed)."""
    return READ_ONCE(obj, name)


def rcu_replace_pointer(obj: Any, name: str, value: Any, cond: bool) -> Any:
    """Replace the pointer (update side, ``cond`` held); returns the old value."""
    old = rcu_dereference_protected(obj, name, cond)
    rcu_assign_pointer(obj, name, value)
    return old
