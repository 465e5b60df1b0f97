"""The relation algebra under the cat translation, against a set-of-pairs reference."""

from __future__ import annotations

import random

import pytest

from kvmcheck.lkmm.rel import Rel, cross, ident


def pairs(r: Rel) -> set[tuple[int, int]]:
    return set(r.pairs())


def closure(p: set[tuple[int, int]]) -> set[tuple[int, int]]:
    out = set(p)
    while True:
        new = out | {(a, d) for a, b in out for c, d in out if b == c}
        if new == out:
            return out
        out = new


@pytest.mark.parametrize("seed", range(20))
def test_operators_match_sets_of_pairs(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 7)
    pa = {(rng.randrange(n), rng.randrange(n)) for _ in range(rng.randint(0, 12))}
    pb = {(rng.randrange(n), rng.randrange(n)) for _ in range(rng.randint(0, 12))}
    a, b = Rel.of_pairs(n, pa), Rel.of_pairs(n, pb)
    assert pairs(a | b) == pa | pb
    assert pairs(a & b) == pa & pb
    assert pairs(a - b) == pa - pb
    assert pairs(a.seq(b)) == {(x, z) for x, y in pa for y2, z in pb if y == y2}
    assert pairs(a.inv()) == {(y, x) for x, y in pa}
    assert pairs(a.plus()) == closure(pa)
    assert pairs(a.star()) == closure(pa) | {(i, i) for i in range(n)}
    assert a.acyclic() == all(x != y for x, y in closure(pa))
    cyc = a.cycle()
    if a.acyclic():
        assert cyc == []
    else:
        assert all((cyc[k], cyc[(k + 1) % len(cyc)]) in pa for k in range(len(cyc)))
    m = rng.randrange(1 << n)
    assert pairs(ident(n, m)) == {(i, i) for i in range(n) if m >> i & 1}
    assert pairs(cross(n, m, 1)) == {(i, 0) for i in range(n) if m >> i & 1}
