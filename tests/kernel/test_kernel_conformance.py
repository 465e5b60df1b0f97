"""DPOR against brute force on the kernel-primitive corpus: same terminal states, same findings.

Brute force enumerates every interleaving; DPOR must reach exactly the same
set of (terminal state, hard finding) pairs and the same soft-finding kinds,
in no more executions.  Where the corpus states the set of terminal states
the primitive's semantics allow (``EXPECTED``), brute force must reach
exactly that set: that checks the primitives themselves, not only the
reduction.
"""

from __future__ import annotations

import pytest

from kvmcheck._engine.strategies.dpor import Dpor
from tests.engine.bruteforce import BruteForce, explore
from tests.kernel.corpus_kernel import CORPUS, EXPECTED, tiered


@pytest.mark.parametrize("name", tiered(sorted(CORPUS)))
def test_dpor_matches_bruteforce(name: str) -> None:
    scn = CORPUS[name]
    bf = explore(scn, BruteForce())
    dp = explore(scn, Dpor())
    assert dp.terminal == bf.terminal
    assert dp.soft_kinds == bf.soft_kinds
    assert dp.executions <= bf.executions
    if name in EXPECTED:
        assert {res for res, hard in bf.terminal if hard is None} == EXPECTED[name]
        assert all(hard is None for _, hard in bf.terminal), bf.terminal
        assert not bf.soft_kinds, bf.soft_kinds


def test_readers_are_independent() -> None:
    """Two RCU readers (or two rwlock readers) are one Mazurkiewicz trace."""
    for name in ("rcu_two_readers", "rwlock_two_readers"):
        assert explore(CORPUS[name], Dpor()).executions == 1, name


def test_corpus_is_big_enough() -> None:
    # 20 programs before issue 7; it added 20 (fairness, embedded KASAN, NULL dereference,
    # workqueues, wait queues, XArray).
    assert len(CORPUS) >= 40
