"""The exploration loop: run executions under a strategy until it is done or a bound is hit.

Everything that drives executions goes through here: every search of ``search.py`` (the
serial one, and each job of a parallel one, through :func:`explore`), replay (through
:func:`replay_runs`), and the test suite's brute-force reference (through :func:`explore`
with its own strategy).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from kvmcheck._engine import checkpoint as ckpt
from kvmcheck._engine import determinism, guard
from kvmcheck._engine.execution import Execution
from kvmcheck._engine.finding import Finding, ScheduleMismatch
from kvmcheck._engine.schedule import split_runs
from kvmcheck._engine.session import Session
from kvmcheck._engine.strategies.replay import Replay
from kvmcheck._engine.strategy import Strategy

if TYPE_CHECKING:
    from kvmcheck._engine.settings import Settings

# The kernel layer appends here at import: per-execution setup (e.g. kmemleak).
runtime_setup_hooks: list[Callable[[Execution], None]] = []

PROGRESS_INTERVAL_S = 0.2  # at most ~5 progress calls a second (plus one at the end)
MAX_WARNINGS = 20


@dataclass(frozen=True)
class Progress:
    """How far a running check has got: passed to ``check(..., on_progress=...)``.

    ``estimate_total`` is an estimate of the executions the whole search needs
    (None when the strategy has none).
    """

    executions: int
    elapsed_s: float
    estimate_total: float | None = None


def run_execution(
    body: Callable[[], Any], strategy: Strategy, session: Session, max_steps: int, tracing: bool = False
) -> Execution:
    """One execution, start to end (the layers' per-execution setup first)."""
    ex = Execution(body, strategy, session, max_steps, tracing=tracing)
    for hook in runtime_setup_hooks:
        hook(ex)
    try:
        ex.run()
    except (guard.Stop, guard.StepTimeout):  # raised into the thread as the run was ending (its clean-up)
        ex.outcome = "stopped"
        guard.finish(ex)
    return ex


def end_run(ex: Execution) -> None:
    """Book-keeping after each execution: keep its schedule if a later report may need it."""
    session = ex.session
    if session.keep_run:
        session.schedules[session.run] = ex.schedule_string()
        session.keep_run = False
    session.run += 1


@dataclass
class Explored:
    """What one exploration saw."""

    executions: int = 0  # executions run to their end or to a finding (not abandoned)
    steps: int = 0
    elapsed_s: float = 0.0
    exhausted: bool = False  # the strategy had nothing left to explore
    finding: Finding | None = None  # the first hard finding, its schedule set
    soft: Finding | None = None  # the first WARN-class finding, its schedule set
    # a WARN-class report the execution of ``finding`` printed before it (the search stopped there)
    first: Finding | None = None
    warnings: dict[tuple[str, str], Finding] = field(default_factory=dict)  # every other report
    interrupted: bool = False  # stopped by SIGINT/SIGTERM (a checkpoint was written)
    checkpoint_error: str | None = None  # why the checkpoint could not be saved (the search went on)
    by_probe: bool = False  # the reported finding was seen by a probe run (parallel.settle), not the search

    @property
    def reported(self) -> Finding | None:
        """What the check reports: the first hard finding, else the first WARN-class one -- but when
        the search stopped at an execution whose WARN came before its oops, that WARN: the first
        report of that execution, as the kernel's log shows it first."""
        if self.first is not None:
            return self.first
        return self.finding if self.finding is not None else self.soft


def earlier_warn(ex: Execution, finding: Finding) -> Finding | None:
    """The first WARN-class report of ``ex`` if it came before ``finding`` (at its step or earlier:
    an oops stops its thread at once, so a WARN of the same step was printed first)."""
    if not ex.soft:
        return None
    w = ex.soft[0]
    if w.step is not None and finding.step is not None and w.step <= finding.step:
        return w
    return None


def schedule_for(ex: Execution, finding: Finding) -> str:
    """The finding's schedule; earlier runs it depends on (lockdep) come first, '|'-joined."""
    return "|".join([*finding.needs, ex.schedule_string()])


def _collect(into: dict[tuple[str, str], Finding], found: list[Finding]) -> None:
    for f in found:
        if len(into) < MAX_WARNINGS:
            into.setdefault((f.kind, f.message), f)


@contextmanager
def _stop_on_signals(enabled: bool) -> Iterator[list[bool]]:
    """SIGINT/SIGTERM set a flag the loop checks after each execution (main thread only).

    Where a caller already handles them (the command line: guard.request_stop and its exit
    code 130/143), its handler stays: the loop sees ``guard.stop_requested()`` instead."""
    flag = [False]
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield flag
        return
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield flag
        return

    def handler(signum: int, frame: object) -> None:
        flag[0] = True
        guard.request_stop(signal.Signals(signum).name)  # an execution that runs on is stopped too

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
        if flag[0]:
            guard.clear_stop()


def explore(
    body: Callable[[], Any],
    strategy: Strategy,
    settings: Settings,
    session: Session,
    *,
    on_execution: Callable[[Execution], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    identity: ckpt.Identity | None = None,
    resumed: Explored | None = None,
) -> Explored:
    """Run executions of ``body`` until the strategy is done, a finding stops the search
    (unless ``settings.keep_going``), or a bound of ``settings`` is reached.

    With ``settings.checkpoint`` the search's frontier is saved there every
    ``checkpoint_every_s`` seconds and when SIGINT or SIGTERM stops it; ``resumed``
    (from :func:`checkpoint.load`) carries the totals of the run it continues;
    ``settings.max_seconds`` is this run's budget (not the totals')."""
    out = resumed if resumed is not None else Explored()
    run_t0 = time.perf_counter()
    t0 = run_t0 - out.elapsed_s
    next_progress = t0 + PROGRESS_INTERVAL_S
    max_executions = settings.max_executions
    max_seconds = settings.max_seconds
    keep_going = settings.keep_going
    max_steps = settings.max_steps
    checkpoint = settings.checkpoint
    next_checkpoint = time.perf_counter() + settings.checkpoint_every_s
    if checkpoint is not None:  # at once: the file can be written, and resumes from here
        _save(checkpoint, identity, strategy, out, session)
    with _stop_on_signals(checkpoint is not None) as stop:
        while True:
            ex = run_execution(body, strategy, session, max_steps)
            if ex.outcome == "stopped":  # by the watchdog (max_seconds) or a signal: abandoned
                break
            if ex.outcome != "blocked":
                out.executions += 1
            out.steps += len(ex.schedule)
            if on_execution is not None:
                on_execution(ex)
            if ex.finding is not None:
                if out.finding is None:
                    out.finding = replace(ex.finding, schedule=schedule_for(ex, ex.finding))
                    _collect(out.warnings, ex.findings[1:] + ex.soft)
                    early = earlier_warn(ex, ex.finding)
                    if early is not None and not keep_going:
                        out.first = replace(early, schedule=schedule_for(ex, early))
                        _collect(out.warnings, [ex.finding])
                else:
                    _collect(out.warnings, ex.findings + ex.soft)
            else:
                if ex.soft and out.soft is None:
                    out.soft = replace(ex.soft[0], schedule=schedule_for(ex, ex.soft[0]))
                _collect(out.warnings, ex.soft)
            if out.reported is not None and not keep_going:
                break
            end_run(ex)
            if not strategy.next_execution():
                out.exhausted = True
                break
            now = time.perf_counter()
            if on_progress is not None and now >= next_progress:
                on_progress(Progress(out.executions, now - t0, strategy.estimate()))
                next_progress = now + PROGRESS_INTERVAL_S
            stopping = stop[0] or guard.stop_requested()  # SIGINT/SIGTERM
            if checkpoint is not None and (stopping or now >= next_checkpoint):
                out.elapsed_s = now - t0
                _save(checkpoint, identity, strategy, out, session)
                next_checkpoint = now + settings.checkpoint_every_s
                out.interrupted = stopping
            if stopping:
                break
            if max_executions is not None and out.executions >= max_executions:
                break
            if max_seconds is not None and now - run_t0 >= max_seconds:
                break
    clean = ex.outcome != "stopped"  # an abandoned execution leaves the strategy mid-run: not saved
    out.elapsed_s = time.perf_counter() - t0
    if on_progress is not None:
        on_progress(Progress(out.executions, out.elapsed_s, strategy.estimate()))
    if (
        checkpoint is not None
        and clean
        and not out.interrupted
        and not out.exhausted
        and out.reported is None
    ):
        _save(checkpoint, identity, strategy, out, session)  # a bounded run can go on later
    if checkpoint is not None and not clean and guard.stop_requested():
        out.interrupted = True  # the checkpoint of the last clean point resumes it
    return out


def _save(
    path: str, identity: ckpt.Identity | None, strategy: Strategy, out: Explored, session: Session
) -> None:
    """Save a checkpoint; a failure (disk full) is said in the result, and the search goes on."""
    assert identity is not None, "a checkpointed search needs its identity"
    try:
        ckpt.save(path, identity, strategy, out, session)
    except OSError as e:
        out.checkpoint_error = f"the checkpoint could not be saved to {path}: {e.strerror or e}"


def probe_determinism(body: Callable[[], Any], session: Session, max_steps: int, kcsan: bool) -> None:
    """Before "complete": re-run the first execution of ``session`` (determinism.probe)."""

    def run(tids: list[int], values: dict[int, int], prev: Any) -> Execution:
        fresh = determinism.with_previous(Session(kcsan=kcsan), prev)
        return run_execution(body, Replay(tids, values), fresh, max_steps)

    determinism.probe(determinism.first_of(session), run)


def replay_runs(
    body: Callable[[], Any], schedule: str, max_steps: int, tracing: bool, kcsan: bool
) -> Execution | None:
    """Re-run the executions of ``schedule`` ('|'-joined runs) in order, in one session;
    the last one traced if ``tracing``.  Returns the last execution run."""
    runs = split_runs(schedule, max_steps)
    session = Session(kcsan=kcsan)
    ex: Execution | None = None
    for n, (tids, values) in enumerate(runs):
        ex = run_execution(
            body, Replay(tids, values), session, max_steps, tracing=tracing and n == len(runs) - 1
        )
        end_run(ex)
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
