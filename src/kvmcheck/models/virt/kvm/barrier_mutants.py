"""Barrier mutants of the seed models (issue 20 item 3): one barrier dropped or weakened each.

Each mutant is a patch (models/build.py): a subclass of the class a seed's bundled
build holds in that slot, overriding the one function whose barrier it drops, applied
to that build with ``Patched(base_variant, cls)`` -- so a bundled scenario runs it
unchanged, and none of the seeds' ``BUILDS`` (their bundled variants) changes.
``MUTANTS`` names them; ``SOURCES`` says, for each, what it is a mutant of.  Which
scenario finds each under the LKMM and which does not, and why the kernel agrees:
docs/models/lkmm-mutants.md and tests/models/test_lkmm_mutants.py.

The barriers, as read (descriptions, not the C):

* virt/kvm/pfncache.c, mmu_notifier_retry_cache() (v6.8): reads
  ``mn_active_invalidate_count`` (a non-zero count means retry), then ``smp_rmb()``, then
  compares ``mmu_invalidate_seq`` with the caller's sample; its comment says the barrier
  pairs with the ordering in the invalidation's end so that the caller sees either the
  old non-zero count or the new sequence.  The caller, hva_to_pfn_retry(), holds only
  gpc->lock (no mmu_lock): the check is lockless.
* virt/kvm/pfncache.c, hva_to_pfn_retry() (v6.8): samples ``mmu_invalidate_seq`` then
  ``smp_rmb()`` before resolving the hva (the GUP).
* virt/kvm/kvm_main.c, kvm_mmu_invalidate_end() (v6.8): ``mmu_invalidate_seq++``,
  ``smp_wmb()``, ``mmu_invalidate_in_progress--``, under mmu_lock.
* arch/x86/kvm/mmu/mmu.c, kvm_faultin_pfn() (v6.13; search id 42206460208): ``fault->mmu_seq
  = vcpu->kvm->mmu_invalidate_seq; smp_rmb();`` before __kvm_faultin_pfn(); is_page_fault_stale()
  -> mmu_invalidate_retry_gfn() under mmu_lock, with mmu_invalidate_retry()'s
  ``smp_rmb()`` between the count and the sequence.
"""

from __future__ import annotations

from kvmcheck import Source
from kvmcheck.kernel import READ_ONCE, WRITE_ONCE
from kvmcheck.models.arch.x86.kvm.mmu.mmu_variants import X86MmuV613
from kvmcheck.models.build import Patched, Subsystem
from kvmcheck.models.virt.kvm.kvm_host import Kvm
from kvmcheck.models.virt.kvm.kvm_main import KvmMain
from kvmcheck.models.virt.kvm.pfncache import Pfncache, c_name


class NoRmbInRetryCache(Pfncache):
    """Mutant of v6.8 pfncache.c: mmu_notifier_retry_cache() without its smp_rmb()."""

    version = "no-rmb-in-retry-cache"

    @c_name("mmu_notifier_retry_cache")
    def _retry_cache(self, kvm: Kvm, mmu_seq: int) -> int | None:
        """The count, then the sequence, with nothing ordering the two reads."""
        count = int(READ_ONCE(kvm, "mn_active_invalidate_count"))
        if count:
            return count
        if READ_ONCE(kvm, "mmu_invalidate_seq") != mmu_seq:
            return 0
        return None


class NoRmbAfterGpcSeqSample(Pfncache):
    """Mutant of v6.8 pfncache.c: hva_to_pfn_retry() samples mmu_invalidate_seq without smp_rmb()."""

    version = "no-rmb-after-gpc-seq-sample"

    def sample_mmu_seq(self, kvm: Kvm) -> int:
        """``mmu_seq = kvm->mmu_invalidate_seq;`` and no barrier before the GUP."""
        return int(READ_ONCE(kvm, "mmu_invalidate_seq"))


