"""DPOR against brute force on the conformance corpus, and the core acceptance checks.

For every corpus scenario, DPOR must reach exactly the terminal states and
hard findings that brute force (every interleaving, no reduction) reaches,
report the same kinds of soft findings over the whole exploration, and need
no more executions.
"""

from __future__ import annotations

import functools
from itertools import permutations
from typing import Any

import pytest

from kvmcheck import Scenario, check, join, scenario, spawn
from kvmcheck._engine.schedule import decode
from kvmcheck._engine.strategies.dpor import Dpor
from kvmcheck._engine.strategies.optimal import OptimalDpor
from kvmcheck.kernel import READ_ONCE, WRITE_ONCE, Mutex, Struct, cond_resched, mutex_lock, mutex_unlock
from tests.engine.bruteforce import BruteForce, Exploration, enabled_sets, explore, outcomes, preemptions
from tests.engine.corpus import CORPUS

# Scenarios on which DPOR is known to miss something brute force reaches.
# Each entry is a strict xfail: the test starts failing loudly ("XPASS") once
# the engine is fixed, so the entry must then be removed.  (The cpu_relax()
# misses this corpus found are fixed: a relax is now dependent with every
# step of every other thread.)
KNOWN_TERMINAL_MISSES: dict[str, str] = {}
KNOWN_BUG_MISSES: dict[str, str] = {}
KNOWN_SOFT_MISSES: dict[str, str] = {}


@functools.cache
def brute(name: str) -> Exploration:
    return explore(CORPUS[name], BruteForce())


@functools.cache
def dpor(name: str) -> Exploration:
    """The default exhaustive strategy: optimal DPOR (wakeup trees)."""
    return explore(CORPUS[name], OptimalDpor())


@functools.cache
def source(name: str) -> Exploration:
    """Source-set DPOR (strategy "dpor-source"), kept for comparison."""
    return explore(CORPUS[name], Dpor())


def _params(known: dict[str, str]) -> list[Any]:
    return [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=known[n])) if n in known else n
        for n in CORPUS
    ]


def test_corpus_is_big_enough() -> None:
    assert len(CORPUS) >= 24


def test_outcomes_function_matches_explore() -> None:
    got, n = outcomes(CORPUS["store_buffering"], BruteForce())
    assert n == brute("store_buffering").executions
    assert {res for res, _, _ in got} == {(0, 1), (1, 0), (1, 1)}  # never (0, 0) under SC


@pytest.mark.parametrize("name", _params(KNOWN_TERMINAL_MISSES))
def test_dpor_reaches_every_terminal_state(name: str) -> None:
    assert dpor(name).terminal == brute(name).terminal


@pytest.mark.parametrize("name", list(CORPUS))
def test_dpor_reaches_nothing_brute_force_does_not(name: str) -> None:
    assert dpor(name).terminal <= brute(name).terminal
    assert dpor(name).soft_kinds <= brute(name).soft_kinds


@pytest.mark.parametrize("name", _params(KNOWN_BUG_MISSES))
def test_dpor_finds_a_bug_iff_brute_force_does(name: str) -> None:
    # Weaker than equality, and what check()'s verdict rests on: it stops at the
    # first finding, so which bug comes first does not matter, only that one does.
    def has_bug(e: Exploration) -> bool:
        return any(hard is not None for _, hard in e.terminal)

    assert has_bug(dpor(name)) == has_bug(brute(name))


@pytest.mark.parametrize("name", _params(KNOWN_SOFT_MISSES))
def test_dpor_reports_the_same_soft_kinds(name: str) -> None:
    # Per-execution soft tuples are not comparable (KCSAN, lockdep and
    # WARN_ON_ONCE deduplicate per check), so compare their union.
    assert dpor(name).soft_kinds == brute(name).soft_kinds


@pytest.mark.parametrize("name", list(CORPUS))
def test_dpor_needs_no_more_executions(name: str) -> None:
    assert dpor(name).executions <= brute(name).executions


@pytest.mark.parametrize("name", list(CORPUS))
def test_both_dpors_run_one_execution_per_trace(name: str) -> None:
    traces = len(brute(name).traces)  # Foata normal forms of every interleaving
    assert dpor(name).executions == len(dpor(name).traces) == traces
    assert dpor(name).blocked == 0
    assert source(name).executions == len(source(name).traces) == traces


@pytest.mark.parametrize("name", list(CORPUS))
def test_source_dpor_agrees_with_brute_force(name: str) -> None:
    assert source(name).terminal == brute(name).terminal
    assert source(name).soft_kinds == brute(name).soft_kinds


# -- acceptance checks of the core -------------------------------------------------------------
class Counter(Struct):
    value: int = 0
    log: tuple[int, ...] = ()


def lock_family(n: int, k: int) -> Scenario:
    """n threads x k critical sections on one mutex, each reading and writing one field."""

    @scenario(name=f"lock_family_{n}x{k}")
    def body() -> None:
        c = Counter()
        m = Mutex("m")

        def worker() -> None:
            for _ in range(k):
                mutex_lock(m)
                c.value = c.value + 1
                mutex_unlock(m)

        join(*[spawn(worker) for _ in range(n)])
        assert c.value == n * k

    return body


