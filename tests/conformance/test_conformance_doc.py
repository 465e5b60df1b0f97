"""docs/conformance.md is the table the suites generate (conformance_table.py)."""

from __future__ import annotations

import os

from tests.conformance.conformance_table import DOC, render


def test_committed_table_is_the_generated_one() -> None:
    text = render()
    if os.environ.get("KVMCHECK_REGEN_GOLDEN") == "1":
        DOC.write_text(text)
        raise AssertionError(f"{DOC} rewritten: review the diff and commit it (then run without the env var)")
    assert DOC.exists() and DOC.read_text() == text, (
        f"{DOC} is stale: run KVMCHECK_REGEN_GOLDEN=1 pytest {__file__} and review the diff"
    )


def test_a_case_not_applicable_says_so_once() -> None:
    assert "not applicable: not applicable" not in render()
