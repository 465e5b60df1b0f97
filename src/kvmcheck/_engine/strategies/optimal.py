"""Exhaustive search with optimal DPOR: wakeup trees and sleep sets.

Abdulla, Aronis, Jonsson, Sagonas: "Optimal dynamic partial order reduction",
POPL 2014 (Algorithm 2).  Event recording, vector clocks and race detection
are those of source-set DPOR (:mod:`dpor`, which this class extends); what
changes is what a race adds to the search.  Source sets add one thread at the
state before the first racing event, and the execution that starts with it
may end sleep-set blocked.  Here a race e_i / e_j adds the whole *wakeup
sequence* v = notdep(e_i).e_j (the events after e_i that do not happen after
it, then e_j) to the wakeup tree of the state before e_i, unless a weak
initial of v is already asleep there (v is then covered) or the tree already
holds a branch that v extends up to equivalence.  Following that sequence
reaches the reversed race without ever meeting only sleeping threads, so no
execution is sleep-set blocked and each explored execution is a different
Mazurkiewicz trace: exactly one execution per trace.

Weak initials.  p is a weak initial of v after E if either p's first event
in v has no happens-before predecessor in v, or p does not occur in v and its
next event is independent of every event of v.  Insertion walks the tree from
the root: a child whose event is a weak initial of the remaining sequence is
entered (the event removed from the sequence if it occurs in it); a leaf so
reached means v is already covered; where no child fits, the rest of v is
added as a new branch (after the existing ones, so the order of exploration
is the order of insertion).

Where the theory's premise fails.  Optimality assumes the dependency
relation also captures every "this step enables that one"; the kernel
layer's is coarser in places (a mutex_lock that a sleeping thread's
exploration already covers, seen on pfncache.shinfo_evtchn).  A wakeup
sequence may then meet a sleeping or disabled thread; :meth:`_repair` keeps
the search sound (as source DPOR would) at the price of a few blocked or
repeated executions (``forced_misses`` counts them): on
pfncache.shinfo_evtchn[seed-final] 4,951 executions for 4,912 traces and 7
blocked, against source DPOR's 4,912 and 174 blocked.  On the conformance
corpora and the POPL'14 benchmarks there are none (tests).

nondet() choices.  A thread's pending choice with outcomes 0..n-1 behaves as
n different events of that thread (independent of everything else).  A
state whose chosen step is a choice explores all its outcomes one after the
other before any other branch, and the thread joins the sleep set only once
all of them are done (a sleeping thread stands for every continuation of
it).  A choice never races, so no wakeup sequence is ever inserted at such a
state.

Open choices (ops.OPEN).  A weak memory model's read is a choice whose outcomes
grow while its subtree is explored: a write performed later in an execution
through that state may be read by it (kernel/barrier.py, after GenMC's
revisits).  :meth:`add_outcome` queues such an outcome at the state of the
current path where the choice was made, after the outcomes already queued
there and before any other thread's branch; each value is queued once per
state (``extra``), so the prefix and value name one branch, as for any choice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvmcheck._engine.clock import Clock, vc_get
from kvmcheck._engine.finding import Nondeterminism
from kvmcheck._engine.ops import OPEN
from kvmcheck._engine.strategies.dpor import Dpor

if TYPE_CHECKING:
    from kvmcheck._engine.execution import Execution
    from kvmcheck._engine.ops import Op


class _WNode:
    """A node of a wakeup tree: one event (thread, choice outcome, op) and its continuations."""

    __slots__ = ("children", "op", "tid", "value")

    def __init__(self, tid: int, value: int, op: Op, children: list[_WNode] | None = None) -> None:
        self.tid = tid
        self.value = value
        self.op = op
        self.children: list[_WNode] = children if children is not None else []


class _ONode:
    """The state before one step of the current path."""

    __slots__ = (
        "branch_start",
        "chosen",
        "done",
        "enabled",
        "extra",
        "finished",
        "finished_runs",
        "pending",
        "sleep",
        "value",
        "wut",
    )

    def __init__(
        self,
        chosen: int,
        value: int,
        enabled: list[int],
        pending: dict[int, Op],
        sleep: dict[int, Op],
        wut: list[_WNode],
    ) -> None:
        self.chosen = chosen  # the thread of the branch explored now
        self.value = value  # its choice outcome (when its op is a nondet() choice)
        self.enabled = enabled
        self.pending = pending  # each live thread's announced op in this state
        self.sleep = sleep  # inherited sleep set: thread -> op
        self.done: set[int] = set()  # threads whose every branch here is explored
        self.wut = wut  # the wakeup tree of branches still to explore, in order
        self.extra: set[int] = set()  # outcomes added to an open choice here (add_outcome)
        # for the estimate: executions under the branches finished here, and where the
        # current branch started (a count of finished executions)
        self.finished = 0
        self.finished_runs = 0
        self.branch_start = 0


# An event of a wakeup sequence, taken from the current execution:
# (thread, choice outcome or -1, op, its vector clock)
_Ev = tuple[int, int, "Op", Clock]


class OptimalDpor(Dpor):
    name = "dpor"
    exhaustive = True

    def __init__(self) -> None:
        super().__init__()
        self.ostack: list[_ONode] = []
        self.forced: list[_WNode] = []  # the wakeup subtree the next new state starts with
        self.forced_misses = 0  # a forced step that was not possible (see _repair)
        self._pending_now: dict[int, Op] = {}
        self.fallbacks = 0  # races whose wakeup sequence cannot start here (see _add_source)
        self._runs = 0  # executions finished (blocked ones included)
        # What prefix() returns, kept up to date as the path changes (not rebuilt per execution):
        # the chosen thread of each node of ostack, and the choice outcome of each choice node.
        self._pfx: list[int] | None = None
        self._pvals: dict[int, int] = {}
        # States above this depth are a fixed path (a job of a parallel search, parallel.py):
        # no branch is explored there and races whose first event is there are dropped.
        self.floor = 0

    def describe(self) -> str:
        return "dpor (optimal: wakeup trees + sleep sets)"

    # -- choosing ---------------------------------------------------------------
    def prefix(self) -> tuple[list[int], dict[int, int]]:
        d = len(self.ev_tid)
        pfx = self._pfx
        if pfx is None or len(pfx) != len(self.ostack):  # first use (or after restore): build it
            pfx = self._pfx = [n.chosen for n in self.ostack]
            self._pvals = {i: n.value for i, n in enumerate(self.ostack) if self._is_choice(n, n.chosen)}
        return pfx[:d], {i: v for i, v in self._pvals.items() if i < d}

    @staticmethod
    def _is_choice(node: _ONode, tid: int) -> bool:
        op = node.pending.get(tid)
        return op is not None and op.choices > 0

    def choose(self, ex: Execution, enabled: list[int]) -> int | None:
        depth = len(ex.schedule)
        stack = self.ostack
        if depth < len(stack):
            t = stack[depth].chosen
            if t not in enabled:
                raise Nondeterminism(
                    f"step {depth}: thread {t} was enabled in an earlier run with the same "
                    f"prefix but is not now (enabled: {enabled}); the model is not deterministic"
                )
            return t
        sleep = self._osleep(stack[-1]) if stack else {}
        forced, self.forced = self.forced, []
        pending = {t.tid: t.pending for t in ex.threads if t.pending is not None}
        self._pending_now = pending
        if forced and (forced[0].tid not in enabled or forced[0].tid in sleep):
            forced = self._repair(forced, enabled, sleep)
        if forced:
            first, rest = forced[0], forced[1:]
            node = _ONode(first.tid, first.value, enabled, pending, sleep, rest)
            node.branch_start = self._runs
            self.forced = first.children
        else:
            cands = [t for t in enabled if t not in sleep]
            if not cands:
                self.blocked += 1
                return None
            last = ex.schedule[-1] if ex.schedule else 0
            pick = last if last in cands else cands[0]
            node = _ONode(pick, 0, enabled, pending, sleep, [])
            node.branch_start = self._runs
        op = pending[node.chosen]
        if op.choices:  # every other outcome of this choice comes next, before any other branch
            others = [w for w in node.wut if w.tid == node.chosen]
            have = {w.value for w in others} | {node.value}
            others += [_WNode(node.chosen, v, op) for v in range(op.choices) if v not in have]
            others.sort(key=lambda w: w.value)
            node.wut = others + [w for w in node.wut if w.tid != node.chosen]
        stack.append(node)
        if self._pfx is not None:
            self._pfx.append(node.chosen)
            if op.choices:
                self._pvals[len(stack) - 1] = node.value
        return node.chosen

    def choose_value(self, ex: Execution, n: int) -> int:
        return self.ostack[len(ex.schedule)].value

    def add_outcome(self, ex: Execution, step: int, value: int) -> bool:
        if step < self.floor or step >= len(self.ostack):
            return False  # a parallel job's fixed path (parallel.py): not this search's to branch
        node = self.ostack[step]
        op = node.pending[node.chosen]
        if op.arg != OPEN:
            return False
        if value in node.extra or value == node.value:
            return True
        node.extra.add(value)
        k = 0
        while k < len(node.wut) and node.wut[k].tid == node.chosen:
            k += 1
        node.wut.insert(k, _WNode(node.chosen, value, op))
        return True

    def _repair(self, forced: list[_WNode], enabled: list[int], sleep: dict[int, Op]) -> list[_WNode]:
        """The wakeup subtree to follow here when its first branch cannot be taken.

        Not in the theory (a wakeup sequence never meets a sleeping or disabled thread);
        it happens where the dependency relation misses that one step enables another.
        A branch whose thread is asleep is covered by the sleeping thread's exploration
        (sleep-set soundness): drop it.  A branch whose thread is disabled is replaced
        by every enabled thread not asleep, as source DPOR does.  The other branches stay.
        """
        self.forced_misses += 1
        keep = [w for w in forced if w.tid in enabled and w.tid not in sleep]
        if any(w.tid not in enabled for w in forced):
            have = {w.tid for w in keep}
            keep += [_WNode(t, 0, self._pending_op(t)) for t in enabled if t not in sleep and t not in have]
        return keep

    def _pending_op(self, t: int) -> Op:
        op = self._pending_now[t]
        assert op is not None
        return op

    @staticmethod
    def _osleep(parent: _ONode) -> dict[int, Op]:
        chosen_op = parent.pending[parent.chosen]
        sleep = {q: op for q, op in parent.sleep.items() if not op.dependent(chosen_op)}
        for q in parent.done:
            if q != parent.chosen:
                op = parent.pending[q]
                if not op.dependent(chosen_op):
                    sleep[q] = op
        return sleep

    # -- races become wakeup sequences ------------------------------------------------
    def _add_source(self, i: int, j: int, tid: int, cj: Clock) -> None:
        if i < self.floor:
            return  # the path above the floor is someone else's (parallel.py)
        node = self.ostack[i]
        ev_tid = self.ev_tid
        ev_clock = self.ev_clock
        ops = self._ex.ops
        values = self._ex.values
        qi = ev_tid[i]
        vi = ev_clock[i][qi]
        v: list[_Ev] = []
        for k in range(i + 1, j):
            ck = ev_clock[k]
            if vi <= vc_get(ck, qi):
                continue  # happens after e_i: not in notdep(e_i)
            tk = ev_tid[k]
            v.append((tk, values.get(k, -1), ops[k], ck))
        v.append((tid, -1, self._ej_op, cj))
        # covered already if a sleeping thread (or a fully explored one) is a weak initial
        for q, op in node.sleep.items():
            if _weak_initial(q, -1, op, v) is not None:
                return
        for q in node.done:
            if q != node.chosen and _weak_initial(q, -1, node.pending[q], v) is not None:
                return
        starts = {t for t, _, _, _ in v if _weak_initial(t, -1, node.pending.get(t, v[0][2]), v) is not None}
        if not starts & set(node.enabled):
            # No event of v can go first here (a cpu_relax() rule the dependency relation
            # does not see): do what source DPOR does -- every enabled thread not explored
            # or asleep becomes a branch.  Sound; may cost a blocked execution.
            self.fallbacks += 1
            have = {w.tid for w in node.wut} | node.done | {node.chosen} | set(node.sleep)
            for t in node.enabled:
                if t not in have:
                    op = node.pending[t]
                    node.wut.append(_WNode(t, 0, op))
            return
        _insert(node.wut, v)

    # -- the estimate ---------------------------------------------------------------
    def estimate(self) -> float | None:
        """An estimate of the number of executions of the whole search.

        The executions run so far, plus, at every state of the current path, the branches
        still waiting in its wakeup tree times the mean size of the branches already finished
        there (or, where none has finished yet, the size of the current one so far), and what
        the current branch still lacks of that mean -- Knuth's
        idea of estimating a tree from the subtrees measured, with sibling subtrees as the
        sample.  It firms up as the search proceeds: branches appear as races are found.
        """
        if not self._runs:
            return None
        total = float(self._runs)
        for node in self.ostack:
            current = self._runs - node.branch_start  # executions of the current branch so far
            if node.finished:
                mean = node.finished_runs / node.finished
                total += max(0.0, mean - current)  # what the current branch has still to run
            else:
                mean = float(max(1, current))
            total += len(node.wut) * mean
        return total

    # -- between executions -------------------------------------------------------
    def next_execution(self) -> bool:
        self._runs += 1
        stack = self.ostack
        while len(stack) > self.floor:
            node = stack[-1]
            if node.wut:
                node.finished += 1
                node.finished_runs += self._runs - node.branch_start
                node.branch_start = self._runs
                nxt = node.wut.pop(0)
                if nxt.tid != node.chosen:
                    node.done.add(node.chosen)
                node.chosen = nxt.tid
                node.value = nxt.value
                if self._pfx is not None:
                    i = len(stack) - 1
                    self._pfx[i] = nxt.tid
                    if self._is_choice(node, nxt.tid):
                        self._pvals[i] = nxt.value
                    else:
                        self._pvals.pop(i, None)
                self.forced = nxt.children
                self._rollback(len(stack) - 1)
                return True
            node.done.add(node.chosen)
            stack.pop()
            if self._pfx is not None:
                self._pfx.pop()
                self._pvals.pop(len(stack), None)
        return False


def _weak_initial(tid: int, value: int, op: Op, v: list[_Ev]) -> int | None:
    """Is (tid, value) a weak initial of ``v``?  The index of its event in ``v`` if it occurs
    there, -1 if it does not occur but is independent of all of ``v``; None if it is not one.

    ``value`` -1 matches any outcome (a sleeping thread stands for all of them)."""
    for m, (t, val, _, c) in enumerate(v):
        if t != tid:
            continue
        if value != -1 and val != -1 and val != value:
            return None  # its first event in v is another outcome of the choice
        for a in range(m):
            ta, _, _, ca = v[a]
            if ca[ta] <= vc_get(c, ta):
                return None  # an earlier event of v happens before it
        return m
    for _, _, o, _ in v:
        if op.dependent(o):
            return None
    return -1


def _insert(root: list[_WNode], v: list[_Ev]) -> None:
    """Insert the wakeup sequence ``v`` into the tree whose top-level branches are ``root``."""
    children = root
    while True:
        for child in children:
            m = _weak_initial(child.tid, child.value, child.op, v)
            if m is None:
                continue
            if not child.children:
                return  # a leaf: exploring it will wake up the rest of v
            if m >= 0:
                v = v[:m] + v[m + 1 :]
            if not v:
                return
            children = child.children
            break
        else:
            children.extend(_chain(v))
            return


def _chain(v: list[_Ev]) -> list[_WNode]:
    node: _WNode | None = None
    for t, val, op, _ in reversed(v):
        node = _WNode(t, max(val, 0), op, [node] if node is not None else [])
    return [node] if node is not None else []


# -- checkpoints ------------------------------------------------------------------------
# What the search needs of an op after its execution has gone: its dependency signature
# (Op.dependent reads key, excl, key2 and whether arg is "relax") and its choice count.
_Sig = tuple[int, bool, int, "str | None", int, str]


def _sig(op: Op) -> _Sig:
    return (op.key, op.excl, op.key2, op.arg if isinstance(op.arg, str) else None, op.choices, op.name)


def _unsig(sig: _Sig) -> Op:
    from kvmcheck._engine.ops import Op

    key, excl, key2, arg, choices, name = sig
    op = Op(key, excl, name, None, arg, key2)
    op.choices = choices
    return op


_Tree = list[tuple[int, int, _Sig, "_Tree"]]


def _save_tree(nodes: list[_WNode]) -> _Tree:
    return [(w.tid, w.value, _sig(w.op), _save_tree(w.children)) for w in nodes]


def _load_tree(saved: _Tree) -> list[_WNode]:
    return [_WNode(t, v, _unsig(sig), _load_tree(ch)) for t, v, sig, ch in saved]


def snapshot(d: OptimalDpor) -> dict[str, object]:
    """The search's state between two executions, as plain data (see :func:`restore`)."""
    return {
        "nodes": [
            {
                "chosen": n.chosen,
                "value": n.value,
                "enabled": list(n.enabled),
                "pending": {t: _sig(op) for t, op in n.pending.items()},
                "sleep": {t: _sig(op) for t, op in n.sleep.items()},
                "done": sorted(n.done),
                "wut": _save_tree(n.wut),
                "extra": sorted(n.extra),
                "finished": n.finished,
                "finished_runs": n.finished_runs,
                "branch_start": n.branch_start,
            }
            for n in d.ostack
        ],
        "forced": _save_tree(d.forced),
        "runs": d._runs,
        "blocked": d.blocked,
        "forced_misses": d.forced_misses,
        "fallbacks": d.fallbacks,
    }


def restore(state: dict[str, object]) -> OptimalDpor:
    """A search that goes on from ``state``.  Its next execution re-runs the saved path
    from the start (recording every event again: a race found again is already in the
    tree, or its branch already done, so nothing is explored twice)."""
    d = OptimalDpor()
    for saved in state["nodes"]:  # type: ignore[attr-defined]
        n = _ONode(
            saved["chosen"],
            saved["value"],
            list(saved["enabled"]),
            {t: _unsig(sig) for t, sig in saved["pending"].items()},
            {t: _unsig(sig) for t, sig in saved["sleep"].items()},
            _load_tree(saved["wut"]),
        )
        n.done = set(saved["done"])
        n.extra = set(saved.get("extra", ()))
        n.finished = saved["finished"]
        n.finished_runs = saved["finished_runs"]
        n.branch_start = saved["branch_start"]
        d.ostack.append(n)
    d.forced = _load_tree(state["forced"])  # type: ignore[arg-type]
    d._runs = state["runs"]  # type: ignore[assignment]
    d.blocked = state["blocked"]  # type: ignore[assignment]
    d.forced_misses = state["forced_misses"]  # type: ignore[assignment]
    d.fallbacks = state["fallbacks"]  # type: ignore[assignment]
    return d