@pytest.mark.parametrize(("n", "k", "expected"), [(2, 1, 2), (2, 2, 6), (3, 1, 6), (2, 3, 20), (3, 2, 90)])
def test_lock_family_execution_counts(n: int, k: int, expected: int) -> None:
    r = check(lock_family(n, k))
    assert r.verdict == "ok"
    assert r.complete
    assert r.executions == expected


def test_disjoint_fields_need_one_execution() -> None:
    r = check(CORPUS["disjoint_fields"])
    assert r.verdict == "ok"
    assert r.complete
    assert r.executions == 1


def test_three_threads_on_disjoint_fields_need_one_execution() -> None:
    class Three(Struct):
        a: int = 0
        b: int = 0
        c: int = 0

    @scenario
    def disjoint3() -> Any:
        s = Three()

        def wa() -> None:
            s.a = s.a + 1

        def wb() -> None:
            s.b = s.b + 1

        def wc() -> None:
            s.c = s.c + 1

        join(spawn(wa), spawn(wb), spawn(wc))
        return (s.a, s.b, s.c)

    r = check(disjoint3)
    assert (r.verdict, r.complete, r.executions) == ("ok", True, 1)


def test_bounded_finds_lost_update_with_at_most_one_preemption() -> None:
    scn = CORPUS["lost_update_assert"]
    r = check(scn, strategy="bounded", keep_going=True)
    assert r.verdict == "bug"
    f = r.finding
    assert f is not None
    assert f.kind == "assertion"
    assert "|" not in f.schedule
    tids = decode(f.schedule)
    # the trace shows exactly the scheduled steps
    assert [s.thread for s in f.trace] == tids
    assert preemptions(tids, enabled_sets(scn, tids)) <= 1


def test_abba_is_a_deadlock_naming_both_locks() -> None:
    @scenario
    def abba() -> None:
        a, b = Mutex("kvm->lock"), Mutex("kvm->slots_lock")

        def t1() -> None:
            mutex_lock(a)
            mutex_lock(b)
            mutex_unlock(b)
            mutex_unlock(a)

        def t2() -> None:
            mutex_lock(b)
            mutex_lock(a)
            mutex_unlock(a)
            mutex_unlock(b)

        join(spawn(t1), spawn(t2))

    r = check(abba, keep_going=True)  # lockdep warns first
    assert r.verdict == "bug"
    assert r.finding is not None
    assert r.finding.kind == "deadlock"
    assert "kvm->lock" in r.finding.message
    assert "kvm->slots_lock" in r.finding.message


def test_two_threads_two_appends_yield_all_six_orders() -> None:
    got, n = outcomes(CORPUS["two_appends"], Dpor())
    assert all(hard is None for _, hard, _ in got)
    orders = {res for res, _, _ in got}
    assert orders == set(permutations((1, 1, 2, 2)))
    assert len(orders) == 6
    assert n == 6


# -- regressions: shapes DPOR once missed ---------------------------------------------------------
def test_dpor_explores_past_a_deadlock() -> None:
    # the blocked threads' pending ops race too: t1 sees the flag and takes B before t2
    assert (1, None) in brute("deadlock_sometimes").terminal
    assert (1, None) in dpor("deadlock_sometimes").terminal


def test_dpor_explores_past_a_finding() -> None:
    # main's write between t1's write and read saves t1 from its oops
    assert (2, None) in brute("bug_hides_a_clean_run").terminal
    assert (2, None) in dpor("bug_hides_a_clean_run").terminal


def test_an_oops_kills_only_its_thread() -> None:
    both = (("bug-on", "t1"), ("bug-on", "t2"))
    assert dpor("independent_bugs").terminal == brute("independent_bugs").terminal == {(0, both)}
    assert dpor("bug_hides_warn").soft_kinds == {"warn"}


def test_check_finds_the_bug_behind_two_cond_resched() -> None:
    assert check(CORPUS["yield_twice"]).verdict == "bug"


def test_two_cond_resched_hide_no_interleaving() -> None:
    @scenario
    def two_yields() -> Any:
        c = Counter()

        def t1() -> None:
            WRITE_ONCE(c, "value", 1)

        def t2() -> None:
            cond_resched()
            cond_resched()
            WRITE_ONCE(c, "value", 2)

        join(spawn(t1), spawn(t2))
        return READ_ONCE(c, "value")

    assert {res for res, _ in explore(two_yields, BruteForce()).terminal} == {1, 2}
    assert {res for res, _ in explore(two_yields, Dpor()).terminal} == {1, 2}


# -- minimal reproductions of misses fixed since (regression tests) -------------------------------------------------
def test_brute_force_sees_the_spinner_give_up() -> None:
    assert {res for res, _ in brute("bounded_spin").terminal} == {0, 1, 2}


def test_dpor_sees_the_spinner_give_up() -> None:
    assert (2, None) in dpor("bounded_spin").terminal


def test_brute_force_finds_the_bug_after_cpu_relax() -> None:
    assert any(hard is not None for _, hard in brute("relax_then_write").terminal)


def test_check_finds_the_bug_after_cpu_relax() -> None:
    r = check(CORPUS["relax_then_write"])
    assert r.verdict == "bug"
