"""A run under the LKMM in LKMM terms (issue 20 item 4, the engine's part).

:func:`explain` takes an execution run with ``memory_model="lkmm"`` (typically the
traced replay of a finding) and says, from its graph (kernel/barrier.py):

* which write each marked read read from: thread, step and value of both, or the
  initial value -- and whether the read is *stale* (a write co-after the one it read
  had already been performed when it read: an ``fr`` edge against the run's order)
  or read a write performed *later* in the run (a revisit, load buffering);
* the coherence order of the locations where it matters: those read stale or ahead,
  and those where it is not the run's order of writes (a marked write placed before
  writes performed earlier: 2+2W, S);
* why the LKMM allows it: the po-adjacent pairs of accesses in the threads those
  reads and writes belong to that the LKMM leaves unordered (no ``ppo``: no fence,
  dependency, acquire or release between them) -- the
  :func:`kvmcheck.lkmm.explain` wording for litmus tests, computed on the same
  relations (``Graph.relations``: :func:`kvmcheck.lkmm.model.check`'s).

The answer is a frozen :class:`LkmmExplanation`; ``lines()`` is its text.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kvmcheck._engine.execution import Execution
    from kvmcheck.kernel.barrier import Graph

__all__ = ["Access", "LkmmExplanation", "ReadFrom", "explain"]


@dataclass(frozen=True)
class Access:
    """One event of the run: its thread and step (None for a location's initial value)."""

    thread: int | None
    step: int | None
    op: str
    value: Any

    def __str__(self) -> str:
        if self.thread is None:
            return f"the initial value {self.value!r}"
        return f"T{self.thread} step {self.step} {self.op} = {self.value!r}"


@dataclass(frozen=True)
class ReadFrom:
    read: Access
    write: Access
    stale: bool  # a write co-after the one read was performed before the read
    later: bool  # the write read was performed after the read (a read of a later write)


@dataclass(frozen=True)
class LkmmExplanation:
    reads: tuple[ReadFrom, ...]
    co: tuple[tuple[str, tuple[Access, ...]], ...]  # location, its writes in co (where not the run's order)
    unordered: tuple[tuple[Access, Access], ...]  # po-adjacent accesses with no ppo between them

    def lines(self) -> list[str]:
        out = ["Under the LKMM (kernel/barrier.py):"]
        for rf in self.reads:
            why = " -- stale: a co-later write was already performed" if rf.stale else ""
            why += " -- a write performed later in the run" if rf.later else ""
            out.append(f"  rf  {rf.read}  reads from  {rf.write}{why}")
        for loc, ws in self.co:
            out.append(f"  co  {loc}: " + "  ->  ".join(map(str, ws)))
        for a, b in self.unordered:
            out.append(f"  unordered  {a.op} -> {b.op} (T{a.thread} steps {a.step}, {b.step}): no ppo")
        return out


def explain(ex: Execution) -> LkmmExplanation | None:
    """The LKMM reading of ``ex`` (run under ``memory_model="lkmm"``), or None for an SC run."""
    g: Graph | None = ex.k.weak if ex.k is not None else None
    if g is None:
        return None
    pos, rels = g.relations()
    reads = []
    involved: set[int] = set()
    matter: set[str] = set()
    for r in sorted(g.rf):
        e = g.events[r]
        if not e.marked:
            continue
        w = g.rf[r]
        ws = g.co[e.loc]  # type: ignore[index]
        stale = any(x < r for x in ws[ws.index(w) + 1 :])  # performed (added) before the read
        later = w > r
        reads.append(ReadFrom(_access(g, r, g.values[w]), _access(g, w, g.values[w]), stale, later))
        if stale or later:
            involved.add(e.thread)
            matter.add(str(e.loc))
    # co where it matters: against the run's order, or where a read was stale or read ahead
    locs = {loc for loc, ws in g.co.items() if ws != sorted(ws)} | matter
    cos = tuple(
        (loc, tuple(_access(g, w, g.values[w]) for w in g.co[loc]))
        for loc in sorted(locs)
        if len(g.co[loc]) > 1
    )
    for loc in locs:
        involved.update(g.events[x].thread for x in g.co[loc] if g.events[x].thread >= 0)
    ppo = rels.get("ppo")
    unordered = []
    for tid in sorted(involved):
        evs = [e for e in g.threads.get(tid, []) if g.events[e].kind in "RW" and g.events[e].marked]
        for a, b in itertools.pairwise(evs):
            if g.events[a].loc != g.events[b].loc and ppo is not None and not ppo.has(pos[a], pos[b]):
                unordered.append((_access(g, a, _value(g, a)), _access(g, b, _value(g, b))))
    return LkmmExplanation(tuple(reads), cos, tuple(unordered))


def _value(g: Graph, e: int) -> Any:
    if g.events[e].kind == "W":
        return g.values.get(e)
    w = g.rf.get(e)
    return g.values.get(w) if w is not None else None


def _access(g: Graph, e: int, value: Any) -> Access:
    x = g.events[e]
    if x.thread < 0:
        return Access(None, None, "init", value)
    return Access(x.thread, x.step, x.label, value)
