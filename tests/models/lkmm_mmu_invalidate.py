"""A barrier mutant per side of the mmu_invalidate pairing: found under the LKMM, missed under SC.

``kvmcheck check tests/models/lkmm_mmu_invalidate.py --memory-model lkmm`` (or ``sc``).

The harness is the PowerPC Book3s HV shape that mmu_invalidate_retry()'s comment
names: the fault checks for a retry and installs its translation under a per-page
lock (``page_lock``) that the invalidation's zap also takes, but not under
``kvm->mmu_lock``, which only the invalidation's begin and end take.

  invalidate:  [mmu_lock] begin [/mmu_lock]; [page_lock] zap the SPTE [/page_lock];
               the primary mapping changes (pte: OLD -> NEW);
               [mmu_lock] end [/mmu_lock]
  fault:       mmu_seq = seq; smp_rmb(); pfn = pte;
               [page_lock] if !mmu_invalidate_retry(mmu_seq): spte = pfn [/page_lock]

What must hold: no SPTE maps the OLD pfn once the invalidation has run (the zap ran,
so an OLD spte can only be a stale install that the retry check let through).
"""

from __future__ import annotations

from kvmcheck import join, scenario, spawn
from kvmcheck.kernel import (
    READ_ONCE,
    WRITE_ONCE,
    SpinLock,
    Struct,
    smp_rmb,
    spin_lock,
    spin_unlock,
    write_lock,
    write_unlock,
)
from kvmcheck.kernel.locking import RwLock
from kvmcheck.models.virt.kvm.mmu_invalidate import (
    KvmMmuInvalidate,
    kvm_mmu_invalidate_begin,
    kvm_mmu_invalidate_end,
    mmu_invalidate_retry,
)

OLD, NEW = 1, 2

# Under the LKMM; under SC every variant is ok (the test runs both).
EXPECT_LKMM = {
    "v6.8": "ok",
    "no-rmb-in-retry": "bug",
    "no-wmb-in-end": "bug",
    "release": "ok",
    "release-weakened": "bug",
}


class Mapping(Struct):
    pte: int = OLD  # the primary MMU's translation of the hva
    spte: int = 0  # KVM's secondary translation (0: none)


@scenario(expect=EXPECT_LKMM, memory_model="lkmm")
def stale_spte_after_invalidate(variant: str) -> None:
    """A fault racing one invalidation must not leave an SPTE to the old pfn."""
    kvm = KvmMmuInvalidate()
    mmu_lock = RwLock("kvm->mmu_lock")
    page_lock = SpinLock("page_lock")
    m = Mapping()

    def invalidate() -> None:
        write_lock(mmu_lock)
        kvm_mmu_invalidate_begin(kvm, variant)
        write_unlock(mmu_lock)
        spin_lock(page_lock)
        WRITE_ONCE(m, "spte", 0)  # zap
        spin_unlock(page_lock)
        WRITE_ONCE(m, "pte", NEW)
        write_lock(mmu_lock)
        kvm_mmu_invalidate_end(kvm, variant)
        write_unlock(mmu_lock)

    def fault() -> None:
        mmu_seq = READ_ONCE(kvm, "mmu_invalidate_seq")
        smp_rmb()
        pfn = READ_ONCE(m, "pte")
        spin_lock(page_lock)
        if not mmu_invalidate_retry(kvm, mmu_seq, variant):
            WRITE_ONCE(m, "spte", pfn)
        spin_unlock(page_lock)

    join(spawn(invalidate), spawn(fault))
    assert READ_ONCE(m, "spte") != OLD, "an SPTE maps the old pfn after the invalidation zapped it"
