"""check(target, settings) and replay(target, schedule, settings): the engine's entry points over
the exploration loop (``explore.py``).  The public keyword forms are in ``api.py``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from kvmcheck._engine import checkpoint as ckpt
from kvmcheck._engine import guard, parallel
from kvmcheck._engine.explore import (
    PROGRESS_INTERVAL_S,
    Explored,
    Progress,
    earlier_warn,
    explore,
    make_strategy,
    probe_determinism,
    replay_runs,
    runtime_setup_hooks,
)
from kvmcheck._engine.finding import Finding, Nondeterminism, ScheduleMismatch
from kvmcheck._engine.parallel import Pool, ProcessPool
from kvmcheck._engine.scenario import Scenario
from kvmcheck._engine.session import Session
from kvmcheck._engine.settings import DEFAULT_MAX_STEPS, DEFAULT_SAMPLES, STRATEGIES, Settings
from kvmcheck._engine.strategy import Strategy
from kvmcheck._engine.target import Target

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
    resolved settings go down unchanged to the search, its worker processes and Ray tasks.
    ``on_progress`` is called with a :class:`Progress` at most ~5 times a second and once at
    the end.  See :func:`kvmcheck.check` for what each setting does.
    """
    target, settings = settings.resolve(target)
    use_kcsan = settings.kcsan_on
    body = target.body()
    if settings.checkpoint is not None:
        ckpt.probe(settings.checkpoint)  # now, not when the search has run to its bound
    found: list[parallel.ProbeHit] = []  # what the split's probe runs reported (never dropped)
    t0 = time.perf_counter()
    if settings.workers is None:  # auto
        settings, done = _auto(target, settings, on_progress, found)
        if done is not None:
            return done
    if settings.parallel:
        merged = parallel.explore_parallel(target, settings, _pool_maker(target, settings), on_progress)
        with guard.watching(None, settings.step_timeout_s):
            summary = parallel.Summary(merged, settings)
            merged.explored.elapsed_s = time.perf_counter() - t0
            return replace(_result(target, settings, summary, merged.explored), error=merged.error)
    with guard.watching(settings.max_seconds, settings.step_timeout_s) as watch:
        session = Session(kcsan=use_kcsan)
        resumed: Explored | None = None
        ident = None
        if settings.checkpoint is not None or settings.resume is not None:
            ident = ckpt.identity(target, settings)
        if settings.resume is not None:
            assert ident is not None
            strat, resumed, saved = ckpt.load(settings.resume, ident)
            if saved is not None:
                session = saved
        else:
            strat = make_strategy(settings)
        seen = explore(
            body, strat, settings, session, on_progress=on_progress, identity=ident, resumed=resumed
        )
        if seen.exhausted and seen.reported is None:  # about to say "complete": is the model deterministic?
            probe_determinism(body, session, settings.max_steps, use_kcsan)
        with guard.watching(None, settings.step_timeout_s):  # one execution: its own bound
            parallel.settle(body, found, seen, settings.max_steps)
        seen.elapsed_s += _before_search(t0, seen, resumed)
        watch.deadline = None  # the finding's traced replay is not cut short by max_seconds
        return _result(target, settings, strat, seen)


def _before_search(t0: float, seen: Explored, resumed: Explored | None) -> float:
    """The time this check spent before its search (probes): counted in the result's time."""
    return 0.0 if resumed is not None else max(0.0, time.perf_counter() - t0 - seen.elapsed_s)


AUTO_FIRST = 2_000  # auto workers: a search not done after this many executions goes parallel


