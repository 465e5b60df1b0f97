"""Every bundled bug reads at a glance: its story is at most 25 lines, ends with the failing
operation (marked ``>``), and the whole report fits 120 columns."""

from __future__ import annotations

import pytest

from kvmcheck import check
from kvmcheck._engine.confirm import confirm
from kvmcheck._engine.settings import Settings
from kvmcheck._engine.target import Target
from kvmcheck._loader import bundled
from kvmcheck.report.text import render_result

BUGS = [(s, v) for s in bundled() for v in (s.variants or [None]) if s.expect.get(v) == "bug"]


def story_section(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("Scenario:"))
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


@pytest.mark.parametrize(("scn", "variant"), BUGS, ids=[f"{s.name}[{v}]" for s, v in BUGS])
def test_story_of_every_bundled_bug(scn, variant):
    r = check(scn, variant=variant)
    assert r.finding is not None
    text = render_result(r, confirm(Target(scn, variant), r, Settings()), width=120)
    story = story_section(text)
    assert len(story) <= 25, "\n".join(story)
    assert story[-1].startswith(">"), "\n".join(story)
    assert max(len(ln) for ln in text.splitlines()) <= 120
