"""Random walk: at each step pick an enabled thread uniformly at random (seeded)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from kvmcheck._engine.strategy import StrategyBase

if TYPE_CHECKING:
    from kvmcheck._engine.execution import Execution
    from kvmcheck._engine.ops import Op


class RandomWalk(StrategyBase):
    name = "random"
    exhaustive = False

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.blocked = 0

    def describe(self) -> str:
        return "random walk"

    def choose(self, ex: Execution, enabled: list[int]) -> int | None:
        return enabled[self.rng.randrange(len(enabled))]

    def choose_value(self, ex: Execution, n: int) -> int:
        return self.rng.randrange(n)

    def on_event(self, ex: Execution, tid: int, op: Op) -> None:
        pass

    def next_execution(self) -> bool:
        return True
