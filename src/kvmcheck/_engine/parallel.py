"""Exhaustive search on several workers: disjoint parts of the search, merged in order.

The split.  The top of the search tree is enumerated state by state from the
start: a state where one thread only can go, or where a thread is about to
spawn another (:func:`_only_way`: a spawn commutes with every step before it,
so every trace has it first there), is passed through; a state where
every two of the threads that can go are about to take *dependent* steps (two
threads about to take one lock), or where one thread makes a nondet() choice,
is a branch point -- each thread (each outcome) a branch -- until there are
enough branches (:data:`JOBS_PER_WORKER` per worker).  Any other state ends
the enumeration on its path.  Each path so reached is a *job*.

A job.  Optimal DPOR (``OptimalDpor``) of the program *from the path's end*:
floor at the path (no branch above it; races whose first event lies on it are
dropped -- the enumeration runs every branch there).  That is optimal DPOR of a
program whose initial state is the path's end: it runs every trace that
extends the path, each once (Abdulla et al., JACM 2017, thm. 7.4).

Why every trace exactly once, in all.  At a branch point the branches' first
steps are pairwise dependent, so their order is fixed in a trace and no trace
extends two branches; every trace extends one (a thread blocked to the end
takes no step there, and the trace extends the branch of the thread that goes
first).  So the jobs' traces are disjoint and cover every trace: a complete
search runs the executions of one worker wherever optimal DPOR is optimal (0
forced misses: every corpus and benchmark of the test suite; elsewhere, see
optimal.py, a few repeated traces may differ).  tests/engine/test_parallel.py
checks it job by job against brute force.

Why only there.  At a state whose threads' next steps are independent, a split
leaves a sleep set in every later branch.  A job cannot use it: the cover a
sleeping thread provides rests on races whose first event is on the path, and
the job drops those (lastzero(3) loses traces that way).  Without it the jobs
repeat each other's traces: on pfncache.seed_race[pre-9f87791d686d], the second
of 64 such jobs ran 23 traces of its own and 10,109 of the first's.  So a model
whose first choice is between independent steps (the bundled seed models: a
reader and a writer start on different fields) is one job, run at one worker's
speed.  Splitting those needs parallel optimal DPOR that sends wakeup sequences
between the workers (see issue #15's note).

Determinism.  Jobs are numbered in depth-first order, handed out in that order
and merged in that order.  A search that stops at the first finding waits for
every job numbered before the one that found it and reports the finding of the
lowest-numbered job, with the executions of the jobs before it plus that job's
up to its finding: the same answer on every run, for any number of workers.

lockdep.  Its graph spans the executions of a check; each job has its own.
Every run that added a dependency (or an irq usage) in a job is kept; when the
jobs are done, those runs are replayed in job order in one session, and any
report only their union makes (a cycle whose edges were seen in two jobs) is
the check's finding, with every run it needs in its schedule.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as futures_wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kvmcheck._engine import guard
from kvmcheck._engine.execution import Execution
from kvmcheck._engine.explore import (
    Explored,
    Progress,
    end_run,
    explore,
    probe_determinism,
    run_execution,
    schedule_for,
)
from kvmcheck._engine.finding import Finding, Nondeterminism, UsageError
from kvmcheck._engine.schedule import split_runs
from kvmcheck._engine.session import Session
from kvmcheck._engine.strategies.optimal import OptimalDpor, _ONode, restore, snapshot
from kvmcheck._engine.strategies.replay import Replay
from kvmcheck._engine.strategy import StrategyBase

if TYPE_CHECKING:
    from kvmcheck._engine.ops import Op
    from kvmcheck._engine.scenario import Scenario
    from kvmcheck._engine.settings import Settings

JOBS_PER_WORKER = 32  # enough jobs that the last ones finish together (subtrees differ in size)
MAX_SPLIT_DEPTH = 64


# -- the split ------------------------------------------------------------------------
class _Probe(StrategyBase):
    """Runs a path, then on while only one thread can go, and abandons the run at the
    first state with a choice to make."""

    def __init__(self, path: list[_ONode]) -> None:
        super().__init__()
        self.path = path
        self.stop: tuple[list[int], dict[int, Op]] | None = None  # enabled, pending there

    def choose(self, ex: Execution, enabled: list[int]) -> int | None:
        d = len(ex.schedule)
        path = self.path
        if d < len(path):
            return path[d].chosen
        pending = {t.tid: t.pending for t in ex.threads if t.pending is not None}
        go = _only_way(enabled, pending)
        if go is not None:
            path.append(_ONode(go, 0, list(enabled), pending, {}, []))
            return go
        self.stop = (list(enabled), pending)
        return None

    def choose_value(self, ex: Execution, n: int) -> int:
        return self.path[len(ex.schedule)].value

    def next_execution(self) -> bool:
        return False


@dataclass
class Job:
    index: int
    nodes: list[_ONode]  # the path: the state before each of its steps, as optimal DPOR keeps it
    terminal: bool = False  # no more branching on this path: the run ends, or no conflict

    def state(self) -> dict[str, object]:
        """The job's search: optimal DPOR from the path's end."""
        d = OptimalDpor()
        d.ostack = self.nodes
        return snapshot(d)


def _only_way(enabled: list[int], pending: dict[int, Op]) -> int | None:
    """The thread whose step here every trace can start with, if there is one: the only thread
    that can go (and makes no choice), or a thread about to spawn one -- no step of another
    thread can depend on a thread not yet created, so a spawn commutes with every step that
    could come before it."""
    if len(enabled) == 1:
        return None if pending[enabled[0]].choices else enabled[0]
    return next((t for t in enabled if pending[t].arg == "spawn"), None)


def _conflict(enabled: list[int], pending: dict[int, Op]) -> bool:
    """May the enumeration branch here?  Yes where every two threads' next operations are
    dependent (two threads about to take one lock), or the one thread makes a choice."""
    ops = [pending[t] for t in enabled]
    if len(ops) == 1:
        return True
    if any(op.choices for op in ops):
        return False
    return all(a.dependent(b) for i, a in enumerate(ops) for b in ops[i + 1 :])


def split(body: Callable[[], Any], target: int, max_steps: int) -> list[Job]:
    """Jobs covering the whole search, at least ``target`` of them where the tree's conflicts
    allow (see the module's docstring), in depth-first order."""
    frontier = [Job(0, [])]
    for _ in range(MAX_SPLIT_DEPTH):
        if len(frontier) >= target or all(j.terminal for j in frontier):
            break
        nxt: list[Job] = []
        for job in frontier:
            if job.terminal:
                nxt.append(job)
                continue
            probe = _Probe(list(job.nodes))
            run_execution(body, probe, Session(kcsan=False), max_steps)
            job.nodes = probe.path  # with the steps where one thread only could go
            if probe.stop is None or not _conflict(*probe.stop):  # the run ended, or no conflict
                job.terminal = True
                nxt.append(job)
                continue
            enabled, pending = probe.stop
            last = job.nodes[-1].chosen if job.nodes else -1
            cands = [last] + [t for t in enabled if t != last] if last in enabled else enabled
            for t in cands:  # in the order one worker explores them
                for v in range(pending[t].choices or 1):
                    nxt.append(Job(0, [*job.nodes, _ONode(t, v, enabled, pending, {}, [])]))
        frontier = nxt
    for i, job in enumerate(frontier):
        job.index = i
    return frontier


# -- one job ----------------------------------------------------------------------------
@dataclass
class JobResult:
    index: int
    explored: Explored
    blocked: int
    lockdep_runs: list[str]  # schedules of the runs that taught lockdep something, in run order
    error: BaseException | None = None  # a UsageError / Nondeterminism raised in the job


def job_search(state: dict[str, object], floor: int) -> OptimalDpor:
    strat = restore(state)
    strat.floor = floor
    return strat


def run_job(
    scn: Scenario,
    variant: str | None,
    settings: Settings,
    kcsan: bool,
    state: dict[str, object],
    floor: int,
    index: int,
    deadline: float | None,
) -> JobResult:
    """Explore one job (in whatever process this runs in)."""
    body = scn.body(variant)
    strat = job_search(state, floor)
    session = Session(kcsan=kcsan)
    max_seconds = None if deadline is None else max(0.001, deadline - time.time())
    try:
        with guard.watching(max_seconds, settings.step_timeout_s):
            out = explore(body, strat, settings, session)
            if index == 0 and out.exhausted and out.reported is None:
                probe_determinism(body, session, settings.max_steps, kcsan)
    except (UsageError, Nondeterminism) as e:
        return JobResult(index, Explored(), 0, [], error=e)
    runs = [s for _, s in sorted(session.schedules.items())]
    return JobResult(index, out, strat.blocked, runs)


# -- the backends -------------------------------------------------------------------------
# A forked worker finds the scenario here (set before the pool forks): nothing to pickle.
_FORKED: tuple[Scenario, str | None, Settings, bool] | None = None


def _forked_job(args: tuple[dict[str, object], int, int, float | None]) -> JobResult:
    assert _FORKED is not None
    scn, variant, settings, kcsan = _FORKED
    return run_job(scn, variant, settings, kcsan, *args)


class Pool:
    """Runs jobs, at most ``workers`` at a time; results come back as they finish."""

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def submit(self, job: Job, deadline: float | None) -> None:
        raise NotImplementedError

    def wait(self) -> JobResult:
        raise NotImplementedError

    def close(self) -> None:
        pass


class ProcessPool(Pool):
    """Forked worker processes (concurrent.futures: a worker that dies fails its job, loudly)."""

    def __init__(
        self, workers: int, scn: Scenario, variant: str | None, settings: Settings, kcsan: bool
    ) -> None:
        super().__init__(workers or default_workers())
        global _FORKED
        _FORKED = (scn, variant, settings, kcsan)
        self.pool = ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("fork"), initializer=_worker_init
        )
        self.futures: set[Future[JobResult]] = set()

    def submit(self, job: Job, deadline: float | None) -> None:
        self.futures.add(self.pool.submit(_forked_job, (job.state(), len(job.nodes), job.index, deadline)))

    def wait(self) -> JobResult:
        while True:
            done, _ = futures_wait(self.futures, timeout=0.1, return_when=FIRST_COMPLETED)
            if done:
                f = min(done, key=id)
                self.futures.discard(f)
                try:
                    return f.result()
                except BrokenProcessPool as e:
                    return JobResult(-1, Explored(), 0, [], error=RuntimeError(f"a worker process died: {e}"))
            if guard.stop_requested():
                raise guard.Stop()

    def close(self) -> None:
        procs = list(getattr(self.pool, "_processes", {}).values())  # jobs past a finding: stop them
        self.pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            p.terminate()
        for p in procs:
            p.join()


