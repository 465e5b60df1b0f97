"""Seed 000: the pfncache model, every variant, against the verdicts the thread predicts."""

from __future__ import annotations

import pytest

from kvmcheck import check, replay
from kvmcheck.scenarios import pfncache as pc

SCENARIOS = [pc.seed_race, pc.seed_race_vcpu_mutex, pc.teardown, pc.mmu_notifier]
CASES = [(s, v) for s in SCENARIOS for v in s.variants]


@pytest.mark.parametrize(("scn", "variant"), CASES, ids=[f"{s.name}[{v}]" for s, v in CASES])
def test_verdict_matches_expectation(scn, variant):
    r = check(scn, variant=variant)
    assert r.verdict == scn.expect[variant], r.finding and str(r.finding)
    if r.verdict == "ok":
        assert r.complete  # verified exhaustively, not sampled


def test_v68_trace_reads_like_woodhouses_explanation():
    r = check(pc.seed_race, variant="v6.8")
    f = r.finding
    assert f is not None
    assert f.kind == "use-after-unmap"
    functions = {s.site.function for s in f.trace} | {fn for s in f.trace for fn in s.stack}
    assert {"hva_to_pfn_retry", "__kvm_gpc_refresh", "kvm_gpc_deactivate"} <= functions
    assert any(s.op.startswith("kunmap(") and "gpc_unmap" in " ".join(s.stack) for s in f.trace)
    assert f.step is not None
    last = f.trace[f.step]  # the step that faulted (the other threads may run on after it)
    assert last.op == "read khva[pfn 1]->page"  # the dereference of the unmapped khva
    assert last.site.function in ("__kvm_xen_has_interrupt", "kvm_xen_set_evtchn_fast", "deliver_upcall")
    # the refresher decided to reuse the mapping (read gpc->pfn) before deactivate unmapped it
    pfn_read = next(
        s.index
        for s in f.trace
        if s.op == "read vcpu_info_cache->pfn" and s.site.function == "hva_to_pfn_retry"
    )
    unmap = next(s.index for s in f.trace if s.op.startswith("kunmap("))
    assert pfn_read < unmap


def test_seed_patch_misses_an_invalidation_between_retry_check_and_lock():
    r = check(pc.mmu_notifier, variant="seed-v1")
    f = r.finding
    assert f is not None
    assert f.kind == "use-after-free"
    assert "page[pfn 1]" in f.message


def test_sean_contract_flags_the_unguarded_destroy_path():
    r = check(pc.teardown, variant="sean-contract")
    assert r.verdict == "bug"
    reports = [r.finding, *r.warnings]
    held = [f for f in reports if f is not None and f.kind == "assert-held"]
    assert held, reports
    assert "vcpu->mutex is not held" in held[0].message


@pytest.mark.parametrize(("scn", "variant"), [(pc.seed_race, "v6.8"), (pc.mmu_notifier, "seed-v2")])
def test_counterexamples_replay(scn, variant):
    r = check(scn, variant=variant)
    assert r.finding is not None
    again = replay(scn, r.finding.schedule, variant=variant)
    assert again.finding is not None
    assert (again.finding.kind, again.finding.message) == (r.finding.kind, r.finding.message)
    assert [(s.thread, s.op, s.site) for s in again.finding.trace] == [
        (s.thread, s.op, s.site) for s in r.finding.trace
    ]


def test_unknown_variant_is_a_usage_error():
    from kvmcheck import UsageError

    with pytest.raises(UsageError, match="known variants"):
        check(pc.seed_race, variant="v9.99")
