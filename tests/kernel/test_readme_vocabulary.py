"""README's vocabulary table is generated from the docstrings and must be current."""

from __future__ import annotations

from pathlib import Path

import kvmcheck.kernel as k
from kvmcheck.kernel import _vocabulary

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_vocabulary_is_current() -> None:
    text = README.read_text(encoding="utf-8")
    assert _vocabulary.render(text) == text, (
        "README's vocabulary table is stale: run .venv/bin/python -m kvmcheck.kernel._vocabulary "
        "--write README.md"
    )


def test_every_public_name_has_one_line() -> None:
    table = _vocabulary.table()
    for name in k.__all__:
        assert f"| `{name}` |" in table, name
        assert _vocabulary.summary(name), name
