"""The quality tier: "strategy S finds bug B within N executions" for the sampling strategies.

PCT and random walk give no completeness, so their tests are about how fast
they find known bugs of the conformance corpus.  Seeds are fixed (each run is
deterministic); the budgets are about twice the worst of seeds 0..9 when they
were set, so a change that makes a strategy markedly worse fails here, while
the exact figures stay free to move.  KCSAN is off so that the bug sought is
the program's assertion / oops / deadlock, not the data race beside it.
"""

from __future__ import annotations

import pytest

from kvmcheck import check
from tests.engine.corpus import CORPUS

SEEDS = range(10)

# (corpus program, what it finds, budget for random, budget for pct)
BUDGETS = [
    ("lost_update_assert", "assertion", 8, 50),
    ("assert_in_thread_sometimes", "assertion", 40, 25),
    ("deadlock_sometimes", "deadlock|lock-order", 15, 12),  # lockdep may see the inversion first
    ("relax_then_write", "assertion", 50, 25),
    ("refcount_last_put_frees", None, 80, 300),
    ("rcu_free_without_grace_period", None, 80, 150),
    ("yield_twice", "assertion", 25, 20),
]


@pytest.mark.parametrize("strategy", ["random", "pct"])
@pytest.mark.parametrize(("name", "kind", "random_budget", "pct_budget"), BUDGETS)
def test_strategy_finds_the_bug_within_its_budget(
    strategy: str, name: str, kind: str | None, random_budget: int, pct_budget: int
) -> None:
    budget = random_budget if strategy == "random" else pct_budget
    for seed in SEEDS:
        r = check(CORPUS[name], strategy=strategy, seed=seed, max_executions=budget, kcsan=False)
        assert r.verdict == "bug", f"{strategy} seed {seed}: no bug in {budget} executions of {name}"
        assert r.finding is not None
        if kind is not None:
            assert r.finding.kind in kind.split("|")


@pytest.mark.parametrize("strategy", ["random", "pct"])
def test_same_seed_same_search(strategy: str) -> None:
    a = check(CORPUS["refcount_last_put_frees"], strategy=strategy, seed=3, max_executions=400, kcsan=False)
    b = check(CORPUS["refcount_last_put_frees"], strategy=strategy, seed=3, max_executions=400, kcsan=False)
    assert a.finding is not None and b.finding is not None
    assert (a.executions, a.finding.schedule) == (b.executions, b.finding.schedule)


@pytest.mark.parametrize("strategy", ["random", "pct"])
def test_a_sampling_strategy_never_says_complete(strategy: str) -> None:
    r = check(CORPUS["disjoint_fields"], strategy=strategy, max_executions=20)
    assert r.verdict == "bounded"
    assert not r.complete
    assert r.executions == 20


def test_pct_states_its_guarantee() -> None:
    r = check(CORPUS["disjoint_fields"], strategy="pct", max_executions=5, depth=2)
    assert "probability >=" in r.coverage
