"""The pytest plugin, run on a small test project (pytester): collection, failures with the report,
the failure database replayed first, the options, and kvmcheck.testing."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from kvmcheck import join, scenario, spawn
from kvmcheck.kernel import Mutex, Struct, mutex_lock, mutex_unlock
from kvmcheck.testing import assert_finds, assert_ok

PROJECT = textwrap.dedent(
    """
    from kvmcheck import scenario, spawn, join
    from kvmcheck.kernel import Struct, Mutex, mutex_lock, mutex_unlock

    class Counter(Struct):
        value: int = 0

    @scenario
    def test_locked():
        c = Counter(); m = Mutex("m")
        def inc():
            mutex_lock(m); c.value = c.value + 1; mutex_unlock(m)
        join(spawn(inc), spawn(inc))
        assert c.value == 2

    @scenario(kcsan=False)
    def test_lost_update():
        c = Counter()
        def inc():
            t = c.value
            c.value = t + 1
        join(spawn(inc), spawn(inc))
        assert c.value == 2

    @scenario(expect={"locked": "ok", "racy": "bug"})
    def test_variants(variant):
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

    @scenario
    def helper_not_a_test():
        assert False
    """
)


SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture
def project(pytester, monkeypatch):
    monkeypatch.delenv("KVMCHECK_DB", raising=False)
    # the subprocess runs in a temporary directory: a relative PYTHONPATH (src) would load
    # another checkout's plugin (the installed one), not this one
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])))
    pytester.makepyfile(test_model=PROJECT)
    return pytester


def test_failing_scenario_fails_with_the_report_then_replays_first(project):
    first = project.runpytest_subprocess("-p", "no:cacheprovider")
    first.assert_outcomes(passed=3, failed=1)
    out = first.stdout.str()
    assert "test_lost_update" in out and "expected no bug, got bug" in out
    assert "Scenario:" in out and "assertion" in out  # the story
    assert "replay: kvmcheck replay test_model.py::test_lost_update" in out
    assert "helper_not_a_test" not in out  # a scenario not named like a test is not collected
    saved = sorted(p.name for p in (project.path / ".kvmcheck" / "failures").iterdir())
    assert [n.split(".")[0] for n in saved] == ["test_lost_update@-", "test_variants@racy"]
    second = project.runpytest_subprocess("-p", "no:cacheprovider")
    second.assert_outcomes(passed=3, failed=1)
    out = second.stdout.str()
    assert "bug  (1 executions" in out, out  # the saved counterexample, replayed first
    assert "saved counterexample replayed first" in out


def test_variants_are_items_and_expectations_decide(project):
    r = project.runpytest_subprocess("-v", "-k", "variants")
    r.assert_outcomes(passed=2)
    r.stdout.fnmatch_lines(["*test_variants?locked? PASSED*", "*test_variants?racy? PASSED*"])


def test_options(project):
    r = project.runpytest_subprocess(
        "--kvmcheck-strategy", "random", "--kvmcheck-max-seconds", "5", "--kvmcheck-no-db", "-k", "lost"
    )
    r.assert_outcomes(failed=1)
    assert "random" in r.stdout.str()
    assert not (project.path / ".kvmcheck").exists()
    r = project.runpytest_subprocess("--help")
    r.stdout.fnmatch_lines(["*--kvmcheck-max-seconds*", "*--kvmcheck-strategy*"])


def test_an_unknown_strategy_is_one_line(project):
    # the plugin takes its strategies from the registry (no list of its own): Settings says no
    r = project.runpytest_subprocess("--kvmcheck-strategy", "magic", "-k", "lost")
    r.assert_outcomes(failed=1)
    r.stdout.fnmatch_lines(["*kvmcheck: error: unknown strategy 'magic'; choose one of: dpor, bounded*"])
    assert "Traceback" not in r.stdout.str()


class Counter(Struct):
    value: int = 0


@scenario(kcsan=False)  # KCSAN would report the race (and stop) before the assert fails
def lost_update() -> None:
    c = Counter()

    def inc() -> None:
        t = c.value
        c.value = t + 1

    join(spawn(inc), spawn(inc))
    assert c.value == 2


@scenario
def locked() -> None:
    c = Counter()
    m = Mutex("m")

    def inc() -> None:
        mutex_lock(m)
        c.value = c.value + 1
        mutex_unlock(m)

    join(spawn(inc), spawn(inc))
    assert c.value == 2


def test_assert_ok_and_assert_finds():
    assert assert_ok(locked).complete
    f = assert_finds(lost_update, kind="assertion")
    assert f.kind == "assertion"
    with pytest.raises(AssertionError, match="expected ok, got bug") as e:
        assert_ok(lost_update)
    assert "Scenario:" in str(e.value) and "replay: kvmcheck replay" in str(e.value)
    with pytest.raises(AssertionError, match="expected a finding of kind deadlock, got assertion"):
        assert_finds(lost_update, kind="deadlock")
    with pytest.raises(AssertionError, match="expected a finding, got ok"):
        assert_finds(locked)


def test_own_suite_scenarios_are_not_called_as_functions(pytester):
    """Before the plugin, `@scenario def test_x` was collected as a plain function and failed
    with a UsageError (spawn() outside a check)."""
    pytester.makepyfile(
        test_one=textwrap.dedent(
            """
            from kvmcheck import scenario, spawn, join

            @scenario
            def test_x():
                join(spawn(lambda: None))
            """
        )
    )
    r = pytester.runpytest_subprocess("--kvmcheck-no-db")
    r.assert_outcomes(passed=1)
    assert "UsageError" not in r.stdout.str()


# -- the plugin is free for projects that do not use it (issue 21) ------------------------------
_COUNT = """
import sys
def pytest_collection_finish(session):
    mods = sorted(m for m in sys.modules if m.startswith("kvmcheck"))
    print(f"\\nKVMCHECK-MODULES {len(mods)}")
"""


def _pytest_in(path: Path) -> str:
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-s", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-p", "no:kvmcheck", "-p", "_kvmcheck_pytest"],
        capture_output=True, text=True, cwd=path, timeout=300,
        env={**os.environ, "PYTHONPATH": str(root / "src")},
    )  # fmt: skip
    return p.stdout


def test_pytest_start_imports_nothing_of_kvmcheck(tmp_path: Path) -> None:
    """The plugin was a module of the kvmcheck package: importing it imported the whole checker
    (27 modules) at every pytest start."""
    (tmp_path / "conftest.py").write_text(_COUNT)
    (tmp_path / "test_plain.py").write_text("".join(f"def test_{i}():\n    pass\n" for i in range(20)))
    out = _pytest_in(tmp_path)
    assert "20 tests collected" in out and "KVMCHECK-MODULES 0" in out, out


def test_a_collected_scenario_still_loads_the_checker(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(_COUNT)
    (tmp_path / "test_s.py").write_text(PROJECT)
    out = _pytest_in(tmp_path)
    assert "test_locked" in out and "KVMCHECK-MODULES 0" not in out, out


def test_the_entry_point_is_the_top_level_module() -> None:
    import tomllib

    root = Path(__file__).resolve().parents[2]
    meta = tomllib.loads((root / "pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["pytest11"] == {"kvmcheck": "_kvmcheck_pytest"}
    assert "_kvmcheck_pytest" in meta["tool"]["setuptools"]["py-modules"]
