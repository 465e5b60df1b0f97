"""check --all's pool: results in the pairs' order, a dead worker is one clear error."""

from __future__ import annotations

import os
import time

import pytest

from kvmcheck._engine.finding import UsageError
from kvmcheck._pool import map_ordered


def _slow_first(i: int) -> tuple[int, int]:
    time.sleep(0.3 if i == 0 else 0.0)  # the first finishes last
    return i, os.getpid()


def test_results_come_in_order_from_several_processes() -> None:
    out = list(map_ordered(_slow_first, 6, jobs=2, name=str))
    assert [i for i, _ in out] == list(range(6))
    assert len({pid for _, pid in out}) == 6  # one child per task
    assert os.getpid() not in {pid for _, pid in out}


def test_one_job_runs_here() -> None:
    assert {pid for _, pid in map_ordered(_slow_first, 3, jobs=1, name=str)} == {os.getpid()}


def _dies_on_two(i: int) -> int:
    if i == 2:
        os._exit(9)
    return i


def test_a_dead_worker_names_its_pair() -> None:
    got: list[int] = []

    def read_all() -> None:
        got.extend(map_ordered(_dies_on_two, 4, jobs=2, name=lambda i: f"pair {i}"))

    with pytest.raises(UsageError, match=r"checking pair 2 died \(exit status 9"):
        read_all()
    assert got == [0, 1]  # the results before it were handed over


def _raises(i: int) -> int:
    raise UsageError(f"bad model {i}")


def test_a_users_mistake_in_a_worker_is_raised_here() -> None:
    with pytest.raises(UsageError, match="bad model 0"):
        list(map_ordered(_raises, 2, jobs=2, name=str))
