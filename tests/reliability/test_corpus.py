"""A corpus of bad inputs run through the command line: files, options, schedules, models.

Each case is run in-process through ``kvmcheck.cli.run()`` (what the ``kvmcheck`` script
runs) on a worker thread with a wall-clock bound: the harness fails a case that hangs,
prints a traceback, or exits with anything but its documented code:

    0 no bug   1 a bug (a finding)   2 a user's mistake, one line on stderr
    (130 / 143: stopped by SIGINT / SIGTERM -- see test_cli_guard.py)
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
BAD = str(HERE / "models" / "bad_models.py")
BIG = str(HERE / "models" / "big.py")
FAULTS = str(HERE / "models" / "faults.py")
BOUND_S = 120.0  # the harness's hang guard (not a speed assertion)

# files written into a temporary directory (some are not even Python)
FILES: dict[str, bytes] = {
    "syntax_error.py": b"def f(:\n",
    "import_error.py": b"import no_such_module_kvmcheck\n",
    "raises_at_import.py": b'raise RuntimeError("at import")\n',
    "exits_at_import.py": b"import sys\nsys.exit(3)\n",
    "kbint_at_import.py": b"raise KeyboardInterrupt\n",
    "no_scenarios.py": b"x = 1\n",
    "spawn_at_import.py": b"from kvmcheck import spawn\nspawn(print)\n",
    "binary.py": b"\x00\x01\x02garbage\xff\n",
    "latin1.py": b"x = '\xe9'\n",
    "two.py": b'from kvmcheck import scenario\n@scenario(name="a")\ndef a(): pass\n'
    b'@scenario(name="b")\ndef b(): pass\n',
    "notpy.txt": b"not a model\n",
    "empty.py": b"",
}

S = f"{BIG}::big"  # a valid target for option errors
CASES: list[tuple[str, list[str], int]] = [
    # -- files and targets --------------------------------------------------------------------
    ("missing-file", ["check", "{tmp}/nope.py"], 2),
    ("directory", ["check", "{tmp}"], 2),
    ("not-py", ["check", "{tmp}/notpy.txt"], 2),
    ("syntax-error", ["check", "{tmp}/syntax_error.py"], 2),
    ("import-error", ["check", "{tmp}/import_error.py"], 2),
    ("raises-at-import", ["check", "{tmp}/raises_at_import.py"], 2),
    ("exits-at-import", ["check", "{tmp}/exits_at_import.py"], 2),
    ("kbint-at-import", ["check", "{tmp}/kbint_at_import.py"], 2),
    ("no-scenarios", ["check", "{tmp}/no_scenarios.py"], 2),
    ("empty-file", ["check", "{tmp}/empty.py"], 2),
    ("spawn-at-import", ["check", "{tmp}/spawn_at_import.py"], 2),
    ("binary", ["check", "{tmp}/binary.py"], 2),
    ("latin1", ["check", "{tmp}/latin1.py"], 2),
    ("unknown-scenario-in-file", ["check", f"{BAD}::nope"], 2),
    ("unknown-bundled", ["check", "no.such_scenario"], 2),
    ("empty-target", ["check", ""], 2),
    ("colons-only", ["check", "::"], 2),
    ("target-and-all", ["check", S, "--all"], 2),
    ("neither-target-nor-all", ["check"], 2),
    ("unknown-variant", ["check", "pfncache.seed_race", "--variant", "nope"], 2),
    ("replay-two-scenarios", ["replay", "{tmp}/two.py", "0"], 2),
    ("list-missing-file", ["list", "{tmp}/nope.py"], 2),
    ("unknown-command", ["frobnicate"], 2),
    # -- options ------------------------------------------------------------------------------
    ("max-seconds-nan", ["check", S, "--max-seconds", "nan"], 2),
    ("max-seconds-inf", ["check", S, "--max-seconds", "inf"], 2),
    ("max-seconds-neg", ["check", S, "--max-seconds", "-1"], 2),
    ("max-seconds-zero", ["check", S, "--max-seconds", "0"], 2),
    ("max-seconds-word", ["check", S, "--max-seconds", "soon"], 2),
    ("max-executions-zero", ["check", S, "--max-executions", "0"], 2),
    ("max-executions-neg", ["check", S, "--max-executions", "-1"], 2),
    ("max-executions-float", ["check", S, "--max-executions", "1.5"], 2),
    ("max-steps-zero", ["check", S, "--max-steps", "0"], 2),
    ("max-steps-neg", ["check", S, "--max-steps", "-3"], 2),
    ("strategy-unknown", ["check", S, "--strategy", "nope"], 2),
    ("seed-word", ["check", S, "--seed", "x"], 2),
    ("step-timeout-nan", ["check", S, "--step-timeout", "nan"], 2),
    ("step-timeout-zero", ["check", S, "--step-timeout", "0"], 2),
    ("unknown-option", ["check", S, "--frob"], 2),
    ("html-is-dir", ["check", S, "--html", "{tmp}"], 2),
    ("html-under-file", ["check", S, "--html", "{tmp}/notpy.txt/r.html"], 2),
    ("html-in-proc", ["check", S, "--html", "/proc/nope/r.html"], 2),
    ("html-empty", ["check", S, "--html", ""], 2),
    # -- schedules ----------------------------------------------------------------------------
    ("sched-huge-count", ["replay", f"{BAD}::printer", "0x99999999999"], 2),
    ("sched-4g", ["replay", f"{BAD}::printer", "0x100000000"], 2),
    ("sched-5000-digits", ["replay", f"{BAD}::printer", "0x" + "9" * 5000], 2),
    ("sched-garbage", ["replay", f"{BAD}::printer", "abc"], 2),
    ("sched-dash", ["replay", f"{BAD}::printer", "-"], 2),
    ("sched-empty-count", ["replay", f"{BAD}::printer", "0x"], 2),
    ("sched-neg", ["replay", f"{BAD}::printer", "0x-1"], 2),
    ("sched-empty-choice", ["replay", f"{BAD}::printer", "1="], 2),
    ("sched-bad-choice", ["replay", f"{BAD}::printer", "0=99"], 2),
    ("sched-pipe", ["replay", f"{BAD}::printer", "|"], 2),
    ("sched-wrong-thread", ["replay", f"{BAD}::printer", "7"], 2),
    ("sched-too-short", ["replay", f"{BAD}::printer", "0"], 2),
    ("sched-too-long", ["replay", f"{BAD}::printer", "0x5-1x5-2x5-0x50"], 2),
    ("sched-unicode", ["replay", f"{BAD}::printer", "0x\u0663\u0663"], 2),
    ("sched-spaces", ["replay", f"{BAD}::printer", "0 x 5"], 2),
    # -- misbehaving models -------------------------------------------------------------------
    ("sys-exit-thread", ["check", f"{BAD}::sys_exit_thread"], 1),
    ("sys-exit-body", ["check", f"{BAD}::sys_exit_body"], 1),
    ("raise-kbint", ["check", f"{BAD}::raise_keyboard_interrupt"], 1),
    ("raise-genexit", ["check", f"{BAD}::raise_generator_exit"], 1),
    ("base-exception-subclass", ["check", f"{BAD}::raises_base_exception_subclass"], 1),
    ("memory-error", ["check", f"{BAD}::memory_hog_list"], 1),
    ("unhashable", ["check", f"{BAD}::unhashable_things"], 1),
    ("deep-recursion", ["check", f"{BAD}::deep_recursion"], 1),
    ("spawn-not-callable", ["check", f"{BAD}::spawn_not_callable"], 1),
    ("join-not-a-thread", ["check", f"{BAD}::join_not_a_thread"], 1),
    ("nondet-zero", ["check", f"{BAD}::nondet_zero"], 2),
    ("bare-except-loop", ["check", f"{BAD}::bare_except_loop"], 2),
    ("bare-except-return", ["check", f"{BAD}::bare_except_return"], 2),
    ("pure-python-loop", ["check", f"{BAD}::pure_python_loop", "--step-timeout", "0.5"], 1),
    ("pure-python-loop-max-seconds", ["check", f"{BAD}::pure_python_loop", "--max-seconds", "1"], 0),
    ("hot-field", ["check", f"{BAD}::hot_field", "--max-steps", "200000", "--max-seconds", "2"], 0),
    ("uses-random", ["check", f"{BAD}::uses_random"], 2),
    ("uses-time", ["check", f"{BAD}::uses_time"], 2),
    ("set-order", ["check", f"{BAD}::set_order"], 2),
    ("printer-json", ["check", f"{BAD}::printer", "--json"], 0),
    ("random-strategy-nan", ["check", S, "--strategy", "random", "--max-seconds", "nan"], 2),
    # -- the parallel search's probes (issue 21) --------------------------------------------------
    ("first-run-oopses", ["check", f"{FAULTS}::first_run_oopses"], 2),
    ("splits-into-jobs", ["check", f"{FAULTS}::splits"], 0),
    ("loops-in-split-probe", ["check", f"{FAULTS}::loops_in_probe", "--max-seconds", "1"], 0),
    ("workers-huge", ["check", f"{FAULTS}::splits", "--workers", "100000"], 0),
    ("workers-zero", ["check", f"{FAULTS}::splits", "--workers", "0"], 2),
    ("checkpoint-unwritable", ["check", S, "--checkpoint", "/proc/nope/ck"], 2),
    ("checkpoint-is-dir", ["check", S, "--checkpoint", "{tmp}"], 2),
    ("resume-junk", ["check", S, "--resume", "{tmp}/notpy.txt"], 2),
    ("resume-missing", ["check", S, "--resume", "{tmp}/nope.ck"], 2),
]


def _run(argv: list[str]) -> tuple[int | None, str, str, BaseException | None]:
    from kvmcheck import cli

    out, err = io.StringIO(), io.StringIO()
    box: dict[str, Any] = {}

    def target() -> None:
        old = sys.argv
        sys.argv = ["kvmcheck", *argv]
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                cli.run()
            box["code"] = 0
        except SystemExit as e:
            box["code"] = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException as e:  # noqa: BLE001 - what the user would see as a traceback
            box["exc"] = e
        finally:
            sys.argv = old

    th = threading.Thread(target=target, daemon=True)
    th.start()
    th.join(BOUND_S)
    if th.is_alive():
        pytest.fail(f"hung for {BOUND_S} s: kvmcheck {' '.join(argv)}")
    return box.get("code"), out.getvalue(), err.getvalue(), box.get("exc")


def test_corpus_size() -> None:
    assert len(CASES) >= 60
    assert len({name for name, _, _ in CASES}) == len(CASES)


WORKERS: list[list[str]] = [["--workers", "1"], ["--workers", "2"], []]  # [] is auto, the default
# Bounded by time: how far a search gets in its seconds depends on the machine and on the
# worker count (more workers cover more).  One worker gives the documented code; more give
# it too, or 1 when they reached a bug within the budget that one worker did not (hot-field:
# the split's probe runs its single execution to --max-steps before the 2 s are up, and that
# report, replayed, is the check's finding) -- never another verdict, never a traceback.
TIMED = {"pure-python-loop-max-seconds", "hot-field", "loops-in-split-probe"}


def _summary(code: int | None, out: str) -> tuple[object, ...]:
    """What must not depend on the worker count: the exit code, each result's verdict and count."""
    import re

    rows = re.findall(r"^(\S+): (ok|bug|bounded)  \((\d+) executions", out, flags=re.M)
    return (code, tuple(rows))


@pytest.mark.parametrize(("name", "argv", "code"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(tmp_path: Path, name: str, argv: list[str], code: int) -> None:
    """Each case gives its documented exit code, and the same results with --workers 1, 2 and
    auto (issue 21: the parallel search and its probes never change an answer)."""
    for fname, data in FILES.items():
        (tmp_path / fname).write_bytes(data)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    seen: dict[str, tuple[object, ...]] = {}
    for workers in WORKERS if argv[0] == "check" and "--workers" not in argv else [[]]:
        got, out, err, exc = _run([*argv, *workers])
        assert exc is None, f"escaped: {type(exc).__name__}: {exc}"
        assert "Traceback" not in out + err
        timed_bug = name in TIMED and workers != ["--workers", "1"] and got == 1 and "replay:" in out
        assert got == code or timed_bug, (workers, got, out[-2000:], err[-2000:])
        if code == 2:
            lines = [line for line in err.splitlines() if line.strip()]
            assert len(lines) == 1 and lines[0].startswith("kvmcheck: error:"), err
        if "--json" in argv and code in (0, 1):
            import json

            json.loads(out)
        if name not in TIMED:
            seen[" ".join(workers) or "auto"] = _summary(got, out)
    assert len(set(seen.values())) <= 1, seen
