"""check() and replay(): drive executions under a strategy and build the result."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kvmcheck._engine.execution import Execution
from kvmcheck._engine.finding import Finding, ScheduleMismatch, UsageError
from kvmcheck._engine.scenario import Scenario
from kvmcheck._engine.schedule import split_runs
from kvmcheck._engine.strategies.bounded import Bounded
from kvmcheck._engine.strategies.dpor import Dpor
from kvmcheck._engine.strategies.pct import Pct
from kvmcheck._engine.strategies.random_walk import RandomWalk
from kvmcheck._engine.strategies.replay import Replay

STRATEGIES = ("dpor", "bounded", "random", "pct")
DEFAULT_MAX_STEPS = 20_000
DEFAULT_SAMPLES = 1_000


@dataclass(frozen=True)
class Progress:
    """How far a running check has got: passed to ``check(..., on_progress=...)``.

    ``estimate_total`` is an estimate of the executions the whole search needs
    (None when the strategy has none).
    """

    executions: int
    elapsed_s: float
    estimate_total: float | None = None


PROGRESS_INTERVAL_S = 0.2  # at most ~5 progress calls a second (plus one at the end)


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
            "finding": self.finding.as_dict() if self.finding else None,
            "warnings": [
                {"kind": w.kind, "headline": w.headline, "message": w.message} for w in self.warnings
            ],
        }


def _strategy(name: str, seed: int, bound: int | None, depth: int) -> Any:
    if name == "dpor":
        return Dpor()
    if name == "bounded":
        return Bounded(bound)
    if name == "random":
        return RandomWalk(seed)
    if name == "pct":
        return Pct(seed, depth)
    raise UsageError(f"unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}")


def _as_scenario(scn: Scenario | Callable[..., Any]) -> Scenario:
    if isinstance(scn, Scenario):
        return scn
    if callable(scn):
        return Scenario(scn)
    raise UsageError(f"{scn!r} is not a scenario (decorate a function with @scenario)")


def _new_session(kcsan: bool = True) -> dict[str, Any]:
    """State that lives across the executions of one check (lockdep's graph, ...)."""
    return {"run": 0, "schedules": {}, "kcsan": kcsan}


def _end_run(ex: Execution) -> None:
    session = ex.session
    if session.pop("keep_run", False):
        session["schedules"][session["run"]] = ex.schedule_string()
    session["run"] += 1


def _setup(ex: Execution) -> None:
    for hook in runtime_setup_hooks:
        hook(ex)


# The kernel layer appends here at import: per-execution setup (e.g. kmemleak).
runtime_setup_hooks: list[Callable[[Execution], None]] = []


def check(
    scn: Scenario | Callable[..., Any],
    strategy: str = "dpor",
    max_executions: int | None = None,
    max_seconds: float | None = None,
    seed: int = 0,
    *,
    variant: str | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
    bound: int | None = None,
    depth: int = 3,
    kcsan: bool | None = None,
    keep_going: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
) -> Result:
    """Explore ``scn`` under ``strategy`` and return a :class:`Result`.

    ``kcsan`` turns data-race reports on or off (default: the scenario's choice).
    The search stops after the first execution with a finding -- hard (an oops,
    a deadlock, KASAN) or WARN-class (WARN_ON, lockdep, KCSAN, a failed
    ``lockdep_assert_held``); either makes the verdict ``bug``.  With
    ``keep_going`` it explores on to the end (or to its bounds): the result's
    finding is then the first hard one seen (else the first WARN-class one),
    and ``warnings`` lists the other distinct reports.  ``on_progress`` is
    called with a :class:`Progress` at most ~5 times a second and once at the end.
    """
    s = _as_scenario(scn)
    body = s.body(variant)
    strat = _strategy(strategy, seed, bound, depth)
    if strategy in ("random", "pct") and max_executions is None and max_seconds is None:
        max_executions = DEFAULT_SAMPLES
    use_kcsan = s.kcsan if kcsan is None else kcsan
    session = _new_session(use_kcsan)
    t0 = time.perf_counter()
    executions = steps = 0
    finding: Finding | None = None
    soft: Finding | None = None  # first WARN-class finding; reported if nothing worse is found
    warnings: dict[tuple[str, str], Finding] = {}
    exhausted = False
    next_progress = t0 + PROGRESS_INTERVAL_S
    while True:
        ex = Execution(body, strat, session, max_steps)
        _setup(ex)
        ex.run()
        if ex.outcome != "blocked":
            executions += 1
        steps += len(ex.schedule)
        if ex.finding is not None:
            if finding is None:
                finding = ex.finding
                finding.schedule = _schedule_for(ex, finding)
                _collect(warnings, ex.findings[1:] + ex.soft)
            else:
                _collect(warnings, ex.findings + ex.soft)
        else:
            if ex.soft and soft is None:
                soft = ex.soft[0]
                soft.schedule = _schedule_for(ex, soft)
            _collect(warnings, ex.soft)
        if (finding is not None or soft is not None) and not keep_going:
            break
        _end_run(ex)
        if not strat.next_execution():
            exhausted = True
            break
        now = time.perf_counter()
        if on_progress is not None and now >= next_progress:
            on_progress(Progress(executions, now - t0, None))
            next_progress = now + PROGRESS_INTERVAL_S
        if max_executions is not None and executions >= max_executions:
            break
        if max_seconds is not None and now - t0 >= max_seconds:
            break
    elapsed = time.perf_counter() - t0
    if on_progress is not None:
        on_progress(Progress(executions, elapsed, None))
    complete = exhausted and strat.exhaustive
    if finding is None:
        finding = soft
    if finding is not None:
        finding.scenario = s.name
        _attach_trace(s, variant, finding, max_steps, use_kcsan)
        verdict = "bug"
    else:
        verdict = "ok" if complete else "bounded"
    return Result(
        scenario=s.name,
        variant=variant,
        strategy=strategy,
        verdict=verdict,
        complete=complete and finding is None,
        executions=executions,
        blocked=strat.blocked,
        steps=steps,
        elapsed_s=elapsed,
        finding=finding,
        coverage=_coverage(strat, executions, complete, finding),
        warnings=[
            w
            for w in warnings.values()
            if finding is None or (w.kind, w.message) != (finding.kind, finding.message)
        ],
    )


MAX_WARNINGS = 20


def _collect(into: dict[tuple[str, str], Finding], found: list[Finding]) -> None:
    for f in found:
        if len(into) < MAX_WARNINGS:
            into.setdefault((f.kind, f.message), f)


def _schedule_for(ex: Execution, finding: Finding) -> str:
    """The finding's schedule; earlier runs it depends on (lockdep) come first, '|'-joined."""
    return "|".join([*finding.needs, ex.schedule_string()])


def _coverage(strat: Any, executions: int, complete: bool, finding: Finding | None) -> str:
    if finding is not None:
        return f"bug found after {executions} execution(s) by {strat.describe()}"
    if complete:
        return f"complete: all {executions} distinct interleavings explored by {strat.describe()}"
    extra = ""
    if isinstance(strat, Bounded):
        extra = f"; no bug with up to {strat.bound_reached} preemption(s)"
    if isinstance(strat, Pct):
        extra = f"; {strat.guarantee()}"
    return f"bounded: {executions} execution(s) by {strat.describe()}, search not exhausted{extra}"


def _attach_trace(s: Scenario, variant: str | None, finding: Finding, max_steps: int, kcsan: bool) -> None:
    """Replay the finding with tracing on: the trace, and the report's sites, come from there."""
    replayed = _replay_runs(s, variant, finding.schedule, max_steps, tracing=True, kcsan=kcsan)
    if replayed is None:
        return
    finding.trace = replayed.steps
    again = next((f for f in replayed.findings + replayed.soft if f.kind == finding.kind), None)
    if again is not None:
        finding.message, finding.headline, finding.details = again.message, again.headline, again.details
        finding.step = again.step


def _replay_runs(
    s: Scenario, variant: str | None, schedule: str, max_steps: int, tracing: bool, kcsan: bool
) -> Execution | None:
    runs = split_runs(schedule)
    session = _new_session(kcsan)
    body = s.body(variant)
    ex: Execution | None = None
    for n, (tids, values) in enumerate(runs):
        ex = Execution(body, Replay(tids, values), session, max_steps, tracing=tracing and n == len(runs) - 1)
        _setup(ex)
        ex.run()
        _end_run(ex)
        if ex.finding is None and len(ex.schedule) < len(tids):
            raise ScheduleMismatch(
                f"schedule run {n + 1} has {len(tids)} steps but the execution ended after "
                f"{len(ex.schedule)}; the model changed since the schedule was recorded"
            )
        if ex.finding is not None and n < len(runs) - 1:
            break
    if ex is not None and ex.finding is None and ex.soft:
        ex.finding = ex.soft[0]
    return ex


def replay(
    scn: Scenario | Callable[..., Any],
    schedule: str,
    *,
    variant: str | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
    kcsan: bool | None = None,
) -> Result:
    """Re-run one schedule exactly; the result carries its finding (if any) with a trace."""
    s = _as_scenario(scn)
    t0 = time.perf_counter()
    ex = _replay_runs(
        s, variant, schedule, max_steps, tracing=True, kcsan=s.kcsan if kcsan is None else kcsan
    )
    assert ex is not None
    finding = ex.finding
    if finding is not None:
        finding.schedule = schedule
        finding.scenario = s.name
        finding.trace = ex.steps
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
    )