def _auto(
    target: Target,
    settings: Settings,
    on_progress: Callable[[Progress], None] | None,
    found: list[parallel.ProbeHit],
) -> tuple[Settings, Result | None]:
    """workers=None: one worker when the search does not split (parallel.py); else one worker
    for the first AUTO_FIRST executions (a count, not a time: the answer does not depend on
    the machine), and a search not done by then starts again on every core.  Its result, or
    the settings to go on with.  The split's probe runs count against ``max_seconds``; what
    they report goes to ``found``, and a split that reported anything stays on one worker
    (the search then settles it: parallel.settle)."""
    one = replace(settings, workers=1)
    if settings.backend == "ray":
        return settings, None  # as many at a time as the cluster has CPUs
    workers = parallel.default_workers()
    if not settings.may_go_parallel or workers < 2:
        return one, None
    t0 = time.perf_counter()
    try:
        with guard.watching(settings.max_seconds, settings.step_timeout_s):
            jobs = parallel.split(
                target.body(), workers * parallel.JOBS_PER_WORKER, settings.max_steps, found
            )
    except guard.Stop:  # the time was up (or a signal came) before the search started
        seen = Explored(elapsed_s=time.perf_counter() - t0)
        with guard.watching(None, settings.step_timeout_s):
            parallel.settle(target.body(), found, seen, settings.max_steps)
        return one, _result(target, one, make_strategy(one), seen)
    left = None if settings.max_seconds is None else settings.max_seconds - (time.perf_counter() - t0)
    if left is not None:
        one = replace(one, max_seconds=max(left, 0.001))
    if len(jobs) < 2 or found:  # nothing to share out (see parallel.py), or a report to settle
        return one, None
    r = check(target, replace(one, max_executions=AUTO_FIRST), on_progress)
    if r.verdict != "bounded" or r.executions < AUTO_FIRST:  # done, or stopped by time or a signal
        return one, replace(r, elapsed_s=time.perf_counter() - t0)
    left = None if settings.max_seconds is None else settings.max_seconds - (time.perf_counter() - t0)
    if left is not None and left <= 0:
        return one, replace(r, elapsed_s=time.perf_counter() - t0)
    return replace(settings, workers=workers, max_seconds=left), None


def _pool_maker(target: Target, settings: Settings) -> Callable[[int], Pool]:
    """Where a parallel search's jobs run: forked worker processes, or a Ray cluster."""
    if settings.backend == "ray":
        from kvmcheck._engine.ray_backend import RayPool

        return lambda n: RayPool(n, target, settings)
    return lambda n: ProcessPool(n, target, settings)


def _result(target: Target, settings: Settings, strat: Strategy, seen: Explored) -> Result:
    s, variant, kcsan = target.scenario, target.variant, settings.kcsan_on
    complete = seen.exhausted and strat.exhaustive
    finding = seen.reported
    if finding is not None:
        finding.scenario = s.name
        _attach_trace(s, variant, finding, settings.max_steps, kcsan)
    estimate = strat.estimate()
    return Result(
        scenario=s.name,
        variant=variant,
        strategy=settings.strategy,
        verdict="bug" if finding is not None else "ok" if complete else "bounded",
        complete=complete and finding is None,
        executions=seen.executions,
        blocked=strat.blocked,
        steps=seen.steps,
        elapsed_s=seen.elapsed_s,
        finding=finding,
        coverage=_coverage(strat, seen.executions, complete, finding, estimate, seen.interrupted)
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
    strat: Strategy,
    executions: int,
    complete: bool,
    finding: Finding | None,
    estimate: float | None,
    interrupted: bool = False,
) -> str:
    if finding is not None:
        return f"bug found after {executions} execution(s) by {strat.describe()}"
    if complete:
        return f"complete: all {executions} distinct interleavings explored by {strat.describe()}"
    note = strat.coverage_note()
    if interrupted:
        note = "interrupted; the checkpoint file resumes it" + (f"; {note}" if note else "")
    extra = f"; {note}" if note else ""
    if estimate is not None and estimate > 0:
        extra += f"; covered ~{100 * min(1.0, executions / estimate):.1f}% of an estimated {estimate:,.0f}"
    return f"bounded: {executions} execution(s) by {strat.describe()}, search not exhausted{extra}"


def _attach_trace(s: Scenario, variant: str | None, finding: Finding, max_steps: int, kcsan: bool) -> None:
    """Replay the finding with tracing on: the trace, and the report's sites, come from there."""
    try:
        replayed = replay_runs(s.body(variant), finding.schedule, max_steps, tracing=True, kcsan=kcsan)
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
        return
    finding.trace = replayed.steps
    again = next((f for f in replayed.findings + replayed.soft if f.kind == finding.kind), None)
    if again is None:  # the same steps, and no report: what the search saw depended on something else
        raise Nondeterminism(
            "the model is nondeterministic: it depends on something the checker does not control "
            f"(random, time, state kept across executions): the search saw {finding.kind} "
            f"({finding.message}) with schedule {finding.schedule!r}, and a replay of it did not"
        )
    finding.message, finding.headline, finding.details = again.message, again.headline, again.details
    finding.step = again.step


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
        warnings=later,
    )
