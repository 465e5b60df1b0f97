"""PCT: probabilistic concurrency testing.

Burckhardt, Kothari, Musuvathi, Nagarakatte: "A randomized scheduler with
probabilistic guarantees of finding bugs", ASPLOS 2010.  Each thread gets a
random distinct priority; d-1 change points are drawn uniformly among the k
steps of a run; at the i-th change point the running thread drops to
priority i (below every initial one).  The highest-priority enabled thread
always runs.  A bug of depth d is found by one execution with probability at
least 1 / (n * k^(d-1)) for n threads and k steps.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from kvmcheck._engine.strategy import StrategyBase

if TYPE_CHECKING:
    from kvmcheck._engine.execution import Execution
    from kvmcheck._engine.ops import Op


class Pct(StrategyBase):
    name = "pct"
    exhaustive = False

    def __init__(self, seed: int, depth: int = 3) -> None:
        self.rng = random.Random(seed)
        self.depth = depth
        self.blocked = 0
        self.max_threads = 2
        self.max_steps = 16  # grows with the longest run seen (k)
        self._new_run()

    def _new_run(self) -> None:
        self.prio: dict[int, float] = {}
        k = self.max_steps
        self.change_points = set(self.rng.sample(range(1, k + 1), min(self.depth - 1, k)))
        self.step = 0

    def describe(self) -> str:
        return f"pct (depth {self.depth})"

    def coverage_note(self) -> str:
        return self.guarantee()

    def guarantee(self) -> str:
        n, k, d = self.max_threads, self.max_steps, self.depth
        p = 1.0 / (n * k ** (d - 1))
        return f"each execution finds a depth-{d} bug with probability >= 1/({n}*{k}^{d - 1}) = {p:.2e}"

    def choose(self, ex: Execution, enabled: list[int]) -> int | None:
        for t in enabled:
            if t not in self.prio:
                self.prio[t] = self.depth + self.rng.random()  # initial priorities above d
        self.step += 1
        best = max(enabled, key=lambda t: self.prio[t])
        if self.step in self.change_points:
            self.prio[best] = self.depth - len([c for c in self.change_points if c <= self.step])
            best = max(enabled, key=lambda t: self.prio[t])
        return best

    def choose_value(self, ex: Execution, n: int) -> int:
        return self.rng.randrange(n)

    def on_event(self, ex: Execution, tid: int, op: Op) -> None:
        pass

    def next_execution(self) -> bool:
        self.max_steps = max(self.max_steps, self.step)
        self.max_threads = max(self.max_threads, len(self.prio))
        self._new_run()
        return True
