"""What one check is of: a scenario and one of its variants, and where it was loaded from.

Every path that runs a scenario body -- the search, parallel workers and Ray tasks, the traced
replay, minimisation, the determinism probe -- gets it from :meth:`Target.body`, so a variant
is turned into a runnable body in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kvmcheck._engine.scenario import Scenario


@dataclass(frozen=True)
class Target:
    scenario: Scenario
    variant: str | None = None
    # the model file the scenario was loaded from (``FILE.py``); None for a bundled scenario
    origin: str | None = None

    @property
    def name(self) -> str:
        """``scenario[variant]``, as reports and progress lines name a pair."""
        return self.scenario.name + (f"[{self.variant}]" if self.variant else "")

    @property
    def memory_model(self) -> str:
        return self.scenario.memory_model

    def body(self) -> Callable[[], Any]:
        """The scenario's body for this variant, under the scenario's memory model."""
        return self.scenario.body(self.variant)

    def locator(self) -> str:
        """What ``kvmcheck replay`` takes to find it again: ``FILE.py::SCENARIO`` or the bundled name."""
        return f"{self.origin}::{self.scenario.name}" if self.origin else self.scenario.name

    def under(self, memory_model: str | None) -> Target:
        """This target run under ``memory_model`` (itself for None or its own model)."""
        if memory_model is None:
            return self
        s = self.scenario.under(memory_model)
        return self if s is self.scenario else Target(s, self.variant, self.origin)
