"""The command line under signals, bad output paths, printing models (subprocess, wall-clock bound)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
MODELS = HERE / "models"
KVMCHECK = [sys.executable, "-m", "kvmcheck.cli"]
BOUND_S = 120  # the harness's hang guard; no assertion on speed


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(HERE.parents[1] / "src")}


def _wait_started(p: subprocess.Popen[str]) -> None:
    """Block until the model says the search runs (its first stderr line), then a little more."""
    assert p.stderr is not None
    line = p.stderr.readline()
    assert "search started" in line, line
    time.sleep(0.5)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("target", ["big", "spin"])
def test_signal_stops_cleanly_prints_partial_result_and_writes_reports(
    tmp_path: Path, sig: signal.Signals, code: int, target: str
) -> None:
    html = tmp_path / "out" / "r.html"
    p = subprocess.Popen(
        [*KVMCHECK, "check", f"{MODELS / 'big.py'}::{target}", "--json", "--html", str(html)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    _wait_started(p)
    p.send_signal(sig)
    out, err = p.communicate(timeout=BOUND_S)
    assert p.returncode == code, (out, err)
    (result,) = json.loads(out)  # --json is always a list of results
    assert result["verdict"] == "bounded" and not result["complete"]
    assert "bounded" in result["coverage"]
    assert html.is_file() and "</html>" in html.read_text()
    assert "Traceback" not in err and f"stopped by {sig.name}" in err, err
    assert not [f for f in html.parent.iterdir() if f.name.endswith(".tmp")]


def test_sigint_text_output(tmp_path: Path) -> None:
    p = subprocess.Popen(
        [*KVMCHECK, "check", f"{MODELS / 'big.py'}::big"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    _wait_started(p)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=BOUND_S)
    assert p.returncode == 130 and "Traceback" not in err
    assert "bounded" in out and "execution" in out


@pytest.mark.parametrize(
    "bad",
    ["/proc/nope/r.html", "{tmp}", "{tmp}/file.txt/r.html", "/r.html", ""],
)
def test_unwritable_html_fails_before_the_search(tmp_path: Path, bad: str) -> None:
    (tmp_path / "file.txt").write_text("x")
    bad = bad.format(tmp=tmp_path)
    if bad == "/r.html" and os.access("/", os.W_OK):
        pytest.skip("running as root: / is writable")
    t0 = time.perf_counter()
    p = subprocess.run(
        [*KVMCHECK, "check", f"{MODELS / 'big.py'}::big", "--json", "--html", bad],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=BOUND_S,
    )
    assert p.returncode == 2, p.stderr
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
    assert p.stdout == ""
    assert time.perf_counter() - t0 < BOUND_S


def test_model_print_goes_to_stderr_with_json() -> None:
    p = subprocess.run(
        [*KVMCHECK, "check", f"{MODELS / 'printer.py'}::printer", "--json"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=BOUND_S,
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)[0]["verdict"] == "ok"
    assert "thread runs" in p.stderr


def test_html_written_atomically(tmp_path: Path) -> None:
    from kvmcheck._cliguard import write_atomic

    target = tmp_path / "r.html"
    target.write_text("old")

    def failing(path: str, text: str) -> None:
        Path(path).write_text(text[:3])
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_atomic(failing, str(target), "new content")
    assert target.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["r.html"]
    write_atomic(lambda path, text: Path(path).write_text(text), str(target), "new content")
    assert target.read_text() == "new content"
