"""The run pipeline: one target checked the way the CLI and the pytest plugin check it.

Saved counterexample first (the failure database), else the search (the engine's
``check(target, settings)``); a bug found by the search is confirmed (``confirm()``:
traced, minimised to the fewest preemptions, then fewest steps) and saved for the next
run.  It sits above the engine and the reports: it imports both, and neither imports it.

What to check is a :class:`Target`; how to search, one :class:`Settings` (built once by
the caller, passed down unchanged); what to do around the search and how to report it,
one :class:`Output`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from kvmcheck._engine.check import Progress, check, replay
from kvmcheck._engine.confirm import confirm
from kvmcheck._engine.finding import UsageError
from kvmcheck._engine.settings import Settings
from kvmcheck._engine.target import Target
from kvmcheck.report import database as db
from kvmcheck.report.checked import Checked

__all__ = ["Checked", "Output", "run_one"]


@dataclass(frozen=True)
class Output:
    """The report-only knobs: what happens around the search, and how it is shown."""

    minimise: bool = True  # shrink a counterexample (fewest preemptions, then steps): confirm(shrink=)
    use_db: bool = True  # replay the saved counterexample first; save new ones
    full: bool = False  # the text report shows every step, not only the story
    as_json: bool = False  # a JSON list of results instead of text
    html: str | None = None  # also write an HTML report to this file


def run_one(
    target: Target,
    settings: Settings,
    output: Output,
    *,
    db_origin: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> Checked:
    """Check ``target``: the failure database first, else the search, then minimise and save.

    ``db_origin`` scopes the failure database's entry (default: the target's model file)."""
    target, _ = settings.resolve(target)  # the target as checked (its memory model)
    origin = (target.origin or "") if db_origin is None else db_origin
    if output.use_db and settings.resume is None:  # resuming asks for the search itself
        hit = _replay_saved(target, settings, origin)
        if hit is not None:
            return hit
    r = check(target, settings, on_progress)
    cx = None
    if r.finding is not None:
        cx = confirm(target, r, settings, shrink=output.minimise)
        r = replace(r, finding=cx.finding)
    if r.finding is not None and output.use_db:
        f = r.finding
        s, variant = target.scenario, target.variant
        db.save(db.Saved(target.locator(), s.name, variant, f.schedule, f.kind, f.headline, db.now()), origin)
    return Checked(target, r, cx)


def _replay_saved(target: Target, settings: Settings, origin: str) -> Checked | None:
    name, variant = target.scenario.name, target.variant
    saved = db.load(name, variant, origin)
    if saved is None:
        return None
    try:
        r = replay(target, saved.schedule, settings)
    except UsageError:  # the model changed: the schedule no longer fits
        db.drop(name, variant, origin)
        return None
    if r.verdict != "bug":  # fixed since: search afresh
        db.drop(name, variant, origin)
        return None
    r = replace(r, coverage=f"saved counterexample replayed first (from {db.root()}/; --no-db skips it)")
    return Checked(target, r, from_db=True)