# -- the driver ---------------------------------------------------------------------------
@dataclass
class Merged:
    explored: Explored = field(default_factory=Explored)
    blocked: int = 0
    jobs: int = 0
    split_depth: int = 0
    workers: int = 0


def explore_parallel(
    scn: Scenario,
    variant: str | None,
    settings: Settings,
    kcsan: bool,
    make_pool: Callable[[int], Pool],
    on_progress: Callable[[Progress], None] | None = None,
) -> Merged:
    """The whole search on ``settings.workers`` workers (see the module's docstring)."""
    t0 = time.perf_counter()
    body = scn.body(variant)
    pool = make_pool(settings.workers or 0)  # before the split: a fork copies no running check
    try:
        with guard.watching(None, settings.step_timeout_s):
            jobs = split(body, pool.workers * JOBS_PER_WORKER, settings.max_steps)
            out = Merged(
                jobs=len(jobs),
                split_depth=max((len(j.nodes) for j in jobs), default=0),
                workers=pool.workers,
            )
            results, stop_at = _run_jobs(jobs, settings, pool, on_progress, t0)
    finally:
        pool.close()
    _merge(out, jobs, results, stop_at)
    if out.explored.reported is None or settings.keep_going:
        _lockdep_union(out, body, results, settings, kcsan)
    out.explored.elapsed_s = time.perf_counter() - t0
    if on_progress is not None:
        on_progress(Progress(out.explored.executions, out.explored.elapsed_s, None))
    return out


