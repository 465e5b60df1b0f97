"""Our own litmus programs (tests/lkmm/litmus/, runs everywhere): each agrees with its Result line.

Each file states herd7's expected result, derived from the LKMM documentation
(tools/memory-model/Documentation/explanation.txt), and a one-line reason.
"""

from __future__ import annotations

import pytest

from kvmcheck.lkmm.explore import explore
from kvmcheck.lkmm.parser import parse_litmus
from kvmcheck.lkmm.report import judge

from .conftest import CORPUS

FILES = sorted(CORPUS.glob("*.litmus"))


def test_the_corpus_has_at_least_fifty_programs():
    assert len(FILES) >= 50


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_own_litmus_agrees(path):
    test = parse_litmus(path.read_text())
    assert test.expected is not None, "every corpus file states its Result"
    j = judge(explore(test))
    assert j.agrees, f"{path.name}: {j.why}"


def test_the_corpus_covers_every_verdict_and_a_race():
    seen = {parse_litmus(p.read_text()).expected.verdict for p in FILES}  # type: ignore[union-attr]
    assert seen == {"Always", "Sometimes", "Never"}
    races = [p for p in FILES if "DATARACE" in p.read_text()]
    assert len(races) >= 2
