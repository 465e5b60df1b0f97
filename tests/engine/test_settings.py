"""One Settings object, validated in one place; the full strategy contract; one loop."""

from __future__ import annotations

import ast
import math
from pathlib import Path
from typing import Any

import pytest

from kvmcheck import Settings, UsageError, check
from kvmcheck._engine.registry import make_strategy
from kvmcheck._engine.settings import STRATEGIES
from kvmcheck._engine.strategies.replay import Replay
from kvmcheck._engine.strategy import Strategy
from tests.engine.bruteforce import BruteForce
from tests.engine.corpus import CORPUS


@pytest.mark.parametrize(
    ("kw", "says"),
    [
        ({"max_executions": 0}, "max_executions must be >= 1"),
        ({"max_executions": -3}, "max_executions must be >= 1"),
        ({"max_executions": 2.5}, "max_executions must be an integer"),
        ({"max_seconds": 0}, "max_seconds must be a positive number"),
        ({"max_seconds": -1.0}, "max_seconds must be a positive number"),
        ({"max_seconds": math.nan}, "max_seconds must be a positive number"),
        ({"max_steps": 0}, "max_steps must be >= 1"),
        ({"depth": 0}, "depth must be >= 1"),
        ({"bound": -1}, "bound must be >= 0"),
        ({"workers": 0}, "workers must be >= 1"),
        ({"seed": "x"}, "seed must be an integer"),
        ({"strategy": "dfs"}, "unknown strategy 'dfs'"),
        ({"backend": "dask"}, "unknown backend"),
        ({"workers": 2, "strategy": "pct"}, "strategy 'pct' runs on one"),
        ({"workers": 2, "resume": "x.ckpt"}, "runs on one worker"),
        ({"backend": "ray"}, "needs the address of a running Ray cluster"),
        ({"address": "127.0.0.1:6379"}, "address is only for backend='ray'"),
        ({"checkpoint": "/tmp/x", "strategy": "pct"}, "needs strategy .dpor."),
        ({"checkpoint_every_s": 0}, "checkpoint_every_s must be a positive number"),
        ({"memory_model": "tso"}, "unknown memory model 'tso'"),
        ({"kcsan": "yes"}, "kcsan must be True, False or None"),
        ({"frobnicate": 1}, "unknown option 'frobnicate'"),
    ],
)
def test_bad_settings_are_one_line_usage_errors(kw: dict[str, Any], says: str) -> None:
    with pytest.raises(UsageError, match=says) as e:
        Settings.of(**kw)
    assert "\n" not in str(e.value)
    if not {"workers", "backend", "checkpoint"} & set(kw):  # check() validates its keywords the same way
        with pytest.raises(UsageError, match=says):
            check(CORPUS["disjoint_fields"], **kw)


def test_check_takes_a_settings_object() -> None:
    a = check(CORPUS["store_buffering"], settings=Settings(strategy="bounded", bound=1))
    b = check(CORPUS["store_buffering"], strategy="bounded", bound=1)
    assert (a.verdict, a.executions, a.strategy) == (b.verdict, b.executions, b.strategy)


def test_positional_options_and_settings_with_keywords_replaced() -> None:
    assert Settings.of("pct", 500, 2.0, 7) == Settings(
        strategy="pct", max_executions=500, max_seconds=2.0, seed=7
    )
    base = Settings(strategy="bounded", bound=1)
    assert Settings.of(settings=base, bound=2) == Settings(strategy="bounded", bound=2)
    with pytest.raises(UsageError, match="strategy given twice"):
        Settings.of("pct", strategy="dpor")


def test_resolve_is_the_one_place_the_scenarios_defaults_are_taken() -> None:
    from kvmcheck._engine.target import Target

    scn = CORPUS["store_buffering"]
    t, s = Settings().resolve(Target(scn))
    assert (s.kcsan, s.keep_going, s.memory_model) == (scn.kcsan, scn.keep_going, "sc")
    t, s = Settings(kcsan=not scn.kcsan, memory_model="lkmm").resolve(Target(scn))
    assert s.kcsan is (not scn.kcsan) and t.memory_model == "lkmm" and t.scenario is not scn
    assert Settings(strategy="random").resolve(Target(scn))[1].max_executions == 1000


def test_sampling_strategies_get_a_default_budget() -> None:
    assert Settings(strategy="random").with_defaults().max_executions == 1000
    assert Settings(strategy="random", max_seconds=1).with_defaults().max_executions is None
    assert Settings(strategy="dpor").with_defaults().max_executions is None


@pytest.mark.parametrize("name", [*STRATEGIES, "dpor-source"])
def test_every_strategy_meets_the_whole_contract(name: str) -> None:
    assert isinstance(make_strategy(Settings(strategy=name)), Strategy)


def test_test_and_replay_strategies_meet_it_too() -> None:
    assert isinstance(BruteForce(), Strategy)
    assert isinstance(Replay([0]), Strategy)


def test_the_brute_force_helper_imports_no_private_function() -> None:
    tree = ast.parse((Path(__file__).parent / "bruteforce.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert all(not a.name.startswith("_") for a in node.names), ast.unparse(node)
