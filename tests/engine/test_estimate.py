"""The estimate of the search's size (issue 15 item 7): Progress.estimate_total, Result.estimated_total."""

from __future__ import annotations

from kvmcheck import Progress, check
from tests.engine.test_conformance import lock_family
from tests.engine.test_optimal import lastzero


def test_a_complete_search_estimates_itself_exactly() -> None:
    r = check(lock_family(2, 4))
    assert r.complete and r.executions == 70
    assert r.estimated_total == 70


def test_a_bounded_search_says_how_much_it_covered() -> None:
    r = check(lock_family(2, 6), max_executions=462)  # half of 924
    assert r.verdict == "bounded"
    assert r.estimated_total is not None
    assert abs(r.estimated_total - 924) <= 0.1 * 924
    assert "covered ~50.0% of an estimated 924" in r.coverage
    assert r.as_dict()["estimated_total"] == 924


def test_the_estimate_firms_up_as_the_search_proceeds() -> None:
    """Early on it sees only the branches found so far (an underestimate); by half-way it is close."""
    early = check(lastzero(8), max_executions=70).estimated_total
    late = check(lastzero(8), max_executions=352).estimated_total
    assert early is not None and late is not None
    assert early < late
    assert abs(late - 704) <= 0.1 * 704


def test_progress_carries_the_estimate() -> None:
    seen: list[Progress] = []
    r = check(lock_family(2, 5), on_progress=seen.append)
    assert seen[-1].estimate_total == r.executions == 252


def test_sampling_strategies_have_no_estimate() -> None:
    r = check(lock_family(2, 3), strategy="random", max_executions=5)
    assert r.estimated_total is None
    assert "estimated" not in r.coverage
