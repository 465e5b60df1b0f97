"""The searches a check can run, behind one interface: ``run(target, settings, on_progress)``
returning one coverage record, :class:`Searched`.

* :class:`Serial` -- one strategy on this process: ``explore()``, the one exploration loop (with
  checkpoint/resume, the determinism probe, and probe-hit settling);
* :class:`Parallel` -- the dpor search split into jobs, each job ``explore()`` on a worker of a
  backend (``parallel.py``; a registered backend: ``registry.py``);
* :class:`Auto` -- ``workers=None``: a policy over the two.  One worker; a search that splits
  and is not done after :data:`AUTO_FIRST` executions starts again on every core.

:func:`choose` picks one from the settings.  ``check()`` turns what it returns into a Result.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

from kvmcheck._engine import checkpoint as ckpt
from kvmcheck._engine import guard, parallel, registry
from kvmcheck._engine.explore import Explored, Progress, explore, probe_determinism
from kvmcheck._engine.finding import UsageError
from kvmcheck._engine.session import Session

if TYPE_CHECKING:
    from kvmcheck._engine.settings import Settings
    from kvmcheck._engine.strategy import Strategy
    from kvmcheck._engine.target import Target

AUTO_FIRST = 2_000  # auto workers: a search not done after this many executions goes parallel

OnProgress = Callable[[Progress], None] | None


@dataclass
class Searched:
    """What a search covered, whichever search it was: the exploration's totals and findings,
    and the search's own account of it (the strategy's, or the split's)."""

    explored: Explored
    method: str  # what searched, for the coverage line ("dpor (optimal: ...) on 2 workers (...)")
    exhaustive: bool  # an exhausted search is complete
    blocked: int = 0  # executions abandoned by the search (sleep-set blocked)
    note: str = ""  # an extra clause for a bounded result (PCT's guarantee)
    estimate: float | None = None  # of the whole search's executions
    error: str | None = None  # the search could not finish (a worker died): what it did before
    resumed: bool = False  # the totals go on from a checkpoint (their time included)

    @classmethod
    def by(cls, strat: Strategy, explored: Explored, resumed: bool = False) -> Searched:
        """A strategy's search: its account of what it covered."""
        return cls(
            explored,
            strat.describe(),
            strat.exhaustive,
            strat.blocked,
            strat.coverage_note(),
            strat.estimate(),
            resumed=resumed,
        )


class Search(Protocol):
    def run(self, target: Target, settings: Settings, on_progress: OnProgress) -> Searched:
        """Search ``target`` under resolved ``settings`` (Settings.resolve)."""
        ...


@dataclass
class Serial:
    """One strategy (the settings') on this process, under the check's time budget."""

    # reports of probe runs made before this search (auto's split): settled if it does not see them
    found: list[parallel.ProbeHit] = field(default_factory=list)

    def run(self, target: Target, settings: Settings, on_progress: OnProgress) -> Searched:
        body = target.body()
        with guard.watching(settings.max_seconds, settings.step_timeout_s):
            session = Session(kcsan=settings.kcsan_on)
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
                strat = registry.make_strategy(settings)
            seen = explore(
                body, strat, settings, session, on_progress=on_progress, identity=ident, resumed=resumed
            )
            if seen.exhausted and seen.reported is None:  # about to say "complete": is it deterministic?
                probe_determinism(body, session, settings.max_steps, settings.kcsan_on)
            with guard.watching(None, settings.step_timeout_s):  # one execution: its own bound
                parallel.settle(body, self.found, seen, settings.max_steps)
        return Searched.by(strat, seen, resumed=resumed is not None)


@dataclass
class Parallel:
    """The dpor search split into jobs, run by the settings' backend (see parallel.py)."""

    def run(self, target: Target, settings: Settings, on_progress: OnProgress) -> Searched:
        backend = registry.backend(settings.backend)
        merged = parallel.explore_parallel(
            target,
            settings,
            backend.remote,
            lambda n: backend.make_pool(n, target, settings),
            on_progress,
        )
        where = backend.where(merged.workers, settings.address)
        if merged.capped:
            where += f" ({merged.capped})"
        method = (
            f"{registry.make_strategy(settings).describe()} on {where} "
            f"({merged.jobs} jobs split at depth {merged.split_depth})"
        )
        return Searched(merged.explored, method, True, merged.blocked, error=merged.error)


@dataclass
class Auto:
    """``workers=None``: one worker when the search does not split (parallel.py); else one worker
    for the first AUTO_FIRST executions (a count, not a time: the answer does not depend on the
    machine), and a search not done by then starts again on every core.  The split's probe
    runs count against ``max_seconds``; a split that reported anything stays on one worker
    (the search then settles it: parallel.settle).  A remote backend runs parallel at once
    (as many jobs at a time as the cluster has CPUs)."""

    def run(self, target: Target, settings: Settings, on_progress: OnProgress) -> Searched:
        if registry.backend(settings.backend).remote:
            return Parallel().run(target, settings, on_progress)
        one = replace(settings, workers=1)
        workers = parallel.default_workers()
        if not settings.may_go_parallel or workers < 2:
            return Serial().run(target, one, on_progress)
        t0 = time.perf_counter()
        found: list[parallel.ProbeHit] = []
        try:
            with guard.watching(settings.max_seconds, settings.step_timeout_s):
                jobs = parallel.split(
                    target.body(), workers * parallel.JOBS_PER_WORKER, settings.max_steps, found
                )
        except guard.Stop:  # the time was up (or a signal came) before the search started
            seen = Explored(elapsed_s=time.perf_counter() - t0)
            with guard.watching(None, settings.step_timeout_s):
                parallel.settle(target.body(), found, seen, settings.max_steps)
            return Searched.by(registry.make_strategy(one), seen)
        left = _left(settings, t0)
        if left is not None:
            one = replace(one, max_seconds=max(left, 0.001))
        if len(jobs) < 2 or found:  # nothing to share out (see parallel.py), or a report to settle
            return Serial(found).run(target, one, on_progress)
        first = Serial().run(target, replace(one, max_executions=AUTO_FIRST), on_progress)
        seen = first.explored
        done = seen.reported is not None or (seen.exhausted and first.exhaustive)
        if done or seen.executions < AUTO_FIRST:  # done, or stopped by time or a signal
            return first
        left = _left(settings, t0)
        if left is not None and left <= 0:
            return first
        return Parallel().run(target, replace(settings, workers=workers, max_seconds=left), on_progress)


def _left(settings: Settings, t0: float) -> float | None:
    """What is left of the settings' time budget since ``t0`` (None: no budget)."""
    return None if settings.max_seconds is None else settings.max_seconds - (time.perf_counter() - t0)


def choose(settings: Settings) -> Search:
    """The search the settings ask for: auto (workers=None), parallel, or serial.

    A weak memory model's search runs on one worker: LKMM exploration revisits reads
    performed earlier in the run (kernel/barrier.py), and a revisit of a read above a
    job's root cannot be taken by the worker exploring that job -- a split search could
    say "complete" with executions missed.  Auto stays serial (``may_go_parallel``); asking
    for several workers is refused."""
    if settings.workers is None:
        return Auto()
    if settings.parallel:
        if settings.one_worker_model:
            raise UsageError(
                f"memory model {settings.memory_model!r} is explored on one worker (its revisits "
                "cannot cross a job's root); use --workers 1"
            )
        return Parallel()
    return Serial()
