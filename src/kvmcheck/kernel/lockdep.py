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
a writer queued in between deadlocks it.  lockdep reports it in every
execution, as in the kernel; the search finds the hang itself too
(locking.py models writer fairness), past the WARN with keep_going.

Reports follow kernel/locking/lockdep.c: print_circular_bug() (the lock the
task is trying to acquire, the lock it holds, "which lock already depends on
the new lock.", the existing dependency chain in reverse order with the
stack of each acquisition, "Chain exists of:" for chains longer than two,
and print_circular_lock_scenario()'s CPU0/CPU1 table ending "*** DEADLOCK
***") and print_deadlock_bug() for recursive locking.  As check_prevs_add()
does, a dependency is recorded from the most recent held lock (and from the
trylocked ones above the first lock that was not trylocked), so the chain a
report prints is the kernel's: every lock that links the two.

debug_check_no_locks_freed(): freeing memory that contains a lock the task
still holds is "BUG: held lock freed!".
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from kvmcheck._engine import runtime
from kvmcheck._engine.execution import _engine_dirs, _short
from kvmcheck.kernel._core import Held, KThread, bug, current_thread, kthread, site_here, warn


@dataclass(frozen=True)
class Edge:
    before: str
    after: str
    task: str  # the task that took ``after`` while holding ``before``
    site: str  # where the second was taken while holding the first
    run: int  # index of the execution that first recorded it
    stack: tuple[str, ...] = ()  # that acquisition's model stack, innermost first


def _stack_here() -> tuple[str, ...]:
    """The model call stack, innermost first, as 'function (file:line)' (reports only: slow)."""
    skip = _engine_dirs()
    out: list[str] = []
    f: Any = sys._getframe(1)
    while f is not None:
        name = f.f_code.co_filename
        if not name.startswith(skip) and f.f_code.co_name not in ("_thread_main", "<module>"):
            out.append(f"{f.f_code.co_name} ({_short(name)}:{f.f_lineno})")
        f = f.f_back
    return tuple(out)


class Graph:
    """Check-wide lockdep state (kept in the session)."""

    def __init__(self) -> None:
        self.edges: dict[str, dict[str, Edge]] = {}
        self.reported: set[frozenset[str]] = set()
        self.usage: dict[str, dict[str, str]] = {}  # class -> usage bit -> first site


def graph() -> Graph:
    ex = runtime.current
    assert ex is not None
    g: Graph | None = ex.session.get("lockdep")
    if g is None:
        g = ex.session["lockdep"] = Graph()
    return g


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
    first_prev = _first_prev(kt)
    for i, h in enumerate(kt.held):
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
                details=recursive_details(kt, new, h),
            )
            continue
        if i < first_prev or new.trylock or (hc in g.edges and cls in g.edges[hc]):
            continue
        back = _path(g, cls, hc)
        edge = Edge(hc, cls, _task(), site_here(), _run_index(), _stack_here())
        g.edges.setdefault(hc, {})[cls] = edge
        if back is not None:
            _report_cycle(g, edge, back, kt, (h.shared, new.shared))
        _check_irq_inversion(g)
    _usage(kt, new)


def _first_prev(kt: KThread) -> int:
    """check_prevs_add(): the dependency is recorded from the most recent held lock -- and,
    past trylocked ones, down to the first lock that was not trylocked -- only."""
    i = len(kt.held) - 1
    while i > 0 and kt.held[i].trylock:
        i -= 1
    return i


def _task() -> str:
    ex = runtime.current
    return ex.current.name if ex is not None and ex.current is not None else "?"


def _held_lines(kt: KThread) -> list[str]:
    """lockdep_print_held_locks(): 'N locks held by task:' and one line per lock."""
    n = len(kt.held)
    lines = [f"{n} lock{'s' if n != 1 else ''} held by {_task()}:"]
    lines += [f" #{i}: ({lock_class(h)}){'(read)' if h.shared else ''}" for i, h in enumerate(kt.held)]
    return lines


