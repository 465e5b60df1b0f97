"""Issue 20 item 4, the engine's part: a finding under the LKMM explained in LKMM terms.

The mmu_invalidate pairing without the retry's smp_rmb() (tests/models/lkmm_mmu_invalidate.py,
variant no-rmb-in-retry): the fault reads mmu_invalidate_in_progress = 0 from the
invalidation's end and then a stale mmu_invalidate_seq -- the initial value, although
the end's increment was already performed -- and nothing orders its two reads (no ppo:
the missing barrier).  :func:`kvmcheck.kernel.lkmm_explain.explain` says exactly that.
"""

from __future__ import annotations

from kvmcheck import check
from kvmcheck._engine.explore import replay_runs
from kvmcheck.kernel.lkmm_explain import explain

from ..models.lkmm_mmu_invalidate import stale_spte_after_invalidate as scn

SEQ = "READ_ONCE(KvmMmuInvalidate.mmu_invalidate_seq)"
IN_PROGRESS = "READ_ONCE(KvmMmuInvalidate.mmu_invalidate_in_progress)"


def run_finding(variant: str, memory_model: str) -> object:
    r = check(scn, variant=variant, memory_model=memory_model)
    assert r.verdict == "bug" and r.finding is not None
    ex = replay_runs(
        scn.under(memory_model).body(variant), r.finding.schedule, 10_000, tracing=True, kcsan=True
    )
    assert ex is not None and ex.finding is not None and ex.finding.kind == "assertion"
    return ex


def test_no_rmb_in_retry_explained() -> None:
    ex = run_finding("no-rmb-in-retry", "lkmm")
    x = explain(ex)  # type: ignore[arg-type]
    assert x is not None
    stale = [rf for rf in x.reads if rf.stale]
    assert any(rf.read.op == SEQ and rf.write.thread is None and rf.read.value == 0 for rf in stale), (
        x.lines()
    )
    fault = {rf.read.thread for rf in stale if rf.read.op == SEQ}
    assert len(fault) == 1
    (t,) = fault
    # the fault's in_progress read took the end's write (0 again), not the initial value
    ends = [rf for rf in x.reads if rf.read.thread == t and rf.read.op == IN_PROGRESS]
    assert any(rf.write.thread is not None and rf.write.thread != t for rf in ends)
    # and nothing orders its in_progress read before its seq read: the dropped smp_rmb()
    assert any(a.thread == t and a.op == IN_PROGRESS and b.op == SEQ for a, b in x.unordered), x.lines()
    assert any("mmu_invalidate_seq" in loc for loc, _ in x.co)
    text = "\n".join(x.lines())
    assert "stale: a co-later write was already performed" in text
    assert f"{IN_PROGRESS} -> {SEQ} (T{t} steps" in text
