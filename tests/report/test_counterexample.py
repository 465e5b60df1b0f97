"""The counterexample is built once and then frozen (issue 24 item 2).

The search runs untraced; confirm() replays the finding once with tracing on (check() already
did), shrinks it, and returns a frozen Counterexample whose steps carry the values the kernel
layer put on them -- the report never runs the model again, nor peeks at its frames.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from kvmcheck import check
from kvmcheck._engine import execution
from kvmcheck._engine.confirm import confirm
from kvmcheck._engine.settings import Settings
from kvmcheck._engine.target import Target
from kvmcheck._loader import resolve
from kvmcheck.kernel import struct
from tests.report.test_golden import KINDS

REPORT = Path(__file__).resolve().parents[2] / "src" / "kvmcheck" / "report"


def _uaf():
    return resolve(f"{KINDS}::kinds.use_after_free")[0]


@pytest.fixture
def runs(monkeypatch):
    """How many executions of the model are built (each is one run of its body)."""
    count = [0]
    init = execution.Execution.__init__

    def counting(self, *a, **kw):
        count[0] += 1
        init(self, *a, **kw)

    monkeypatch.setattr(execution.Execution, "__init__", counting)
    return count


def test_a_finding_cannot_be_changed_once_built():
    f = check(_uaf()).finding
    assert f is not None and f.trace
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.schedule = ""  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.trace = ()  # type: ignore[misc]
    assert isinstance(f.details, tuple) and isinstance(f.trace, tuple) and isinstance(f.needs, tuple)


def test_a_counterexample_cannot_be_changed_once_built():
    s = _uaf()
    cx = confirm(Target(s), check(s), Settings())
    with pytest.raises(dataclasses.FrozenInstanceError):
        cx.steps = ()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cx.finding = cx.finding  # type: ignore[misc]
    assert cx.shrink is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        cx.shrink.tries = 0  # type: ignore[misc]
    assert cx.steps == cx.finding.trace and cx.schedule == cx.finding.schedule


def test_the_traced_replay_carries_each_steps_value():
    """The kernel layer puts the value on the step: a field read, a counter's before->after
    with what refcount_dec_and_test returned, the refcount_t named by its field."""
    f = check(_uaf()).finding
    assert f is not None
    ops = [s.op + s.value for s in f.trace]
    assert "refcount_dec_and_test(obj->ref) 1→0 = true" in ops
    assert "read obj->data = 0" in ops
    assert not any("refcount@" in op for op in ops)  # the counter is named by the field holding it


def test_an_untraced_search_computes_no_values(monkeypatch):
    """The search runs untraced: the kernel layer's value code is not even reached."""

    def boom(*a, **kw):
        raise AssertionError("a value was computed in an untraced run")

    monkeypatch.setattr(struct, "note_access", boom)
    s = resolve("pfncache.seed_race")[0]
    r = check(s, variant="6addfcf27139", max_executions=200)  # the fix: no finding, no traced replay
    assert r.finding is None and r.executions == 200


def test_confirm_runs_the_model_only_to_shrink(runs):
    """check() replayed the finding traced already: its values need no other run.  Shrinking
    runs the model once for the first candidate's size, once per candidate, and once more to
    replay a smaller schedule -- never again for the values."""
    s = _uaf()
    r = check(s)
    runs[0] = 0
    plain = confirm(Target(s), r, Settings(), shrink=False)
    assert runs[0] == 0 and plain.shrink is None and plain.steps == r.finding.trace
    cx = confirm(Target(s), r, Settings())
    assert cx.shrink is not None
    assert runs[0] == 1 + cx.shrink.tries + (1 if cx.shrink.shrank else 0)


def test_the_report_layer_inspects_no_frames():
    """Values come on the steps; nothing in report/ reads the model's stack frames."""
    peeks = re.compile(r"_getframe|f_back|f_locals|gr_frame")
    hits = [
        f"{p.name}:{n}"
        for p in sorted(REPORT.rglob("*.py"))
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if peeks.search(line)
    ]
    assert hits == []
