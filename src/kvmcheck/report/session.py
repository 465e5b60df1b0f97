"""One scenario x variant checked the way the CLI and the pytest plugin check it.

Saved counterexample first (the failure database), else the search; a bug
found by the search is minimised (fewest preemptions, then fewest steps) and
saved for the next run.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from kvmcheck._engine.check import check, replay
from kvmcheck._engine.confirm import Counterexample, confirm
from kvmcheck._engine.finding import UsageError
from kvmcheck._engine.settings import Settings
from kvmcheck._engine.target import Target
from kvmcheck.report import database as db

if TYPE_CHECKING:
    from kvmcheck._engine.check import Result
    from kvmcheck._engine.scenario import Scenario


@dataclass
class Options:
    """How to check: the engine's knobs and the report's."""

    strategy: str = "dpor"
    max_executions: int | None = None
    max_seconds: float | None = None
    max_steps: int = 20_000
    seed: int = 0
    kcsan: bool | None = None
    minimise: bool = True
    use_db: bool = True
    engine: dict[str, Any] = field(default_factory=dict)  # keep_going, workers, ... when the engine has them
    on_progress: Callable[[Any], None] | None = None


@dataclass
class Checked:
    """A result with what the report needs around it."""

    scenario: Scenario
    variant: str | None
    result: Result
    target: str  # for `kvmcheck replay`
    counterexample: Counterexample | None = None  # the finding confirmed (traced, minimised)
    from_db: bool = False  # the saved counterexample was replayed first

    @property
    def expected(self) -> str | None:
        e = self.scenario.expect
        return e.get(self.variant) if self.variant in e else e.get(None)

    @property
    def as_expected(self) -> bool:
        """The verdict its ``expect=`` declares; with none, no bug (as the pytest plugin says)."""
        if self.expected is None:
            return self.result.verdict != "bug"
        return self.expected == self.result.verdict

    def replay_command(self) -> str | None:
        f = self.result.finding
        if f is None:
            return None
        v = f" --variant {self.variant}" if self.variant else ""
        mm = getattr(self.scenario, "memory_model", "sc")  # a weak-memory run replays under its model
        m = f" --memory-model {mm}" if mm != "sc" else ""
        return f"kvmcheck replay {self.target}{v}{m} '{f.schedule}'"


def engine_accepts(name: str) -> bool:
    """Does this engine's check() take keyword ``name`` (keep_going, on_progress, workers ...)?"""
    return name in inspect.signature(check).parameters


def run_one(scn: Scenario, variant: str | None, target: str, origin: str, opts: Options) -> Checked:
    if opts.use_db and "resume" not in opts.engine:  # resuming asks for the search itself
        hit = _replay_saved(scn, variant, target, origin, opts)
        if hit is not None:
            return hit
    extra = {k: v for k, v in opts.engine.items() if engine_accepts(k)}
    if opts.on_progress is not None and engine_accepts("on_progress"):
        extra["on_progress"] = opts.on_progress
    r = check(
        scn,
        strategy=opts.strategy,
        max_executions=opts.max_executions,
        max_seconds=opts.max_seconds,
        seed=opts.seed,
        variant=variant,
        max_steps=opts.max_steps,
        kcsan=opts.kcsan,
        **extra,
    )
    out = Checked(scn, variant, r, target)
    if r.finding is not None:
        out.counterexample = cx = confirm(
            Target(scn, variant, origin or None), r, _confirm_settings(opts), shrink=opts.minimise
        )
        out.result = replace(r, finding=cx.finding)
    if out.result.finding is not None and opts.use_db:
        f = out.result.finding
        db.save(db.Saved(target, scn.name, variant, f.schedule, f.kind, f.headline, db.now()), origin)
    return out


def _confirm_settings(opts: Options) -> Settings:
    """What confirm() needs of the check's settings (the watchdog's limit as the search had it)."""
    timeout = opts.engine.get("step_timeout_s")
    if timeout is None:
        return Settings(max_steps=opts.max_steps, kcsan=opts.kcsan)
    return Settings(max_steps=opts.max_steps, kcsan=opts.kcsan, step_timeout_s=timeout)


def _replay_saved(
    scn: Scenario, variant: str | None, target: str, origin: str, opts: Options
) -> Checked | None:
    saved = db.load(scn.name, variant, origin)
    if saved is None:
        return None
    try:
        r = replay(
            scn,
            saved.schedule,
            variant=variant,
            max_steps=opts.max_steps,
            kcsan=opts.kcsan,
            step_timeout_s=opts.engine.get("step_timeout_s"),
        )
    except UsageError:  # the model changed: the schedule no longer fits
        db.drop(scn.name, variant, origin)
        return None
    if r.verdict != "bug":  # fixed since: search afresh
        db.drop(scn.name, variant, origin)
        return None
    r = replace(r, coverage=f"saved counterexample replayed first (from {db.root()}/; --no-db skips it)")
    return Checked(scn, variant, r, target, from_db=True)
