"""check() and replay(): the public entry points over the exploration loop (``explore.py``)."""

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
from kvmcheck._engine.finding import Finding, UsageError
from kvmcheck._engine.parallel import Pool, ProcessPool
from kvmcheck._engine.scenario import Scenario
from kvmcheck._engine.session import Session
from kvmcheck._engine.settings import DEFAULT_MAX_STEPS, DEFAULT_SAMPLES, STRATEGIES, Settings
from kvmcheck._engine.strategy import Strategy
from kvmcheck._engine.traced import traced

__all__ = [
    "DEFAULT_MAX_STEPS",
    "DEFAULT_SAMPLES",
    "PROGRESS_INTERVAL_S",
    "STRATEGIES",
    "Progress",
    "Result",
    "Settings",
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


def _as_scenario(scn: Scenario | Callable[..., Any]) -> Scenario:
    if isinstance(scn, Scenario):
        return scn
    if callable(scn):
        return Scenario(scn)
    raise UsageError(f"{scn!r} is not a scenario (decorate a function with @scenario)")


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
    keep_going: bool | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    checkpoint: str | None = None,
    checkpoint_every_s: float = 60.0,
    resume: str | None = None,
    settings: Settings | None = None,
    step_timeout_s: float = 10.0,
    workers: int | None = 1,
    backend: str = "local",
    address: str | None = None,
    memory_model: str | None = None,
) -> Result:
    """Explore ``scn`` under ``strategy`` and return a :class:`Result`.

    ``memory_model``: ``"sc"`` or ``"lkmm"`` (default: the scenario's choice; see
    kernel/barrier.py for what LKMM exploration covers).

    ``kcsan`` turns data-race reports on or off (default: the scenario's choice).
    The search stops after the first execution with a finding -- hard (an oops,
    a deadlock, KASAN) or WARN-class (WARN_ON, lockdep, KCSAN, a failed
    ``lockdep_assert_held``); either makes the verdict ``bug``.  With
    ``keep_going`` (default: the scenario's choice) it explores on to the end (or to its bounds): the result's
    finding is then the first hard one seen (else the first WARN-class one),
    and ``warnings`` lists the other distinct reports.  ``on_progress`` is
    called with a :class:`Progress` at most ~5 times a second and once at the end.
    ``checkpoint=FILE`` saves the search's frontier there every ``checkpoint_every_s``
    seconds, when the search stops at a bound, and on SIGINT/SIGTERM (the check then
    returns a bounded result); ``resume=FILE`` goes on from such a file to the same totals
    as one uninterrupted run (strategy ``dpor`` only).
    ``workers=N`` splits the dpor search into jobs run by N worker processes (``backend="ray"``:
    by the Ray cluster at ``address``), with one worker's verdict and executions (see
    :mod:`kvmcheck._engine.parallel`; a search that does not split runs as one job).
    ``workers=None`` (the CLI's default): one worker, and a search that splits and is not done
    after 2,000 executions starts again on every core.
    Its probe runs (the split, the determinism probe) count against ``max_seconds``, and
    what they report is the check's finding or a :class:`Nondeterminism` -- never dropped.
    A checkpoint records what it was taken of (see ``checkpoint.py``): ``resume`` refuses
    another scenario, variant, model source, tree-shaping option or kvmcheck version;
    ``max_seconds`` on a resume is this run's budget.  A worker that died leaves the
    result so far, with ``Result.error`` naming its job.
    ``settings`` (a :class:`Settings`) replaces every other keyword argument.
    ``step_timeout_s``: a model thread running pure Python this long without a visible
    operation is a finding (kind ``step-limit``) naming the thread and its line.
    """
    if settings is None:
        settings = Settings(
            strategy=strategy,
            max_executions=max_executions,
            max_seconds=max_seconds,
            seed=seed,
            max_steps=max_steps,
            bound=bound,
            depth=depth,
            kcsan=kcsan,
            keep_going=keep_going,
            checkpoint=checkpoint,
            checkpoint_every_s=checkpoint_every_s,
            resume=resume,
            step_timeout_s=step_timeout_s,
            workers=workers,
            backend=backend,
            address=address,
        )
    settings = settings.with_defaults()
    s = _as_scenario(scn)
    if memory_model is not None:
        s = s.under(memory_model)
    if settings.keep_going is None:
        settings = replace(settings, keep_going=s.keep_going)
    body = s.body(variant)
    use_kcsan = s.kcsan if settings.kcsan is None else settings.kcsan
    if settings.checkpoint is not None:
        ckpt.probe(settings.checkpoint)  # now, not when the search has run to its bound
    found: list[parallel.ProbeHit] = []  # what the split's probe runs reported (never dropped)
    t0 = time.perf_counter()
    if settings.workers is None:  # auto
        settings, done = _auto(s, variant, settings, on_progress, found, use_kcsan)
        if done is not None:
            return done
    if settings.parallel:
        merged = parallel.explore_parallel(
            s, variant, settings, use_kcsan, _pool_maker(s, variant, settings, use_kcsan), on_progress
        )
        with guard.watching(None, settings.step_timeout_s):
            summary = parallel.Summary(merged, settings)
            merged.explored.elapsed_s = time.perf_counter() - t0
            return replace(
                _result(s, variant, settings, summary, merged.explored, use_kcsan), error=merged.error
            )
    with guard.watching(settings.max_seconds, settings.step_timeout_s) as watch:
        session = Session(kcsan=use_kcsan)
        resumed: Explored | None = None
        ident = None
        if settings.checkpoint is not None or settings.resume is not None:
            ident = ckpt.identity(s, variant, settings, use_kcsan)
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
        return _result(s, variant, settings, strat, seen, use_kcsan)


