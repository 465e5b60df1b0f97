"""``kvmcheck check --patch FILE.py:Class`` (issue 24 item 4): a user's variant beside its base."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import kvmcheck

KVMCHECK = [sys.executable, "-m", "kvmcheck"]

# a889ea54b3da with ben-v1's order back: put (and maybe free) the root, then read its next entry
PATCH = textwrap.dedent(
    """
    from kvmcheck.kernel.list import list_next_entry
    from kvmcheck.models.arch.x86.kvm.mmu.tdp_mmu_variants import Fix_a889ea54b3da

    class PutFirst(Fix_a889ea54b3da):
        def tdp_mmu_next_root(self, kvm, root):
            self.tdp_mmu_put_root(kvm, root)
            return list_next_entry(root, "link")

    class Mine(PutFirst):
        pass

    helper = 3
    """
)

# the README's example: 6addfcf27139 with v6.8's kvm_gpc_deactivate (no refresh_lock) back
PFNCACHE_PATCH = textwrap.dedent(
    """
    from kvmcheck.models.virt.kvm.pfncache import Pfncache
    from kvmcheck.models.virt.kvm.pfncache_variants import Fix6addfcf27139

    class MyFix(Fix6addfcf27139):
        def kvm_gpc_deactivate(self, gpc):
            Pfncache.kvm_gpc_deactivate(self, gpc)
    """
)


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KVMCHECK_DB", str(tmp_path / "db"))
    monkeypatch.setenv("NO_COLOR", "1")
    (tmp_path / "mypatch.py").write_text(PATCH)
    (tmp_path / "gpcpatch.py").write_text(PFNCACHE_PATCH)
    return tmp_path


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    src = os.path.dirname(
        os.path.dirname(os.path.abspath(kvmcheck.__file__))
    )  # this checkout's, from any cwd
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=src)
    return subprocess.run([*KVMCHECK, *args], capture_output=True, text=True, env=env, timeout=600, cwd=cwd)


def test_one_scenario_patched_is_a_bug_beside_its_ok_base(here: Path) -> None:
    r = run(here, "check", "tdp_mmu.next_root_freed", "--patch", "mypatch.py:PutFirst")
    assert r.returncode == 1, r.stderr
    assert "tdp_mmu.next_root_freed [a889ea54b3da+PutFirst]: bug" in r.stdout
    assert "base a889ea54b3da: ok" in r.stdout
    replay = next(line for line in r.stdout.splitlines() if line.startswith("replay:"))
    assert "replay --patch mypatch.py:PutFirst tdp_mmu.next_root_freed" in replay


def test_the_readme_pfncache_patch_is_a_bug_beside_its_ok_base(here: Path) -> None:
    r = run(here, "check", "pfncache.seed_race", "-V", "6addfcf27139", "--patch", "gpcpatch.py:MyFix")
    assert r.returncode == 1, r.stderr
    assert "pfncache.seed_race [6addfcf27139+MyFix]: bug" in r.stdout
    assert "inactive cache is still valid" in r.stdout
    assert "base 6addfcf27139: ok" in r.stdout


def test_replay_patch_reruns_the_patched_counterexample(here: Path) -> None:
    out = json.loads(
        run(here, "check", "tdp_mmu.next_root_freed", "--patch", "mypatch.py:PutFirst", "--json").stdout
    )
    (row,) = out
    assert (row["verdict"], row["base_verdict"], row["base_variant"]) == ("bug", "ok", "a889ea54b3da")
    schedule = row["finding"]["schedule"]
    r = run(
        here,
        "replay",
        "--patch",
        "mypatch.py:PutFirst",
        "tdp_mmu.next_root_freed",
        "-V",
        "a889ea54b3da+PutFirst",
        schedule,
    )
    assert r.returncode == 1 and "use-after-free" in r.stdout, r.stdout + r.stderr


def test_all_patch_runs_every_scenario_of_the_base_with_a_base_verdict_column(here: Path) -> None:
    r = run(here, "check", "--all", "--patch", "mypatch.py:PutFirst")
    assert r.returncode == 1, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == [
        "scenario",
        "variant",
        "expected",
        "base",
        "verdict",
        "verdict",
        "executions",
        "time",
    ]
    rows = {ln.split()[0]: ln.split()[1:4] for ln in lines[2:] if ln.startswith("tdp_mmu.")}
    assert set(rows) == {
        "tdp_mmu.root_reload",
        "tdp_mmu.next_root_freed",
        "tdp_mmu.concurrent_put",
        "tdp_mmu.vm_destroy",
    }
    assert all(v[0] == "a889ea54b3da+PutFirst" and v[2] == "ok" for v in rows.values())  # variant, -, base
    assert not [ln for ln in lines[2:] if ln.strip() and not ln.startswith("tdp_mmu.")]


def test_all_without_patch_has_no_base_column(here: Path) -> None:
    (here / "m.py").write_text(
        "from kvmcheck import scenario\n\n@scenario(expect='ok')\ndef s():\n    pass\n"
    )
    r = run(here, "check", "--all", "m.py")
    assert r.returncode == 0 and "base verdict" not in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--patch", "mypatch.py"], "--patch takes FILE.py:Class"),
        (["--patch", "nope.py:PutFirst"], "--patch: no file 'nope.py'"),
        (["--patch", "mypatch.py:Nope"], "defines no 'Nope'"),
        (["--patch", "mypatch.py:helper"], "is not a kernel subsystem class"),
        (["--patch", "mypatch.py:Mine"], "base PutFirst is no bundled variant's implementation"),
        (
            ["-V", "v6.9", "--patch", "mypatch.py:PutFirst"],
            "which no build of tdp_mmu.next_root_freed [v6.9]",
        ),
        (["--patch", "mypatch.py:PutFirst", "--backend", "ray"], "--patch runs on the local backend only"),
    ],
)
def test_every_bad_input_is_one_line_and_exit_2(here: Path, args: list[str], message: str) -> None:
    r = run(here, "check", "tdp_mmu.next_root_freed", *args)
    assert r.returncode == 2
    assert r.stdout == "" and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
