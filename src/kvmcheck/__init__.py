"""kvmcheck: systematic concurrency checking for models of Linux kernel code.

The public face; everything else is private (``_engine``) or kernel
vocabulary (``kvmcheck.kernel``).
"""

from __future__ import annotations

from typing import Any

from kvmcheck._engine import runtime as _runtime
from kvmcheck._engine.api import check, replay
from kvmcheck._engine.check import STRATEGIES, Progress, Result, Settings
from kvmcheck._engine.execution import Thread, skip_frames_under
from kvmcheck._engine.finding import Finding, Site, Step, UsageError
from kvmcheck._engine.provenance import PROVENANCES, Source
from kvmcheck._engine.registry import BackendSpec, StrategySpec, register_backend, register_strategy
from kvmcheck._engine.scenario import Scenario, scenario

__version__ = "0.1.0"

skip_frames_under(__file__)  # spawn(), join(), nondet() are library frames, not the model's


def spawn(fn: Any, *args: Any, name: str | None = None) -> Thread:
    """Start a model thread running ``fn(*args)``; returns a handle for :func:`join`."""
    ex = _runtime.current
    if ex is None:
        raise UsageError("spawn() called outside a check: call it from a scenario")
    return ex.spawn(fn, args, name)


def join(*threads: Thread) -> Any:
    """Wait for each thread to exit; returns its result (a tuple for several)."""
    ex = _runtime.current
    if ex is None:
        raise UsageError("join() called outside a check: call it from a scenario")
    results = [ex.join(t) for t in threads]
    return results[0] if len(results) == 1 else tuple(results)


def nondet(n: int = 2, what: str = "") -> int:
    """A nondeterministic choice among ``0 .. n-1`` that the search explores every way.

    Exhaustive strategies run each outcome (DPOR treats the choice as a branch
    point independent of every thread); the schedule string records the outcome
    (``TID=VALUE``) so replay reproduces it.  ``what`` names it in the trace.
    """
    ex = _runtime.current
    if ex is None:
        raise UsageError("nondet() called outside a check: call it from a scenario")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UsageError(f"nondet(n={n!r}): n must be an int >= 1 (the number of outcomes)")
    if n == 1:
        return 0
    return ex.nondet(n, f"nondet({what})")


__all__ = [
    "PROVENANCES",
    "STRATEGIES",
    "BackendSpec",
    "Finding",
    "Progress",
    "Result",
    "Scenario",
    "Settings",
    "Site",
    "Source",
    "Step",
    "StrategySpec",
    "Thread",
    "UsageError",
    "check",
    "join",
    "nondet",
    "register_backend",
    "register_strategy",
    "replay",
    "scenario",
    "spawn",
]
