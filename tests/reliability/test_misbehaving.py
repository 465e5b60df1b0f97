# ruff: noqa: E722, SIM105
"""Model code that exits, interrupts, swallows the checker's unwinding, or loops forever."""

from __future__ import annotations

import sys
import time

import pytest

from kvmcheck import UsageError, check, join, scenario, spawn
from kvmcheck.kernel import SpinLock, Struct, spin_lock, spin_unlock


class C(Struct):
    x: int = 0


def _two(fn):  # type: ignore[no-untyped-def]
    @scenario
    def scn() -> None:
        c = C()
        join(spawn(fn, c), spawn(lambda c: setattr(c, "x", 2), c))

    return scn


@pytest.mark.parametrize(
    "exc",
    [SystemExit, SystemExit(3), KeyboardInterrupt, GeneratorExit],
    ids=["exit", "exit3", "kbint", "genexit"],
)
def test_model_exit_or_interrupt_is_an_oops_naming_exception_and_line(exc: object) -> None:
    def bad(c: C) -> None:
        c.x = 1
        raise exc  # type: ignore[misc]

    r = check(_two(bad))
    assert r.verdict == "bug"
    assert r.finding is not None and r.finding.kind == "exception"
    name = exc.__name__ if isinstance(exc, type) else type(exc).__name__
    assert name in r.finding.message and "test_misbehaving.py:" in r.finding.message


def test_sys_exit_in_the_scenario_body_is_an_oops() -> None:
    @scenario
    def scn() -> None:
        C().x = 1
        sys.exit(0)

    r = check(scn)
    assert r.verdict == "bug" and r.finding is not None and "SystemExit" in r.finding.message


def test_bare_except_swallowing_the_unwinding_is_a_usage_error_naming_the_line() -> None:
    @scenario
    def scn() -> None:
        lock = SpinLock()
        c = C()

        def holder() -> None:
            spin_lock(lock)
            raise ValueError("oops while holding the lock")

        def swallower() -> None:
            while True:
                try:
                    spin_lock(lock)  # blocks forever: the run ends as a finding, Abort is raised here
                    spin_unlock(lock)
                    c.x += 1
                except:  # the misbehaviour under test
                    pass

        join(spawn(holder), spawn(swallower))

    with pytest.raises(UsageError, match=r"swallows the checker's unwinding.*|test_misbehaving.py:\d+"):
        check(scn, max_executions=5)


def test_bare_except_around_ordinary_errors_is_fine() -> None:
    @scenario
    def scn() -> None:
        c = C()

        def t() -> None:
            try:
                c.x = 1 // 0
            except:
                pass

        join(spawn(t), spawn(t))

    assert check(scn, kcsan=False).verdict == "ok"


def test_bare_except_swallowing_an_oops_then_returning_is_a_usage_error() -> None:
    from kvmcheck.kernel import BUG_ON

    @scenario
    def scn() -> None:
        c = C()

        def t() -> None:
            try:
                BUG_ON(c.x == 0)  # an oops: the checker unwinds this thread
            except:
                pass
            try:
                c.x = 5
            except:
                pass

        join(spawn(t))

    with pytest.raises(
        UsageError,
        match=r"'t#1' went on after the checker stopped it at t \(test_misbehaving.py:\d+\): a bare",
    ):
        check(scn)


def test_pure_python_loop_is_a_step_time_finding_naming_thread_and_line() -> None:
    from kvmcheck import Settings

    def spinner(c: C) -> None:
        c.x = 1
        while True:  # no visible operation: the watchdog stops it
            pass

    t0 = time.perf_counter()
    r = check(_two(spinner), settings=Settings(step_timeout_s=0.5, max_executions=2))
    assert r.verdict == "bug" and r.finding is not None
    assert r.finding.kind == "step-limit"
    assert "spinner" in r.finding.message and "test_misbehaving.py:" in r.finding.message
    assert time.perf_counter() - t0 < 60  # a hang guard, not a speed assertion


def test_max_seconds_is_enforced_inside_an_execution() -> None:
    def spinner(c: C) -> None:
        c.x = 1
        t = time.perf_counter()
        while time.perf_counter() - t < 1e9:
            pass

    t0 = time.perf_counter()
    r = check(_two(spinner), max_seconds=0.5)
    assert r.verdict == "bounded" and not r.complete
    assert time.perf_counter() - t0 < 8


def test_hot_field_reread_is_stopped_by_max_seconds() -> None:
    """``--max-steps 200000 --max-seconds 2`` on a thread re-reading one field: was O(steps^2)."""

    @scenario
    def scn() -> None:
        c = C()

        def reader() -> None:
            while c.x == 0:
                pass

        join(spawn(reader))

    t0 = time.perf_counter()
    r = check(scn, max_steps=200_000, max_seconds=1)
    assert r.verdict in ("bounded", "bug")
    assert time.perf_counter() - t0 < 30


def test_replay_of_a_pure_python_loop_ends_with_the_step_time_finding() -> None:
    from kvmcheck import Settings, replay

    def spinner(c: C) -> None:
        c.x = 1
        while True:
            pass

    scn = _two(spinner)
    r = check(scn, settings=Settings(step_timeout_s=0.3))
    assert r.finding is not None
    import kvmcheck._engine.guard as guard

    old = guard.DEFAULT_STEP_TIMEOUT_S
    guard.DEFAULT_STEP_TIMEOUT_S = 0.3
    try:
        rr = replay(scn, r.finding.schedule)
    finally:
        guard.DEFAULT_STEP_TIMEOUT_S = old
    assert rr.verdict == "bug" and rr.finding is not None and rr.finding.kind == "step-limit"
