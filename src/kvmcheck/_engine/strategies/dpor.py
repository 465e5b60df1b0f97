"""Exhaustive search with source-DPOR and sleep sets.

Abdulla, Aronis, Jonsson, Sagonas: "Optimal dynamic partial order reduction",
POPL 2014 (Algorithm 1, source sets).  The search is stateless: each
execution re-runs the scenario from the start, replays the prefix chosen by
the search, then continues with free choices.  While it runs, every new event
gets a vector clock of the *dependency* happens-before (program order plus
the trace order of dependent operations); each race it is part of adds a
thread to the source set of the state just before the earlier event.

Races.  Events e_i (thread q) and e_j (thread p) race when they touch the
same object, at least one exclusively, e_i does not happen before p's
previous event, and the race is *reversible*: e_j would have been enabled in
the state just before e_i.  That last test is what handles blocking
primitives: q's unlock never races with p's lock (p could not have taken the
lock while q held it), so the scan looks past the unlock to q's lock, which
does race with p's.  Among the candidates on one object only the maximal
ones (not happening before another candidate) are kept.

Sleep sets make every explored *complete* execution a different
Mazurkiewicz trace; executions that end with every enabled thread asleep are
counted as ``blocked`` and are the only redundancy left.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from mypy_extensions import mypyc_attr

from kvmcheck._engine.clock import Clock, vc_get, vc_join, vc_tick
from kvmcheck._engine.finding import Nondeterminism

if TYPE_CHECKING:
    from kvmcheck._engine.execution import Execution
    from kvmcheck._engine.ops import Op


class _Node:
    """The state before one step of the current path."""

    __slots__ = ("backtrack", "chosen", "done", "enabled", "pending", "sleep", "value")

    def __init__(self, chosen: int, enabled: list[int], pending: dict[int, Op], sleep: dict[int, Op]) -> None:
        self.chosen = chosen
        self.enabled = enabled
        self.pending = pending  # each live thread's announced op in this state
        self.sleep = sleep  # thread -> op: explored elsewhere, skip until a dependent step
        self.backtrack = {chosen}  # source set
        # Invariant: done is a subset of backtrack; chosen is in done.
        self.done = {chosen}
        # The outcome of the chosen thread's op when it is a nondet() choice: every
        # outcome is explored (0, 1, ...) before the node moves on to another thread.
        self.value = 0


class _ObjRec:
    """What DPOR remembers of one object in the current execution."""

    __slots__ = ("events", "excl", "shared", "xlast")

    def __init__(self) -> None:
        self.events: list[int] = []  # indices of the events that touched it
        # xlast[p]: position in ``events`` of the latest exclusive event at or before p (-1: none),
        # so that a shared event skips the shared ones (a hot field re-read: linear, not quadratic)
        self.xlast: list[int] = []
        self.excl: Clock | None = None  # clock of the last exclusive event
        self.shared: Clock | None = None  # join of the shared events since then


# per event: (tid, its previous clock, spawned child, child's previous clock, [(rec, excl, shared)])
_Undo = tuple[int, Clock, "int | None", "Clock | None", list[tuple[_ObjRec, "Clock | None", "Clock | None"]]]


# Not a StrategyBase subclass: compiled (mypyc, kvmcheck/_hotpath.py), a class may only extend
# a compiled one, so it spells out the defaults it would take from there (the Strategy protocol).
# Tests and parallel.py may subclass it from Python.
@mypyc_attr(allow_interpreted_subclasses=True)
class Dpor:
    name = "dpor-source"
    exhaustive = True

    def coverage_note(self) -> str:
        return ""

    def add_outcome(self, ex: Execution, step: int, value: int) -> bool:
        return False  # only a search that enumerates the path's choices can (optimal.py)

    def estimate(self) -> float | None:
        return None

    def __init__(self) -> None:
        self.stack: list[_Node] = []
        self.blocked = 0
        self._reset()

    def _reset(self) -> None:
        self.ev_tid: list[int] = []
        self.ev_clock: list[Clock] = []
        self.ev_state: list[object] = []
        self.tclock: dict[int, Clock] = {0: []}
        self.objrec: dict[int, _ObjRec] = {}
        self.undo: list[_Undo] = []  # per event: what to restore to take it back
        # cpu_relax() events.  A relaxed thread waits for *any* other thread to
        # step, so a relax is dependent with every step of every other thread.
        self.relax_events: list[int] = []
        self.relax_clock: Clock = []

    def _rollback(self, depth: int) -> None:
        """Take back every recorded event from ``depth`` on.

        The prefix before ``depth`` is replayed identically by the next
        execution, so its clocks and object records are kept, not recomputed.
        """
        n = len(self.ev_tid) - depth
        if n > 0:
            undo = self.undo
            tclock = self.tclock
            for _ in range(n):
                tid, old_tclock, child, old_child, recs = undo.pop()
                for rec, old_excl, old_shared in reversed(recs):
                    rec.events.pop()
                    rec.xlast.pop()
                    rec.excl = old_excl
                    rec.shared = old_shared
                tclock[tid] = old_tclock
                if child is not None:
                    if old_child is None:
                        del tclock[child]
                    else:
                        tclock[child] = old_child
            del self.ev_tid[depth:]
            del self.ev_clock[depth:]
            del self.ev_state[depth:]
        if self.relax_events and self.relax_events[-1] >= depth:
            self.relax_events = [r for r in self.relax_events if r < depth]
            self.relax_clock = []
            for r in self.relax_events:
                self.relax_clock = vc_join(self.relax_clock, self.ev_clock[r])

    def describe(self) -> str:
        return "dpor (source sets + sleep sets)"

    # -- choosing ---------------------------------------------------------------
    def prefix(self) -> tuple[list[int], dict[int, int]]:
        """The recorded events (the state before the branch to take next is the last node)."""
        nodes = self.stack[: len(self.ev_tid)]
        return [n.chosen for n in nodes], {
            i: n.value for i, n in enumerate(nodes) if n.pending[n.chosen].choices
        }

    def choose(self, ex: Execution, enabled: list[int]) -> int | None:
        depth = len(ex.schedule)
        stack = self.stack
        if depth < len(stack):
            t = stack[depth].chosen
            if t not in enabled:
                raise Nondeterminism(
                    f"step {depth}: thread {t} was enabled in an earlier run with the same "
                    f"prefix but is not now (enabled: {enabled}); the model is not deterministic"
                )
            return t
        sleep = self._child_sleep(stack[-1]) if stack else {}
        cands = [t for t in enabled if t not in sleep]
        if not cands:
            self.blocked += 1
            return None
        last = ex.schedule[-1] if ex.schedule else 0
        pick = last if last in cands else cands[0]
        pending = {t.tid: t.pending for t in ex.threads if t.pending is not None}
        stack.append(_Node(pick, enabled, pending, sleep))
        return pick

    @staticmethod
    def _child_sleep(parent: _Node) -> dict[int, Op]:
        chosen_op = parent.pending[parent.chosen]
        sleep = {}
        for q, op in parent.sleep.items():
            if not op.dependent(chosen_op):
                sleep[q] = op
        for q in parent.done:
            if q != parent.chosen:
                op = parent.pending[q]
                if not op.dependent(chosen_op):
                    sleep[q] = op
        return sleep

    def choose_value(self, ex: Execution, n: int) -> int:
        return self.stack[len(ex.schedule)].value

    # -- recording events and races ---------------------------------------------
    def on_event(self, ex: Execution, tid: int, op: Op) -> None:
        j = len(ex.schedule)
        ev_tid = self.ev_tid
        if j < len(ev_tid):
            return  # a replayed prefix step: recorded by an earlier execution
        self._ex = ex
        self._ej_op = op  # e_j of the races found now (optimal DPOR builds its wakeup sequence from it)
        tclock = self.tclock
        objrec = self.objrec
        pre = tclock[tid]
        key = op.key
        excl0 = op.excl
        rec = objrec.get(key)
        if rec is None:
            rec = objrec[key] = _ObjRec()
        c = pre[:]
        if rec.excl is not None:
            c = vc_join(c, rec.excl)
        if excl0 and rec.shared is not None:
            c = vc_join(c, rec.shared)
        key2 = op.key2
        rec2 = rec
        if key2 >= 0:
            r2 = objrec.get(key2)
            if r2 is None:
                r2 = objrec[key2] = _ObjRec()
            rec2 = r2
            if rec2.excl is not None:
                c = vc_join(c, rec2.excl)
        arg = op.arg
        if arg == "join":
            # A join is enabled only once the thread is done, so every step of that thread
            # happens before it -- also when an oops killed the thread (no exit step).
            c = vc_join(c, tclock.get(op.obj.tid, []))  # type: ignore[union-attr]
        relax = arg == "relax"
        relax_events = self.relax_events
        if relax_events:
            c = vc_join(c, self.relax_clock)  # every earlier relax happens before this step
        if relax:
            for tc in tclock.values():  # ... and every earlier step before a relax
                c = vc_join(c, tc)
        vc_tick(c, tid)
        if relax or relax_events:
            self._relax_races(j, tid, relax, pre, c)
        undo_recs = [(rec, rec.excl, rec.shared)]
        self._races(j, tid, op, key, excl0, pre, rec.events, c, ex)
        if excl0:
            rec.excl = c
            rec.shared = None
        else:
            rec.shared = c if rec.shared is None else vc_join(rec.shared, c)
        rec.xlast.append(len(rec.events) if excl0 else rec.xlast[-1] if rec.xlast else -1)
        rec.events.append(j)
        if key2 >= 0:
            undo_recs.append((rec2, rec2.excl, rec2.shared))
            self._races(j, tid, op, key2, False, pre, rec2.events, c, ex)
            rec2.shared = c if rec2.shared is None else vc_join(rec2.shared, c)
            rec2.xlast.append(rec2.xlast[-1] if rec2.xlast else -1)
            rec2.events.append(j)
        ev_tid.append(tid)
        self.ev_clock.append(c)
        src = op.obj if op.obj is not None else op.st
        self.ev_state.append(src._kc_state() if src is not None else None)
        tclock[tid] = c
        child: int | None = None
        old_child: Clock | None = None
        if arg == "spawn":
            child = op.obj.tid  # type: ignore[union-attr]
            old_child = tclock.get(child)
            tclock[child] = c
        self.undo.append((tid, pre, child, old_child, undo_recs))
        if relax:
            relax_events.append(j)
            self.relax_clock = vc_join(self.relax_clock, c)

    def _relax_races(self, j: int, tid: int, relax: bool, pre: Clock, cj: Clock) -> None:
        """Races that involve a cpu_relax() event (dependent with every other thread's steps).

        A relax races with the latest concurrent event of each other thread; any
        event races with the latest concurrent relax of each other thread.
        """
        ev_tid = self.ev_tid
        ev_clock = self.ev_clock
        latest: dict[int, int] = {}
        pool = range(j - 1, -1, -1) if relax else reversed(self.relax_events)
        for i in pool:
            ti = ev_tid[i]
            if ti != tid and ti not in latest:
                latest[ti] = i
        cands = [i for ti, i in latest.items() if ev_clock[i][ti] > vc_get(pre, ti)]
        if relax:
            cands = [i for i in cands if self._relax_reversible(j, tid, i)]
        for i in cands:
            ti = ev_tid[i]
            if not any(c != i and ev_clock[i][ti] <= vc_get(ev_clock[c], ti) for c in cands):
                self._add_source(i, j, tid, cj)

    def _relax_reversible(self, j: int, tid: int, i: int) -> bool:
        """Could the relax at j run before event i?  Not if it is the step that ends the
        wait after this thread's previous relax (nobody else stepped in between)."""
        prev = next((k for k in range(j - 1, -1, -1) if self.ev_tid[k] == tid), None)
        if prev is None or prev not in self.relax_events:
            return True
        return any(self.ev_tid[k] != tid for k in range(prev + 1, i))

    def on_blocked(self, ex: Execution, tids: list[int]) -> None:
        """Races of the pending ops of threads blocked when the run ended.

        A deadlocked run never executes them, but each may race with an earlier
        event (t1's mutex_lock(B) with t2's): reversing that race is how the
        search finds the order in which t1 takes B first.
        """
        j = len(self.ev_tid)  # where the blocked op would have been the next event
        self._ex = ex
        for tid in tids:
            op = ex.threads[tid].pending
            pre = self.tclock.get(tid)
            if op is None or pre is None:
                continue
            self._ej_op = op
            recs = [(op.key, op.excl)] + ([(op.key2, False)] if op.key2 >= 0 else [])
            c = pre[:]
            for k, excl in recs:
                rec = self.objrec.get(k)
                if rec is not None:
                    if rec.excl is not None:
                        c = vc_join(c, rec.excl)
                    if excl and rec.shared is not None:
                        c = vc_join(c, rec.shared)
            vc_tick(c, tid)
            for k, excl in recs:
                rec = self.objrec.get(k)
                if rec is not None:
                    self._races(j, tid, op, k, excl, pre, rec.events, c, ex)

    def _races(
        self,
        j: int,
        tid: int,
        op: Op,
        k: int,
        excl: bool,
        pre: Clock,
        events: list[int],
        cj: Clock,
        ex: Execution,
    ) -> None:
        """Races of the new event e_j with the earlier events on object key ``k``.

        ``excl`` is e_j's mode on ``k``; an earlier event is exclusive on ``k``
        only if ``k`` is its primary key and it was exclusive (a secondary key
        is always touched in shared mode).
        """
        ops = ex.ops
        ev_tid = self.ev_tid
        ev_clock = self.ev_clock
        ev_state = self.ev_state
        obj = op.obj
        npre = len(pre)
        cands: list[int] = []
        for i in reversed(events) if excl else _exclusive_events(self.objrec[k], events):
            opi = ops[i]
            opi_excl = opi.excl and opi.key == k
            if not (excl or opi_excl):
                continue
            ti = ev_tid[i]
            ci_val = ev_clock[i][ti]
            if ti == tid or ci_val <= (pre[ti] if ti < npre else 0):
                if opi_excl:
                    break  # everything earlier on this object happens before e_i
                continue
            if obj is not None and not obj._kc_enabled(op, tid, ev_state[i]):
                continue  # not reversible: e_i is what let e_j proceed
            if cands and any(ci_val <= vc_get(ev_clock[c], ti) for c in cands):
                if opi_excl:
                    break
                continue
            cands.append(i)
            if opi_excl:
                break
        for i in cands:
            self._add_source(i, j, tid, cj)

    def _add_source(self, i: int, j: int, tid: int, cj: Clock) -> None:
        """Make sure some initial of notdep(e_i).e_j is in the source set at i."""
        node = self.stack[i]
        ev_tid = self.ev_tid
        ev_clock = self.ev_clock
        qi = ev_tid[i]
        vi = ev_clock[i][qi]
        first: dict[int, int] = {}
        initials: list[int] = []
        for k in range(i + 1, j):
            ck = ev_clock[k]
            if vi <= vc_get(ck, qi):
                continue  # happens after e_i: not in v
            tk = ev_tid[k]
            if tk in first:
                continue
            if not any(c0 <= vc_get(ck, u) for u, c0 in first.items()):
                initials.append(tk)
            first[tk] = ck[tk]
        if tid not in first and not any(c0 <= vc_get(cj, u) for u, c0 in first.items()):
            initials.append(tid)
        for t in initials:
            if t in node.backtrack or t in node.sleep:
                return
        pick = tid if tid in initials else initials[0]
        if pick in node.enabled:
            node.backtrack.add(pick)
        else:  # cannot happen for a sound dependency relation; stay safe, not fast
            node.backtrack.update(node.enabled)

    # -- between executions -------------------------------------------------------
    def next_execution(self) -> bool:
        stack = self.stack
        while stack:
            node = stack[-1]
            if node.value + 1 < node.pending[node.chosen].choices:
                node.value += 1  # the same thread's choice, next outcome
                self._rollback(len(stack) - 1)
                return True
            for t in sorted(node.backtrack):
                if t not in node.done and t not in node.sleep and t in node.enabled:
                    node.done.add(t)
                    node.chosen = t
                    node.value = 0
                    self._rollback(len(stack) - 1)
                    return True
            stack.pop()
        return False


def _exclusive_events(rec: _ObjRec, events: list[int]) -> Iterator[int]:
    """The exclusive events of ``rec``, latest first (what a shared event can race with)."""
    xlast = rec.xlast
    p = xlast[-1] if xlast else -1
    while p >= 0:
        yield events[p]
        p = xlast[p - 1] if p > 0 else -1
