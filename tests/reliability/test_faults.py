"""The new machinery under faults (issue 21): resume, workers, probes, the watchdog, signals.

Each test is one failure of the issue's list, run as a user runs it: the ``kvmcheck``
command in a subprocess with a wall-clock bound (``BOUND_S``: a hang guard, never a
speed assertion).  Every one of them failed before the fix.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
FAULTS = HERE / "models" / "faults.py"
BIG = HERE / "models" / "big.py"
KVMCHECK = [sys.executable, "-m", "kvmcheck.cli"]
BOUND_S = 120


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(HERE.parents[1] / "src"), **extra}


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KVMCHECK, *args], capture_output=True, text=True, env=_env(), timeout=BOUND_S, cwd=cwd
    )


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [x for x in err.splitlines() if x.startswith("kvmcheck: error:")]
    assert len(lines) == 1, err
    return lines[0]


# -- wrong verdicts ------------------------------------------------------------------------------
MODEL_V1 = """
from kvmcheck import join, scenario, spawn
from kvmcheck.kernel import Mutex, Struct, mutex_lock, mutex_unlock

class C(Struct):
    a: int = 0

@scenario(kcsan=False)
def counted():
    m, c = Mutex("m"), C()
    def t():
        for _ in range(ROUNDS):
            mutex_lock(m)
            c.a = c.a + 1
            mutex_unlock(m)
    join(spawn(t), spawn(t))
"""


@pytest.mark.parametrize("edit", ["model", "max-steps", "kcsan"])
def test_resume_refuses_a_checkpoint_of_another_model_or_options(tmp_path: Path, edit: str) -> None:
    """It matched the scenario's name only: a checkpoint taken before the model file was edited
    resumed into "ok, complete" with the old tree's count."""
    model = tmp_path / "m.py"
    model.write_text("ROUNDS = 3\n" + MODEL_V1)
    ck = str(tmp_path / "ck")
    first = _run("check", f"{model}::counted", "--no-db", "--max-executions", "5", "--checkpoint", ck)
    assert first.returncode == 0 and "bounded" in first.stdout, first.stderr
    more: list[str] = []
    if edit == "model":
        model.write_text("ROUNDS = 4\n" + MODEL_V1)
    elif edit == "max-steps":
        more = ["--max-steps", "999"]
    else:
        more = ["--kcsan"]
    p = _run("check", f"{model}::counted", "--no-db", "--resume", ck, *more)
    assert p.returncode == 2, (p.stdout, p.stderr)
    line = _one_error_line(p.stderr)
    assert (
        "cannot resume" in line
        and {"model": "changed", "max-steps": "max_steps", "kcsan": "kcsan"}[edit] in line
    ), line
    assert p.stdout == ""


def test_resume_of_the_same_model_reaches_the_uninterrupted_total(tmp_path: Path) -> None:
    model = tmp_path / "m.py"
    model.write_text("ROUNDS = 3\n" + MODEL_V1)
    whole = _run("check", f"{model}::counted", "--no-db", "--workers", "1")
    ck = str(tmp_path / "ck")
    _run("check", f"{model}::counted", "--no-db", "--max-executions", "5", "--checkpoint", ck)
    rest = _run("check", f"{model}::counted", "--no-db", "--resume", ck)
    assert rest.returncode == 0, rest.stderr
    assert (
        rest.stdout.splitlines()[0].split("(")[1].split(",")[0]
        == (whole.stdout.splitlines()[0].split("(")[1].split(",")[0])
    )  # "20 executions"


@pytest.mark.parametrize("workers", [[], ["--workers", "1"], ["--workers", "2"]], ids=["auto", "1", "2"])
def test_an_oops_seen_only_by_a_probe_run_is_never_dropped(workers: list[str]) -> None:
    """The oops happened in the split probe's run, later runs did not oops: "ok, complete"."""
    p = _run("check", f"{FAULTS}::first_run_oopses", "--no-db", *workers)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "nondeterministic" in _one_error_line(p.stderr)


# -- lost results --------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["/proc/nope/ck", "{tmp}", "{tmp}/file.txt/ck"])
def test_an_unwritable_checkpoint_fails_before_the_search(tmp_path: Path, where: str) -> None:
    """It went to the bound, then died with a traceback and no result."""
    (tmp_path / "file.txt").write_text("x")
    t0 = time.perf_counter()
    p = _run(
        "check", f"{BIG}::big", "--no-db", "--max-seconds", "60", "--checkpoint", where.format(tmp=tmp_path)
    )
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "checkpoint" in _one_error_line(p.stderr)
    assert time.perf_counter() - t0 < 50  # refused at once, not after the 60 s search


