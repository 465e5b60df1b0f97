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

Probes.  The split runs model code (its probe runs) before any job: under the
check's time budget and watchdog, like the jobs.  A report a probe run makes is
never dropped: if the search does not report it, :func:`settle` runs the probe's
path again to the end of an execution -- reported again, it is the check's
finding; not, the model is nondeterministic (it is: the same steps, another outcome).

Workers.  At most :data:`MAX_WORKERS_PER_CORE` per core and no more than there are
jobs (the result says so when it caps).  Each is a forked process on a pipe
(:mod:`workerproc`): it dies with the parent (``PR_SET_PDEATHSIG``), and a worker
that dies (a crash in model code) is seen at once, with its job: the search ends
there, the result so far is kept, and ``Merged.error`` names the job's schedule prefix.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from multiprocessing.connection import wait as conn_wait
from typing import TYPE_CHECKING, Any

from kvmcheck._engine import guard, workerproc
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
from kvmcheck._engine.schedule import encode, split_runs
from kvmcheck._engine.session import Session
from kvmcheck._engine.strategies.optimal import OptimalDpor, _ONode, restore, snapshot
from kvmcheck._engine.strategies.replay import Replay
from kvmcheck._engine.strategy import StrategyBase

if TYPE_CHECKING:
    from kvmcheck._engine.ops import Op
    from kvmcheck._engine.settings import Settings
    from kvmcheck._engine.target import Target

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

    def prefix(self) -> str:
        """The job's schedule prefix (every execution of the job starts with it)."""
        values = {
            i: n.value
            for i, n in enumerate(self.nodes)
            if n.pending.get(n.chosen) is not None and n.pending[n.chosen].choices
        }
        return encode([n.chosen for n in self.nodes], values) or "(the empty prefix: the whole search)"

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


@dataclass(frozen=True)
class ProbeHit:
    """A report seen in a probe run of the split: the path that led there, and the report."""

    path: tuple[_ONode, ...]
    kind: str
    message: str


def split(
    body: Callable[[], Any], target: int, max_steps: int, found: list[ProbeHit] | None = None
) -> list[Job]:
    """Jobs covering the whole search, at least ``target`` of them where the tree's conflicts
    allow (see the module's docstring), in depth-first order.

    Every report a probe run makes is appended to ``found`` (see :func:`settle`).  A probe
    run stopped by the watchdog (the check's time is up, or a signal) raises ``guard.Stop``."""
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
            ex = run_execution(body, probe, Session(kcsan=False), max_steps)
            if ex.outcome == "stopped":
                raise guard.Stop()
            if found is not None:
                found.extend(ProbeHit(tuple(job.nodes), f.kind, f.message) for f in ex.findings + ex.soft)
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


class _Extend(StrategyBase):
    """Runs a path, then on to the end taking the first runnable thread (and outcome 0)."""

    def __init__(self, path: tuple[_ONode, ...]) -> None:
        super().__init__()
        self.path = path

    def choose(self, ex: Execution, enabled: list[int]) -> int | None:
        d = len(ex.schedule)
        return self.path[d].chosen if d < len(self.path) else enabled[0]

    def choose_value(self, ex: Execution, n: int) -> int:
        d = len(ex.schedule)
        return self.path[d].value if d < len(self.path) else 0

    def next_execution(self) -> bool:
        return False


def settle(body: Callable[[], Any], found: list[ProbeHit], out: Explored, max_steps: int) -> None:
    """A report seen by a probe run and not by the search is never dropped: run the probe's
    path again, on to the end of an execution.  Reported again, it is the search's finding
    (its schedule is that execution's); not reported, the model is nondeterministic."""
    if out.reported is not None or not found:
        return
    hit = found[0]
    ex = run_execution(body, _Extend(hit.path), Session(kcsan=False), max_steps)
    if ex.outcome == "stopped":
        raise guard.Stop()
    again = next((f for f in ex.findings + ex.soft if f.kind == hit.kind), None)
    if again is None:
        raise Nondeterminism(
            "the model is nondeterministic: it depends on something the checker does not control "
            "(random, time, state kept across executions): a probe run before the search reported "
            f"{hit.kind} ({hit.message}) after {encode([n.chosen for n in hit.path]) or 'no steps'}, "
            "and the same steps run again did not"
        )
    hard = any(f is again for f in ex.findings)
    again = replace(again, schedule=schedule_for(ex, again))
    out.by_probe = True
    if hard:
        out.finding = again
    else:
        out.soft = again


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
    target: Target,
    settings: Settings,
    state: dict[str, object],
    floor: int,
    index: int,
    deadline: float | None,
) -> JobResult:
    """Explore one job (in whatever process this runs in) under resolved ``settings``."""
    body = target.body()
    strat = job_search(state, floor)
    kcsan = settings.kcsan_on
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


