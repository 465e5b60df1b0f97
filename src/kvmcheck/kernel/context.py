"""Execution context: might_sleep, cond_resched, irq handlers.

Atomic context is derived from what the thread holds (a spinning lock, an
RCU read-side section, irqs off) -- see ``KThread.atomic_reason``.  SRCU
readers may sleep.

A hard-irq handler runs as its own model thread (``spawn_irq``): it is
atomic for its whole life, and lockdep marks every lock it takes as used
IN-HARDIRQ, so a class also taken with irqs enabled elsewhere is an
"inconsistent lock state".  A softirq handler (``spawn_softirq``: a tasklet,
a timer, NET_RX) is the same one level down: it runs with softirqs disabled
(``in_softirq()``) and hard irqs enabled, and its locks are IN-SOFTIRQ; a
class it shares with code that runs with softirqs enabled is inconsistent
unless that code uses ``spin_lock_bh()``/``local_bh_disable()``.  Enabling
irqs (softirqs) with locks held marks them HARDIRQ-ON (SOFTIRQ-ON), as
lockdep_hardirqs_on()/lockdep_softirqs_on() do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvmcheck._engine import runtime
from kvmcheck._engine.execution import Thread
from kvmcheck._engine.ops import FIELD_SLOTS, Op
from kvmcheck.kernel import kcsan, lockdep
from kvmcheck.kernel._core import current_thread, kthread, warn
from kvmcheck.kernel.struct import field_of

__all__ = [
    "cond_resched",
    "cpu_relax",
    "in_atomic",
    "in_softirq",
    "local_bh_disable",
    "local_bh_enable",
    "local_irq_disable",
    "local_irq_enable",
    "might_sleep",
    "spawn_irq",
    "spawn_softirq",
    "spin_until_cond",
]


def might_sleep_check(what: str) -> None:
    reason = kthread().atomic_reason()
    if reason is not None:
        warn(
            "sleep-in-atomic",
            f"{what} may sleep, but {reason}",
            headline="BUG: sleeping function called from invalid context",
        )


def might_sleep() -> None:
    """might_sleep(): 'sleeping function called from invalid context' in atomic context."""
    might_sleep_check("might_sleep()")


def cond_resched() -> None:
    """A reschedule point: may sleep; any thread may run next (it restricts nothing)."""
    might_sleep_check("cond_resched()")
    t = current_thread()
    ex = runtime.current
    assert ex is not None
    ex.visible(Op(t.key, False, "cond_resched()"))


def cpu_relax() -> None:
    """The kernel's spin-wait hint: this thread cannot progress until another thread does.

    The checker takes it at its word (CHESS's "good samaritan" assumption): the
    thread is not runnable again while another thread is enabled and has not
    taken a step since.  That keeps spin and retry loops finite in the search.
    Use it only where the loop really waits for another thread; a model may
    place it on a retry path the C code leaves implicit, and should say so.
    """
    t = current_thread()
    ex = runtime.current
    assert ex is not None
    ex.visible(Op(t.key, False, "cpu_relax()", None, "relax"))


def schedule() -> None:
    """schedule(): a plain reschedule point (as cond_resched)."""
    cond_resched()


def spawn_irq(fn: Callable[..., Any], *args: Any, name: str | None = None) -> Thread:
    """Run ``fn`` as a hard-irq handler thread (e.g. a Xen event or an hrtimer)."""
    ex = runtime.current
    if ex is None:
        raise RuntimeError("spawn_irq() outside a check")

    def handler(*a: Any) -> Any:
        kthread().hardirq = True
        return fn(*a)

    handler.__name__ = getattr(fn, "__name__", "irq")
    return ex.spawn(handler, args, name or f"irq:{handler.__name__}")


def spawn_softirq(fn: Callable[..., Any], *args: Any, name: str | None = None) -> Thread:
    """Run ``fn`` as a softirq handler thread (a tasklet, a timer callback, NET_RX ...)."""
    ex = runtime.current
    if ex is None:
        raise RuntimeError("spawn_softirq() outside a check")

    def handler(*a: Any) -> Any:
        kthread().softirq = True
        return fn(*a)

    handler.__name__ = getattr(fn, "__name__", "softirq")
    return ex.spawn(handler, args, name or f"softirq:{handler.__name__}")


def local_irq_disable() -> None:
    """Disable irqs on this task's CPU (nests)."""
    kthread().irq_off += 1


def local_irq_enable() -> None:
    """Re-enable irqs disabled by local_irq_disable(); locks still held become HARDIRQ-ON."""
    kt = kthread()
    kt.irq_off -= 1
    if kt.held and kt.irqs_enabled():
        lockdep.hardirqs_on(kt)


def local_bh_disable() -> None:
    """Disable softirqs on this task's CPU (nests); the task is atomic meanwhile."""
    kthread().bh_off += 1


def local_bh_enable() -> None:
    """Re-enable softirqs disabled by local_bh_disable(); with irqs on, held locks become SOFTIRQ-ON."""
    kt = kthread()
    kt.bh_off -= 1
    if kt.held and kt.softirqs_enabled():
        lockdep.softirqs_on(kt)


def in_softirq() -> bool:
    """in_softirq(): serving a softirq or softirqs disabled."""
    kt = kthread()
    return kt.softirq or kt.bh_off > 0


def in_atomic() -> bool:
    """True if the task may not sleep now (a spinning lock held, RCU reader, irqs off, an irq or softirq)."""
    return kthread().atomic_reason() is not None


class _FieldWait:
    """Decides when a spin_until_cond() on one field may proceed (the engine's Blocker)."""

    def __init__(self, obj: Any, name: str, cond: Callable[[Any], bool]) -> None:
        self.obj, self.name, self.cond = obj, name, cond

    def _kc_state(self) -> Any:
        return self.obj.__dict__[self.name]

    def _kc_enabled(self, op: Op, tid: int, state: Any) -> bool:
        # state None: "now".  Other ops on this field name no object, so DPOR may
        # pass None for the state before them too; the wait is enabled now when
        # it is analysed, so that errs towards more exploration, never less.
        return bool(self.cond(self.obj.__dict__[self.name] if state is None else state))

    def _kc_holders(self) -> list[int]:
        return []

    def _kc_label(self) -> str:
        return f"{self.obj._kc_label()}->{self.name}"


def spin_until_cond(obj: Any, name: str, cond: Callable[[Any], bool]) -> Any:
    """``spin_until_cond(cond)``: spin (cpu_relax) until ``cond(obj->name)`` holds.

    Modelled as one blocking read of the field: the thread is not runnable
    until the field satisfies the condition, so the search never unrolls the
    spin.  That is exact when a failed iteration only re-reads (the kernel's
    spin_until_cond); a model may also use it for a retry loop whose failed
    iterations undo themselves, and should say so.  Returns the value read.
    """
    ex = runtime.current
    if ex is None or not obj._kc_num:
        return getattr(obj, name)
    f = field_of(obj, name)
    waiter = _FieldWait(obj, name, cond)
    ex.visible(
        Op(
            obj._kc_num * FIELD_SLOTS + f.index,
            False,
            f"spin_until_cond({waiter._kc_label()})",
            waiter,
            "wait",
        )
    )
    t = ex.current
    assert t is not None
    if ex.k.kcsan_on:
        kcsan.on_access(ex, t, obj._kc_num * FIELD_SLOTS + f.index, obj, name, False, True)
    return obj.__dict__[name]
