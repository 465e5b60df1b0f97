"""The whole contract between the exploration loop and a search strategy.

One exploration runs executions one after another; each re-runs the
scenario from the start.  In each execution the scheduler asks the strategy
which enabled thread takes the next step (``choose``) and, when that step is
a ``nondet()`` choice, which outcome it has (``choose_value``); it tells the
strategy about every step just before it takes effect (``on_event``) and,
when a run ends with live threads none of which can go on, about their
pending operations (``on_blocked``).  Between executions the loop asks
``next_execution`` whether there is more to explore.

Call order, per execution::

    choose -> [choose_value] -> on_event   (per step)
    [on_blocked]                           (once, if the run ends blocked)
    next_execution                         (once, after the run)

A strategy that is ``exhaustive`` promises that ``next_execution()``
returning False means every behaviour (up to its reduction) has been run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from kvmcheck._engine.execution import Execution
    from kvmcheck._engine.ops import Op


@runtime_checkable
class Strategy(Protocol):
    name: str
    exhaustive: bool  # may next_execution() == False be called "complete"?
    blocked: int  # executions abandoned by the search (sleep-set blocked)

    def describe(self) -> str:
        """What the search is, for the coverage line ("dpor (optimal: wakeup trees)")."""
        ...

    def coverage_note(self) -> str:
        """An extra clause for a bounded result (e.g. PCT's probabilistic guarantee), or ""."""
        ...

    def prefix(self) -> tuple[list[int], dict[int, int]]:
        """The steps the next execution replays from an earlier one: the thread of each, and
        the outcome of each choice step among them.  Asked once as an execution starts; those
        steps are granted without calling ``choose``, ``choose_value`` or ``on_event`` (the
        strategy saw them when they were first run)."""
        ...

    def choose(self, ex: Execution, enabled: list[int]) -> int | None:
        """The thread (one of ``enabled``) to run next, or None to abandon this execution."""
        ...

    def choose_value(self, ex: Execution, n: int) -> int:
        """The outcome (0 <= v < n) of the nondet() choice the step being granted makes."""
        ...

    def on_event(self, ex: Execution, tid: int, op: Op) -> None:
        """Called just before the chosen thread's operation takes effect."""
        ...

    def add_outcome(self, ex: Execution, step: int, value: int) -> bool:
        """Explore outcome ``value`` of the open choice (ops.OPEN) at ``step`` of the current
        path too, once what is under it now is done; False when this strategy cannot."""
        ...

    def on_blocked(self, ex: Execution, tids: list[int]) -> None:
        """The run ended with these threads live but none enabled (before the deadlock report)."""
        ...

    def next_execution(self) -> bool:
        """Prepare the next execution; False when there is nothing left to explore."""
        ...

    def estimate(self) -> float | None:
        """An estimate of the executions the whole search needs (None if the strategy has none)."""
        ...


class StrategyBase:
    """Defaults for the optional parts of the contract; strategies subclass it."""

    name = "?"
    exhaustive = False

    def __init__(self) -> None:
        self.blocked = 0

    def describe(self) -> str:
        return self.name

    def coverage_note(self) -> str:
        return ""

    def prefix(self) -> tuple[list[int], dict[int, int]]:
        return [], {}

    def choose_value(self, ex: Execution, n: int) -> int:
        return 0

    def on_event(self, ex: Execution, tid: int, op: Op) -> None:
        pass

    def on_blocked(self, ex: Execution, tids: list[int]) -> None:
        pass

    def add_outcome(self, ex: Execution, step: int, value: int) -> bool:
        return False  # only a search that enumerates the path's choices can (optimal.py)

    def estimate(self) -> float | None:
        return None
