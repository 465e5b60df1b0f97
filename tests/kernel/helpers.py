"""What every kernel test asks of a check: run a body, and say it was clean or found X."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvmcheck import Result, check, scenario


def run(body: Callable[..., Any], **kw: Any) -> Result:
    """Check ``body`` as a scenario (dpor unless ``strategy=`` says otherwise)."""
    return check(scenario(body), **kw)


def ok(r: Result) -> None:
    """Clean, and exhaustively so: no finding, no warning, every interleaving covered."""
    assert r.verdict == "ok", r.finding
    assert r.finding is None
    assert r.complete
    assert r.warnings == []


def found(r: Result, kind: str, headline: str | None = None) -> None:
    """A finding of ``kind`` (and, if given, a headline containing ``headline``)."""
    assert r.verdict == "bug"
    assert r.finding is not None
    assert r.finding.kind == kind, r.finding
    if headline is not None:
        assert headline in r.finding.headline, r.finding.headline
    assert not r.complete
