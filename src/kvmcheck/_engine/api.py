"""The public keyword forms of the engine's entry points: ``kvmcheck.check`` and ``kvmcheck.replay``.

Each builds a :class:`Target` (the scenario and its variant) and a :class:`Settings` (from the
keywords, or a ``settings=`` object with the keywords replaced: :meth:`Settings.of`) and calls
the engine's :func:`kvmcheck._engine.check.check` / :func:`~kvmcheck._engine.check.replay`.
The knobs themselves are spelled once, in ``settings.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvmcheck._engine import check as engine
from kvmcheck._engine.explore import Progress
from kvmcheck._engine.finding import UsageError
from kvmcheck._engine.scenario import Scenario
from kvmcheck._engine.settings import Settings
from kvmcheck._engine.target import Target

__all__ = ["as_scenario", "check", "replay"]


def as_scenario(scn: Scenario | Callable[..., Any]) -> Scenario:
    if isinstance(scn, Scenario):
        return scn
    if callable(scn):
        return Scenario(scn)
    raise UsageError(f"{scn!r} is not a scenario (decorate a function with @scenario)")


def check(
    scn: Scenario | Callable[..., Any],
    *positional: Any,
    variant: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    settings: Settings | None = None,
    **knobs: Any,
) -> engine.Result:
    """Explore ``scn`` (its ``variant``) and return a :class:`Result`.

    ``check(scn, strategy="dpor", max_executions=None, max_seconds=None, seed=0, **knobs)``:
    the first four may be given by position; every keyword is a field of :class:`Settings`
    (``settings=`` an object of it, the keywords then replacing its fields):

    ``strategy`` ("dpor", "bounded", "random", "pct"); ``max_executions``, ``max_seconds``,
    ``max_steps`` (steps per execution): bounds; ``seed`` (random, pct); ``bound`` (bounded);
    ``depth`` (pct).  ``memory_model``: ``"sc"`` or ``"lkmm"`` (default: the scenario's; see
    kernel/barrier.py for what LKMM exploration covers).  ``kcsan`` turns data-race reports
    on or off (default: the scenario's).

    The search stops after the first execution with a finding -- hard (an oops, a deadlock,
    KASAN) or WARN-class (WARN_ON, lockdep, KCSAN, a failed ``lockdep_assert_held``); either
    makes the verdict ``bug``.  With ``keep_going`` (default: the scenario's choice) it explores
    on to the end (or to its bounds): the result's finding is then the first hard one seen
    (else the first WARN-class one), and ``warnings`` lists the other distinct reports.
    ``on_progress`` is called with a :class:`Progress` at most ~5 times a second and once at
    the end.

    ``checkpoint=FILE`` saves the search's frontier there every ``checkpoint_every_s`` seconds,
    when the search stops at a bound, and on SIGINT/SIGTERM (the check then returns a bounded
    result); ``resume=FILE`` goes on from such a file to the same totals as one uninterrupted
    run (strategy ``dpor`` only).  A checkpoint records what it was taken of (see
    ``checkpoint.py``): ``resume`` refuses another scenario, variant, model source,
    tree-shaping option or kvmcheck version; ``max_seconds`` on a resume is this run's budget.

    ``workers=N`` splits the dpor search into jobs run by N worker processes (``backend="ray"``:
    by the Ray cluster at ``address``), with one worker's verdict and executions (see
    :mod:`kvmcheck._engine.parallel`; a search that does not split runs as one job).
    ``workers=None`` (the CLI's default): one worker, and a search that splits and is not done
    after 2,000 executions starts again on every core.  Its probe runs (the split, the
    determinism probe) count against ``max_seconds``, and what they report is the check's
    finding or a :class:`Nondeterminism` -- never dropped.  A worker that died leaves the
    result so far, with ``Result.error`` naming its job.

    ``step_timeout_s``: a model thread running pure Python this long without a visible
    operation is a finding (kind ``step-limit``) naming the thread and its line.
    """
    target = Target(as_scenario(scn), variant)
    return engine.check(target, Settings.of(*positional, settings=settings, **knobs), on_progress)


def replay(
    scn: Scenario | Callable[..., Any],
    schedule: str,
    *,
    variant: str | None = None,
    settings: Settings | None = None,
    **knobs: Any,
) -> engine.Result:
    """Re-run one schedule exactly; the result carries its finding (if any) with a trace.

    Keywords as :func:`check` (those that shape one execution count: ``max_steps``, ``kcsan``,
    ``memory_model``, ``step_timeout_s`` -- default 10 s: a thread stuck in pure Python that
    long is a finding; None is the default)."""
    if "step_timeout_s" in knobs and knobs["step_timeout_s"] is None:
        del knobs["step_timeout_s"]
    target = Target(as_scenario(scn), variant)
    return engine.replay(target, schedule, Settings.of(settings=settings, **knobs))
