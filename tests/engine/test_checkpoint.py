"""Checkpoint and resume (issue 15 item 6): an interrupted run resumed gives the same totals."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from kvmcheck import Progress, UsageError, check
from tests.engine.corpus import CORPUS
from tests.engine.test_conformance import lock_family
from tests.engine.test_optimal import lastzero


@pytest.mark.parametrize(("scn", "total"), [(lock_family(2, 5), 252), (lastzero(6), 144)], ids=str)
@pytest.mark.parametrize("stop_after", [1, 37, 100])
def test_a_bounded_run_resumed_gives_the_uninterrupted_totals(
    tmp_path: Path, scn: object, total: int, stop_after: int
) -> None:
    whole = check(scn)  # type: ignore[arg-type]
    assert whole.executions == total
    f = str(tmp_path / "ck")
    first = check(scn, max_executions=stop_after, checkpoint=f)  # type: ignore[arg-type]
    assert first.verdict == "bounded" and first.executions == stop_after
    rest = check(scn, resume=f, checkpoint=f)  # type: ignore[arg-type]
    assert (rest.verdict, rest.complete) == ("ok", True)
    assert rest.executions == total
    assert rest.blocked == whole.blocked == 0
    assert rest.steps == whole.steps


def test_resuming_twice_in_steps(tmp_path: Path) -> None:
    f = str(tmp_path / "ck")
    r = check(lastzero(5), max_executions=10, checkpoint=f)
    while not r.complete:
        r = check(lastzero(5), resume=f, checkpoint=f, max_executions=r.executions + 10)
    assert r.executions == check(lastzero(5)).executions


def test_a_bug_found_after_resuming_is_the_same_bug(tmp_path: Path) -> None:
    scn = CORPUS["deadlock_sometimes"]
    whole = check(scn, kcsan=False)
    assert whole.finding is not None
    f = str(tmp_path / "ck")
    check(scn, kcsan=False, max_executions=1, checkpoint=f)
    rest = check(scn, kcsan=False, resume=f)
    assert rest.finding is not None
    assert (rest.finding.kind, rest.executions) == (whole.finding.kind, whole.executions)


def test_sigint_saves_a_checkpoint_and_resume_finishes(tmp_path: Path) -> None:
    f = str(tmp_path / "ck")
    sent: list[int] = []

    def interrupt(p: Progress) -> None:
        if not sent:
            sent.append(p.executions)
            os.kill(os.getpid(), signal.SIGINT)

    first = check(lock_family(2, 7), checkpoint=f, on_progress=interrupt)
    assert sent, "the run ended before its first progress report"
    assert first.verdict == "bounded" and "interrupted" in first.coverage
    assert os.path.exists(f)
    rest = check(lock_family(2, 7), resume=f)
    assert (rest.verdict, rest.executions) == ("ok", 3432)


def test_resume_checks_its_file(tmp_path: Path) -> None:
    f = tmp_path / "ck"
    check(lastzero(3), max_executions=2, checkpoint=str(f))
    with pytest.raises(UsageError, match="checkpoint of lastzero"):
        check(lastzero(4), resume=str(f))
    (tmp_path / "junk").write_bytes(b"not a checkpoint")
    with pytest.raises(UsageError, match="cannot resume"):
        check(lastzero(3), resume=str(tmp_path / "junk"))
    with pytest.raises(UsageError, match="needs strategy 'dpor'"):
        check(lastzero(3), strategy="random", checkpoint=str(f))
