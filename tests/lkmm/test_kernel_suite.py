"""Acceptance (issue 20): every kernel litmus test agrees with its Result: line and flags.

The tests are the kernel's own (tools/memory-model/litmus-tests/ and
Documentation/litmus-tests/), read from ../shared/kernel/lkmm; they are not in
this repository.  When that directory is absent the tests say so and skip.
"""

from __future__ import annotations

import re

import pytest

from kvmcheck.lkmm.explore import explore
from kvmcheck.lkmm.parser import parse_litmus
from kvmcheck.lkmm.report import judge, verdict

from .conftest import shared_lkmm

SHARED = shared_lkmm()
FILES = sorted(SHARED.rglob("*.litmus")) if SHARED.is_dir() else []
ABSENT = f"{SHARED} is absent (CI has ../shared beside the clone; or set KVMCHECK_SHARED)"


@pytest.mark.skipif(not FILES, reason=ABSENT)
@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_kernel_litmus_agrees_with_its_result(path):
    res = explore(parse_litmus(path.read_text()))
    j = judge(res)
    assert j.agrees, f"{path.name}: {j.why}"


@pytest.mark.skipif(not FILES, reason=ABSENT)
def test_all_kernel_litmus_tests_agree_n_of_n():
    agree = [p.name for p in FILES if judge(explore(parse_litmus(p.read_text()))).agrees]
    assert len(FILES) == 55  # the INDEX lists 55 .litmus files
    assert len(agree) == len(FILES), sorted({p.name for p in FILES} - set(agree))


@pytest.mark.skipif(not FILES, reason=ABSENT)
def test_the_index_expectations_are_the_files_result_lines():
    """The INDEX's 'expected' column and our reading of each file's Result: line coincide."""
    index = (SHARED / "INDEX.md").read_text()
    rows = dict(re.findall(r"^- `([^`]+\.litmus)` \|.*\| expected: (\w+)$", index, re.M))
    assert len(rows) == len(FILES)
    for path in FILES:
        rel = str(path.relative_to(SHARED))
        exp = parse_litmus(path.read_text()).expected
        assert exp is not None and exp.verdict == rows[rel], rel


@pytest.mark.skipif(not FILES, reason=ABSENT)
def test_a_wrong_result_line_is_caught():
    """A mutant: the SB test with its Result flipped must be judged a difference."""
    src = (SHARED / "tools/memory-model/litmus-tests/SB+poonceonces.litmus").read_text()
    res = explore(parse_litmus(src.replace("Result: Sometimes", "Result: Never")))
    assert verdict(res) == "Sometimes"
    assert judge(res).agrees is False
