"""The report is the first one the kernel would print in the execution that found the bug, and
--json names a failing step for every kind."""

from __future__ import annotations

from kvmcheck import check, scenario
from kvmcheck.kernel import Refcount, SpinLock, refcount_dec, refcount_read, spin_lock
from kvmcheck.report.json_report import finding_json


@scenario
def warn_then_assert() -> None:
    """refcount_dec() to zero WARNs ("decrement hit 0"); an assertion fails after it."""
    r = Refcount(1)
    refcount_dec(r)
    assert refcount_read(r) == 1, "the model's invariant"


def test_a_warn_before_an_assertion_is_the_headline() -> None:
    r = check(warn_then_assert)
    assert r.finding is not None
    assert r.finding.kind == "refcount", r.finding
    assert r.finding.headline.startswith("WARNING: refcount bug")
    assert "decrement hit 0" in r.finding.message
    assert any(w.kind == "assertion" for w in r.warnings)  # the later report is still listed


@scenario
def recursive_spin() -> None:
    lock = SpinLock("lock")
    spin_lock(lock)
    spin_lock(lock)


def test_failing_step_is_never_null() -> None:
    """A recursive spin_lock() stops the task before the acquisition: the report's own step."""
    r = check(recursive_spin)
    assert r.finding is not None
    d = finding_json(r.finding)
    assert d["failing_step"] is not None
    assert d["failing_step"] == r.finding.step
