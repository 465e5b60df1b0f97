"""kvmcheck.nondet() and kernel may_fail(): every outcome explored, recorded, replayed."""

from __future__ import annotations

from typing import Any

import pytest

from kvmcheck import UsageError, check, join, nondet, replay, scenario, spawn
from kvmcheck._engine.schedule import decode, decode_steps, encode
from kvmcheck._engine.strategies.bounded import Bounded
from kvmcheck._engine.strategies.dpor import Dpor
from kvmcheck.kernel import Mutex, Struct, may_fail, mutex_lock, mutex_unlock
from tests.engine.bruteforce import BruteForce, explore


class Box(Struct):
    a: int = 0
    b: int = 0
    log: tuple[int, ...] = ()


@scenario(kcsan=False)
def one_thread_three_choices() -> Any:
    return (nondet(), nondet(3, "color"), nondet())


@scenario(kcsan=False)
def choice_then_race() -> Any:
    """A thread picks which field to write; another writes field a: the race exists only one way."""
    box = Box()

    def picker() -> None:
        if nondet(2, "which"):
            box.b = 1
        else:
            box.a = 1

    def writer() -> None:
        box.a = 2

    join(spawn(picker), spawn(writer))
    return (box.a, box.b)


@scenario(kcsan=False)
def two_pickers_one_lock() -> Any:
    box = Box()
    m = Mutex("m")

    def t(me: int) -> None:
        v = nondet(2)
        mutex_lock(m)
        box.log = (*box.log, me * 10 + v)
        mutex_unlock(m)

    join(spawn(t, 1), spawn(t, 2))
    return box.log


@scenario(kcsan=False)
def alloc_may_fail() -> Any:
    """The failure path forgets to drop the lock: only the failing branch deadlocks."""
    m = Mutex("m")

    def t() -> None:
        mutex_lock(m)
        if may_fail("kzalloc(obj)"):
            return  # bug: returns with m held
        mutex_unlock(m)

    join(spawn(t), spawn(t))


CASES = [one_thread_three_choices, choice_then_race, two_pickers_one_lock, alloc_may_fail]


def test_one_thread_explores_every_combination() -> None:
    bf = explore(one_thread_three_choices, BruteForce())
    dp = explore(one_thread_three_choices, Dpor())
    every = {(a, b, c) for a in range(2) for b in range(3) for c in range(2)}
    assert {res for res, _, _ in bf.outcomes} == every
    assert {res for res, _, _ in dp.outcomes} == every
    assert bf.executions == dp.executions == 12


@pytest.mark.parametrize("scn", CASES, ids=lambda s: s.name)
def test_dpor_agrees_with_brute_force_and_runs_one_execution_per_trace(scn: Any) -> None:
    bf = explore(scn, BruteForce())
    dp = explore(scn, Dpor())
    assert dp.terminal == bf.terminal
    assert dp.traces == bf.traces
    assert dp.executions == len(bf.traces)  # exact: one execution per Mazurkiewicz trace


def test_exact_counts() -> None:
    # picker's choice (2) x whether its write races with writer's (only when it writes a)
    assert len(explore(choice_then_race, BruteForce()).traces) == 3
    assert {r for r, _, _ in explore(choice_then_race, Dpor()).outcomes} == {(2, 0), (1, 0), (2, 1)}
    # 2 x 2 outcomes x 2 lock orders
    assert len(explore(two_pickers_one_lock, BruteForce()).traces) == 8


@pytest.mark.parametrize("scn", CASES, ids=lambda s: s.name)
def test_bounded_covers_every_outcome(scn: Any) -> None:
    assert explore(scn, Bounded()).terminal == explore(scn, BruteForce()).terminal


def test_may_fail_finds_the_failure_path() -> None:
    r = check(alloc_may_fail)
    assert r.verdict == "bug"
    assert r.finding is not None and "exited holding m" in r.finding.message  # lockdep's WARN first
    assert "=1" in r.finding.schedule  # the failing outcome is in the schedule
    assert any("may_fail(kzalloc(obj)) = 1" in s.op for s in r.finding.trace)
    again = replay(alloc_may_fail, r.finding.schedule)
    assert again.finding is not None and "exited holding m" in again.finding.message
    full = check(alloc_may_fail, keep_going=True)
    assert full.finding is not None and full.finding.kind == "deadlock"
    assert "=1" in full.finding.schedule


@pytest.mark.parametrize("strategy", ["random", "pct"])
def test_sampling_strategies_take_both_branches(strategy: str) -> None:
    r = check(alloc_may_fail, strategy=strategy, max_executions=200, seed=1)
    assert r.verdict == "bug"


def test_schedule_with_choices_round_trips_and_replays() -> None:
    assert encode([0, 0, 1, 1, 1, 0], {2: 1}) == "0x2-1=1-1x2-0"
    assert decode_steps("0x2-1=1-1x2-0") == ([0, 0, 1, 1, 1, 0], {2: 1})
    assert decode("0x2-1=1-1x2-0") == [0, 0, 1, 1, 1, 0]
    assert decode_steps("0x5-1x2-0") == ([0] * 5 + [1, 1, 0], {})  # old strings unchanged
    seen = explore(two_pickers_one_lock, BruteForce())
    assert len(seen.runs) == seen.executions > 16
    assert all(sched.count("=") == 2 for sched, _ in seen.runs)
    assert {r for _, r in seen.runs} == {(a, b) for a in (10, 11) for b in (20, 21)} | {
        (b, a) for a in (10, 11) for b in (20, 21)
    }
    for sched, result in seen.runs:  # every execution's schedule replays to its result
        r = replay(two_pickers_one_lock, sched)
        assert r.verdict == "ok"
        assert r.steps == len(decode(sched))
        assert result == _main_result(sched)


def _main_result(sched: str) -> Any:
    from kvmcheck._engine.explore import replay_runs

    ex = replay_runs(two_pickers_one_lock.body(), sched, 1000, tracing=False, kcsan=False)
    assert ex is not None
    return ex.threads[0].result


def test_replay_rejects_a_missing_or_out_of_range_choice() -> None:
    with pytest.raises(UsageError, match="choice among 2"):
        replay(two_pickers_one_lock, "0x2-1-2=0-1x4-2x4-0x2")
    with pytest.raises(UsageError, match="choice among 2"):
        replay(two_pickers_one_lock, "0x2-1=5-2=0-1x4-2x4-0x2")


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_nondet_rejects_bad_n(bad: Any) -> None:
    @scenario
    def s() -> None:
        nondet(bad)

    # misuse inside a scenario is the user's error (one line, exit 2 in the CLI), not a finding
    with pytest.raises(UsageError, match="n must be an int >= 1"):
        check(s)


def test_nondet_outside_a_check_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        nondet()
    with pytest.raises(UsageError):
        may_fail("kmalloc")
