"""lockdep: lock classes, the dependency graph, and its reports.

As in kernel/locking/lockdep.c: every lock belongs to a *class* (its
initialisation site, or an explicit name); acquiring B while holding A
records the dependency A -> B, with the site of each acquisition.  The graph
lives for the whole check, across every explored execution, so a cycle is
reported ("possible circular locking dependency detected") even if no
explored execution deadlocked.  Trylocks do not add a dependency on the
trylocked lock (they cannot wait), as in lockdep.  ``*_nested`` acquisitions
use a subclass, so two locks of one class taken in a fixed order are fine.

Irq safety: a class used in hard-irq context and also taken with irqs enabled
is "inconsistent lock state" -- the handler can interrupt the holder.  As in
lockdep's mark_lock_irq, read usages conflict only with write usages: an
rwlock_t read in an irq and read with irqs enabled elsewhere is fine (a
reader in interrupt context never waits for a waiting writer).

Recursive reads: with queued rwlocks (x86), read_lock() is a *recursive*
read only in interrupt context (read_lock_is_recursive()); in process context
read_lock(L) while holding L for read is "possible recursive locking", since
a writer queued in between deadlocks it -- the fairness locking.py does not
model, so lockdep is what reports it, as in the kernel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kvmcheck._engine import runtime
from kvmcheck.kernel._core import Held, KThread, site_here, warn


@dataclass(frozen=True)
class Edge:
    before: str
    after: str
    held_site: str  # where the first lock was taken
    site: str  # where the second was taken while holding the first
    run: int  # index of the execution that first recorded it


class Graph:
    """Check-wide lockdep state (kept in the session)."""

    def __init__(self) -> None:
        self.edges: dict[str, dict[str, Edge]] = {}
        self.reported: set[frozenset[str]] = set()
        self.usage: dict[str, dict[str, str]] = {}  # class -> usage bit -> first site


def graph() -> Graph:
    ex = runtime.current
    assert ex is not None
    g = ex.session.get("lockdep")
    if g is None:
        g = ex.session["lockdep"] = Graph()
    return g  # type: ignore[no-any-return]


def lock_class(held: Held) -> str:
    c: str = held.lock.cls
    return f"{c}/{held.subclass}" if held.subclass else c


def _path(g: Graph, src: str, dst: str) -> list[Edge] | None:
    """A dependency path src -> ... -> dst, by depth-first search in insertion order."""
    stack: list[tuple[str, list[Edge]]] = [(src, [])]
    seen = {src}
    while stack:
        node, path = stack.pop()
        for nxt, e in reversed(list(g.edges.get(node, {}).items())):
            if nxt == dst:
                return [*path, e]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, e]))
    return None


def on_acquire(kt: KThread, new: Held) -> None:
    """Record dependencies held -> new before a (possibly blocking) acquisition."""
    if not kt.held:
        _usage(kt, new)
        return
    g = graph()
    cls = lock_class(new)
    for h in kt.held:
        if h.lock is new.lock and not (h.shared and new.shared and new.lock.recursive_read):
            return  # recursive locking is reported by the lock itself
        hc = lock_class(h)
        if hc == cls and h.shared and new.shared and new.lock.recursive_read and kt.hardirq:
            continue  # read-after-read in interrupt context: a recursive read (check_deadlock)
        if hc == cls and not new.trylock:
            warn(
                "lock-order",
                f"possible recursive locking: {new.lock.name} while holding {h.lock.name} "
                f"(same class {cls}); use a *_nested() annotation if the order is fixed",
                headline="WARNING: possible recursive locking detected",
            )
            continue
        if new.trylock or (hc in g.edges and cls in g.edges[hc]):
            continue
        back = _path(g, cls, hc)
        edge = Edge(hc, cls, h.lock.name, site_here(), _run_index())
        g.edges.setdefault(hc, {})[cls] = edge
        if back is not None:
            _report_cycle(g, edge, back)
        _check_irq_inversion(g)
    _usage(kt, new)


def _run_index() -> int:
    ex = runtime.current
    assert ex is not None
    ex.session["keep_run"] = True  # the check keeps this run's schedule for replay
    return int(ex.session["run"])


def _report_cycle(g: Graph, edge: Edge, back: list[Edge]) -> None:
    key = frozenset([edge.before, edge.after, *(e.after for e in back)])
    if key in g.reported:
        return
    g.reported.add(key)
    details = [
        "the existing dependency chain (in reverse order) is:",
        *[f"  -> #{n} {e.after} acquired at {e.site} while holding {e.before}" for n, e in enumerate(back)],
        "but task is trying to acquire:",
        f"  {edge.after} at {edge.site} while holding {edge.before}",
        "Possible unsafe locking scenario:",
        "       CPU0                    CPU1",
        f"  lock({edge.before});",
        f"                           lock({edge.after});",
        f"                           lock({edge.before});",
        f"  lock({edge.after});",
        " *** DEADLOCK ***",
    ]
    warn(
        "lock-order",
        f"{edge.before} -> {edge.after} here, but {edge.after} -> ... -> {edge.before} was recorded before",
        headline="WARNING: possible circular locking dependency detected",
        details=details,
        needs=_earlier_runs(back),
    )


def _earlier_runs(back: list[Edge]) -> list[str]:
    """Schedules of the earlier runs that recorded the chain: replay needs them first."""
    ex = runtime.current
    assert ex is not None
    me = ex.session["run"]
    scheds = ex.session.get("schedules", {})
    return [scheds[r] for r in sorted({e.run for e in back if e.run != me}) if r in scheds]


def _usage(kt: KThread, new: Held) -> None:
    """Irq-usage bits: IN-HARDIRQ vs HARDIRQ-ON, each -R (read) or -W, for the class being taken."""
    if new.lock.sleeps:
        return
    cls = lock_class(new)
    rw = "R" if new.shared else "W"
    if kt.hardirq:
        bit, opposite = f"IN-HARDIRQ-{rw}", "HARDIRQ-ON"
    elif kt.irqs_enabled() and not new.irqsave:
        bit, opposite = f"HARDIRQ-ON-{rw}", "IN-HARDIRQ"
    else:
        return
    g = graph()
    bits = g.usage.setdefault(cls, {})
    if bit in bits:
        return
    bits[bit] = site_here()
    _check_irq_inversion(g)
    # A usage conflicts with the opposite write usage; a write usage also with the opposite read one.
    for other in (f"{opposite}-W", f"{opposite}-R") if rw == "W" else (f"{opposite}-W",):
        if other in bits:
            warn(
                "lock-order",
                f"{new.lock.name}: {{{other}}} usage at {bits[other]} and {{{bit}}} usage at {bits[bit]}; "
                "an irq taking this lock can interrupt a holder on the same CPU",
                headline="WARNING: inconsistent lock state",
            )
            return


def _irq_safe(g: Graph, cls: str) -> bool:
    return any(b.startswith("IN-HARDIRQ") for b in g.usage.get(cls, {}))


def _irq_unsafe(g: Graph, cls: str) -> bool:
    return "HARDIRQ-ON-W" in g.usage.get(cls, {})


def _check_irq_inversion(g: Graph) -> None:
    """An irq-safe class held while an irq-unsafe one is taken (directly or through a chain).

    CPU0 holds the unsafe lock with irqs on; CPU1 holds the safe lock and waits
    for the unsafe one; an irq on CPU0 then waits for the safe lock: deadlock.
    Run only when an edge or a usage bit is new, so the cost stays off the
    hot path.
    """
    for safe in [c for c in g.edges if _irq_safe(g, c)]:
        for unsafe in list(g.usage):
            if unsafe == safe or not _irq_unsafe(g, unsafe):
                continue
            key = frozenset([f"irq:{safe}", f"irq:{unsafe}"])
            if key in g.reported:
                continue
            chain = _path(g, safe, unsafe)
            if chain is None:
                continue
            g.reported.add(key)
            in_irq = next(iter(g.usage[safe].values()))
            irq_on = g.usage[unsafe]["HARDIRQ-ON-W"]
            warn(
                "lock-order",
                f"{safe} is taken in hard-irq context ({in_irq}) and is held while {unsafe} is taken, "
                f"which is also taken with irqs enabled ({irq_on})",
                headline="WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected",
                details=[f"  {e.before} -> {e.after} at {e.site}" for e in chain],
                needs=_earlier_runs(chain),
            )


def held_by(kt: KThread, lock: Any) -> Held | None:
    for h in reversed(kt.held):
        if h.lock is lock:
            return h
    return None