def test_a_checkpoint_that_cannot_be_saved_later_keeps_the_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk at a later save: the search goes on and the result says so (in-process)."""
    from kvmcheck import check
    from kvmcheck._engine import checkpoint as ckpt
    from tests.engine.test_conformance import lock_family

    real = ckpt.save
    calls = [0]

    def full(*a: object, **k: object) -> None:
        calls[0] += 1
        if calls[0] > 1:
            raise OSError(28, "No space left on device")
        real(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(ckpt, "save", full)
    r = check(lock_family(2, 4), max_executions=10, checkpoint=str(tmp_path / "ck"))
    assert (r.verdict, r.executions) == ("bounded", 10)
    assert "could not be saved" in r.coverage and "No space left" in r.coverage


def _wait_started(p: subprocess.Popen[str]) -> None:
    assert p.stderr is not None
    line = p.stderr.readline()
    assert "search started" in line, line
    time.sleep(0.5)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signals_exit_130_143_with_a_checkpoint_too(tmp_path: Path, sig: signal.Signals, code: int) -> None:
    """With --checkpoint a CI job killed by its timeout passed (exit 0)."""
    ck = tmp_path / "ck"
    p = subprocess.Popen(
        [*KVMCHECK, "check", f"{BIG}::big", "--no-db", "--checkpoint", str(ck)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    _wait_started(p)
    p.send_signal(sig)
    out, err = p.communicate(timeout=BOUND_S)
    assert p.returncode == code, (out, err)
    assert "bounded" in out and "interrupted" in out and "Traceback" not in err
    assert ck.is_file()
    again = _run("check", f"{BIG}::big", "--no-db", "--resume", str(ck), "--max-executions", "1")
    assert again.returncode == 0 and "bounded" in again.stdout, again.stderr
    assert not [f for f in tmp_path.iterdir() if f.name.endswith(".tmp")]


def test_max_seconds_on_a_resume_is_this_runs_budget(tmp_path: Path) -> None:
    """It counted the earlier run's time: the resume ran one execution and stopped."""
    ck = str(tmp_path / "ck")
    first = _run("check", f"{BIG}::big", "--no-db", "--max-seconds", "1", "--checkpoint", ck)
    n1 = int(first.stdout.split("(")[1].split()[0])
    rest = _run("check", f"{BIG}::big", "--no-db", "--max-seconds", "1", "--resume", ck)
    n2 = int(rest.stdout.split("(")[1].split()[0])
    assert rest.returncode == 0, rest.stderr
    assert n2 > n1 + 1, (n1, n2)  # totals: the first run's and this run's own second


def test_failure_database_survives_concurrent_writers(tmp_path: Path) -> None:
    """One fixed X.json.tmp for every save: two processes saving at once lost or mixed saves."""
    code = (
        "import sys\n"
        "from kvmcheck.report import database as db\n"
        "w = int(sys.argv[1])\n"
        "for i in range(150):\n"
        "    db.save(db.Saved('t', 's', None, f'{w}x{i}', 'bug-on', 'h', float(i)))\n"
    )
    env = _env(KVMCHECK_DB=str(tmp_path / "db"))
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(w)], env=env, stderr=subprocess.PIPE, text=True)
        for w in range(4)
    ]
    from kvmcheck.report import database as db

    os.environ["KVMCHECK_DB"] = str(tmp_path / "db")
    try:
        seen = misses = 0
        while any(p.poll() is None for p in procs):
            got = db.load("s", None)
            if got is not None:
                seen += 1
                assert got.schedule.count("x") == 1, got
            elif seen:
                misses += 1  # saved before, and now nothing: a reader caught a half-written file
        for p in procs:
            _, err = p.communicate(timeout=BOUND_S)
            assert p.returncode == 0, err
        assert misses == 0
        final = db.last()
        assert final is not None and final.schedule.endswith("x149")
        leftovers = [f for f in (tmp_path / "db").rglob("*") if f.name.endswith(".tmp")]
        assert leftovers == []
    finally:
        del os.environ["KVMCHECK_DB"]


@pytest.mark.parametrize(
    "content",
    ['{"target": 5, "scenario": "s", "variant": null, "schedule": "0", "kind": "k", "headline": "h", "saved_at": 1}',
     '{"target": "x.py::s"}', "[1, 2]", "not json"],
    ids=["target-int", "fields-missing", "list", "garbage"],
)  # fmt: skip
def test_a_hand_edited_last_json_is_one_line(tmp_path: Path, content: str) -> None:
    (tmp_path / "last.json").write_text(content)
    p = subprocess.run(
        [*KVMCHECK, "replay", "--last"],
        capture_output=True,
        text=True,
        env=_env(KVMCHECK_DB=str(tmp_path)),
        timeout=BOUND_S,
    )
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "last.json" in _one_error_line(p.stderr)


