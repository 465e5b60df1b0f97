"""The command line: exit codes, one-line errors, JSON shapes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

KVMCHECK = [sys.executable, "-m", "kvmcheck.cli"]

GOOD = textwrap.dedent(
    """
    from kvmcheck import scenario, spawn, join
    from kvmcheck.kernel import Struct, Mutex, mutex_lock, mutex_unlock

    class Counter(Struct):
        value: int = 0

    @scenario
    def locked():
        c = Counter(); m = Mutex("m")
        def inc():
            mutex_lock(m); c.value = c.value + 1; mutex_unlock(m)
        join(spawn(inc), spawn(inc))
        assert c.value == 2

    @scenario(kcsan=False)  # KCSAN would report the race first and stop the search
    def lost_update():
        c = Counter()
        def inc():
            t = c.value
            c.value = t + 1
        join(spawn(inc), spawn(inc))
        assert c.value == 2
    """
)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONHASHSEED="0")
    return subprocess.run([*KVMCHECK, *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture
def model(tmp_path):
    p = tmp_path / "model.py"
    p.write_text(GOOD)
    return str(p)


def test_check_ok_and_bug_exit_codes(model):
    assert run("check", f"{model}::locked").returncode == 0
    r = run("check", f"{model}::lost_update")
    assert r.returncode == 1
    assert "assertion" in r.stdout
    assert "replay: kvmcheck replay" in r.stdout


def test_json_output_shape(model):
    r = run("check", f"{model}::lost_update", "--json")
    out = json.loads(r.stdout)
    assert set(out) >= {"scenario", "verdict", "complete", "executions", "elapsed_s", "finding"}
    f = out["finding"]
    assert set(f) >= {"kind", "message", "schedule", "trace"}
    assert set(f["trace"][0]) >= {"thread", "function", "file", "line", "op"}


def test_replay_command_reproduces(model):
    sched = json.loads(run("check", f"{model}::lost_update", "--json").stdout)["finding"]["schedule"]
    r = run("replay", f"{model}::lost_update", sched, "--json")
    assert r.returncode == 1
    assert json.loads(r.stdout)["finding"]["kind"] == "assertion"


def test_list_json(model):
    rows = json.loads(run("list", model, "--json").stdout)
    assert {r["scenario"] for r in rows} == {"locked", "lost_update"}
    bundled = json.loads(run("list", "--json").stdout)
    assert {"scenario": "pfncache.seed_race", "variant": "v6.8", "expect": "bug"} in bundled


def one_line_error(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


def test_syntax_error_in_model(tmp_path):
    p = tmp_path / "broken.py"
    p.write_text("def oops(:\n")
    assert "syntax error" in one_line_error(run("check", str(p)))


def test_model_raising_at_import(tmp_path):
    p = tmp_path / "raises.py"
    p.write_text("raise RuntimeError('boom')\n")
    assert "RuntimeError: boom" in one_line_error(run("check", str(p)))


def test_missing_scenario(model):
    assert "no scenario 'nope'" in one_line_error(run("check", f"{model}::nope"))


def test_unknown_bundled_scenario_and_variant():
    assert "unknown scenario" in one_line_error(run("check", "pfncache.nope"))
    assert "unknown variant" in one_line_error(run("check", "pfncache.seed_race", "--variant", "v0"))


def test_unknown_option_and_bad_value(model):
    one_line_error(run("check", model, "--frobnicate"))
    one_line_error(run("check", model, "--max-executions", "zero"))
    one_line_error(run("check", model, "--strategy", "magic"))


def test_malformed_and_diverging_schedules(model):
    assert "malformed schedule" in one_line_error(run("replay", f"{model}::locked", "0x2-zz"))
    assert "diverged at step" in one_line_error(run("replay", f"{model}::locked", "0-5-5"))


def test_missing_file():
    assert "does not exist" in one_line_error(run("check", "/nonexistent/model.py"))
