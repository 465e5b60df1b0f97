"""The command line: exit codes, one-line errors, JSON shape, and the conventions people expect."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import click
import pytest

import kvmcheck
from kvmcheck.cli import main

KVMCHECK = [sys.executable, "-m", "kvmcheck"]

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

EXPECTING = textwrap.dedent(
    """
    from kvmcheck import scenario, spawn, join
    from kvmcheck.kernel import Struct, Mutex, mutex_lock, mutex_unlock

    class Counter(Struct):
        value: int = 0

    @scenario(expect={"locked": "ok", "racy": "bug"})
    def counter(variant):
        c = Counter(); m = Mutex("m")
        def inc():
            if variant == "locked":
                mutex_lock(m)
            t = c.value
            c.value = t + 1
            if variant == "locked":
                mutex_unlock(m)
        join(spawn(inc), spawn(inc))
        assert c.value == 2

    @scenario(expect=EXPECT_SOLO)
    def solo():
        c = Counter()
        c.value = 1
    """
)


@pytest.fixture(autouse=True)
def own_db(tmp_path, monkeypatch):
    """Each test gets its own failure database (and runs in its own directory)."""
    monkeypatch.setenv("KVMCHECK_DB", str(tmp_path / "db"))
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("COLUMNS", raising=False)


def run(*args: str, cwd: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    e = dict(os.environ, PYTHONHASHSEED="0", **env)
    return subprocess.run([*KVMCHECK, *args], capture_output=True, text=True, env=e, timeout=120, cwd=cwd)


def run_json(*args: str) -> list[dict]:
    out = json.loads(run(*args, "--json").stdout)
    assert isinstance(out, list)
    return out


@pytest.fixture
def model(tmp_path):
    p = tmp_path / "model.py"
    p.write_text(GOOD)
    return str(p)


def expecting(tmp_path, solo: str = "ok") -> str:
    p = tmp_path / "expecting.py"
    p.write_text(EXPECTING.replace("EXPECT_SOLO", repr(solo)))
    return str(p)


def test_check_ok_and_bug_exit_codes(model):
    assert run("check", f"{model}::locked").returncode == 0
    r = run("check", f"{model}::lost_update")
    assert r.returncode == 1
    assert "assertion" in r.stdout
    assert "replay: kvmcheck replay" in r.stdout


def test_json_is_always_a_list_of_one_shape(model):
    one = run_json("check", f"{model}::lost_update")
    two = run_json("check", model)
    assert len(one) == 1 and len(two) == 2
    keys = {
        "schema",
        "scenario",
        "variant",
        "verdict",
        "complete",
        "executions",
        "elapsed_s",
        "finding",
        "expected",
        "as_expected",
        "replay",
        "minimised",
        "warnings",
    }
    for r in one + two:
        assert set(r) >= keys
        assert r["schema"] == "kvmcheck.result/1"
    f = one[0]["finding"]
    assert set(f) >= {"kind", "message", "schedule", "trace", "sites", "failing_step"}
    assert set(f["trace"][0]) >= {"thread", "function", "file", "line", "op"}
    assert f["sites"] and set(f["sites"][0]) == {"role", "function", "file", "line"}
    assert one[0]["replay"].startswith("kvmcheck replay ") and f["schedule"] in one[0]["replay"]
    ok = next(r for r in two if r["scenario"] == "locked")
    assert ok["finding"] is None and ok["replay"] is None


def test_json_carries_expected(tmp_path):
    rows = run_json("check", expecting(tmp_path))
    assert {(r["scenario"], r["variant"], r["expected"], r["verdict"]) for r in rows} == {
        ("counter", "locked", "ok", "ok"),
        ("counter", "racy", "bug", "bug"),
        ("solo", None, "ok", "ok"),
    }


def test_replay_command_reproduces(model):
    sched = run_json("check", f"{model}::lost_update")[0]["finding"]["schedule"]
    r = run("replay", f"{model}::lost_update", sched, "--json")
    assert r.returncode == 1
    assert json.loads(r.stdout)[0]["finding"]["kind"] == "assertion"


def test_list_json(model):
    rows = json.loads(run("list", model, "--json").stdout)
    assert {r["scenario"] for r in rows} == {"locked", "lost_update"}
    bundled = json.loads(run("list", "--json").stdout)
    row = next(r for r in bundled if (r["scenario"], r["variant"]) == ("pfncache.seed_race", "v6.8"))
    assert row["expect"] == "bug"
    assert {"provenance", "source", "note", "scenario_source"} <= set(row)


def test_file_compares_every_scenario_with_its_expectation(tmp_path):
    r = run("check", expecting(tmp_path))
    assert r.returncode == 0, r.stdout
    assert "all verdicts as expected" in r.stdout
    assert "Scenario:" in r.stdout  # the expected bug is still reported, with its story
    r = run("check", expecting(tmp_path, solo="bug"))
    assert r.returncode == 1
    assert "SOME VERDICTS DIFFER" in r.stdout
    assert "solo: expected bug, got ok" in r.stdout


def test_all_with_a_file(tmp_path):
    r = run("check", "--all", expecting(tmp_path))
    assert r.returncode == 0, r.stdout
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["scenario", "variant", "expected", "verdict", "executions", "time"]
    assert sum(ln.startswith(("counter", "solo")) for ln in lines) == 3
    assert run("check", "--all", expecting(tmp_path, solo="bug")).returncode == 1


def test_all_table_streams_rows_as_they_finish(tmp_path):
    p = tmp_path / "slow.py"
    p.write_text(
        textwrap.dedent(
            """
            import time
            from kvmcheck import scenario

            @scenario(expect="ok")
            def a_fast():
                pass

            @scenario(expect="ok")
            def b_slow():
                time.sleep(3)
            """
        )
    )
    env = dict(os.environ, PYTHONHASHSEED="0")
    with subprocess.Popen(
        [*KVMCHECK, "check", "--all", str(p)], stdout=subprocess.PIPE, text=True, env=env
    ) as proc:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]  # header, rule, first row
        still_running = proc.poll() is None
        rest = proc.stdout.read()
        proc.wait(timeout=60)
    assert lines[2].startswith("a_fast"), lines
    assert still_running, "the first row came only once every check had finished"
    assert "b_slow" in rest


def test_version():
    r = run("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"kvmcheck {kvmcheck.__version__}"


def test_python_dash_m_and_help_epilogs():
    r = subprocess.run([sys.executable, "-m", "kvmcheck", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    assert "Examples:" in r.stdout and "Exit codes:" in r.stdout
    for cmd in ("check", "replay"):
        out = run(cmd, "--help").stdout
        assert "Examples:" in out and "Exit codes:" in out, cmd


def test_every_option_has_help():
    assert isinstance(main, click.Group)
    for name, cmd in main.commands.items():
        for p in cmd.params:
            if isinstance(p, click.Option) and p.name != "help":
                assert p.help, f"kvmcheck {name} {p.opts[0]} has no help text"


def _in_pty(args: list[str], env: dict[str, str]) -> str:
    """Run kvmcheck with stdout and stderr on a pseudo-terminal; return what it wrote."""
    import pty

    out = bytearray()

    def read(fd: int) -> bytes:
        data = os.read(fd, 4096)
        out.extend(data)
        return data

    old = dict(os.environ)
    os.environ.update(env)
    try:
        status = pty.spawn([*KVMCHECK, *args], read)
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert os.waitstatus_to_exitcode(status) in (0, 1)
    return out.decode(errors="replace")


def test_colour_only_on_a_tty_and_never_with_no_color(model):
    tty = _in_pty(["check", f"{model}::lost_update"], {"PYTHONHASHSEED": "0"})
    assert "\x1b[" in tty
    plain = _in_pty(["check", f"{model}::lost_update"], {"PYTHONHASHSEED": "0", "NO_COLOR": "1"})
    assert "\x1b[3" not in plain and "\x1b[1m" not in plain
    piped = run("check", f"{model}::lost_update").stdout
    assert "\x1b[" not in piped


def test_progress_line_on_a_tty(tmp_path):
    p = tmp_path / "long.py"
    p.write_text(
        textwrap.dedent(
            """
            from kvmcheck import scenario, spawn, join
            from kvmcheck.kernel import Struct

            class S(Struct):
                a: int = 0

            @scenario(kcsan=False)
            def many():
                s = S()
                def t():
                    for _ in range(4):
                        s.a = s.a + 1
                join(spawn(t), spawn(t), spawn(t))
            """
        )
    )
    out = _in_pty(["check", str(p), "--max-seconds", "1.5"], {"PYTHONHASHSEED": "0"})
    assert "executions," in out and "/s" in out
    assert "\r" in out
    piped = run("check", str(p), "--max-seconds", "1.5")
    assert "/s," not in piped.stderr


def test_report_fits_the_width(model, tmp_path):
    r = run("check", "model.py::lost_update", "--full", cwd=str(tmp_path), COLUMNS="80")
    assert max(len(ln) for ln in r.stdout.splitlines()) <= 80, r.stdout
    r = run("check", f"{model}::lost_update", "--full")
    assert max(len(ln) for ln in r.stdout.splitlines()) <= 120


def test_full_shows_every_step(model):
    story = run("check", f"{model}::lost_update").stdout
    full = run("check", f"{model}::lost_update", "--full").stdout
    assert "Every step:" in full and "Every step:" not in story
    assert len(full.splitlines()) > len(story.splitlines())


def test_minimised_by_default_and_no_minimise_keeps_the_first(model):
    first = run_json("check", f"{model}::lost_update", "--strategy", "random", "--no-minimise")[0]
    assert first["minimised"] is None
    mini = run_json("check", f"{model}::lost_update", "--strategy", "random", "--no-db")[0]
    m = mini["minimised"]
    assert m["preemptions"] <= m["preemptions_before"]
    assert (m["preemptions"], m["steps"]) <= (m["preemptions_before"], m["steps_before"])
    assert mini["finding"]["schedule"] in mini["replay"]
    text = run("check", f"{model}::lost_update", "--strategy", "random", "--no-db").stdout
    assert "minimised:" in text or "minimal already:" in text


def test_failure_database_replays_first_and_replay_last(model):
    first = run_json("check", f"{model}::lost_update")[0]
    assert not first["from_db"]
    again = run_json("check", f"{model}::lost_update")[0]
    assert again["from_db"] and again["executions"] == 1
    assert again["finding"]["schedule"] == first["finding"]["schedule"]
    fresh = run_json("check", f"{model}::lost_update", "--no-db")[0]
    assert not fresh["from_db"]
    last = run("replay", "--last")
    assert last.returncode == 1
    assert "lost_update" in last.stdout and "assertion" in last.stdout


def test_keep_going_searches_on_after_a_warning(tmp_path):
    p = tmp_path / "warns.py"
    p.write_text(GOOD.replace("@scenario(kcsan=False)", "@scenario"))  # KCSAN on: it warns first
    stop = run_json("check", f"{p}::lost_update", "--no-db")[0]
    assert stop["finding"]["kind"] == "data-race"
    roles = [x["role"] for x in stop["finding"]["sites"]]  # KCSAN: both racing accesses, structured
    assert len(roles) == 2 and all(r.split()[0] in ("read", "write") for r in roles), roles
    on = run_json("check", f"{p}::lost_update", "--no-db", "--keep-going")[0]
    assert on["finding"]["kind"] == "assertion"  # the hard finding, found by searching on
    assert on["executions"] > stop["executions"]
    assert any("KCSAN" in w["headline"] for w in on["warnings"])


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


def test_unknown_command_names_the_help_to_see_once():
    line = one_line_error(run("frobnicate"))
    assert line.endswith("(see kvmcheck --help)"), line
    assert "kvmcheck kvmcheck" not in line
    assert one_line_error(run("check", "--frobnicate")).endswith("(see kvmcheck check --help)")


def test_bad_combinations_are_one_line(model):
    assert "TARGET" in one_line_error(run("check"))
    assert "--all" in one_line_error(run("check", "--all", "pfncache.seed_race"))
    assert "SCHEDULE" in one_line_error(run("replay"))
    assert "no saved counterexample" in one_line_error(run("replay", "--last"))
    assert "--last" in one_line_error(run("replay", "--last", f"{model}::locked", "0"))


def test_malformed_and_diverging_schedules(model):
    assert "malformed schedule" in one_line_error(run("replay", f"{model}::locked", "0x2-zz"))
    assert "diverged at step" in one_line_error(run("replay", f"{model}::locked", "0-5-5"))


def test_missing_file():
    assert "does not exist" in one_line_error(run("check", "/nonexistent/model.py"))


def test_html_report_written(model, tmp_path):
    out = tmp_path / "r" / "report.html"
    r = run("check", f"{model}::lost_update", "--html", str(out))
    assert r.returncode == 1
    text = out.read_text()
    assert "<table class=lanes>" in text and "failing" in text and "<script>" in text


def test_checkpoint_and_resume(model, tmp_path):
    p = tmp_path / "many.py"
    p.write_text(
        textwrap.dedent(
            """
            from kvmcheck import scenario, spawn, join
            from kvmcheck.kernel import Struct

            class S(Struct):
                a: int = 0

            @scenario(kcsan=False)
            def many():
                s = S()
                def t():
                    for _ in range(3):
                        s.a = s.a + 1
                join(spawn(t), spawn(t), spawn(t))
            """
        )
    )
    ck = tmp_path / "search.ckpt"
    r = run("check", f"{p}::many", "--max-executions", "5", "--checkpoint", str(ck), "--no-db")
    assert r.returncode == 0 and ck.exists(), r.stderr
    r = run("check", f"{p}::many", "--max-executions", "5", "--resume", str(ck), "--no-db")
    assert r.returncode == 0, r.stderr
    assert "bounded" in r.stdout
    assert "dpor" in one_line_error(
        run("check", f"{model}::locked", "--checkpoint", str(ck), "--strategy", "pct")
    )
    assert "one scenario" in one_line_error(run("check", model, "--checkpoint", str(ck)))


def test_workers_give_one_workers_verdicts_and_counts(model):
    one = run_json("check", model, "--workers", "1", "--no-db")
    two = run_json("check", model, "--workers", "2", "--no-db")
    assert [(r["scenario"], r["variant"], r["verdict"]) for r in two] == [
        (r["scenario"], r["variant"], r["verdict"]) for r in one
    ]
    assert [r["executions"] for r in two if r["verdict"] == "ok"] == [
        r["executions"] for r in one if r["verdict"] == "ok"
    ]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--workers", "2", "--strategy", "random"], "runs on one"),
        (["--backend", "ray"], "needs the address"),
        (["--workers", "0"], "--workers"),
        (["--backend", "ray", "--address", "nowhere"], "not HOST:PORT"),
    ],
)
def test_bad_worker_options_are_one_line(model, args, says):
    assert says in one_line_error(run("check", f"{model}::lost_update", *args))
