"""Minimal counterexamples and the story of the v6.8 pfncache race (issue 13's acceptance)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvmcheck import check, replay
from kvmcheck._engine.confirm import confirm
from kvmcheck._engine.minimise import minimise, run_guided, signature
from kvmcheck._engine.schedule import split_runs
from kvmcheck._engine.settings import Settings
from kvmcheck._engine.target import Target
from kvmcheck._loader import resolve
from kvmcheck.report.text import render_result

KINDS = str(Path(__file__).parent / "kinds.py")


def story_section(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("Scenario:"))
    end = next(i for i in range(start, len(lines)) if not lines[i].strip())
    return lines[start:end]


@pytest.fixture(scope="module")
def seed_race():
    """The v6.8 race as `kvmcheck check` reports it: the first report stops the search (today
    KVM_BUG_ON in kvm_gpc_activate: the refresher left the deactivated cache valid)."""
    s = resolve("pfncache.seed_race")[0]
    r = check(s, variant="v6.8")
    return s, r, confirm(Target(s, "v6.8"), r, Settings())


def _texts(r, cx):
    return render_result(r, cx, width=120), render_result(r, cx, width=120, full=True)


def test_v68_story_is_short_and_fits(seed_race):
    _, r, cx = seed_race
    text, full = _texts(r, cx)
    story = story_section(text)
    assert len(story) <= 25, "\n".join(story)
    assert story[-1].startswith(">"), "\n".join(story)
    assert max(len(ln) for ln in text.splitlines()) <= 120
    assert max(len(ln) for ln in full.splitlines()) <= 120
    body = "\n".join(story)
    # the refresher drops gpc->lock, deactivate runs, the refresher retakes the lock and writes back
    assert "write_unlock_irq(gpc->lock)" in body and "hva_to_pfn_retry" in body
    assert "kvm_gpc_deactivate" in body


def test_v68_warn_story_shows_the_stale_valid(seed_race):
    _, r, cx = seed_race
    story = "\n".join(story_section(_texts(r, cx)[0]))
    assert "write vcpu_info_cache->valid = true" in story  # the refresher revalidates the dead cache
    assert "read vcpu_info_cache->valid = true" in story and "kvm_gpc_activate" in story


def test_v68_minimisation_figures(seed_race):
    _, first, cx = seed_race
    assert cx.shrink is not None
    (p0, s0), (p1, s1) = cx.shrink.before, cx.shrink.after
    assert (p1, s1) <= (p0, s0)
    assert 1 <= p1 <= 2  # the refresher must lose the CPU while gpc->lock is dropped
    assert signature(cx.finding) == signature(first.finding)


def test_minimise_shrinks_a_pct_counterexample():
    s = resolve("pfncache.seed_race")[0]
    r = check(s, variant="v6.8", strategy="pct", seed=2)
    shrunk = minimise(s, r)
    assert shrunk.shrink.before[0] >= 3  # PCT's priority change points preempt
    assert shrunk.shrink.after[0] <= 2
    assert shrunk.shrink.after < shrunk.shrink.before
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
