"""The traced replay of a search's finding: its trace, with each step's value, and its report.

The search runs untraced (fast); once it has a finding, its schedule is run once more with
tracing on.  That run gives the trace (sites, held locks, stacks, and the value each step read
or wrote: the kernel layer puts it there), and the report's own text: the kernel layer names a
report's sites only when tracing.  The search just ran this schedule, so a replay that goes
otherwise, or does not report the same kind, means the model is nondeterministic.
"""

from __future__ import annotations

from dataclasses import replace

from kvmcheck._engine.explore import replay_runs
from kvmcheck._engine.finding import Finding, Nondeterminism, ScheduleMismatch
from kvmcheck._engine.target import Target


def traced(target: Target, finding: Finding, max_steps: int, kcsan: bool) -> Finding:
    """``finding`` with its trace and its report as a traced replay of its schedule shows them."""
    try:
        replayed = replay_runs(target.body(), finding.schedule, max_steps, tracing=True, kcsan=kcsan)
    except ScheduleMismatch as e:  # the search just ran this schedule: the model is not deterministic
        if isinstance(e, Nondeterminism):
            raise
        why = str(e).split("; the model changed")[0]  # within one check: it did not change
        raise Nondeterminism(
            "the model is nondeterministic: it depends on something the checker does not control "
            f"(random, time, state kept across executions): the search saw {finding.kind} with "
            f"schedule {finding.schedule!r}, and a replay of it went otherwise ({why})"
        ) from None
    if replayed is None:
        return finding
    again = next((f for f in replayed.findings + replayed.soft if f.kind == finding.kind), None)
    if again is None:  # the same steps, and no report: what the search saw depended on something else
        raise Nondeterminism(
            "the model is nondeterministic: it depends on something the checker does not control "
            f"(random, time, state kept across executions): the search saw {finding.kind} "
            f"({finding.message}) with schedule {finding.schedule!r}, and a replay of it did not"
        )
    return replace(
        finding,
        trace=tuple(replayed.steps),
        message=again.message,
        headline=again.headline,
        details=again.details,
        step=again.step,
    )
