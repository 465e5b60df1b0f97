"""The parallel search (parallel.py): its jobs cover every trace once, on every corpus.

The split is checked in-process, job by job: the jobs together run as many
executions as one optimal search, no two of them the same trace (Foata normal
form), and reach exactly the terminal states and soft-finding kinds of the
test suite's own brute force (every interleaving).  Then through worker processes: the same
verdict and execution count as one worker, deterministic output.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

from kvmcheck import Scenario, check, join, replay, scenario, spawn
from kvmcheck._engine.finding import UsageError
from kvmcheck._engine.parallel import JOBS_PER_WORKER, job_search, split
from kvmcheck._engine.strategies.optimal import OptimalDpor
from kvmcheck.kernel import Struct
from tests.engine.bruteforce import MAX_STEPS, BruteForce, Exploration, explore
from tests.engine.corpus import CORPUS
from tests.engine.test_conformance import lock_family
from tests.engine.test_optimal import PROGRAMS, lastzero, popl14_fig2, readers, traces
from tests.kernel.corpus_kernel import CORPUS as KERNEL_CORPUS
from tests.kernel.corpus_kernel import tiered
from tests.kernel.test_lockdep import inversion_across_executions

ALL = {
    **{f"corpus:{k}": v for k, v in CORPUS.items()},
    **{f"kernel:{k}": v for k, v in KERNEL_CORPUS.items()},
}


def explore_jobs(scn: Scenario, target: int) -> tuple[Exploration, int]:
    """Every job of a split into ``target`` jobs, explored one after the other in this process;
    what they saw together (a trace run by two jobs counted twice), and the number of jobs."""
    jobs = split(scn.body(), target, MAX_STEPS)
    out = Exploration()
    for job in jobs:
        e = explore(scn, job_search(job.state(), len(job.nodes)))
        out.executions += e.executions
        out.blocked += e.blocked
        out.outcomes |= e.outcomes
        out.traces |= e.traces
    return out, len(jobs)


@functools.cache
def brute(name: str) -> Exploration:
    return explore(ALL[name], BruteForce())


@functools.cache
def one(name: str) -> Exploration:
    return explore(ALL[name], OptimalDpor())


@pytest.mark.parametrize("target", [2, 7, 40])
@pytest.mark.parametrize("name", tiered(sorted(ALL)))
def test_jobs_cover_every_trace_once(name: str, target: int) -> None:
    got, _ = explore_jobs(ALL[name], target)
    bf = brute(name)
    # one worker's count (the corpora's tests show it is one per trace of the engine's
    # dependency relation); no trace twice
    assert got.executions == len(got.traces) == one(name).executions
    assert got.terminal == bf.terminal
    assert got.soft_kinds == bf.soft_kinds


@pytest.mark.parametrize("target", [3, 16, 64])
@pytest.mark.parametrize("scn", PROGRAMS, ids=lambda s: s.name)
def test_jobs_run_one_execution_per_trace_on_the_popl14_benchmarks(scn: Scenario, target: int) -> None:
    got, _ = explore_jobs(scn, target)
    assert got.executions == len(got.traces) == traces(scn)
    assert got.blocked == 0


@pytest.mark.parametrize(("n", "k", "target"), [(2, 4, 16), (3, 2, 16), (2, 6, 64)])
def test_the_lock_family_splits_into_many_jobs_and_no_trace_twice(n: int, k: int, target: int) -> None:
    jobs = split(lock_family(n, k).body(), target, MAX_STEPS)
    assert len(jobs) >= target
    assert [j.index for j in jobs] == list(range(len(jobs)))
    got, _ = explore_jobs(lock_family(n, k), target)
    assert got.executions == len(got.traces) == explore(lock_family(n, k), OptimalDpor()).executions


def test_independent_first_steps_are_one_job() -> None:
    """lastzero's threads start on different cells: no split there (see parallel.py)."""
    assert len(split(lastzero(5).body(), 40, MAX_STEPS)) == 1


# -- through worker processes ---------------------------------------------------------------
@pytest.mark.parametrize(
    "scn", [lock_family(2, 4), lock_family(3, 2), lastzero(4), readers(4), popl14_fig2], ids=lambda s: s.name
)
def test_two_workers_same_verdict_and_count_as_one(scn: Scenario) -> None:
    one = check(scn)
    two = check(scn, workers=2)
    assert (two.verdict, two.complete, two.executions) == (one.verdict, one.complete, one.executions)
    jobs = len(split(scn.body(), 2 * JOBS_PER_WORKER, MAX_STEPS))
    if jobs >= 2:
        assert "on 2 workers" in two.coverage
    else:  # capped at the job count, and it says so
        assert "on 1 worker (2 asked; the search is 1 job(s))" in two.coverage, two.coverage


@scenario(name="lost_update")
def lost_update() -> Any:
    class Counter(Struct):
        value: int = 0

    c = Counter()

    def inc() -> None:
        c.value = c.value + 1

    join(spawn(inc), spawn(inc), spawn(inc))
    assert c.value == 3


def test_a_bug_found_by_workers_is_the_same_every_time() -> None:
    runs = [check(lost_update, workers=w, kcsan=False) for w in (2, 2, 3)]
    assert {r.verdict for r in runs} == {"bug"}
    assert len({(r.executions, r.finding.schedule, r.finding.kind) for r in runs}) == 1  # type: ignore[union-attr]


@pytest.mark.parametrize("name", tiered(sorted(ALL)))
def test_workers_reach_the_verdict_one_does_on_the_corpora(name: str) -> None:
    one = check(ALL[name])
    two = check(ALL[name], workers=2)
    assert two.verdict == one.verdict
    if one.verdict == "ok":
        assert two.executions == one.executions


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"strategy": "random"}, "runs on one"),
        ({"checkpoint": "x.ckpt"}, "one worker"),
    ],
)
def test_what_workers_do_not_do_is_one_clear_error(kw: dict[str, Any], msg: str) -> None:
    with pytest.raises(UsageError, match=msg):
        check(lastzero(2), workers=2, **kw)


def test_lockdep_sees_the_union_of_the_jobs() -> None:
    """Which order main takes depends on a race: each job records one order, the cycle is
    only in the union of the jobs' lockdep graphs."""
    assert len(split(inversion_across_executions.body(), 8, MAX_STEPS)) == 2  # one order a job
    one = check(inversion_across_executions)
    two = check(inversion_across_executions, workers=2)
    assert one.verdict == two.verdict == "bug"
    assert one.finding is not None and two.finding is not None
    assert two.finding.kind == one.finding.kind == "lock-order"
    assert "|" in two.finding.schedule  # both runs: replay rebuilds the graph
    again = replay(inversion_across_executions, two.finding.schedule)
    assert again.finding is not None and again.finding.kind == "lock-order"
