"""``kvmcheck litmus``: herd7's layout, the explanation, exit codes 0 / 1 / 2, JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kvmcheck.lkmm.parser import parse_litmus
from kvmcheck.lkmm.syntax import LitmusError

from .conftest import CORPUS, ROOT

KVMCHECK = [sys.executable, "-m", "kvmcheck", "litmus"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run([*KVMCHECK, *args], capture_output=True, text=True, env=env, timeout=120)


def test_allowed_outcome_prints_herds_block_and_the_witness():
    r = run(str(CORPUS / "MP-once.litmus"))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "Test MP-once Allowed\nStates 4\n" in out
    assert "\nOk\nWitnesses\nPositive: 1 Negative: 3\n" in out
    assert "Observation MP-once Sometimes 1 3" in out
    assert "rf  P1:R[once]flag=1" in out and "reads from  P0:W[once]flag=1" in out
    assert "rf  P1:R[once]data=0" in out and "reads from  init data=0" in out
    assert "no ppo" in out
    assert "Result: Sometimes, as the file says" in out


def test_forbidden_outcome_names_the_axiom_and_the_cycle():
    r = run(str(CORPUS / "MP-release-acquire.litmus"))
    assert r.returncode == 0, r.stderr
    assert "Observation MP-release-acquire Never 0 3" in r.stdout
    assert "violates happens-before (acyclic hb):" in r.stdout
    assert "-ppo->" in r.stdout


def test_sb_with_mb_is_forbidden_by_propagation():
    r = run(str(CORPUS / "SB-mb.litmus"))
    assert "violates propagation (acyclic pb):" in r.stdout


def test_rcu_is_forbidden_by_the_rcu_axiom():
    r = run(str(CORPUS / "RCU-grace-period.litmus"))
    assert "violates rcu (irreflexive rb):" in r.stdout


def test_coherence_cycle_names_its_edges():
    r = run(str(CORPUS / "CoRR-two-readers.litmus"))
    assert "violates coherence" in r.stdout
    assert "-fr->" in r.stdout and "-po-loc->" in r.stdout


def test_a_data_race_is_flagged():
    r = run("--brief", str(CORPUS / "Plain-MP-race.litmus"))
    assert r.returncode == 0
    assert "\nFlag data-race\n" in r.stdout


def test_a_data_race_names_the_racing_accesses():
    r = run(str(CORPUS / "Plain-MP-race.litmus"))
    assert "Data race (no fence, dependency or lock orders them, and one is plain):" in r.stdout
    assert (
        "P1:R[plain]data=0 (line 25 plain load)  races with  P0:W[plain]data=1 (line 15 plain store)"
        in r.stdout
    )
    rows = json.loads(run("--json", str(CORPUS / "Plain-MP-race.litmus")).stdout)
    assert rows[0]["explanation"]["data_race"]["pairs"]


def test_no_race_no_race_report():
    r = run(str(CORPUS / "Plain-data-release-acquire.litmus"))
    assert r.returncode == 0 and "Data race" not in r.stdout


def test_a_result_that_differs_exits_1(tmp_path: Path):
    bad = tmp_path / "bad.litmus"
    bad.write_text((CORPUS / "SB-once.litmus").read_text().replace("Result: Sometimes", "Result: Never"))
    r = run("--brief", str(bad))
    assert r.returncode == 1
    assert "Result: DIFFERS -- expected Never, herd's LKMM says Sometimes" in r.stdout


def test_an_unpredicted_race_exits_1(tmp_path: Path):
    bad = tmp_path / "race.litmus"
    bad.write_text(
        (CORPUS / "Plain-write-write-race.litmus").read_text().replace("Sometimes DATARACE", "Sometimes")
    )
    assert run("--brief", str(bad)).returncode == 1


def test_a_wrong_flag_line_exits_1(tmp_path: Path):
    bad = tmp_path / "flags.litmus"
    bad.write_text(
        (CORPUS / "RCU-unbalanced.litmus")
        .read_text()
        .replace("Flag unbalanced-rcu-locking", "Flag data-race")
    )
    assert run("--brief", str(bad)).returncode == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("P0(int *x) { }", "starts with 'C <name>'"),
        ("C t\n{}\nP0(int *x)\n{\n\tWRITE_ONCE(*x, 1)\n}\nexists (x=1)\n", "line 6: expected ';'"),
        (
            "C t\n{}\nP0(int *x)\n{\n\tfrobnicate(x);\n}\nexists (x=1)\n",
            "unknown or unsupported primitive frobnicate()",
        ),
        ("C t\n{}\nP0(int *x)\n{\n\tWRITE_ONCE(*x, 1);\n}\n", "no final condition"),
        ("C t\n{}\nP0(int *x)\n{\n\tWRITE_ONCE(*x, 1);\n}\nexists (z=1)\n", "names z"),
        ("C t\n{}\nP0(int *x)\n{\n\tWRITE_ONCE(x, 1);\n}\nexists (x=1)\n", "takes an lvalue"),
        (
            "C t\n{}\nP0(int *x)\n{\n\tsmp_mb__after_srcu_read_unlock();\n}\nexists (x=1)\n",
            "unknown or unsupported primitive smp_mb__after_srcu_read_unlock()",  # not in this cat
        ),
    ],
)
def test_a_malformed_file_is_one_line_and_exit_2(tmp_path: Path, text: str, message: str):
    f = tmp_path / "t.litmus"
    f.write_text(text)
    r = run(str(f))
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr


def test_a_missing_file_is_exit_2():
    r = run("/nonexistent/x.litmus")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_json_lists_one_result_per_file():
    r = run("--json", str(CORPUS / "MP-once.litmus"), str(CORPUS / "MP-wmb-rmb.litmus"))
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [row["verdict"] for row in rows] == ["Sometimes", "Never"]
    assert rows[0]["explanation"]["outcome"] == "allowed"
    assert rows[0]["explanation"]["rf"]
    assert rows[1]["explanation"]["outcome"] == "forbidden"
    assert rows[1]["explanation"]["axiom"].startswith("happens-before")
    assert all(row["agrees"] for row in rows)


def test_parser_keeps_the_result_and_flag_lines():
    t = parse_litmus((CORPUS / "RCU-unbalanced.litmus").read_text())
    assert t.expected is not None and t.expected.verdict == "Sometimes"
    assert t.expected.flag_lines == ("unbalanced-rcu-locking",)


def test_a_leading_zero_is_a_number():
    """Found by fuzzing: int('01', 0) raised ValueError, a traceback instead of a verdict."""
    t = parse_litmus("C t\n{ x = 01; }\nP0(int *x)\n{\n\tWRITE_ONCE(*x, 0x10);\n}\nexists (x=016)\n")
    assert dict(t.init)["x"] == 1


def test_parser_error_is_a_litmus_error():
    with pytest.raises(LitmusError, match="line 1"):
        parse_litmus("X name\n")


def test_a_prop_edge_is_spelled_out():
    """The hb cycle of MP+release/acquire goes through prop: fre, then the release, then rfe."""
    r = run(str(CORPUS / "MP-release-acquire.litmus"))
    assert "-fre-> (in prop)" in r.stdout
    assert "-cumul-fence-> (in prop)" in r.stdout
    assert "-rfe-> (in prop)" in r.stdout


def test_an_rb_cycle_names_the_rcu_fence():
    r = run(str(CORPUS / "RCU-grace-period.litmus"))
    assert "-rcu-fence-> (in rb)" in r.stdout
    assert "rcu-fence through the grace period P1:F[sync-rcu] (line 27 synchronize_rcu)" in r.stdout
    assert "rcu-fence through the read-side critical section P0 lines 18-21" in r.stdout
