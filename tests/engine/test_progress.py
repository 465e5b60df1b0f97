"""check()'s progress hook and the WARN-class stop (issue 7 item 4)."""

from __future__ import annotations

from itertools import pairwise

from kvmcheck import Progress, check, join, scenario, spawn
from kvmcheck.kernel import WARN_ON, Mutex, Struct, mutex_lock, mutex_unlock


class Box(Struct):
    n: int = 0


@scenario
def locked_pair() -> None:
    b, m = Box(), Mutex("m")

    def inc() -> None:
        for _ in range(3):
            mutex_lock(m)
            b.n = b.n + 1
            mutex_unlock(m)

    join(spawn(inc), spawn(inc))


def test_progress_is_called_at_the_end_with_the_totals() -> None:
    seen: list[Progress] = []
    r = check(locked_pair, on_progress=seen.append)
    assert r.verdict == "ok" and r.complete
    assert seen, "called at least once (at the end)"
    assert seen[-1].executions == r.executions == 20
    assert all(a.executions <= b.executions for a, b in pairwise(seen))
    assert all(p.elapsed_s >= 0 for p in seen)
    assert len(seen) <= 2 + 5 * r.elapsed_s + 1  # at most ~5 a second, plus the final call


def test_progress_is_frozen() -> None:
    p = Progress(1, 0.5, None)
    try:
        p.executions = 2  # type: ignore[misc]
    except AttributeError:
        return
    raise AssertionError("Progress must be frozen")


def _two_writers(warn: bool) -> None:
    b = Box()

    def t() -> None:
        WARN_ON(warn)
        b.n = b.n + 1

    join(spawn(t), spawn(t))


def test_a_warn_stops_the_search_after_its_execution() -> None:
    r = check(scenario(lambda: _two_writers(True)), kcsan=False)
    assert r.verdict == "bug"
    assert r.finding is not None and r.finding.kind == "warn"
    assert r.executions == 1
    assert not r.complete


def test_keep_going_explores_past_a_warn() -> None:
    clean = check(scenario(lambda: _two_writers(False)), kcsan=False)
    assert clean.verdict == "ok" and clean.executions > 1
    full = check(scenario(lambda: _two_writers(True)), kcsan=False, keep_going=True)
    assert full.verdict == "bug"
    assert full.finding is not None and full.finding.kind == "warn"
    assert full.executions == clean.executions
