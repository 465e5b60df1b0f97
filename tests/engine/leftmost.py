"""A toy search strategy, added the way every strategy is (see _engine/registry.py): this file,
and one line registering it.  One execution, always the lowest-numbered thread that can go."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvmcheck._engine.strategy import StrategyBase

if TYPE_CHECKING:
    from kvmcheck._engine.execution import Execution


class Leftmost(StrategyBase):
    name = "leftmost"
    exhaustive = False  # one schedule of many: never "complete"

    def choose(self, ex: Execution, enabled: list[int]) -> int | None:
        return min(enabled)

    def next_execution(self) -> bool:
        return False