def _run_jobs(
    jobs: list[Job],
    settings: Settings,
    pool: Pool,
    on_progress: Callable[[Progress], None] | None,
    t0: float,
) -> tuple[dict[int, JobResult], int | None]:
    """Hand the jobs out in order, at most ``pool.workers`` at a time; collect the results."""
    deadline = None if settings.max_seconds is None else time.time() + settings.max_seconds
    results: dict[int, JobResult] = {}
    stop_at: int | None = None  # the lowest job with a finding that stops the search
    queue = iter(jobs)
    inflight = 0
    for job in _take(queue, pool.workers):
        pool.submit(job, deadline)
        inflight += 1
    while inflight:
        try:
            r = pool.wait()
        except guard.Stop:  # SIGINT/SIGTERM: what is done so far is the (bounded) result
            break
        inflight -= 1
        if r.error is not None:
            raise r.error
        results[r.index] = r
        if r.explored.reported is not None and not settings.keep_going:
            stop_at = r.index if stop_at is None else min(stop_at, r.index)
        if on_progress is not None:
            done = sum(x.explored.executions for x in results.values())
            on_progress(Progress(done, time.perf_counter() - t0, None))
        if _bounded_out(settings, results, deadline):
            break
        if stop_at is None:
            for job in _take(queue, 1):
                pool.submit(job, deadline)
                inflight += 1
        elif all(i in results for i in range(stop_at)):
            break  # every job before the finding's is done: nothing can come before it
    return results, stop_at


