"""The searches behind one interface (search.py): serial, parallel and the auto policy over them
return one coverage record, and check() makes the same Result of whichever ran."""

from __future__ import annotations

import pytest

from kvmcheck import Settings, check
from kvmcheck._engine import parallel, search
from kvmcheck._engine.finding import UsageError
from kvmcheck._engine.search import Auto, Parallel, Searched, Serial, choose
from kvmcheck._engine.target import Target
from tests.engine.corpus import CORPUS
from tests.engine.test_conformance import lock_family


def test_choose_follows_the_settings() -> None:
    assert isinstance(choose(Settings(workers=None)), Auto)
    assert isinstance(choose(Settings(workers=2)), Parallel)
    assert isinstance(choose(Settings()), Serial)


def test_serial_and_parallel_return_one_record_of_one_search() -> None:
    target, settings = Settings(workers=2).resolve(Target(lock_family(2, 4)))
    one = Serial().run(target, settings, None)
    two = Parallel().run(target, settings, None)
    for r in (one, two):
        assert isinstance(r, Searched) and r.exhaustive and r.explored.exhausted
    assert one.explored.executions == two.explored.executions
    assert one.method == "dpor (optimal: wakeup trees + sleep sets)"
    assert two.method.startswith("dpor (optimal: wakeup trees + sleep sets) on 2 workers (")


@pytest.fixture
def two_cores_and_a_small_first_part(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "default_workers", lambda: 2)
    monkeypatch.setattr(search, "AUTO_FIRST", 10)


@pytest.mark.usefixtures("two_cores_and_a_small_first_part")
def test_auto_goes_on_every_core_after_its_first_executions() -> None:
    scn = lock_family(2, 4)
    one = check(scn)
    assert one.executions > 10
    auto = check(scn, workers=None)
    assert (auto.verdict, auto.complete, auto.executions) == (one.verdict, one.complete, one.executions)
    assert " on 2 workers (" in auto.coverage, auto.coverage


@pytest.mark.usefixtures("two_cores_and_a_small_first_part")
def test_auto_stays_on_one_worker_when_the_first_part_is_the_whole_search() -> None:
    scn = CORPUS["three_on_one_lock"]
    one = check(scn)
    assert one.executions < 10
    auto = check(scn, workers=None)
    assert (auto.verdict, auto.executions, auto.coverage) == (one.verdict, one.executions, one.coverage)


@pytest.mark.usefixtures("two_cores_and_a_small_first_part")
def test_auto_stays_on_one_worker_for_what_does_not_split() -> None:
    # a bounded search (max_executions): its count is one worker's; and sampling never splits
    for kw in ({"max_executions": 50}, {"strategy": "random", "max_executions": 50}):
        r = check(lock_family(2, 4), workers=None, **kw)
        assert " worker" not in r.coverage and r.executions == 50, r.coverage


@pytest.mark.usefixtures("two_cores_and_a_small_first_part")
def test_a_weak_memory_model_is_searched_on_one_worker() -> None:
    """LKMM revisits cannot cross a job's root: auto stays serial, asking for workers is refused."""
    scn = lock_family(2, 4)
    one = check(scn, memory_model="lkmm")
    auto = check(scn, workers=None, memory_model="lkmm")
    assert (auto.verdict, auto.complete, auto.executions) == (one.verdict, one.complete, one.executions)
    assert " workers (" not in auto.coverage, auto.coverage
    with pytest.raises(UsageError, match=r"explored on one worker .*use --workers 1"):
        check(scn, workers=2, memory_model="lkmm")
