"""Optimal DPOR: exactly one execution per Mazurkiewicz trace, none sleep-set blocked.

The benchmarks of Abdulla et al., "Optimal Dynamic Partial Order Reduction"
(POPL 2014): lastzero(N), readers(N), and the three-thread program of its
Fig. 2 on which source sets with sleep sets start a blocked execution.  The
trace counts come from the test suite's own enumerators, which share nothing
with DPOR or the engine: brute force over every interleaving of the real
program quotiented by Foata normal form (small sizes), and, for every size,
an explicit-state search over an abstract copy of each program (a few lines
of plain Python per thread) that counts distinct reads-from maps.  In these
programs every location is written at most once, so a trace is determined
by what each read returned: the traces are the distinct reads-from maps.
The small sizes check that the two counts agree.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest

from kvmcheck import Scenario, check, join, scenario, spawn
from kvmcheck._engine.strategies.dpor import Dpor
from kvmcheck._engine.strategies.optimal import OptimalDpor
from kvmcheck.kernel import READ_ONCE, WRITE_ONCE, Struct
from tests.engine.bruteforce import BruteForce, explore
from tests.kernel.corpus_kernel import CORPUS as KERNEL_CORPUS


class Cell(Struct):
    v: int = 0


def lastzero(n: int) -> Scenario:
    """Thread 0 scans array[n..0] down to the last zero; thread j sets array[j] = array[j-1] + 1."""

    @scenario(name=f"lastzero({n})", kcsan=False)
    def body() -> Any:
        cells = [Cell() for _ in range(n + 1)]

        def scan() -> int:
            i = n
            while READ_ONCE(cells[i], "v") != 0:
                i -= 1
            return i

        def setter(j: int) -> None:
            WRITE_ONCE(cells[j], "v", READ_ONCE(cells[j - 1], "v") + 1)

        return join(spawn(scan), *[spawn(setter, j) for j in range(1, n + 1)])[0]

    return body


def readers(n: int) -> Scenario:
    """One writer of x and n readers of x: 2^n traces."""

    @scenario(name=f"readers({n})", kcsan=False)
    def body() -> Any:
        x = Cell()

        def writer() -> None:
            WRITE_ONCE(x, "v", 1)

        def reader() -> int:
            return int(READ_ONCE(x, "v"))

        return join(spawn(writer), *[spawn(reader) for _ in range(n)])

    return body


@scenario(name="popl14_fig2", kcsan=False)
def popl14_fig2() -> Any:
    """p: x := 1;  q: y := 1;  r: m := y; if m == 0 then z := x + 10.

    Source sets with sleep sets run a sleep-set-blocked execution here (r's
    read of x races with p's write only in the run where r read y before q
    wrote it); wakeup trees none."""
    x, y, z = Cell(), Cell(), Cell()

    def p() -> None:
        WRITE_ONCE(x, "v", 1)

    def q() -> None:
        WRITE_ONCE(y, "v", 1)

    def r() -> int:
        m = READ_ONCE(y, "v")
        if m == 0:
            WRITE_ONCE(z, "v", READ_ONCE(x, "v") + 10)
        return m

    return join(spawn(p), spawn(q), spawn(r))


# -- the abstract programs -----------------------------------------------------------------
# A thread is a function of (the values it has read so far, how many steps it has taken)
# giving its next action: ("r", location), ("w", location, value), or None when done.
Action = tuple[Any, ...] | None
AThread = Callable[[tuple[int, ...], int], Action]


def abstract_lastzero(n: int) -> list[AThread]:
    def scan(reads: tuple[int, ...], steps: int) -> Action:
        if reads and reads[-1] == 0:
            return None
        return ("r", n - len(reads))

    def setter(j: int) -> AThread:
        def t(reads: tuple[int, ...], steps: int) -> Action:
            return ("r", j - 1) if steps == 0 else ("w", j, reads[0] + 1) if steps == 1 else None

        return t

    return [scan, *[setter(j) for j in range(1, n + 1)]]


def abstract_readers(n: int) -> list[AThread]:
    def writer(reads: tuple[int, ...], steps: int) -> Action:
        return ("w", 0, 1) if steps == 0 else None

    def reader(reads: tuple[int, ...], steps: int) -> Action:
        return ("r", 0) if steps == 0 else None

    return [writer, *[reader] * n]


def abstract_fig2() -> list[AThread]:
    x, y, z = 0, 1, 2

    def p(reads: tuple[int, ...], steps: int) -> Action:
        return ("w", x, 1) if steps == 0 else None

    def q(reads: tuple[int, ...], steps: int) -> Action:
        return ("w", y, 1) if steps == 0 else None

    def r(reads: tuple[int, ...], steps: int) -> Action:
        if steps == 0:
            return ("r", y)
        if reads[0] != 0:
            return None
        return ("r", x) if steps == 1 else ("w", z, reads[1] + 10) if steps == 2 else None

    return [p, q, r]


def abstract_traces(threads: list[AThread]) -> int:
    """Distinct reads-from maps over every interleaving (explicit states, memoised)."""
    start = (tuple(((), 0) for _ in threads), ())
    seen = {start}
    work = [start]
    finals: set[tuple[tuple[int, ...], ...]] = set()
    while work:
        ts, mem_items = work.pop()
        mem = dict(mem_items)
        moved = False
        for i, (reads, steps) in enumerate(ts):
            act = threads[i](reads, steps)
            if act is None:
                continue
            moved = True
            if act[0] == "r":
                new_t = ((*reads, mem.get(act[1], 0)), steps + 1)
                new_mem = mem_items
            else:
                new_t = (reads, steps + 1)
                new_mem = tuple(sorted({**mem, act[1]: act[2]}.items()))
            state = ((*ts[:i], new_t, *ts[i + 1 :]), new_mem)
            if state not in seen:
                seen.add(state)
                work.append(state)
        if not moved:
            finals.add(tuple(reads for reads, _ in ts))
    return len(finals)


ABSTRACT: dict[str, Callable[[], list[AThread]]] = {
    **{f"lastzero({n})": functools.partial(abstract_lastzero, n) for n in range(1, 9)},
    **{f"readers({n})": functools.partial(abstract_readers, n) for n in range(1, 9)},
    "popl14_fig2": abstract_fig2,
}


@functools.cache
def traces(scn: Scenario) -> int:
    """The number of Mazurkiewicz traces of a benchmark, from its abstract copy."""
    return abstract_traces(ABSTRACT[scn.name]())


PROGRAMS = [lastzero(n) for n in range(1, 7)] + [readers(n) for n in range(2, 7)] + [popl14_fig2]


@pytest.mark.parametrize("scn", PROGRAMS, ids=lambda s: s.name)
def test_one_execution_per_trace_and_none_blocked(scn: Scenario) -> None:
    o = OptimalDpor()
    got = explore(scn, o)
    assert got.blocked == 0
    assert o.forced_misses == 0
    assert got.executions == traces(scn)
    assert len(got.traces) == got.executions  # all different traces
    r = check(scn)  # the default strategy is optimal DPOR
    assert (r.verdict, r.executions, r.blocked) == ("ok", traces(scn), 0)


@pytest.mark.parametrize("scn", [lastzero(1), readers(2), popl14_fig2], ids=lambda s: s.name)
def test_the_two_trace_counts_agree_with_brute_force(scn: Scenario) -> None:
    bf = explore(scn, BruteForce())
    assert len(bf.traces) == traces(scn)
    assert explore(scn, OptimalDpor()).terminal == bf.terminal


def test_known_counts() -> None:
    assert [traces(readers(n)) for n in range(2, 7)] == [4, 8, 16, 32, 64]
    assert traces(lastzero(3)) == explore(lastzero(3), Dpor()).executions


def test_source_sets_block_where_optimal_does_not() -> None:
    """Where the two differ: source DPOR starts blocked executions on lastzero, optimal none."""
    src = explore(lastzero(5), Dpor())
    opt = explore(lastzero(5), OptimalDpor())
    assert src.executions == opt.executions == traces(lastzero(5))
    assert src.blocked > 0
    assert opt.blocked == 0


def test_dpor_source_stays_runnable_by_name() -> None:
    r = check(lastzero(4), strategy="dpor-source")
    assert r.verdict == "ok" and r.executions == traces(lastzero(4)) and r.blocked > 0
    assert "source sets" in r.coverage


@pytest.mark.parametrize("name", sorted(KERNEL_CORPUS))
def test_optimal_agrees_with_source_dpor_on_the_kernel_corpus(name: str) -> None:
    """Source DPOR is checked against brute force there (tests/kernel); optimal against it."""
    o = OptimalDpor()
    opt = explore(KERNEL_CORPUS[name], o)
    src = explore(KERNEL_CORPUS[name], Dpor())
    assert opt.terminal == src.terminal
    assert opt.soft_kinds == src.soft_kinds
    assert opt.blocked == 0 and o.forced_misses == 0
    assert opt.executions == len(opt.traces) == src.executions == len(src.traces)