def _before_search(t0: float, seen: Explored, resumed: Explored | None) -> float:
    """The time this check spent before its search (probes): counted in the result's time."""
    return 0.0 if resumed is not None else max(0.0, time.perf_counter() - t0 - seen.elapsed_s)


AUTO_FIRST = 2_000  # auto workers: a search not done after this many executions goes parallel


def _auto(
    s: Scenario,
    variant: str | None,
    settings: Settings,
    on_progress: Callable[[Progress], None] | None,
    found: list[parallel.ProbeHit],
    kcsan: bool,
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
                s.body(variant), workers * parallel.JOBS_PER_WORKER, settings.max_steps, found
            )
    except guard.Stop:  # the time was up (or a signal came) before the search started
        seen = Explored(elapsed_s=time.perf_counter() - t0)
        with guard.watching(None, settings.step_timeout_s):
            parallel.settle(s.body(variant), found, seen, settings.max_steps)
        return one, _result(s, variant, one, make_strategy(one), seen, kcsan)
    left = None if settings.max_seconds is None else settings.max_seconds - (time.perf_counter() - t0)
    if left is not None:
        one = replace(one, max_seconds=max(left, 0.001))
    if len(jobs) < 2 or found:  # nothing to share out (see parallel.py), or a report to settle
        return one, None
    r = check(s, variant=variant, settings=replace(one, max_executions=AUTO_FIRST), on_progress=on_progress)
    if r.verdict != "bounded" or r.executions < AUTO_FIRST:  # done, or stopped by time or a signal
        return one, replace(r, elapsed_s=time.perf_counter() - t0)
    left = None if settings.max_seconds is None else settings.max_seconds - (time.perf_counter() - t0)
    if left is not None and left <= 0:
        return one, replace(r, elapsed_s=time.perf_counter() - t0)
    return replace(settings, workers=workers, max_seconds=left), None


def _pool_maker(s: Scenario, variant: str | None, settings: Settings, kcsan: bool) -> Callable[[int], Pool]:
    """Where a parallel search's jobs run: forked worker processes, or a Ray cluster."""
    if settings.backend == "ray":
        from kvmcheck._engine.ray_backend import RayPool

        return lambda n: RayPool(n, s, variant, settings, kcsan)
    return lambda n: ProcessPool(n, s, variant, settings, kcsan)


def _result(
    s: Scenario, variant: str | None, settings: Settings, strat: Strategy, seen: Explored, kcsan: bool
) -> Result:
    complete = seen.exhausted and strat.exhaustive
    finding = seen.reported
    if finding is not None:
        finding = traced(s, variant, replace(finding, scenario=s.name), settings.max_steps, kcsan)
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


def replay(
    scn: Scenario | Callable[..., Any],
    schedule: str,
    *,
    variant: str | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
    kcsan: bool | None = None,
    step_timeout_s: float | None = None,
    memory_model: str | None = None,
) -> Result:
    """Re-run one schedule exactly; the result carries its finding (if any) with a trace.

    ``step_timeout_s`` (default 10 s): a thread stuck in pure Python that long is a finding.
    """
    settings = Settings(max_steps=max_steps, kcsan=kcsan)
    s = _as_scenario(scn)
    if memory_model is not None:
        s = s.under(memory_model)
    t0 = time.perf_counter()
    use_kcsan = s.kcsan if settings.kcsan is None else settings.kcsan
    with guard.watching(None, step_timeout_s):  # a thread stuck in pure Python is a finding
        ex = replay_runs(s.body(variant), schedule, settings.max_steps, tracing=True, kcsan=use_kcsan)
    assert ex is not None
    finding = ex.finding
    later: list[Finding] = []
    if finding is not None and not s.keep_going:  # the first report of the run, as check() says
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
