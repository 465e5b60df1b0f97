"""Counterexamples replay exactly, and a trace does not depend on the hash seed."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kvmcheck import UsageError, check, replay
from kvmcheck._engine.strategies.dpor import Dpor
from tests.engine.bruteforce import explore
from tests.engine.corpus import CORPUS

REPLAYS = 100
ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def counterexamples(name: str) -> dict[tuple[str, str], str]:
    """One schedule per distinct hard finding DPOR reaches in the scenario."""
    return explore(CORPUS[name], Dpor()).counterexamples


WITH_FINDINGS = [n for n in CORPUS if counterexamples(n)]


def test_corpus_has_counterexamples() -> None:
    assert len(WITH_FINDINGS) >= 5


@pytest.mark.parametrize("name", WITH_FINDINGS)
def test_every_dpor_counterexample_replays_every_time(name: str) -> None:
    scn = CORPUS[name]
    for (kind, message), schedule in counterexamples(name).items():
        for _ in range(REPLAYS):
            r = replay(scn, schedule)
            assert r.verdict == "bug"
            assert r.finding is not None
            # the report is the run's first one: a WARN printed before the oops, which is then listed
            got = [(f.kind, f.message) for f in [r.finding, *r.warnings]]
            assert got[-1] == (kind, message), schedule


@pytest.mark.parametrize("name", list(CORPUS))
def test_checks_finding_replays_every_time(name: str) -> None:
    """check()'s reported finding (hard, or else the first soft one, with the
    earlier runs a lockdep report needs) replays to the same kind and message."""
    scn = CORPUS[name]
    r = check(scn)
    if r.finding is None:
        assert r.verdict == "ok"
        return
    want = (r.finding.kind, r.finding.message)
    for _ in range(REPLAYS):
        got = replay(scn, r.finding.schedule).finding
        assert got is not None
        assert (got.kind, got.message) == want, r.finding.schedule


_TRACE_SCRIPT = """
import json
from kvmcheck import check, replay
from tests.engine.corpus import CORPUS

out = {}
for name in NAMES:
    r = check(CORPUS[name])
    rr = replay(CORPUS[name], r.finding.schedule)
    out[name] = {
        "executions": r.executions,
        "schedule": r.finding.schedule,
        "trace": [[s.thread, s.op, s.site.function, s.site.line] for s in rr.finding.trace],
    }
print(json.dumps(out))
"""


def _traces(seed: str, names: list[str]) -> dict[str, object]:
    env = dict(os.environ, PYTHONHASHSEED=seed)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        [sys.executable, "-c", _TRACE_SCRIPT.replace("NAMES", repr(names))],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_trace_is_the_same_under_different_hash_seeds() -> None:
    names = ["lost_update_assert", "abba_deadlock", "spawn_from_thread", "rwlock_two_readers_writer"]
    names = [n for n in names if check(CORPUS[n]).finding is not None]
    assert len(names) >= 3
    one, two = _traces("1", names), _traces("2", names)
    assert one == two
    for name in names:
        assert one[name]["trace"], name  # type: ignore[index]


@pytest.mark.parametrize("bad", ["0x", "x3", "0-", "a-b", "0x2-1y3", "-1", "0 1"])
def test_malformed_schedule_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError):
        replay(CORPUS["lost_update_assert"], bad)


def test_schedule_naming_a_blocked_thread_is_a_usage_error_naming_the_step() -> None:
    # steps 0 and 1 spawn the two threads; at step 2 main would join inc#1,
    # which has not run yet, so main is not runnable
    with pytest.raises(UsageError, match=r"\bstep 2\b"):
        replay(CORPUS["lost_update_assert"], "0x3")


def test_schedule_naming_an_unknown_thread_is_a_usage_error_naming_the_step() -> None:
    with pytest.raises(UsageError, match=r"\bstep 1\b"):
        replay(CORPUS["lost_update_assert"], "0-7")
