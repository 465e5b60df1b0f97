"""Minimal counterexamples: fewest preemptions, then fewest steps, same finding.

After a search finds a bug, its schedule is whatever order the strategy
happened to try.  This module shrinks it, as Hypothesis shrinks a failing
input: a *guide* (the thread chosen at each step up to the finding) is edited
-- a block of consecutive steps of one thread removed, two blocks swapped, the
tail dropped -- and re-run under :class:`Guided`, which follows the guide
where it can and otherwise lets the running thread go on (no preemption).  A
candidate is kept when it shows the same finding (same kind, same headline,
same sites) with fewer preemptions, or as many and fewer steps.  The result
is checked with :func:`replay`, so the returned schedule replays exactly.

A preemption is a switch away from a thread that could have gone on
(Musuvathi & Qadeer's measure, as in ``strategies/bounded.py``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from kvmcheck._engine import guard
from kvmcheck._engine.api import replay
from kvmcheck._engine.explore import end_run, run_execution
from kvmcheck._engine.schedule import encode, split_runs
from kvmcheck._engine.session import Session
from kvmcheck._engine.settings import DEFAULT_MAX_STEPS, Settings
from kvmcheck._engine.strategy import StrategyBase
from kvmcheck._engine.target import Target

if TYPE_CHECKING:
    from collections.abc import Callable

    from kvmcheck._engine.check import Result
    from kvmcheck._engine.execution import Execution
    from kvmcheck._engine.finding import Finding
    from kvmcheck._engine.ops import Op
    from kvmcheck._engine.scenario import Scenario

_SITE = re.compile(r"[\w.<>]+ \([\w/.\-<>]+:\d+\)")


class Guided(StrategyBase):
    """Follow ``guide`` where the thread it names is runnable; else keep the running thread.

    Counts preemptions as it goes; ``probe`` (if given) sees every step before it takes effect.
    """

    name = "guided"
    exhaustive = False

    def __init__(
        self,
        guide: list[int],
        probe: Callable[[Execution, int, Op], None] | None = None,
        choices: dict[int, list[int]] | None = None,
    ) -> None:
        super().__init__()
        self.guide = guide
        self.preemptions = 0
        self.probe = probe
        # nondet() outcomes per thread, in the order that thread takes its choices: kept
        # when an edit of the guide moves the choice to another step
        self.choices = {t: list(v) for t, v in (choices or {}).items()}
        self._chosen: int | None = None

    def describe(self) -> str:
        return "guided replay"

    def choose(self, ex: Execution, enabled: list[int]) -> int | None:
        step = len(ex.schedule)
        last = ex.schedule[-1] if ex.schedule else None
        want = self.guide[step] if step < len(self.guide) else None
        if want not in enabled:
            want = last if last in enabled else enabled[0]
        if last is not None and last in enabled and want != last:
            self.preemptions += 1
        self._chosen = want
        return want

    def choose_value(self, ex: Execution, n: int) -> int:
        pending = self.choices.get(self._chosen if self._chosen is not None else -1)
        v = pending.pop(0) if pending else 0
        return v if 0 <= v < n else 0

    def on_event(self, ex: Execution, tid: int, op: Op) -> None:
        if self.probe is not None:
            self.probe(ex, tid, op)

    def next_execution(self) -> bool:
        return False


@dataclass
class Run:
    """One guided execution: what it found, its schedule, its size."""

    finding: Finding | None
    schedule: str  # the full schedule string (earlier runs '|'-joined first)
    preemptions: int
    steps: int  # steps up to and including the one that reported the finding
    execution: Execution


def primary(ex: Execution) -> Finding | None:
    """The finding a replay of this execution reports (the first hard one, else the first WARN)."""
    if ex.finding is not None:
        return ex.finding
    return ex.soft[0] if ex.soft else None


def signature(f: Finding) -> tuple[str, str, tuple[str, ...]]:
    """What must stay the same while shrinking: kind, headline and every site the report names."""
    text = "\n".join([f.message, *f.details])
    sites = tuple(sorted(set(_SITE.findall(text))))
    return (f.kind, re.sub(r"\d+", "N", f.headline), sites or (re.sub(r"\d+", "N", f.message),))


def run_guided(
    s: Scenario,
    variant: str | None,
    prefix: list[tuple[list[int], dict[int, int]]],
    guide: list[int],
    *,
    choices: dict[int, list[int]] | None = None,
    kcsan: bool,
    max_steps: int = DEFAULT_MAX_STEPS,
    tracing: bool = True,
    probe: Callable[[Execution, int, Op], None] | None = None,
) -> Run:
    """Replay the earlier runs ``prefix`` exactly, then one run under :class:`Guided`.

    Traced by default: the kernel layer names a report's sites only when tracing.
    """
    session = Session(kcsan=kcsan)
    body = Target(s, variant).body()
    for tids, values in prefix:  # earlier runs a lockdep report depends on
        end_run(run_execution(body, Guided(tids, choices=per_thread(tids, values)), session, max_steps))
    strat = Guided(guide, probe, choices)
    ex = run_execution(body, strat, session, max_steps, tracing=tracing)
    f = primary(ex)
    steps = (f.step + 1) if f is not None and f.step is not None else len(ex.schedule)
    sched = "|".join([*(encode(t, v) for t, v in prefix), ex.schedule_string()])
    return Run(f, sched, strat.preemptions, steps, ex)


def per_thread(tids: list[int], values: dict[int, int]) -> dict[int, list[int]]:
    """The nondet() outcomes of a run, per thread, in order."""
    out: dict[int, list[int]] = {}
    for step in sorted(values):
        out.setdefault(tids[step], []).append(values[step])
    return out


@dataclass(frozen=True)
class Shrink:
    """What :func:`minimise` did: the counterexample's size before and after, candidates tried."""

    before: tuple[int, int]  # (preemptions, steps)
    after: tuple[int, int]
    tries: int

    @property
    def shrank(self) -> bool:
        return self.after < self.before

    def describe(self) -> str:
        (p0, s0), (p1, s1) = self.before, self.after
        if not self.shrank:
            return f"minimal already: {p1} preemption(s), {s1} steps ({self.tries} candidates tried)"
        return f"minimised: {p0} -> {p1} preemption(s), {s0} -> {s1} steps ({self.tries} candidates tried)"

    def as_dict(self) -> dict[str, Any]:
        return {
            "preemptions_before": self.before[0],
            "steps_before": self.before[1],
            "preemptions": self.after[0],
            "steps": self.after[1],
            "tries": self.tries,
        }