class WorkerDied(Exception):
    """A worker process (or a Ray task) ended without a result: named by its job's schedule prefix."""


def _forked_run(
    target: Target, settings: Settings, args: tuple[dict[str, object], int, int, float | None]
) -> JobResult:
    """A job in a forked worker: the target and settings were there before the fork (never pickled)."""
    return run_job(target, settings, *args)


def _forked_failed(args: tuple[dict[str, object], int, int, float | None], text: str) -> JobResult:
    return JobResult(
        args[2], Explored(), 0, [], error=RuntimeError(f"job {args[2]} failed in its worker:\n{text}")
    )


@dataclass(eq=False)
class _Worker:
    proc: Any  # multiprocessing.Process
    conn: Any  # its end of the pipe


class ProcessPool(Pool):
    """Forked worker processes, each with a pipe: a worker that dies is seen at once, with its job."""

    def __init__(self, workers: int, target: Target, settings: Settings) -> None:
        super().__init__(workers or default_workers())
        self.run = functools.partial(_forked_run, target, settings)  # inherited by the fork
        self.ctx = multiprocessing.get_context("fork")
        self.idle: list[_Worker] = []
        self.busy: dict[_Worker, Job] = {}

    def _start(self) -> _Worker:
        mine, theirs = self.ctx.Pipe()
        proc = self.ctx.Process(
            target=workerproc.worker_loop,
            args=(theirs, os.getpid(), self.run, _forked_failed),
            daemon=True,
            name="kvmcheck-worker",
        )
        proc.start()
        theirs.close()
        return _Worker(proc, mine)

    def submit(self, job: Job, deadline: float | None) -> None:
        w = self.idle.pop() if self.idle else self._start()
        self.busy[w] = job
        w.conn.send((job.state(), len(job.nodes), job.index, deadline))

    def wait(self) -> JobResult:
        while True:
            watched = [w.conn for w in self.busy] + [w.proc.sentinel for w in self.busy]
            ready = set(conn_wait(watched, timeout=0.1)) if watched else set()
            for w in list(self.busy):
                if w.conn in ready:
                    try:
                        result: JobResult = w.conn.recv()
                    except (EOFError, OSError):
                        pass  # it died: its sentinel says so
                    else:
                        self.busy.pop(w)
                        self.idle.append(w)
                        return result
                if w.proc.sentinel in ready or w.conn in ready:
                    return self._died(w)
            if guard.stop_requested():
                raise guard.Stop()

    def _died(self, w: _Worker) -> JobResult:
        if guard.stop_requested():  # SIGTERM to the whole process group: the search is stopping anyway
            raise guard.Stop()
        job = self.busy.pop(w)
        w.proc.join(1.0)
        code = w.proc.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        if code == guard.EXIT_STUCK:
            how += ": the model is stuck in a C call (its stack is above)"
        return JobResult(
            job.index,
            Explored(),
            0,
            [],
            error=WorkerDied(
                f"the worker process running job {job.index} (schedule prefix {job.prefix()}) died ({how}); "
                "the result above covers the jobs finished before it"
            ),
        )

    def close(self) -> None:
        everyone = self.idle + list(self.busy)
        for w in self.idle:
            with contextlib.suppress(OSError):
                w.conn.send(None)
        for w in self.busy:  # jobs past a finding or a bound: stop them
            w.proc.kill()
        for w in everyone:
            w.proc.join(2.0)
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(2.0)
            w.conn.close()
        self.idle, self.busy = [], {}


