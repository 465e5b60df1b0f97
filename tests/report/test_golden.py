"""Golden text reports, one per finding kind: the story ends with the failing operation.

The reports in ``tests/report/golden/`` are compared byte for byte.  After an
intended change of the report, regenerate them and review the diff:

    KVMCHECK_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/report/test_golden.py
    git diff tests/report/golden/
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kvmcheck import check
from kvmcheck._engine.confirm import confirm
from kvmcheck._engine.settings import Settings
from kvmcheck._engine.target import Target
from kvmcheck._loader import resolve
from kvmcheck.report.text import render_finding

HERE = Path(__file__).parent
GOLDEN = HERE / "golden"
KINDS = str(HERE / "kinds.py")

# scenario -> (finding kind, text of the failing operation, the story's last line)
CASES = {
    "deadlock": ("deadlock", "waits for a held by t1: blocked forever"),
    "lock_order": ("lock-order", "mutex_lock(a)"),
    "use_after_free": ("use-after-free", "read obj->data"),
    "data_race": ("data-race", "write obj->data = 2"),
    "sleep_in_atomic": ("sleep-in-atomic", "down_read(sem)"),
    "recursive_lock": ("deadlock", "mutex_lock(m)  (not performed"),
    "double_memunmap": ("double-free", "memunmap(khva[pfn 1])"),
}


# lockdep warns (and so stops the search) before the ABBA deadlock hangs: go on to the hang
KEEP_GOING = {"deadlock"}


def report(name: str, width: int = 100) -> str:
    s = resolve(f"{KINDS}::kinds.{name}")[0]
    cx = confirm(Target(s), check(s, keep_going=name in KEEP_GOING), Settings())
    return render_finding(cx.finding, width=width) + "\n"


def story_lines(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("Scenario:"))
    end = next(i for i in range(start, len(lines)) if not lines[i].strip())
    return lines[start:end]


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_report(name):
    text = report(name)
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("KVMCHECK_REGEN_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
        pytest.fail(
            f"rewrote {path}: read the diff (git diff {path}), then run again without KVMCHECK_REGEN_GOLDEN"
        )
    assert path.exists(), (
        f"no golden file {path}: run with KVMCHECK_REGEN_GOLDEN=1 (see the module docstring)"
    )
    assert text == path.read_text(), f"report of {name} changed; regenerate (module docstring) if intended"


@pytest.mark.parametrize("name", sorted(CASES))
def test_story_ends_with_the_failing_operation(name):
    kind, failing = CASES[name]
    text = report(name)
    assert f"kind: {kind}" in text
    last = story_lines(text)[-1]
    assert last.startswith(">"), last
    assert failing in last, last
    assert max(len(ln) for ln in text.splitlines()) <= 100


def test_kcsan_report_names_both_accesses():
    text = report("data_race")
    assert "write to obj->data by task unlocked at unlocked kinds.py:" in text
    assert "write to obj->data by task locked at locked kinds.py:" in text


def test_kasan_report_names_alloc_free_and_access():
    text = report("use_after_free")
    for what in ("Read of obj->data by task reader", "Allocated at:", "Freed by task put"):
        assert what in text


def test_lockdep_report_names_both_chains():
    text = report("lock_order")
    assert "the existing dependency chain" in text and "is trying to acquire lock" in text
    assert "-> #1 (b):" in text and "-> #0 (a):" in text
