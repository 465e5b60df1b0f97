"""An independent cross-check of the LKMM oracle against a sequentially consistent interpreter.

* Every SC outcome is LKMM-allowed: for each corpus program the SC interpreter
  handles, and for random programs with or without fences.
* With smp_mb() between every two accesses the LKMM allows exactly the SC outcomes.
* Without fences the LKMM allows strictly more on the classic shapes.
"""

from __future__ import annotations

import random

import pytest

from kvmcheck.lkmm.explore import explore
from kvmcheck.lkmm.parser import parse_litmus

from .conftest import CORPUS
from .sc import sc_states, supported

CORPUS_FILES = [p for p in sorted(CORPUS.glob("*.litmus")) if supported(parse_litmus(p.read_text()))]


def test_most_of_the_corpus_is_cross_checked():
    assert len(CORPUS_FILES) >= 40


@pytest.mark.parametrize("path", CORPUS_FILES, ids=[p.stem for p in CORPUS_FILES])
def test_sc_outcomes_are_lkmm_allowed(path):
    res = explore(parse_litmus(path.read_text()))
    sc = sc_states(res.test, res.shown)
    assert sc, "SC reaches at least one final state"
    assert sc <= res.states


def random_program(seed: int, fenced: bool) -> str:
    """2 or 3 threads of 2 or 3 READ_ONCE/WRITE_ONCE on x and y, every store a distinct value."""
    rng = random.Random(seed)
    value = 0
    threads, regs = [], []
    for p in range(rng.choice((2, 3))):
        lines, decls = [], []
        for k in range(rng.choice((2, 3))):
            loc = rng.choice("xy")
            if rng.random() < 0.5:
                value += 1
                lines.append(f"WRITE_ONCE(*{loc}, {value});")
            else:
                decls.append(f"int r{k};")
                regs.append(f"{p}:r{k}")
                lines.append(f"r{k} = READ_ONCE(*{loc});")
        sep = "\n\tsmp_mb();\n\t" if fenced else "\n\t"
        threads.append(
            f"P{p}(int *x, int *y)\n{{\n\t" + "\n\t".join(decls) + "\n\n\t" + sep.join(lines) + "\n}\n"
        )
    locs = ";".join(["x", "y", *regs])
    return f"C rand{seed}\n\n{{}}\n\n" + "\n".join(threads) + f"\nlocations [{locs}]\nexists (x=0)\n"


SEEDS = range(40)


@pytest.mark.parametrize("seed", SEEDS)
def test_fully_fenced_random_programs_are_sc(seed):
    test = parse_litmus(random_program(seed, fenced=True))
    res = explore(test)
    assert res.states == sc_states(test, res.shown)


@pytest.mark.parametrize("seed", SEEDS)
def test_unfenced_random_programs_allow_every_sc_outcome(seed):
    test = parse_litmus(random_program(seed, fenced=False))
    res = explore(test)
    assert sc_states(test, res.shown) <= res.states


def test_unfenced_programs_are_weaker_than_sc_somewhere():
    weaker = 0
    for seed in SEEDS:
        test = parse_litmus(random_program(seed, fenced=False))
        res = explore(test)
        weaker += res.states != sc_states(test, res.shown)
    assert weaker >= 5


FULLY_FENCED = ["SB-mb", "MP-mb-mb", "IRIW-mb", "R-mb-mb", "2+2W-mb", "SB-store-mb", "SB-xchg"]


@pytest.mark.parametrize("name", FULLY_FENCED)
def test_fully_fenced_corpus_programs_are_sc(name):
    """smp_mb() (or a fully ordered RMW) between every two accesses of each thread: LKMM = SC."""
    res = explore(parse_litmus((CORPUS / f"{name}.litmus").read_text()))
    assert res.states == sc_states(res.test, res.shown)