# -- the driver ---------------------------------------------------------------------------
@dataclass
class Merged:
    explored: Explored = field(default_factory=Explored)
    blocked: int = 0
    jobs: int = 0
    split_depth: int = 0
    workers: int = 0
    capped: str | None = None  # why fewer workers run than were asked for
    error: str | None = None  # a job that could not finish (its worker died): the result is partial


MAX_WORKERS_PER_CORE = 4  # more processes than this per core only share the cores


def worker_cap(asked: int) -> tuple[int, str | None]:
    """``asked`` workers, at most MAX_WORKERS_PER_CORE per core: the number, and why if capped."""
    cores = default_workers()
    most = MAX_WORKERS_PER_CORE * cores
    if asked <= most:
        return asked, None
    return most, f"{asked} asked: at most {MAX_WORKERS_PER_CORE} per core on {cores} cores"


def explore_parallel(
    target: Target,
    settings: Settings,
    remote: bool,
    make_pool: Callable[[int], Pool],
    on_progress: Callable[[Progress], None] | None = None,
) -> Merged:
    """The whole search on ``settings.workers`` workers (see the module's docstring).

    Workers: at most MAX_WORKERS_PER_CORE per core, and no more than there are jobs.  The
    split's probe runs count against ``settings.max_seconds`` like the jobs do.  A ``remote``
    backend's pool (a Ray cluster) says itself how many jobs run at once."""
    t0 = time.perf_counter()
    body = target.body()
    asked, capped = worker_cap(settings.workers or 0) if not remote else (0, None)
    pool = make_pool(asked) if remote else None  # a cluster says how many CPUs
    found: list[ProbeHit] = []
    out = Merged(capped=capped)
    try:
        with guard.watching(settings.max_seconds, settings.step_timeout_s):
            n = pool.workers if pool is not None else asked
            jobs = split(body, n * JOBS_PER_WORKER, settings.max_steps, found)
            if len(jobs) < n:  # a worker more than there are jobs would only wait
                out.capped = f"{settings.workers} asked; the search is {len(jobs)} job(s)"
                n = len(jobs)
            if pool is None:
                pool = make_pool(n)
            pool.workers = min(pool.workers, n)
            out.jobs, out.workers = len(jobs), pool.workers
            out.split_depth = max((len(j.nodes) for j in jobs), default=0)
            left = None if settings.max_seconds is None else settings.max_seconds - (time.perf_counter() - t0)
            results, stop_at = _run_jobs(jobs, settings, pool, on_progress, t0, left, out)
    except guard.Stop:  # the time was up (or a signal came) during the split: nothing searched
        out.explored.elapsed_s = time.perf_counter() - t0
        return out
    finally:
        if pool is not None:
            pool.close()
    _merge(out, jobs, results, stop_at)
    if out.explored.reported is None or settings.keep_going:
        _lockdep_union(out, body, results, settings)
    with guard.watching(None, settings.step_timeout_s):
        settle(body, found, out.explored, settings.max_steps)
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
    left: float | None,
    out: Merged,
) -> tuple[dict[int, JobResult], int | None]:
    """Hand the jobs out in order, at most ``pool.workers`` at a time; collect the results.

    A job whose worker died ends the search: ``out.error`` names it, the rest is kept."""
    deadline = None if left is None else time.time() + max(left, 0.0)
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
        if isinstance(r.error, WorkerDied):
            out.error = str(r.error)
            break
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
    out: Merged, body: Callable[[], Any], results: dict[int, JobResult], settings: Settings
) -> None:
    """Replay, in one session, every run that taught a job's lockdep something (see the docstring)."""
    runs = [s for i in sorted(results) for s in results[i].lockdep_runs]
    if len(runs) < 2:
        return
    known = {(f.kind, f.message) for f in (out.explored.finding, out.explored.soft) if f is not None}
    known |= set(out.explored.warnings)
    session = Session(kcsan=settings.kcsan_on)
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
                f: Finding = replace(new[0], schedule=schedule_for(ex, new[0]))
                if out.explored.soft is None:
                    out.explored.soft = f
                else:
                    out.explored.warnings.setdefault((f.kind, f.message), f)
                if not settings.keep_going:
                    return
            end_run(ex)


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
