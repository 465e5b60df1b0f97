"""Replay one schedule exactly; a schedule that no longer fits is an error naming the step."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kvmcheck._engine.finding import ScheduleMismatch
from kvmcheck._engine.ops import OPEN
from kvmcheck._engine.strategy import StrategyBase

if TYPE_CHECKING:
    from kvmcheck._engine.execution import Execution
    from kvmcheck._engine.ops import Op


class Replay(StrategyBase):
    name = "replay"
    exhaustive = False

    def __init__(self, tids: list[int], values: dict[int, int] | None = None) -> None:
        self.tids = tids
        self.values = values or {}
        self.blocked = 0

    def describe(self) -> str:
        return "replay"

    def choose(self, ex: Execution, enabled: list[int]) -> int | None:
        step = len(ex.schedule)
        if step >= len(self.tids):
            raise ScheduleMismatch(
                f"schedule ended after {step} steps but the execution goes on "
                f"(runnable threads: {enabled}); the model changed since the schedule was recorded"
            )
        t = self.tids[step]
        if t not in enabled:
            raise ScheduleMismatch(
                f"schedule diverged at step {step}: thread {t} is not runnable there "
                f"(runnable: {enabled}); the model changed since the schedule was recorded"
            )
        return t

    def choose_value(self, ex: Execution, n: int) -> int:
        step = len(ex.schedule)
        v = self.values.get(step)
        op = ex.threads[self.tids[step]].pending
        if op is not None and op.arg == OPEN and v is not None and v >= n:
            return v  # an outcome a revisit added to an open choice (ops.OPEN)
        if v is None or not 0 <= v < n:
            raise ScheduleMismatch(
                f"schedule diverged at step {step}: it is a choice among {n} outcomes there "
                f"but the schedule gives {'none' if v is None else v}; the model changed since "
                "the schedule was recorded"
            )
        return v

    def on_event(self, ex: Execution, tid: int, op: Op) -> None:
        pass

    def next_execution(self) -> bool:
        return False
