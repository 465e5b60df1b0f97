"""What every kernel primitive shares: the running thread's kernel state,
object numbering, and the one place findings are raised from.

The per-thread state is what the kernel keeps in ``current`` and the
per-CPU preempt count: the locks held (lockdep's held_locks), RCU read-side
nesting, whether irqs are off, whether we are a hard-irq handler.  Atomic
context is *derived* from it, never set by hand.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kvmcheck._engine import runtime
from kvmcheck._engine.execution import model_site
from kvmcheck._engine.finding import Finding, UsageError

if TYPE_CHECKING:
    from kvmcheck._engine.execution import Execution, Thread


@dataclass(slots=True)
class Held:
    """One entry of a thread's held-lock stack."""

    lock: Any
    shared: bool
    trylock: bool
    subclass: int = 0
    irqsave: bool = False  # this acquisition disabled irqs (_irq / _irqsave)


@dataclass
class KThread:
    """Kernel state of one model thread."""

    held: list[Held] = field(default_factory=list)
    rcu_depth: int = 0
    irq_off: int = 0  # nesting of local_irq_disable / *_irq / *_irqsave
    bh_off: int = 0
    hardirq: bool = False  # runs as a hard-irq handler
    srcu: dict[int, int] = field(default_factory=dict)  # srcu number -> nesting

    def held_names(self) -> list[str]:
        return [h.lock.name + ("(r)" if h.shared else "") for h in self.held]

    def atomic_reason(self) -> str | None:
        """Why this thread may not sleep now, or None."""
        if self.hardirq:
            return "in hard-irq context"
        for h in self.held:
            if not h.lock.sleeps:
                return f"{h.lock.name} ({h.lock.kind}) held"
        if self.rcu_depth:
            return "inside rcu_read_lock()"
        if self.irq_off:
            return "irqs disabled"
        if self.bh_off:
            return "softirqs disabled"
        return None

    def irqs_enabled(self) -> bool:
        return not (self.irq_off or self.hardirq)


def execution() -> Execution | None:
    return runtime.current


def current_thread() -> Thread:
    ex = runtime.current
    if ex is None or ex.current is None:
        raise UsageError("kernel primitive used outside a running check (call it from a scenario)")
    return ex.current


def kthread(t: Thread | None = None) -> KThread:
    t = t or current_thread()
    k = t.k
    if k is None:
        k = t.k = KThread()
    return k  # type: ignore[no-any-return]


def new_number() -> int:
    ex = runtime.current
    return ex.new_number() if ex is not None else 0


def site_here() -> str:
    """'function (file:line)' of the innermost model frame (slow: reports only).

    The walk starts at the caller and skips every engine and kernel frame, so
    the answer does not depend on how deep inside the kernel layer it is asked.
    """
    site, _ = model_site(sys._getframe(1))
    return str(site)


def init_site() -> str:
    """file:line of the model code constructing a primitive (its lockdep class)."""
    site, _ = model_site(sys._getframe(1))
    return f"{site.file}:{site.line}"


def bug(kind: str, message: str, headline: str, details: list[str] | None = None) -> None:
    """A hard finding (oops, KASAN, BUG): the thread stops here."""
    ex = runtime.current
    f = Finding(kind, message, headline=headline, details=details or [])
    if ex is None:
        raise AssertionError(f"{headline}: {message}")
    ex.report(f)


def warn(
    kind: str,
    message: str,
    headline: str,
    details: list[str] | None = None,
    needs: list[str] | None = None,
) -> None:
    """A WARN-class finding (lockdep, KCSAN, WARN_ON): reported, the thread goes on."""
    ex = runtime.current
    f = Finding(kind, message, headline=headline, details=details or [], needs=needs or [])
    if ex is None:
        raise AssertionError(f"{headline}: {message}")
    ex.warn(f)