def recursive_details(kt: KThread, new: Held, held: Held) -> list[str]:
    """print_deadlock_bug() (kernel/locking/lockdep.c): the report of a possible recursive locking."""
    return [
        f"{_task()} is trying to acquire lock:",
        f" ({lock_class(new)}), at: {site_here()}",
        "",
        "but task is already holding lock:",
        f" ({lock_class(held)})",
        "",
        "other info that might help us debug this:",
        " Possible unsafe locking scenario:",
        "",
        "       CPU0",
        "       ----",
        f"  lock({lock_class(held)});",
        f"  lock({lock_class(new)});",
        "",
        " *** DEADLOCK ***",
        "",
        " May be due to missing lock nesting notation",
        "",
        *_held_lines(kt),
    ]


def _run_index() -> int:
    ex = runtime.current
    assert ex is not None
    ex.session["keep_run"] = True  # the check keeps this run's schedule for replay
    return int(ex.session["run"])


def _report_cycle(
    g: Graph, edge: Edge, back: list[Edge], kt: KThread, read: tuple[bool, bool] = (False, False)
) -> None:
    """print_circular_bug() (kernel/locking/lockdep.c) for: ``edge.before`` is held, ``edge.after`` wanted.

    ``back`` is the existing path new -> ... -> held; ``read`` says whether the held
    and the new acquisitions are reads (print_circular_lock_scenario then says
    ``rlock``).  As in the kernel, entry #0 is the new lock with the current
    stack, entry #i the i-th lock of the path with the stack that took it,
    printed from the highest number down.
    """
    key = frozenset([edge.before, edge.after, *(e.after for e in back)])
    if key in g.reported:
        return
    g.reported.add(key)
    new, held = edge.after, edge.before
    depth = len(back)
    details = [
        f"{edge.task} is trying to acquire lock:",
        f" ({new}), at: {edge.site}",
        "",
        "but task is already holding lock:",
        f" ({held})",
        "",
        "which lock already depends on the new lock.",
        "",
        "",
        "the existing dependency chain (in reverse order) is:",
    ]
    for n in range(depth, 0, -1):
        e = back[n - 1]
        details += ["", f"-> #{n} ({e.after}):"]
        details += [f"       {fr}" for fr in e.stack or (e.site,)]
        details.append(f"       [taken by {e.task} while holding {e.before}]")
    details += ["", f"-> #0 ({new}):"]
    details += [f"       {fr}" for fr in edge.stack or (edge.site,)]
    details += ["", "other info that might help us debug this:", ""]
    parent = back[-1].before  # the lock the chain takes just before the held one
    if parent != new:
        details += ["Chain exists of:", f"  {new} --> {parent} --> {held}", ""]
    details += [
        " Possible unsafe locking scenario:",
        "",
        "       CPU0                    CPU1",
        "       ----                    ----",
        f"  {'rlock' if read[0] else 'lock'}({held});",
        f"                               lock({parent});",
        f"                               lock({held});",
        f"  {'rlock' if read[1] else 'lock'}({new});",
        "",
        " *** DEADLOCK ***",
        "",
        *_held_lines(kt),
    ]
    warn(
        "lock-order",
        f"{held} -> {new} here, but {new} -> ... -> {held} was recorded before",
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
    _run_index()  # keep this run: a parallel search replays what taught lockdep something
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


def debug_check_no_locks_freed(obj: Any) -> None:
    """debug_check_no_locks_freed() (kernel/locking/lockdep.c): the task frees ``obj`` holding its lock.

    The locks embedded in ``obj`` are its plain attributes that are locks; if
    the current task holds one, the free is "BUG: held lock freed!" -- the
    unlock it will do next writes freed memory.
    """
    kt = kthread(current_thread())
    inside = {id(v) for v in vars(obj).values()}
    for h in kt.held:
        if id(h.lock) in inside:
            bug(
                "use-after-free",
                f"{_task()} frees {obj!r} while holding {h.lock.name}, which lives in it",
                headline="BUG: held lock freed!",
                details=[
                    "-------------------------",
                    f"{_task()} is freeing memory {obj!r}, with a lock still held there!",
                    f" ({lock_class(h)}), at: {site_here()}",
                    *_held_lines(kt),
                ],
            )