def _take(it: Iterator[Job], n: int) -> list[Job]:
    out = []
    for job in it:
        out.append(job)
        if len(out) == n:
            break
    return out


def _bounded_out(settings: Settings, results: dict[int, JobResult], deadline: float | None) -> bool:
    if deadline is not None and time.time() >= deadline:
        return True
    if settings.max_executions is not None:
        return sum(r.explored.executions for r in results.values()) >= settings.max_executions
    return False


def _merge(out: Merged, jobs: list[Job], results: dict[int, JobResult], stop_at: int | None) -> None:
    ex = out.explored
    last = len(jobs) - 1 if stop_at is None else stop_at
    ex.exhausted = (
        stop_at is None and len(results) == len(jobs) and all(r.explored.exhausted for r in results.values())
    )
    for i in range(last + 1):
        r = results.get(i)
        if r is None:
            continue
        e = r.explored
        ex.executions += e.executions
        ex.steps += e.steps
        out.blocked += r.blocked
        if e.finding is not None and ex.finding is None:
            ex.finding = e.finding
        if e.soft is not None and ex.soft is None:
            ex.soft = e.soft
        for k, w in e.warnings.items():
            ex.warnings.setdefault(k, w)
        if e.finding is not None and e.soft is not None:
            ex.warnings.setdefault((e.soft.kind, e.soft.message), e.soft)


def _lockdep_union(
    out: Merged, body: Callable[[], Any], results: dict[int, JobResult], settings: Settings, kcsan: bool
) -> None:
    """Replay, in one session, every run that taught a job's lockdep something (see the docstring)."""
    runs = [s for i in sorted(results) for s in results[i].lockdep_runs]
    if len(runs) < 2:
        return
    known = {(f.kind, f.message) for f in (out.explored.finding, out.explored.soft) if f is not None}
    known |= set(out.explored.warnings)
    session = Session(kcsan=kcsan)
    with guard.watching(None, settings.step_timeout_s):
        for sched in runs:
            tids, values = split_runs(sched, settings.max_steps)[-1]
            ex = run_execution(body, Replay(tids, values), session, settings.max_steps)
            new = [
                f
                for f in ex.soft + ex.findings
                if f.kind == "lock-order" and (f.kind, f.message) not in known
            ]
            if new:
                f: Finding = new[0]
                f.schedule = schedule_for(ex, f)
                if out.explored.soft is None:
                    out.explored.soft = f
                else:
                    out.explored.warnings.setdefault((f.kind, f.message), f)
                if not settings.keep_going:
                    return
            end_run(ex)


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _worker_init() -> None:
    import gc
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop (and says so)
    gc.freeze()  # the parent's objects: never scanned, so their pages stay shared (copy-on-write)


class Summary(StrategyBase):
    """What the result says of a parallel search (the strategy's part of a result)."""

    name = "dpor"
    exhaustive = True

    def __init__(self, merged: Merged, settings: Settings) -> None:
        super().__init__()
        self.merged = merged
        self.blocked = merged.blocked
        n = merged.workers
        self.where = f"{n} workers" if settings.backend == "local" else f"{n} Ray tasks at {settings.address}"

    def describe(self) -> str:
        m = self.merged
        return (
            f"dpor (optimal: wakeup trees + sleep sets) on {self.where} "
            f"({m.jobs} jobs split at depth {m.split_depth})"
        )

    def choose(self, ex: Execution, enabled: list[int]) -> int | None:
        raise AssertionError("a summary does not run executions")

    def next_execution(self) -> bool:
        return False
