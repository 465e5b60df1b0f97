"""Nondeterministic models (random, time, set order) are caught during check, never "ok, complete"."""

from __future__ import annotations

import itertools
import random
import time

import pytest

from kvmcheck import check, join, scenario, spawn
from kvmcheck._engine.finding import Nondeterminism
from kvmcheck.kernel import Struct


class C(Struct):
    x: int = 0
    y: int = 0
    z: int = 0


@scenario
def uses_random() -> None:
    c = C()

    def t() -> None:
        getattr(c, random.choice("xyz"))

    join(spawn(t), spawn(t))


@scenario
def uses_time() -> None:
    c = C()

    def t() -> None:
        c.x = 1
        if time.perf_counter_ns() // 1000 % 2:
            c.y = 1
        else:
            c.z = 1

    join(spawn(t), spawn(t), spawn(t))


_ids = itertools.count()


class Tag:
    """Hashes as a counter that runs on across executions: set order changes from one to the next."""

    def __init__(self, field: str) -> None:
        self.field = field
        self.h = next(_ids)

    def __hash__(self) -> int:
        return self.h


@scenario
def uses_set_order() -> None:
    c = C()
    tags = {Tag("x"), Tag("y"), Tag("z")}

    def t() -> None:
        for tag in tags:
            setattr(c, tag.field, 1)

    join(spawn(t))


@scenario
def coin_once() -> None:
    """One thread, one execution: only the probe before "complete" can see it."""
    c = C()
    if random.random() < 0.5:
        c.x = 1
    else:
        c.y = 1


@pytest.mark.parametrize("seed", range(5))
def test_random_is_caught(seed: int) -> None:
    random.seed(seed)
    with pytest.raises(
        Nondeterminism, match=r"nondeterministic.*step \d+ of thread '.*' is '.*' now but was"
    ):
        check(uses_random, kcsan=False)


def test_time_is_caught() -> None:
    with pytest.raises(Nondeterminism):
        check(uses_time, kcsan=False)


def test_set_order_is_caught() -> None:
    with pytest.raises(Nondeterminism):
        check(uses_set_order, kcsan=False)


@pytest.mark.parametrize("seed", range(12))
def test_one_execution_model_never_ok_complete(seed: int) -> None:
    random.seed(seed)
    try:
        r = check(coin_once)
    except Nondeterminism:
        return
    assert not (r.verdict == "ok" and r.complete), "a coin-flip model came back ok, complete"
