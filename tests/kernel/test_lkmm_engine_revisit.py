"""Reads of writes performed later (revisits) and co placements: found, replayed, never invented.

A model asserting that load buffering's r0=1, r1=1 cannot happen is wrong under the
LKMM (LB+poonceonces is Sometimes); the engine finds it only by letting a read take
the value of a write its run has not performed yet.  The counterexample's schedule
carries that value in the choice outcome, so it replays with no other state.  With a
dependency or a barrier on both sides (LB+ctrl+mb, LB+data+mb) it is forbidden, and
the same assertion holds.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kvmcheck import check, join, replay, scenario, spawn
from kvmcheck.kernel import READ_ONCE, WRITE_ONCE, Struct, smp_mb


class Mem(Struct):
    x: int = 0
    y: int = 0


def lb(p0_dep: str, p1_dep: str) -> Callable[[], None]:
    """LB with ``po`` / ``data`` / ``ctrl`` / ``mb`` between each thread's read and write."""

    def then_write(m: Mem, dep: str, r: int, loc: str) -> None:
        if dep == "mb":
            smp_mb()
        if dep == "data":
            WRITE_ONCE(m, loc, r + 1 - r)  # computed from r: a data dependency (value 1)
        elif dep == "ctrl":
            if r:
                WRITE_ONCE(m, loc, 1)
        else:
            WRITE_ONCE(m, loc, 1)

    def body() -> None:
        m = Mem()
        got = {}

        def p0() -> None:
            got[0] = READ_ONCE(m, "x")
            then_write(m, p0_dep, got[0], "y")

        def p1() -> None:
            got[1] = READ_ONCE(m, "y")
            then_write(m, p1_dep, got[1], "x")

        join(spawn(p0), spawn(p1))
        assert not (got[0] == 1 and got[1] == 1), "load buffering"

    return body


def test_lb_found_only_under_lkmm_and_its_schedule_replays() -> None:
    body = scenario(name="lb")(lb("po", "po"))
    sc = check(body, memory_model="sc")
    assert sc.verdict == "ok" and sc.complete
    lk = check(body, memory_model="lkmm")
    assert lk.verdict == "bug" and lk.finding is not None
    assert "load buffering" in lk.finding.message
    again = replay(body, lk.finding.schedule, memory_model="lkmm")
    assert again.finding is not None and "load buffering" in again.finding.message


@pytest.mark.parametrize(("p0", "p1", "verdict"), [
    ("po", "mb", "bug"),
    ("data", "po", "bug"),
    ("ctrl", "po", "bug"),
    ("ctrl", "mb", "ok"),
    ("data", "mb", "ok"),
    ("data", "ctrl", "ok"),
    ("mb", "mb", "ok"),
])  # fmt: skip
def test_lb_verdicts_follow_the_lkmm(p0: str, p1: str, verdict: str) -> None:
    """herd7's answers for these shapes (tools/memory-model/litmus-tests: LB+poonceonces and
    LB+fencembonceonce+ctrlonceonce; the oracle agrees on every one in test_lkmm_engine.py)."""
    r = check(scenario(name=f"lb-{p0}-{p1}")(lb(p0, p1)), memory_model="lkmm")
    assert r.verdict == verdict, r.finding
    if verdict == "ok":
        assert r.complete


def test_2_2w_found_only_under_lkmm() -> None:
    """2+2W: each thread's second write co-before the other's first -- no interleaving
    performs that coherence order; a marked write's co placement reaches it."""

    @scenario
    def two_plus_two_w() -> None:
        m = Mem()

        def p0() -> None:
            WRITE_ONCE(m, "x", 1)
            WRITE_ONCE(m, "y", 2)

        def p1() -> None:
            WRITE_ONCE(m, "y", 1)
            WRITE_ONCE(m, "x", 2)

        join(spawn(p0), spawn(p1))
        assert not (m.x == 1 and m.y == 1), "2+2W"

    assert check(two_plus_two_w, memory_model="sc").verdict == "ok"
    lk = check(two_plus_two_w, memory_model="lkmm")
    assert lk.verdict == "bug" and lk.finding is not None and "2+2W" in lk.finding.message
    again = replay(two_plus_two_w, lk.finding.schedule, memory_model="lkmm")
    assert again.finding is not None and "2+2W" in again.finding.message


def test_a_run_the_search_abandons_is_validated_too() -> None:
    """A report from a run the search abandons (sleep-set blocked) is dropped when the weak
    model's validation fails: page_track.fast_path [v6.1] reported a guest that spun on a
    value read from a write that never came, in a run DPOR abandoned before its end."""
    from kvmcheck._engine import runtime
    from kvmcheck._engine.explore import run_execution
    from kvmcheck._engine.session import Session
    from kvmcheck._engine.strategy import StrategyBase

    class AbandonAtStep2(StrategyBase):
        def choose(self, ex: object, enabled: list[int]) -> int | None:
            return None if len(ex.schedule) >= 2 else max(enabled)  # type: ignore[attr-defined]

        def next_execution(self) -> bool:
            return False

    def body(valid: bool) -> None:
        ex = runtime.current
        assert ex is not None
        ex.accept = lambda ex: valid
        m = Mem()

        def t() -> None:
            WRITE_ONCE(m, "x", 1)
            raise AssertionError("reported")

        join(spawn(t))

    for valid in (True, False):
        ex = run_execution(lambda v=valid: body(v), AbandonAtStep2(), Session(), 100)  # type: ignore[misc]
        assert ex.outcome == "blocked"
        assert (ex.finding is not None) == valid


class Mem3(Struct):
    x: int = 0
    y: int = 0
    z: int = 0


def test_a_traced_replay_builds_the_search_s_graph() -> None:
    """The traced replay formats the value each write stores (kernel/trace_values.py); that
    must not count as the model using it, or T0's ``WRITE_ONCE(y, 1)`` would depend on its
    read in the replay only, the LB outcome the search found would be forbidden there, and
    the counterexample would not replay."""

    @scenario
    def lb_with_a_data_write() -> None:
        m = Mem3()
        got = {}

        def p0() -> None:
            got[0] = READ_ONCE(m, "x")
            WRITE_ONCE(m, "z", got[0])  # the traced replay formats this value
            WRITE_ONCE(m, "y", 1)  # independent of the read: LB is allowed

        def p1() -> None:
            got[1] = READ_ONCE(m, "y")
            smp_mb()  # ordered on this side: LB then hinges on p0's W y not depending on its read
            WRITE_ONCE(m, "x", 1)

        join(spawn(p0), spawn(p1))
        assert not (got[0] == 1 and got[1] == 1), "load buffering"

    lk = check(lb_with_a_data_write, memory_model="lkmm")
    assert lk.verdict == "bug" and lk.finding is not None and lk.finding.trace
    again = replay(lb_with_a_data_write, lk.finding.schedule, memory_model="lkmm")
    assert again.finding is not None and "load buffering" in again.finding.message
