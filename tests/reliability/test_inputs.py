"""Schedules and options given through the API: one-line UsageErrors, nothing allocated first."""

from __future__ import annotations

import math
import tracemalloc
from typing import Any

import pytest

from kvmcheck import Settings, UsageError, check, replay
from tests.engine.corpus import CORPUS

SCN = CORPUS["lost_update"]


@pytest.mark.parametrize(
    "schedule", ["0x99999999999", "0x100000000", "1x20001", "0x5-1x19999", "0x" + "9" * 5000]
)
def test_overlong_schedule_is_a_one_line_usage_error_before_allocating(schedule: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(UsageError) as e:
            replay(SCN, schedule)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "\n" not in str(e.value)
    assert peak < 50_000_000


@pytest.mark.parametrize("schedule", [123, None, b"0x2", ["0x2"]])
def test_replay_of_a_non_string_is_a_usage_error(schedule: Any) -> None:
    with pytest.raises(UsageError, match="a schedule is a string"):
        replay(SCN, schedule)


BAD_KWARGS = [
    {"max_executions": 0},
    {"max_executions": -1},
    {"max_executions": 1.5},
    {"max_seconds": -1},
    {"max_seconds": 0},
    {"max_seconds": math.nan},
    {"max_seconds": math.inf},
    {"max_seconds": "2"},
    {"max_steps": 0},
    {"max_steps": -5},
    {"strategy": "pct", "depth": 0},
    {"strategy": "bounded", "bound": -1},
    {"strategy": "nope"},
    {"seed": "x"},
]


@pytest.mark.parametrize("kw", BAD_KWARGS, ids=[str(k) for k in BAD_KWARGS])
def test_bad_check_options_are_one_line_usage_errors(kw: dict[str, Any]) -> None:
    with pytest.raises(UsageError) as e:
        check(SCN, **kw)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("v", [0, -1, math.nan, math.inf])
def test_bad_step_timeout(v: float) -> None:
    with pytest.raises(UsageError, match="step_timeout_s"):
        Settings(step_timeout_s=v)


def test_replay_max_steps_validated() -> None:
    with pytest.raises(UsageError, match="max_steps"):
        replay(SCN, "0", max_steps=0)