# -- hangs and runaways --------------------------------------------------------------------------
def test_the_split_probe_obeys_max_seconds() -> None:
    """Under --workers auto the split's probe ran model code with no deadline: --max-seconds 2
    said 2.3 s, the process ran 33 s (to --step-timeout 30)."""
    t0 = time.perf_counter()
    p = _run("check", f"{FAULTS}::loops_in_probe", "--no-db", "--max-seconds", "2", "--step-timeout", "30")
    took = time.perf_counter() - t0
    assert p.returncode == 0 and "bounded" in p.stdout, (p.stdout, p.stderr)
    assert took < 25, took  # the budget (2 s), not the step timeout (30 s)
    shown = float(p.stdout.split("steps, ")[1].split("s,")[0])
    assert shown >= 2.0  # the time the result states is the time spent


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with open(task / "children") as fh:
            out |= {int(x) for x in fh.read().split()}
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_their_parent() -> None:
    """kill -9 of the command line left its workers running for ever."""
    p = subprocess.Popen(
        [*KVMCHECK, "check", f"{FAULTS}::splits_forever", "--no-db", "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        _wait_started(p)
        deadline = time.time() + 60
        kids: set[int] = set()
        while len(kids) < 2 and time.time() < deadline:
            kids = _children(p.pid)
            time.sleep(0.2)
        assert len(kids) == 2, kids
        p.kill()
        p.wait(timeout=BOUND_S)
        deadline = time.time() + 30
        while any(_alive(k) for k in kids) and time.time() < deadline:
            time.sleep(0.2)
        assert not any(_alive(k) for k in kids)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=BOUND_S)
        assert p.stderr is not None
        p.stderr.close()


def test_workers_are_capped_and_it_says_so() -> None:
    """--workers 100000 forked 100,000 processes."""
    p = _run("check", f"{FAULTS}::splits", "--no-db", "--workers", "100000", "--json")
    assert p.returncode == 0, p.stderr
    import json

    (r,) = json.loads(p.stdout)
    assert (r["verdict"], r["executions"]) == ("ok", 6)
    assert "100000 asked" in r["coverage"], r["coverage"]
    from kvmcheck._engine.parallel import MAX_WORKERS_PER_CORE, worker_cap

    n, why = worker_cap(100_000)
    assert n == MAX_WORKERS_PER_CORE * (len(os.sched_getaffinity(0))) and why is not None


@pytest.mark.parametrize("model", ["sleeps", "blocking_recv", "lock_taken_twice"])
@pytest.mark.parametrize("limit", [["--max-seconds", "1"], ["--step-timeout", "1"]], ids=["budget", "step"])
def test_a_model_stuck_in_a_c_call_is_reported_and_ended(model: str, limit: list[str]) -> None:
    """It ignored --max-seconds, --step-timeout and the first Ctrl-C, and nothing said so."""
    p = _run("check", f"{FAULTS}::{model}", "--no-db", *limit)
    assert p.returncode == 3, (p.stdout, p.stderr)
    assert "stuck in a call the checker cannot interrupt" in p.stderr
    assert "faults.py" in p.stderr  # the stuck thread's stack names the model's line


def test_the_first_ctrl_c_ends_a_model_stuck_in_a_c_call() -> None:
    p = subprocess.Popen(
        [*KVMCHECK, "check", f"{FAULTS}::sleeps", "--no-db"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    _wait_started(p)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=BOUND_S)
    assert p.returncode == 130, (out, err)
    assert "time.sleep(1000)" in err


# -- tracebacks ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("model", "how"), [("worker_exits", "exit status 9"), ("worker_segfaults", "signal 11")]
)
def test_a_dead_worker_is_one_line_naming_its_job(model: str, how: str) -> None:
    """A RuntimeError traceback (exit 1) naming neither the job nor the schedule."""
    p = _run("check", f"{FAULTS}::{model}", "--no-db", "--workers", "2")
    assert p.returncode == 2, (p.stdout, p.stderr)
    line = _one_error_line(p.stderr)
    assert "worker process running job" in line and "schedule prefix 0x" in line and how in line, line
    assert p.stdout.startswith(f"{model}: bounded")  # the result so far, first


def test_help_says_what_the_checker_cannot_stop() -> None:
    p = _run("check", "--help")
    assert p.returncode == 0
    text = " ".join(p.stdout.split())
    assert "What the checker cannot stop" in text and "time.sleep()" in text
    assert "3 model code stuck in a C call" in text and "143 stopped by SIGTERM" in text
    readme = (HERE.parents[1] / "README.md").read_text()
    assert "### What the checker cannot stop" in readme


def test_sigterm_to_the_process_group_is_143_not_a_dead_worker() -> None:
    """A CI runner's timeout signals every process of the job: the workers too."""
    p = subprocess.Popen(
        [*KVMCHECK, "check", f"{FAULTS}::splits_forever", "--no-db", "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        start_new_session=True,
    )
    _wait_started(p)
    time.sleep(2)  # the workers are running their jobs
    os.killpg(p.pid, signal.SIGTERM)
    out, err = p.communicate(timeout=BOUND_S)
    assert p.returncode == 143, (out, err)
    assert "bounded" in out and "died" not in err and "Traceback" not in err, err
