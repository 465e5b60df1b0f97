"""The two tiers (conftest.py): the fast tier leaves the full-tier folders out, ``--full`` keeps
them, and a full-tier file named on the command line runs without ``--full``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def collected(*args: str) -> set[str]:
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return {ln.split("::")[0] for ln in r.stdout.splitlines() if "::" in ln}


def test_fast_tier_leaves_the_full_tier_out_and_full_keeps_it() -> None:
    fast = collected("tests/models", "tests/report", "tests/test_layers.py")
    assert "tests/report/test_golden.py" in fast
    assert "tests/report/test_bundled_stories.py" not in fast
    # named on the command line: tests/models runs without --full
    assert any(f.startswith("tests/models/") for f in fast)
    fast = collected("tests/report", "tests/engine/test_ray.py")
    assert "tests/engine/test_ray.py" in fast
    assert "tests/report/test_bundled_stories.py" not in fast
    full = collected("--full", "tests/report")
    assert "tests/report/test_bundled_stories.py" in full


def test_the_default_run_has_no_model_tests_and_full_has_them() -> None:
    fast = collected()
    assert not any(f.startswith(("tests/models/", "tests/reliability/", "tests/quality/")) for f in fast)
    assert "tests/engine/test_ray.py" not in fast
    assert "tests/test_tiers.py" in fast
    full = collected("--full")
    assert any(f.startswith("tests/models/") for f in full)
    assert "tests/engine/test_ray.py" in full