class NoWmbInInvalidateEnd(KvmMain):
    """Mutant of v6.8 kvm_main.c: kvm_mmu_invalidate_end() without its smp_wmb()."""

    version = "no-wmb-in-invalidate-end"

    def kvm_mmu_invalidate_end(self, kvm: Kvm) -> None:
        """seq++ and in_progress-- under mmu_lock, unordered."""
        WRITE_ONCE(kvm, "mmu_invalidate_seq", READ_ONCE(kvm, "mmu_invalidate_seq") + 1)
        WRITE_ONCE(kvm, "mmu_invalidate_in_progress", READ_ONCE(kvm, "mmu_invalidate_in_progress") - 1)


class NoRmbAfterFaultSeqSample(X86MmuV613):
    """Mutant of v6.13 mmu.c: the fault samples mmu_invalidate_seq without smp_rmb()."""

    version = "no-rmb-after-fault-seq-sample"

    def sample_mmu_seq(self, kvm: Kvm) -> int:
        """``fault->mmu_seq = kvm->mmu_invalidate_seq;`` and no barrier before __kvm_faultin_pfn()."""
        return int(READ_ONCE(kvm, "mmu_invalidate_seq"))


class NoRmbInStaleCheck(X86MmuV613):
    """Mutant of v6.13 mmu.c: mmu_invalidate_retry_gfn() (under mmu_lock) without its smp_rmb()."""

    version = "no-rmb-in-stale-check"

    def is_page_fault_stale(self, kvm: Kvm, mmu_seq: int, gfn: int) -> bool:
        """The count, then the sequence, under mmu_lock, with no barrier between."""
        if kvm.mmu_invalidate_in_progress:
            return True
        return bool(kvm.mmu_invalidate_seq != mmu_seq)


# name -> (the bundled variant it patches, the patch)
MUTANTS: dict[str, tuple[str, type[Subsystem]]] = {
    "no-rmb-in-retry-cache": ("v6.8", NoRmbInRetryCache),
    "no-rmb-after-gpc-seq-sample": ("v6.8", NoRmbAfterGpcSeqSample),
    "no-wmb-in-invalidate-end": ("v6.8", NoWmbInInvalidateEnd),
    "no-rmb-after-fault-seq-sample": ("v6.13", NoRmbAfterFaultSeqSample),
    "no-rmb-in-stale-check": ("v6.13", NoRmbInStaleCheck),
}

SOURCES: dict[str, Source] = {
    "no-rmb-in-retry-cache": Source(
        "mutant",
        "v6.8: virt/kvm/pfncache.c (mmu_notifier_retry_cache)",
        "The v6.8 model (pfncache.py) with the smp_rmb() between the reads of "
        "mn_active_invalidate_count and mmu_invalidate_seq dropped.",
    ),
    "no-rmb-after-gpc-seq-sample": Source(
        "mutant",
        "v6.8: virt/kvm/pfncache.c (hva_to_pfn_retry)",
        "The v6.8 model with the smp_rmb() after 'mmu_seq = kvm->mmu_invalidate_seq' dropped.",
    ),
    "no-wmb-in-invalidate-end": Source(
        "mutant",
        "v6.8: virt/kvm/kvm_main.c (kvm_mmu_invalidate_end)",
        "The v6.8 model (kvm_main.py) with the smp_wmb() between mmu_invalidate_seq++ and "
        "mmu_invalidate_in_progress-- dropped.",
    ),
    "no-rmb-after-fault-seq-sample": Source(
        "mutant",
        "v6.13: arch/x86/kvm/mmu/mmu.c (kvm_faultin_pfn, fault->mmu_seq)",
        "The v6.13 model (mmu_variants.X86MmuV613) with the smp_rmb() after the lockless "
        "sample of mmu_invalidate_seq dropped.",
    ),
    "no-rmb-in-stale-check": Source(
        "mutant",
        "v6.13: arch/x86/kvm/mmu/mmu.c (is_page_fault_stale), include/linux/kvm_host.h "
        "(mmu_invalidate_retry_gfn)",
        "The v6.13 model with the smp_rmb() between the reads of mmu_invalidate_in_progress and "
        "mmu_invalidate_seq (under mmu_lock) dropped.",
    ),
}


def mutant(name: str) -> Patched:
    """The variant to hand a bundled scenario: its base variant carrying the mutant patch."""
    base, cls = MUTANTS[name]
    return Patched(base, cls)