@dataclass(frozen=True)
class Shrunk:
    """The outcome of :func:`minimise`: the result with the minimal finding (traced), and how."""

    result: Result
    shrink: Shrink


def _blocks(guide: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for t in guide:
        if out and out[-1][0] == t:
            out[-1].append(t)
        else:
            out.append([t])
    return out


def _candidates(guide: list[int]) -> list[list[int]]:
    """Edits of ``guide``: drop the tail after a block, drop a block, swap neighbour blocks."""
    bl = _blocks(guide)

    def flat(parts: list[list[int]]) -> list[int]:
        return [t for b in parts for t in b]

    out = [flat(bl[:k]) for k in range(len(bl))]
    out += [flat(bl[:k] + bl[k + 1 :]) for k in range(len(bl))]
    out += [flat([*bl[:k], bl[k + 1], bl[k], *bl[k + 2 :]]) for k in range(len(bl) - 1)]
    return out


def minimise(
    scn: Scenario,
    result: Result,
    *,
    max_steps: int = DEFAULT_MAX_STEPS,
    kcsan: bool | None = None,
    max_tries: int = 300,
    max_seconds: float = 60.0,
    step_timeout_s: float | None = None,
) -> Shrunk:
    """Shrink ``result``'s counterexample; returns the replayed minimal one (or the first, if none).

    The budget is counted in candidates (``max_tries``), so the result does not depend on the
    machine's speed; ``max_seconds`` is only a safety net.  Candidates run under the
    watchdog (``step_timeout_s``), as the search did: a candidate stuck in pure Python
    is a step-limit finding, not a hang.
    """
    with guard.watching(max_seconds, step_timeout_s):
        return _minimise(scn, result, max_steps, kcsan, max_tries, max_seconds, step_timeout_s)


def _minimise(
    scn: Scenario,
    result: Result,
    max_steps: int,
    kcsan: bool | None,
    max_tries: int,
    max_seconds: float,
    step_timeout_s: float | None,
) -> Shrunk:
    f = result.finding
    assert f is not None, "minimise() needs a result with a finding"
    use_kcsan = Settings(kcsan=kcsan).resolve(Target(scn, result.variant))[1].kcsan_on
    runs = split_runs(f.schedule)
    prefix, (last, values) = runs[:-1], runs[-1]
    choices = per_thread(last, values)
    first = run_guided(
        scn, result.variant, prefix, last, kcsan=use_kcsan, max_steps=max_steps, choices=choices
    )
    want = signature(f)
    if first.finding is None or signature(first.finding) != want:
        return Shrunk(result, Shrink((first.preemptions, first.steps), (first.preemptions, first.steps), 0))
    best = first
    best_guide = _executed(first)[: first.steps]
    tries = 0
    t0 = time.perf_counter()
    improved = True
    seen: set[tuple[int, ...]] = set()
    while improved and tries < max_tries and time.perf_counter() - t0 < max_seconds:
        improved = False
        for cand in _candidates(best_guide):
            key = tuple(cand)
            if key in seen:
                continue
            seen.add(key)
            if tries >= max_tries or time.perf_counter() - t0 >= max_seconds:
                break
            tries += 1
            r = run_guided(
                scn, result.variant, prefix, cand, kcsan=use_kcsan, max_steps=max_steps, choices=choices
            )
            if r.finding is None or signature(r.finding) != want:
                continue
            if (r.preemptions, r.steps) < (best.preemptions, best.steps):
                best, best_guide, improved = r, _executed(r)[: r.steps], True
                break
    sizes = (first.preemptions, first.steps)
    if best.schedule == f.schedule and f.trace:  # nothing shrank: the search's traced finding stands
        return Shrunk(result, Shrink(sizes, sizes, tries))
    shrunk = replay(
        scn,
        best.schedule,
        variant=result.variant,
        max_steps=max_steps,
        kcsan=use_kcsan,
        step_timeout_s=step_timeout_s,
    )
    if shrunk.finding is None or signature(shrunk.finding) != want:  # cannot happen: replay is exact
        best, shrunk = first, result
    else:
        shrunk = _keep_stats(result, shrunk)
    return Shrunk(shrunk, Shrink(sizes, (best.preemptions, best.steps), tries))


def _executed(r: Run) -> list[int]:
    return list(r.execution.schedule)


def _keep_stats(search: Result, replayed: Result) -> Result:
    """The search's figures (executions, time, coverage) with the minimised finding."""
    return replace(search, finding=replayed.finding, warnings=search.warnings)
