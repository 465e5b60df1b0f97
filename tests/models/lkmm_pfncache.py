"""Seed 000's lockless retry check under the LKMM: a barrier mutant found, and the ones that are not.

``kvmcheck check tests/models/lkmm_pfncache.py::zap_during_refresh --variant V`` (under
the LKMM, the scenario's own model; ``--memory-model sc`` for SC).

The harness is the bundled seed-000 setup (scenarios/pfncache.py's setup_vm on the v6.8
build: vcpu_info cached, active, not valid) with the host zapping the vcpu_info page
(MADV_DONTNEED: zap_page_range_single -- invalidate_range_start, PTE cleared, the
mapping's page reference dropped, invalidate_range_end) while KVM_RUN refreshes the
cache; then an event is delivered through the cache.  The refresh's GUP reference is
dropped once the cache is valid, so a refresh that installs the old pfn after the zap
leaves a valid cache on a freed page: KASAN reports the delivery's read.

  vcpu:  mmu_seq = seq; smp_rmb(); GUP (old page, +1 ref); [gpc->lock]
         mmu_notifier_retry_cache(mmu_seq): count? smp_rmb(); seq != mmu_seq?
         -> valid = true, pfn = old; put the GUP reference [/gpc->lock]
  host:  count++ (mn_invalidate_lock); [mmu_lock] in_progress++ [/mmu_lock];
         PTE cleared; put_page; [mmu_lock] seq++; smp_wmb(); in_progress-- [/mmu_lock];
         count-- (mn_invalidate_lock)

Not in a bundled scenario because the verdicts that matter are the LKMM ones; the
bundled seed scenarios keep their SC verdicts (and the LKMM gives the same ones on
them, docs/models/lkmm-mutants.md).
"""

from __future__ import annotations

from kvmcheck import join, scenario, spawn
from kvmcheck.models.arch.x86.kvm.xen import xen_vcpu
from kvmcheck.models.mm.mm import zap_page_range_single
from kvmcheck.models.virt.kvm.barrier_mutants import MUTANTS, SOURCES, mutant
from kvmcheck.scenarios.pfncache import VCPU_INFO_HVA, deliver_upcall, setup_vm, vcpu_run

VARIANTS = ("v6.8", "no-rmb-in-retry-cache", "no-rmb-after-gpc-seq-sample", "no-wmb-in-invalidate-end")

# Under the LKMM; under SC every variant is ok (tests/models/test_lkmm_mutants.py runs both).
EXPECT_LKMM = {
    "v6.8": "ok",
    "no-rmb-in-retry-cache": "bug",
    "no-rmb-after-gpc-seq-sample": "ok",  # GUP reads the PTE under the PTE lock here (see the doc)
    "no-wmb-in-invalidate-end": "ok",  # the unlock/lock between seq++ and count-- orders them
}


@scenario(
    expect=EXPECT_LKMM,
    memory_model="lkmm",
    kcsan=False,
    sources={v: SOURCES[v] for v in VARIANTS if v in SOURCES},
)
def zap_during_refresh(variant: str) -> int:
    """KVM_RUN refreshes vcpu_info while the host zaps its page: no valid cache on the freed page."""
    kvm, v = setup_vm(mutant(variant) if variant in MUTANTS else variant, shared_info=False)
    t1 = spawn(vcpu_run, v, name="vcpu")
    t2 = spawn(zap_page_range_single, kvm.mm, VCPU_INFO_HVA, name="host")
    join(t1, t2)
    return deliver_upcall(kvm, xen_vcpu(v).vcpu_info_cache)
