"""Preemption bounding by iterative deepening (Musuvathi & Qadeer, "Iterative
context bounding for systematic testing of multithreaded programs", PLDI 2007).

Round b explores, depth first, every schedule with at most b preemptions (a
switch away from a thread that could have continued).  Rounds go 0, 1, 2, ...
so the first counterexample found has the fewest preemptions.  A round that
never had to cut a schedule at the bound has covered everything: the search
is then complete.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvmcheck._engine.strategy import StrategyBase

if TYPE_CHECKING:
    from kvmcheck._engine.execution import Execution
    from kvmcheck._engine.ops import Op


class _Node:
    __slots__ = ("alts", "costs", "i", "vals")

    def __init__(self, alts: list[int], costs: list[int], vals: list[int]) -> None:
        self.alts = alts
        self.costs = costs  # preemptions used so far, if alts[k] is chosen
        self.vals = vals  # the nondet() outcome of alts[k] (0 when its op is no choice)
        self.i = 0


class Bounded(StrategyBase):
    name = "bounded"
    exhaustive = True

    def __init__(self, max_bound: int | None = None) -> None:
        self.bound = 0
        self.max_bound = max_bound
        self.stack: list[_Node] = []
        self.cut = False  # did this round cut any schedule at the bound?
        self.blocked = 0
        self.bound_reached = 0

    def describe(self) -> str:
        return f"preemption bounding (bound {self.bound})"

    def coverage_note(self) -> str:
        return f"no bug with up to {self.bound_reached} preemption(s)"

    def choose(self, ex: Execution, enabled: list[int]) -> int | None:
        depth = len(ex.schedule)
        if depth < len(self.stack):
            node = self.stack[depth]
            return node.alts[node.i]
        used = self.stack[-1].costs[self.stack[-1].i] if self.stack else 0
        last = ex.schedule[-1] if ex.schedule else None
        if last in enabled:
            order = [last] + [t for t in enabled if t != last]
            costs = [used] + [used + 1] * (len(order) - 1)
        else:
            order, costs = list(enabled), [used] * len(enabled)
        keep = [k for k, c in enumerate(costs) if c <= self.bound]
        if len(keep) < len(order):
            self.cut = True
        alts: list[int] = []
        alt_costs: list[int] = []
        vals: list[int] = []
        for k in keep:
            op = ex.threads[order[k]].pending
            for v in range(max(1, op.choices if op is not None else 0)):
                alts.append(order[k])
                alt_costs.append(costs[k])
                vals.append(v)
        node = _Node(alts, alt_costs, vals)
        self.stack.append(node)
        return node.alts[0]

    def choose_value(self, ex: Execution, n: int) -> int:
        node = self.stack[len(ex.schedule)]
        return node.vals[node.i]

    def on_event(self, ex: Execution, tid: int, op: Op) -> None:
        pass

    def next_execution(self) -> bool:
        self.bound_reached = self.bound
        while self.stack:
            node = self.stack[-1]
            if node.i + 1 < len(node.alts):
                node.i += 1
                return True
            self.stack.pop()
        if not self.cut:
            return False  # nothing was cut: every schedule has been run
        if self.max_bound is not None and self.bound >= self.max_bound:
            self.exhaustive = False  # stopped at the bound, not complete
            return False
        self.bound += 1
        self.cut = False
        return True
