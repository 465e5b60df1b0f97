"""Strategies and backends come from registries: adding one is a file and one line.

The toy strategy (tests/engine/leftmost.py) and the toy backend (an in-process pool, below)
are registered through the public registration, then named like the bundled ones."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from kvmcheck import (
    BackendSpec,
    Settings,
    StrategySpec,
    UsageError,
    check,
    join,
    register_backend,
    register_strategy,
    scenario,
    spawn,
)
from kvmcheck._engine import registry
from kvmcheck._engine.parallel import Job, JobResult, Pool, run_job
from kvmcheck._engine.target import Target
from kvmcheck.kernel import Struct
from tests.engine.corpus import CORPUS
from tests.engine.leftmost import Leftmost
from tests.engine.test_conformance import lock_family


class Flag(Struct):
    flag: int = 0


@scenario
def read_before_write() -> Any:
    c = Flag()

    def reader() -> None:
        assert c.flag == 1, "read before the write"

    def writer() -> None:
        c.flag = 1

    join(spawn(reader), spawn(writer))


@pytest.fixture
def leftmost() -> Iterator[None]:
    register_strategy(StrategySpec("leftmost", lambda settings: Leftmost()))  # the one line
    yield
    registry.unregister_strategy("leftmost")


def test_a_registered_strategy_runs_and_its_verdict_is_its_own(leftmost: None) -> None:
    r = check(read_before_write, strategy="leftmost")  # the reader (thread 1) first: the assertion
    assert (r.verdict, r.executions, r.strategy) == ("bug", 1, "leftmost")
    assert r.finding is not None and r.finding.kind == "assertion"
    assert r.coverage == "bug found after 1 execution(s) by leftmost"
    # one thread after the other: no update lost (and no data race: KCSAN off)
    r = check(CORPUS["lost_update_assert"], strategy="leftmost", kcsan=False)
    assert (r.verdict, r.complete, r.executions) == ("bounded", False, 1)  # not exhaustive: never "ok"
    assert r.coverage == "bounded: 1 execution(s) by leftmost, search not exhausted"
    r = check(CORPUS["lost_update_assert"], kcsan=False)  # dpor, exhaustive, finds the loss
    assert r.verdict == "bug" and r.finding is not None and r.finding.kind == "assertion"


def test_what_a_strategy_spec_does_not_allow_is_refused(leftmost: None) -> None:
    with pytest.raises(UsageError, match="strategy 'leftmost' runs on one"):
        Settings(strategy="leftmost", workers=2)
    with pytest.raises(UsageError, match="needs strategy 'dpor'"):
        Settings(strategy="leftmost", checkpoint="x.ckpt")
    with pytest.raises(UsageError, match="is registered already"):
        register_strategy(StrategySpec("leftmost", lambda settings: Leftmost()))


def test_an_unregistered_name_is_unknown() -> None:
    with pytest.raises(
        UsageError, match="unknown strategy 'leftmost'; choose one of: dpor, bounded, random, pct"
    ):
        check(read_before_write, strategy="leftmost")


class InlinePool(Pool):
    """A toy backend: every job runs here, in this process, as it is submitted."""

    made: ClassVar[list[InlinePool]] = []

    def __init__(self, workers: int, target: Target, settings: Settings) -> None:
        super().__init__(workers or 1)
        InlinePool.made.append(self)
        self.target, self.settings = target, settings
        self.done: list[JobResult] = []
        self.ran = 0

    def submit(self, job: Job, deadline: float | None) -> None:
        self.done.append(
            run_job(self.target, self.settings, job.state(), len(job.nodes), job.index, deadline)
        )
        self.ran += 1

    def wait(self) -> JobResult:
        return self.done.pop(0)


@pytest.fixture
def inline() -> Iterator[None]:
    register_backend(BackendSpec("inline", InlinePool))  # the one line
    yield
    registry.unregister_backend("inline")


def test_a_registered_backend_runs_the_jobs_of_a_split_search(inline: None) -> None:
    scn = lock_family(2, 4)
    one = check(scn)
    two = check(scn, workers=2, backend="inline")
    assert (two.verdict, two.complete, two.executions) == (one.verdict, one.complete, one.executions)
    assert "on 2 workers (" in two.coverage and "jobs split at depth" in two.coverage, two.coverage
    local = check(scn, workers=2)  # the bundled backend: the same jobs, the same answer
    assert (local.executions, local.coverage) == (two.executions, two.coverage)
    # the jobs got the check's settings as Settings.resolve made them, and nothing else
    pool = InlinePool.made[-1]
    asked = Settings(workers=2, backend="inline")
    assert (pool.target, pool.settings) == asked.resolve(Target(scn))
    assert pool.ran > 1
