"""The README's 60-second example, run as a reader runs it: what it prints is what the README says.

The model is the README's ``lost_update.py`` block, copied as is; each ``$ ...kvmcheck``
line of the shell block after it is run (in a subprocess, with its own failure
database), and every line the README shows under it must come out, in order (``...``
stands for lines left out; times vary).  The exit status is the one its comment gives.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
BOUND_S = 120


def _model() -> str:
    (block,) = [
        b for b in re.findall(r"```python\n(.*?)```", README, flags=re.S) if b.startswith("# lost_update.py")
    ]
    return block


def _commands(marker: str) -> list[tuple[list[str], int | None, list[str]]]:
    """(argv after `kvmcheck`, exit status or None, the lines shown) for each `$` line of the
    README's block that contains ``marker``."""
    (block,) = [b for b in re.findall(r"```[a-z]*\n(.*?)```", README, flags=re.S) if marker in b]
    out: list[tuple[list[str], int | None, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            cmd, _, comment = line[2:].partition("#")
            m = re.search(r"exit status (\d+)", comment)
            out.append((shlex.split(cmd)[1:], int(m.group(1)) if m else None, []))
        elif out:
            out[-1][2].append(line)
    return out


def _norm(line: str) -> str:
    return re.sub(r"\d+\.\d+s\b", "T", line.rstrip())


def _pattern(line: str) -> re.Pattern[str]:
    """A README line as a pattern: '...' inside it stands for what it leaves out."""
    line = _norm(line.split("  # ")[0] if "  # " in line else line)
    return re.compile(".*".join(re.escape(part) for part in line.split("...")) + "$")


def _check_block(tmp_path: Path, marker: str) -> None:
    cmds = _commands(marker)
    assert cmds
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "KVMCHECK_DB": str(tmp_path / "db"),
        "COLUMNS": "200",
    }
    for argv, status, shown in cmds:
        p = subprocess.run(
            [sys.executable, "-m", "kvmcheck.cli", *argv, "--no-db"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=BOUND_S,
        )
        if status is not None:
            assert p.returncode == status, (argv, p.stdout, p.stderr)
        got = [_norm(x) for x in p.stdout.splitlines()]
        at = 0
        for want in shown:
            if not want.strip() or want.lstrip().startswith("..."):
                continue
            pat = _pattern(want)
            hit = next((i for i in range(at, len(got)) if pat.match(got[i])), None)
            assert hit is not None, (
                f"kvmcheck {' '.join(argv)}: README line {want!r} not printed (in order):\n{p.stdout}"
            )
            at = hit + 1


def test_the_60_second_example_prints_what_the_readme_shows(tmp_path: Path) -> None:
    (tmp_path / "lost_update.py").write_text(_model())
    assert len(_commands("kvmcheck check lost_update.py")) == 3
    _check_block(tmp_path, "kvmcheck check lost_update.py")


@pytest.mark.slow
def test_the_counterexample_example_prints_what_the_readme_shows(tmp_path: Path) -> None:
    _check_block(tmp_path, "$ kvmcheck check pfncache.seed_race")


def test_the_assertions_the_readme_suggests_hold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from kvmcheck.testing import assert_finds, assert_ok

    (tmp_path / "lost_update.py").write_text(_model())
    spec = importlib.util.spec_from_file_location("readme_lost_update", tmp_path / "lost_update.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setenv("KVMCHECK_DB", str(tmp_path / "db"))
    for suggested in re.findall(r"`(assert_finds\(lost_update[^`]*)`", README):
        eval(suggested, {"assert_finds": assert_finds, "lost_update": mod.lost_update})
    assert "assert_finds(lost_update" in README
    assert_ok(mod.locked_update)
