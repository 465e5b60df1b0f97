"""SRCU: sleepable RCU, one domain per ``struct srcu_struct`` (``kvm.srcu = Srcu("kvm->srcu")``).

The grace-period machinery is RCU's (:class:`kvmcheck.kernel.gp.GpDomain`):
``synchronize_srcu`` waits for exactly the readers of *this* srcu_struct
that were inside a read-side section when it began, and gives the same
happens-before.  Unlike RCU readers, SRCU readers may sleep: holding an
SRCU read lock does not make a thread atomic.

``srcu_read_lock`` returns an index, as the kernel's does: the low bit of
the number of grace periods started so far (which of the two per-CPU
counters the reader incremented).  Every ``srcu_read_lock`` and
``srcu_read_unlock`` is a shared visible step on the domain (the index
depends on the grace periods before it).  ``srcu_read_unlock`` with an index
this task's locks did not return, or without any, is a WARN; the run goes on
as if the most recent lock had been released.

``synchronize_srcu`` inside a read-side section of the same srcu_struct
waits for itself: a deadlock, as in the kernel (plus lockdep-RCU's
"Illegal synchronize_srcu()" splat).  ``call_srcu`` runs the callback in a
thread named ``srcu_callback`` after a grace period, with softirqs disabled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvmcheck._engine import runtime
from kvmcheck._engine.execution import Thread
from kvmcheck.kernel._core import current_thread, kthread, warn
from kvmcheck.kernel.atomic import load_acquire
from kvmcheck.kernel.context import might_sleep_check
from kvmcheck.kernel.gp import GpDomain
from kvmcheck.kernel.rcu import suspicious

__all__ = [
    "Srcu",
    "call_srcu",
    "cleanup_srcu_struct",
    "srcu_barrier",
    "srcu_dereference",
    "srcu_dereference_check",
    "srcu_read_lock",
    "srcu_read_lock_held",
    "srcu_read_unlock",
    "synchronize_srcu",
    "synchronize_srcu_expedited",
]


class Srcu(GpDomain):
    """``struct srcu_struct`` (``DEFINE_SRCU`` / ``init_srcu_struct``)."""

    kind = "srcu_struct"
    prefix = "srcu"

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name)
        self.idx_held: dict[int, list[int]] = {}  # tid -> indices its open srcu_read_lock()s returned


def srcu_read_lock_held(ssp: Srcu) -> bool:
    """True inside srcu_read_lock(ssp)."""
    return kthread().srcu.get(ssp.key, 0) > 0


def srcu_read_lock(ssp: Srcu) -> int:
    """Enter a read-side section of ``ssp``; returns the index to pass to srcu_read_unlock()."""
    t = current_thread()
    kt = kthread(t)
    depth = kt.srcu.get(ssp.key, 0)
    label = f"srcu_read_lock({ssp.name})"
    if depth == 0:
        ssp.enter(label)
    else:
        ssp.step(False, label, "nest")
    kt.srcu[ssp.key] = depth + 1
    idx = ssp.flips & 1
    ssp.idx_held.setdefault(t.tid, []).append(idx)
    return idx


def srcu_read_unlock(ssp: Srcu, idx: int) -> None:
    """srcu_read_unlock(ssp, idx): leave the read-side section that returned ``idx``."""
    t = current_thread()
    kt = kthread(t)
    depth = kt.srcu.get(ssp.key, 0)
    label = f"srcu_read_unlock({ssp.name}, {idx})"
    if depth == 0:
        warn(
            "unlock-unheld",
            f"{label} without srcu_read_lock()",
            headline="WARNING: bad unlock balance detected!",
        )
        return
    held = ssp.idx_held[t.tid]
    for i in range(len(held) - 1, -1, -1):
        if held[i] == idx:
            del held[i]
            break
    else:
        warn(
            "warn",
            f"{label}: idx {idx} was not returned by an srcu_read_lock() this task holds (it holds {held})",
            headline="WARNING: srcu_read_unlock() with a wrong index",
        )
        held.pop()
    if depth == 1:
        ssp.exit(label)
    else:
        ssp.step(False, label, "nest")
    kt.srcu[ssp.key] = depth - 1


def synchronize_srcu(ssp: Srcu) -> None:
    """Wait until every reader section of ``ssp`` open now has closed.  May sleep."""
    might_sleep_check(f"synchronize_srcu({ssp.name})")
    kt = kthread()
    if kt.srcu.get(ssp.key, 0) or kt.rcu_depth:
        suspicious(
            f"Illegal synchronize_srcu({ssp.name}) in same-type SRCU (or in RCU) read-side critical section"
        )
    gp = ssp.gp_start(f"synchronize_srcu({ssp.name})", exclude_self=False)
    ssp.gp_wait(gp, f"synchronize_srcu({ssp.name}): grace period ends")


def synchronize_srcu_expedited(ssp: Srcu) -> None:
    """As synchronize_srcu()."""
    synchronize_srcu(ssp)


def call_srcu(ssp: Srcu, head: Any, func: Callable[[Any], Any]) -> Thread:
    """Run ``func(head)`` after an SRCU grace period, in a thread named ``srcu_callback``."""
    gp = ssp.gp_start(f"call_srcu({ssp.name}, {getattr(func, '__name__', 'func')})", exclude_self=False)
    return ssp.queue_callback(gp, head, func, "srcu_callback")


def srcu_barrier(ssp: Srcu) -> None:
    """Wait for every callback call_srcu() queued on ``ssp`` so far.  May sleep."""
    might_sleep_check(f"srcu_barrier({ssp.name})")
    ssp.barrier()


def cleanup_srcu_struct(ssp: Srcu) -> None:
    """Tear ``ssp`` down: WARN (and leak it) if a reader is still inside."""
    ssp.step(True, f"cleanup_srcu_struct({ssp.name})", "cleanup")
    inside = [runtime.current.threads[t].name for t in ssp._kc_holders()]  # type: ignore[union-attr]
    if inside:
        warn(
            "warn",
            f"cleanup_srcu_struct({ssp.name}) with active readers: {', '.join(inside)}",
            headline="WARNING: at kernel/rcu/srcutree.c cleanup_srcu_struct",
        )


def srcu_dereference(obj: Any, name: str, ssp: Srcu) -> Any:
    """``srcu_dereference(obj->name, ssp)``: legal inside srcu_read_lock(ssp)."""
    return srcu_dereference_check(obj, name, ssp, False, "srcu_dereference")


def srcu_dereference_check(
    obj: Any, name: str, ssp: Srcu, cond: bool, _fn: str = "srcu_dereference_check"
) -> Any:
    """``srcu_dereference_check(obj->name, ssp, cond)``: inside srcu_read_lock(ssp), or ``cond``."""
    label = f"{_fn}({type(obj).__name__}.{name}, {ssp.name})"
    v = load_acquire(obj, name, label)
    if runtime.current is not None and not (cond or srcu_read_lock_held(ssp)):
        suspicious(f"suspicious rcu_dereference_check() usage: {label}")
    return v
