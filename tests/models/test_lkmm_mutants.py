"""Issue 20 item 3: the seeds' barrier mutants, found under the LKMM, missed under SC -- or not found, and why.

The tables in docs/models/lkmm-mutants.md are these results; the execution counts are
quoted there and pinned here, so a change to the exploration shows up.  Each row runs
the same scenario and variant twice, ``memory_model="sc"`` and ``"lkmm"``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from kvmcheck import check
from kvmcheck._loader import BUNDLED_PACKAGE, scenarios_in
from kvmcheck.lkmm.explore import explore
from kvmcheck.lkmm.parser import parse_litmus
from kvmcheck.lkmm.report import judge
from kvmcheck.models.virt.kvm.barrier_mutants import MUTANTS, mutant

from . import lkmm_page_track, lkmm_pfncache
from .lkmm_mmu_invalidate import EXPECT_LKMM, stale_spte_after_invalidate

Row = tuple[str, int, str, int]  # SC verdict, SC executions, LKMM verdict, LKMM executions

# variant -> (SC verdict, SC executions, LKMM verdict, LKMM executions)
TABLE = {
    "v6.8": ("ok", 8, "ok", 53),
    "no-rmb-in-retry": ("ok", 8, "bug", 7),
    "no-wmb-in-end": ("ok", 8, "bug", 7),
    "release": ("ok", 8, "ok", 53),
    "release-weakened": ("ok", 8, "bug", 7),
}


@pytest.mark.parametrize("variant", list(TABLE))
def test_mutant_found_under_lkmm_and_missed_under_sc(variant: str) -> None:
    sc = check(stale_spte_after_invalidate, variant=variant, memory_model="sc")
    lk = check(stale_spte_after_invalidate, variant=variant)  # the scenario's own model: lkmm
    assert (sc.verdict, sc.executions, lk.verdict, lk.executions) == TABLE[variant]
    assert lk.verdict == EXPECT_LKMM[variant]
    if lk.verdict == "bug":
        assert lk.finding is not None and lk.finding.kind == "assertion"


def test_cli_memory_model_flag(tmp_path: Path) -> None:
    """``--memory-model sc`` turns the scenario's LKMM off; ``lkmm`` finds the mutant; a bad name is exit 2."""
    from click.testing import CliRunner

    from kvmcheck.cli import main as cli_main

    target = f"{Path(__file__).parent / 'lkmm_mmu_invalidate.py'}::stale_spte_after_invalidate"
    run = CliRunner(env={"KVMCHECK_DB": str(tmp_path)}).invoke
    base = ["check", target, "--variant", "no-rmb-in-retry", "--no-db"]
    sc = run(cli_main, [*base, "--memory-model", "sc"])
    lk = run(cli_main, [*base, "--memory-model", "lkmm"])
    bad = run(cli_main, [*base, "--memory-model", "tso"])
    assert sc.exit_code == 0 and ": ok" in sc.output, sc.output
    assert lk.exit_code == 1 and ": bug" in lk.output, lk.output
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def test_replay_line_carries_the_memory_model(tmp_path: Path) -> None:
    """A scenario declared SC, checked with --memory-model lkmm: its replay line says so and replays."""
    import shlex

    from click.testing import CliRunner

    from kvmcheck.cli import main as cli_main

    model = tmp_path / "mp.py"
    model.write_text(
        "from kvmcheck import join, scenario, spawn\n"
        "from kvmcheck.kernel import READ_ONCE, WRITE_ONCE, Struct\n\n\n"
        "class S(Struct):\n    x: int = 0\n    y: int = 0\n\n\n"
        "@scenario\ndef mp() -> None:\n    s = S()\n    got = []\n\n"
        "    def p0() -> None:\n        WRITE_ONCE(s, 'x', 1)\n        WRITE_ONCE(s, 'y', 1)\n\n"
        "    def p1() -> None:\n        r0 = READ_ONCE(s, 'y')\n        got.append((r0, READ_ONCE(s, 'x')))\n\n"
        "    join(spawn(p0), spawn(p1))\n    assert got[0] != (1, 0)\n"
    )
    run = CliRunner(env={"KVMCHECK_DB": str(tmp_path / "db")}).invoke
    lk = run(cli_main, ["check", f"{model}::mp", "--memory-model", "lkmm", "--no-db"])
    assert lk.exit_code == 1, lk.output
    text = lk.output.replace("\\\n", " ")  # the line may be wrapped with a backslash
    line = next(x for x in text.splitlines() if x.startswith("replay: "))
    args = shlex.split(line.removeprefix("replay: kvmcheck "))
    assert "--memory-model" in args
    again = run(cli_main, args)
    assert again.exit_code == 1 and ": bug" in again.output, again.output
    assert run(cli_main, ["check", f"{model}::mp", "--no-db"]).exit_code == 0  # SC: ok


# -- seed 000: mmu_notifier_retry_cache() and the refresh's sample (tests/models/lkmm_pfncache.py) --
# Since the engine's revisits (reads of later writes) the LKMM search of this harness is far
# larger (DPOR estimates ~1,300 executions, ~10 s each on a loaded machine): only the mutant
# the LKMM finds is pinned under both models here; the variants it finds nothing in are
# pinned under SC, and their LKMM runs are quoted in docs/models/lkmm-mutants.md (ok,
# complete after 147 before the revisits; bounded with no finding after).
PFNCACHE: dict[str, Row] = {"no-rmb-in-retry-cache": ("ok", 79, "bug", 12)}
PFNCACHE_SC_ONLY = ("v6.8", "no-rmb-after-gpc-seq-sample", "no-wmb-in-invalidate-end")


