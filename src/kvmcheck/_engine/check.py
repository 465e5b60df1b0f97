"""check(target, settings) and replay(target, schedule, settings): the engine's entry points over
the exploration loop (``explore.py``).  The public keyword forms are in ``api.py``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from kvmcheck._engine import checkpoint as ckpt
from kvmcheck._engine import guard, search
from kvmcheck._engine.explore import (
    PROGRESS_INTERVAL_S,
    Progress,
    earlier_warn,
    replay_runs,
    runtime_setup_hooks,
)
from kvmcheck._engine.finding import Finding
from kvmcheck._engine.search import Searched
from kvmcheck._engine.settings import DEFAULT_MAX_STEPS, DEFAULT_SAMPLES, STRATEGIES, Settings
from kvmcheck._engine.target import Target
from kvmcheck._engine.traced import traced

__all__ = [
    "DEFAULT_MAX_STEPS",
    "DEFAULT_SAMPLES",
    "PROGRESS_INTERVAL_S",
    "STRATEGIES",
    "Progress",
    "Result",
    "Settings",
    "Target",
    "check",
    "replay",
    "runtime_setup_hooks",
]


@dataclass
class Result:
    """What a check found, and what it covered."""

    scenario: str
    variant: str | None
    strategy: str
    verdict: str  # "ok" | "bounded" | "bug"
    complete: bool
    executions: int  # executions run to their end (or to a finding)
    blocked: int  # executions abandoned by the search (sleep-set blocked)
    steps: int
    elapsed_s: float
    finding: Finding | None
    coverage: str  # one sentence: what was covered
    warnings: list[Finding] = field(default_factory=list)  # other WARN-class reports seen
    estimated_total: float | None = None  # the strategy's estimate of the whole search's executions
    # the search could not finish as asked (a worker process died): the result is what was done
    # before; the command line prints it, then this line, and exits 2
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "variant": self.variant,
            "strategy": self.strategy,
            "verdict": self.verdict,
            "complete": self.complete,
            "executions": self.executions,
            "blocked": self.blocked,
            "steps": self.steps,
            "elapsed_s": round(self.elapsed_s, 4),
            "coverage": self.coverage,
            "estimated_total": None if self.estimated_total is None else round(self.estimated_total),
            "finding": self.finding.as_dict() if self.finding else None,
            "warnings": [
                {"kind": w.kind, "headline": w.headline, "message": w.message} for w in self.warnings
            ],
        }


def check(
    target: Target, settings: Settings, on_progress: Callable[[Progress], None] | None = None
) -> Result:
    """Explore ``target`` as ``settings`` say and return a :class:`Result` -- the engine's one
    entry point (``kvmcheck.check(scn, strategy=..., ...)`` builds both and calls it).

    What ``settings`` leave to the scenario is decided first (:meth:`Settings.resolve`); the
    resolved settings go down unchanged to the search (``search.choose``: serial, parallel or
    auto), its worker processes and Ray tasks.  ``on_progress`` is called with a
    :class:`Progress` at most ~5 times a second and once at the end.  See
    :func:`kvmcheck.check` for what each setting does.
    """
    target, settings = settings.resolve(target)
    if settings.checkpoint is not None:
        ckpt.probe(settings.checkpoint)  # now, not when the search has run to its bound
    t0 = time.perf_counter()
    searched = search.choose(settings).run(target, settings, on_progress)
    if not searched.resumed:  # the time before the search (probes, auto's first part) counts too
        searched.explored.elapsed_s = max(searched.explored.elapsed_s, time.perf_counter() - t0)
    with guard.watching(None, settings.step_timeout_s):  # the traced replay: not cut short by max_seconds
        return replace(_result(target, settings, searched), error=searched.error)


def _result(target: Target, settings: Settings, searched: Searched) -> Result:
    s, variant, kcsan = target.scenario, target.variant, settings.kcsan_on
    seen = searched.explored
    complete = seen.exhausted and searched.exhaustive
    finding = seen.reported
    if finding is not None:
        finding = traced(target, replace(finding, scenario=s.name), settings.max_steps, kcsan)
    estimate = searched.estimate
    return Result(
        scenario=s.name,
        variant=variant,
        strategy=settings.strategy,
        verdict="bug" if finding is not None else "ok" if complete else "bounded",
        complete=complete and finding is None,
        executions=seen.executions,
        blocked=searched.blocked,
        steps=seen.steps,
        elapsed_s=seen.elapsed_s,
        finding=finding,
        coverage=_coverage(searched, seen.executions, complete, finding, seen.interrupted)
        + ("; seen first by a probe run (the split into jobs) and run again" if seen.by_probe else "")
        + (f"; {seen.checkpoint_error}" if seen.checkpoint_error else ""),
        warnings=[
            w
            for w in seen.warnings.values()
            if finding is None or (w.kind, w.message) != (finding.kind, finding.message)
        ],
        estimated_total=estimate,
    )


def _coverage(
    searched: Searched, executions: int, complete: bool, finding: Finding | None, interrupted: bool = False
) -> str:
    method, estimate = searched.method, searched.estimate
    if finding is not None:
        return f"bug found after {executions} execution(s) by {method}"
    if complete:
        return f"complete: all {executions} distinct interleavings explored by {method}"
    note = searched.note
    if interrupted:
        note = "interrupted; the checkpoint file resumes it" + (f"; {note}" if note else "")
    extra = f"; {note}" if note else ""
    if estimate is not None and estimate > 0:
        extra += f"; covered ~{100 * min(1.0, executions / estimate):.1f}% of an estimated {estimate:,.0f}"
    return f"bounded: {executions} execution(s) by {method}, search not exhausted{extra}"


def replay(target: Target, schedule: str, settings: Settings) -> Result:
    """Re-run one schedule exactly; the result carries its finding (if any) with a trace.

    A thread stuck in pure Python for ``settings.step_timeout_s`` is a finding."""
    target, settings = settings.resolve(target)
    s, variant = target.scenario, target.variant
    t0 = time.perf_counter()
    with guard.watching(None, settings.step_timeout_s):  # a thread stuck in pure Python is a finding
        ex = replay_runs(target.body(), schedule, settings.max_steps, tracing=True, kcsan=settings.kcsan_on)
    assert ex is not None
    finding = ex.finding
    later: list[Finding] = []
    if finding is not None and not settings.keep_going:  # the first report of the run, as check() says
        first = earlier_warn(ex, finding)
        if first is not None and first is not finding:
            later, finding = [finding], first
    if finding is not None:
        finding = replace(finding, schedule=schedule, scenario=s.name, trace=tuple(ex.steps))
    return Result(
        scenario=s.name,
        variant=variant,
        strategy="replay",
        verdict="bug" if finding else "ok",
        complete=False,
        executions=1,
        blocked=0,
        steps=len(ex.schedule),
        elapsed_s=time.perf_counter() - t0,
        finding=finding,
        coverage="replay of one schedule",
        warnings=later,
    )
