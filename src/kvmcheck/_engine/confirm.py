"""A search's finding made into the counterexample the report shows, once, then frozen.

After the search finds a bug, :func:`confirm` does what is left, in one place:

* the traced replay of the finding's schedule (``traced.py``): the trace with each step's
  value (the kernel layer puts it on the step), the report's sites, and the check that the
  model is deterministic (a replay that goes otherwise is a :class:`Nondeterminism`);
* the minimisation (``minimise.py``): fewest preemptions, then fewest steps, same finding,
  within its budget of candidates; its final replay is traced, so its steps carry values too.

The :class:`Counterexample` it returns is frozen: the finding, its schedule, its steps with
their values, and what the minimisation did.  Rendering reads it and never runs the model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from kvmcheck._engine import guard
from kvmcheck._engine.minimise import Shrink, minimise
from kvmcheck._engine.traced import traced

if TYPE_CHECKING:
    from kvmcheck._engine.check import Result
    from kvmcheck._engine.finding import Finding, Step
    from kvmcheck._engine.settings import Settings
    from kvmcheck._engine.target import Target


@dataclass(frozen=True)
class Counterexample:
    """A finding with its schedule and traced steps (each with its value), and how it was shrunk."""

    finding: Finding
    schedule: str  # replays it: ``kvmcheck replay TARGET 'SCHEDULE'``
    steps: tuple[Step, ...]  # the traced run; ``step.value`` is what it read or wrote
    shrink: Shrink | None = None  # None: not minimised (``shrink=False``, a saved or replayed one)

    @staticmethod
    def of(finding: Finding, shrink: Shrink | None = None) -> Counterexample:
        """The counterexample of a finding that already has its trace."""
        return Counterexample(finding, finding.schedule, finding.trace, shrink)


def confirm(target: Target, result: Result, settings: Settings, *, shrink: bool = True) -> Counterexample:
    """``result``'s finding replayed with tracing on (unless it has its trace already, as
    ``check()``'s has), minimised when ``shrink``, as a frozen :class:`Counterexample`."""
    f = result.finding
    if f is None:
        raise ValueError("confirm() needs a result with a finding")
    target, settings = settings.resolve(target)
    kcsan = settings.kcsan_on
    if not f.trace:
        with guard.watching(None, settings.step_timeout_s):
            f = traced(target, f, settings.max_steps, kcsan)
    if not shrink:
        return Counterexample.of(f)
    shrunk = minimise(
        target.scenario,
        replace(result, finding=f),
        max_steps=settings.max_steps,
        kcsan=kcsan,
        step_timeout_s=settings.step_timeout_s,
    )
    found = shrunk.result.finding
    assert found is not None
    return Counterexample.of(found, shrunk.shrink)