@pytest.mark.slow
def test_pfncache_retry_cache_mutant_found_under_lkmm_only() -> None:
    scn = lkmm_pfncache.zap_during_refresh
    variant = "no-rmb-in-retry-cache"
    sc = check(scn, variant=variant, memory_model="sc")
    # One LKMM consistency check of this graph can take seconds of pure Python on a loaded
    # machine; the default step timeout (10 s without a visible step) would stop the search.
    lk = check(scn, variant=variant, step_timeout_s=600)  # the scenario's own model: lkmm
    assert (sc.verdict, sc.executions, lk.verdict, lk.executions) == PFNCACHE[variant]
    assert lk.finding is not None and lk.finding.kind == "use-after-free"  # the freed page read


@pytest.mark.parametrize("variant", PFNCACHE_SC_ONLY)
def test_pfncache_variants_ok_under_sc(variant: str) -> None:
    r = check(lkmm_pfncache.zap_during_refresh, variant=variant, memory_model="sc")
    assert (r.verdict, r.executions) == ("ok", 79)


# -- seed 004: the fault's sample and stale check, on the bundled pfnmap.notifier_race [v6.13] --------
PFNMAP: dict[str, Row] = {
    "v6.13": ("ok", 19, "ok", 28),
    "no-rmb-after-fault-seq-sample": ("ok", 19, "ok", 28),
    "no-rmb-in-stale-check": ("ok", 19, "ok", 28),
}


@pytest.mark.parametrize("variant", list(PFNMAP))
def test_pfnmap_barrier_mutants_on_the_bundled_scenario(variant: str) -> None:
    """Neither mutant is found: the PTE lock (GUP's slow path, follow_pte) and mmu_lock order the reads.

    The kernel agrees (tests/models/lkmm_litmus/fault-seq-sample-ptl.litmus and
    stale-check-under-mmu-lock.litmus: Never); the lockless GUP-fast path, where the
    fault's smp_rmb() is needed (fault-seq-sample-lockless.litmus: Sometimes), is not modelled.
    """
    (scn,) = [
        s
        for s in scenarios_in(importlib.import_module(f"{BUNDLED_PACKAGE}.pfnmap"))
        if s.name == "pfnmap.notifier_race"
    ]
    var = mutant(variant) if variant in MUTANTS else variant
    sc = check(scn, variant=var, memory_model="sc")
    lk = check(scn, variant=var, memory_model="lkmm")
    assert (sc.verdict, sc.executions, lk.verdict, lk.executions) == PFNMAP[variant]


def test_a_mutant_is_a_patch_on_the_bundled_build() -> None:
    """The mutant really is in the build the scenario runs (not the base under another name)."""
    from kvmcheck.models.build import build_for
    from kvmcheck.models.virt.kvm.barrier_mutants import NoRmbAfterFaultSeqSample, NoRmbInRetryCache
    from kvmcheck.models.virt.kvm.pfncache_variants import BUILDS as PFNCACHE_BUILDS
    from kvmcheck.models.virt.kvm.pfnmap_variants import BUILDS as PFNMAP_BUILDS

    assert type(build_for(PFNCACHE_BUILDS, mutant("no-rmb-in-retry-cache")).pfncache) is NoRmbInRetryCache
    assert (
        type(build_for(PFNMAP_BUILDS, mutant("no-rmb-after-fault-seq-sample")).mmu)
        is NoRmbAfterFaultSeqSample
    )
    assert type(build_for(PFNCACHE_BUILDS, "v6.8").pfncache) is not NoRmbInRetryCache


# -- seed 001: the shadow_root_allocated release/acquire pair (tests/models/lkmm_page_track.py) ------
PAGE_TRACK: dict[str, Row] = {
    "v6.1": ("ok", 2, "ok", 4),
    "store-release-weakened": ("ok", 2, "bug", 2),
    "load-acquire-weakened": ("ok", 2, "bug", 2),
}


@pytest.mark.parametrize("variant", list(PAGE_TRACK))
def test_page_track_release_acquire_mutants(variant: str) -> None:
    scn = lkmm_page_track.first_shadow_root
    sc = check(scn, variant=variant, memory_model="sc")
    lk = check(scn, variant=variant)
    assert (sc.verdict, sc.executions, lk.verdict, lk.executions) == PAGE_TRACK[variant]
    assert lk.verdict == lkmm_page_track.EXPECT_LKMM[variant]
    if lk.verdict == "bug":  # the flag seen set, the array pointer still NULL
        assert lk.finding is not None and lk.finding.kind == "null-deref"


# -- why the kernel agrees: each shape as a litmus test, judged by the LKMM oracle --------------------
LITMUS = sorted((Path(__file__).parent / "lkmm_litmus").glob("*.litmus"))


@pytest.mark.parametrize("path", LITMUS, ids=[p.stem for p in LITMUS])
def test_the_shape_of_each_pairing_under_the_lkmm(path: Path) -> None:
    test = parse_litmus(path.read_text())
    assert test.expected is not None
    j = judge(explore(test))
    assert j.agrees, f"{path.name}: {j.why}"
