"""Assertions for tests of kernel models: ``assert_ok`` and ``assert_finds``.

    from kvmcheck.testing import assert_ok, assert_finds

    def test_locked_counter():
        assert_ok(counter, variant="locked")

    def test_racy_counter_loses_an_update():
        f = assert_finds(counter, kind="assertion", variant="racy")

A failing assertion carries the text report (the story) and the replay command.
The search options of :func:`kvmcheck.check` -- the fields of :class:`Settings` -- pass
through (``strategy=``, ``max_executions=`` ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvmcheck._engine.api import as_scenario
from kvmcheck._engine.check import Result
from kvmcheck._engine.finding import Finding
from kvmcheck._engine.scenario import Scenario
from kvmcheck._engine.settings import Settings
from kvmcheck._engine.target import Target


def _run(scn: Scenario | Callable[..., Any], variant: str | None, kw: dict[str, Any]) -> tuple[Result, str]:
    from kvmcheck.report.text import render_result
    from kvmcheck.run import Output, run_one

    settings = Settings.of(**kw)
    c = run_one(Target(as_scenario(scn), variant), settings, Output(use_db=False))
    r = c.result
    text = render_result(r, c.counterexample)
    cmd = c.replay_command()
    return r, text + (f"\nreplay: {cmd}" if cmd else "")


def assert_ok(scn: Scenario | Callable[..., Any], variant: str | None = None, **kw: Any) -> Result:
    """Check ``scn`` and fail unless every interleaving was explored without a finding."""
    r, text = _run(scn, variant, kw)
    if r.verdict != "ok":
        raise AssertionError(f"expected ok, got {r.verdict}\n{text}")
    return r


def assert_finds(
    scn: Scenario | Callable[..., Any], kind: str | None = None, variant: str | None = None, **kw: Any
) -> Finding:
    """Check ``scn`` and fail unless it finds a bug (of ``kind``, when given); returns the finding."""
    r, text = _run(scn, variant, kw)
    if r.finding is None:
        raise AssertionError(
            f"expected a finding{f' of kind {kind}' if kind else ''}, got {r.verdict}\n{text}"
        )
    if kind is not None and r.finding.kind != kind:
        raise AssertionError(f"expected a finding of kind {kind}, got {r.finding.kind}\n{text}")
    return r.finding


__all__ = ["assert_finds", "assert_ok"]
