"""Minimal counterexamples and the story of the v6.8 pfncache race (issue 13's acceptance)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvmcheck import check, replay
from kvmcheck._engine.minimise import minimise, run_guided, signature
from kvmcheck._engine.schedule import split_runs
from kvmcheck._loader import resolve
from kvmcheck.report.text import render_result
from kvmcheck.report.values import annotate

KINDS = str(Path(__file__).parent / "kinds.py")


def story_section(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("Scenario:"))
    end = next(i for i in range(start, len(lines)) if not lines[i].strip())
    return lines[start:end]


@pytest.fixture(scope="module")
def seed_race():
    s = resolve("pfncache.seed_race")[0]
    r = check(s, variant="v6.8")
    return s, r, minimise(s, r)


def test_v68_story_is_short_and_fits(seed_race):
    s, _, shrunk = seed_race
    r = shrunk.result
    text = render_result(r, annotate(s, r), width=120, shrunk=shrunk)
    story = story_section(text)
    assert len(story) <= 25, "\n".join(story)
    assert max(len(ln) for ln in text.splitlines()) <= 120
    full = render_result(r, annotate(s, r), width=120, shrunk=shrunk, full=True)
    assert max(len(ln) for ln in full.splitlines()) <= 120
    body = "\n".join(story)
    # the six beats of the race, with the values that make it one
    assert "write_unlock_irq(gpc->lock)" in body and "hva_to_pfn_retry" in body  # refresher drops the lock
    assert "kunmap(khva[pfn 1])" in body  # deactivate unmaps
    assert "kvm_gpc_activate" in body  # activate
    assert "write vcpu_info_cache->khva = khva[pfn 1]" in body  # the stale khva written back
    assert story[-1].startswith(">") and "read khva[pfn 1]->page" in story[-1]  # the reader faults


def test_v68_minimisation_figures(seed_race):
    _, first, shrunk = seed_race
    (p0, s0), (p1, s1) = shrunk.before, shrunk.after
    assert (p1, s1) <= (p0, s0)
    assert p1 == 1  # the race needs one preemption: the refresher loses the CPU while gpc->lock is dropped
    assert shrunk.result.finding is not None
    assert signature(shrunk.result.finding) == signature(first.finding)


def test_minimise_shrinks_a_pct_counterexample():
    s = resolve("pfncache.seed_race")[0]
    r = check(s, variant="v6.8", strategy="pct", seed=2)
    shrunk = minimise(s, r)
    assert shrunk.before[0] >= 3  # PCT's priority change points preempt
    assert shrunk.after[0] <= 2
    assert shrunk.after < shrunk.before
    # the replay string replays the minimised run, with the same finding
    again = replay(s, shrunk.result.finding.schedule, variant="v6.8")
    assert again.finding is not None and signature(again.finding) == signature(r.finding)


def test_a_candidate_with_another_finding_is_not_taken():
    """Mutant check: were the signature ignored, dropping the reader's block would 'shrink' the
    use-after-free into a leak-free run or another report; the minimiser must keep the same finding."""
    s = resolve(f"{KINDS}::kinds.use_after_free")[0]
    r = check(s)
    shrunk = minimise(s, r)
    assert shrunk.result.finding.kind == "use-after-free"
    runs = split_runs(r.finding.schedule)
    other = run_guided(s, None, runs[:-1], [0, 0, 2, 2, 2], kcsan=True)  # reader before the free
    assert other.finding is None or signature(other.finding) != signature(r.finding)


def test_guided_counts_preemptions():
    s = resolve(f"{KINDS}::kinds.deadlock")[0]
    run = run_guided(s, None, [], [0, 0, 1, 2], kcsan=True)
    assert run.preemptions == 1  # t1 could go on at step 3; t2 ran instead
    assert run.finding is not None and run.finding.kind == "deadlock"
