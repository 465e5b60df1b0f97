"""A result with what the report needs around it: the target it is of, its expectation, the
command that replays it, the confirmed counterexample (with its shrink statistics), whether it
came from the failure database.  Built by the run pipeline (``kvmcheck/run.py``); read by the reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kvmcheck._engine.check import Result
    from kvmcheck._engine.confirm import Counterexample
    from kvmcheck._engine.scenario import Scenario
    from kvmcheck._engine.target import Target


@dataclass(frozen=True)
class Checked:
    target: Target  # as checked: under the memory model the run asked for
    result: Result
    counterexample: Counterexample | None = None  # the finding confirmed (traced, minimised)
    from_db: bool = False  # the saved counterexample was replayed first

    @property
    def scenario(self) -> Scenario:
        return self.target.scenario

    @property
    def variant(self) -> str | None:
        return self.target.variant

    @property
    def expected(self) -> str | None:
        e = self.scenario.expect
        return e.get(self.variant) if self.variant in e else e.get(None)

    @property
    def as_expected(self) -> bool:
        """The verdict its ``expect=`` declares; with none, no bug (as the pytest plugin says)."""
        if self.expected is None:
            return self.result.verdict != "bug"
        return self.expected == self.result.verdict

    def replay_command(self) -> str | None:
        f = self.result.finding
        if f is None:
            return None
        v = f" --variant {self.variant}" if self.variant else ""
        mm = self.target.memory_model  # a weak-memory run replays under its model
        m = f" --memory-model {mm}" if mm != "sc" else ""
        return f"kvmcheck replay {self.target.locator()}{v}{m} '{f.schedule}'"
