"""The versions of arch/x86/kvm/mmu/mmu.c the seeds weigh: each a patch on ``Mmu`` (mmu.py).

Seed 001 (page tracking, the write-fault path of mmu_fault.py):

``Mmu66``: v6.6 -- KVM is no longer a page-track notifier user (932844462ae3,
eeb87272a364); the write-track count is read as kvm_gfn_is_write_tracked()
(7b574863e718); kvm_mmu_track_write() takes emulated writes.
``NoMmuWritableClear``: mutant -- write-protection for tracking clears
PT_WRITABLE_MASK but leaves the MMU-writable bit.

Seed 004 (the stage-2 fault of stage2_fault.py):

``MmuV511``: the version label of the v5.11 .. v5.13 kernels; it overrides
nothing, because the stage-2 fault modelled is the same from v5.11 to v6.12 (the
page-track half is v6.1's reading, not re-read at v5.11; no seed-004 scenario
runs it).

``X86MmuStevensV9`` (v9 6/6 as posted), ``X86MmuStevensV9Resend`` (the 6/6
resent on 2023-09-19) and ``X86MmuStevensV11`` (v11 8/8): the fault is
``guarded_by_mmu_notifier`` and passes no FOLL_GET; the SPTE carries a software
"refcounted" bit (SPTE_MMU_PAGE_REFCOUNTED; v11: shadow_refcounted_mask) and zap
touches the struct page only when it is set.  They differ at out_unlock: v9 marks
the page accessed under mmu_lock and never puts the reference 3/6 kept (a leak);
the resend releases it after the unlock (kvm_release_page_clean); v11 marks
``fault->accessed_page``, which it holds no reference to, under mmu_lock -- also
after a stale fault.

``X86MmuV613``: kvm_mmu_faultin_pfn() stores fault->refcounted_page;
``is_page_fault_stale()`` (mmu_invalidate_retry_gfn) under mmu_lock; install;
``kvm_mmu_finish_page_fault()`` -> kvm_release_faultin_page(kvm,
fault->refcounted_page, r == RET_PF_RETRY, fault->map_writable) **while mmu_lock
is held**; zap does not touch struct pages (66bc627e7fee).  Mutants:
``v6.13-no-stale-check`` (no recheck under mmu_lock) and
``release-adjusted-pfn`` (release pfn_to_page(fault->pfn) after the huge-page
adjustment, as before 8dd861cc07e2).

Locking contracts: mmu_fault.py's and stage2_fault.py's; no variant changes them
except where its docstring says so.
"""

from __future__ import annotations

from typing import Any

from kvmcheck.kernel import READ_ONCE, write_lock, write_unlock
from kvmcheck.models.arch.x86.kvm.mmu.mmu import Mmu
from kvmcheck.models.arch.x86.kvm.mmu.spte import PT_WRITABLE_MASK
from kvmcheck.models.arch.x86.kvm.mmu.stage2_fault import RET_PF_RETRY, Spte
from kvmcheck.models.mm.memory import EFAULT
from kvmcheck.models.virt.kvm.kvm_host import Kvm, KvmVcpu
from kvmcheck.models.virt.kvm.kvm_main import KvmFollowPfn, is_error_pfn


class Mmu66(Mmu):
    """mmu.c at v6.6: KVM is no longer a page-track notifier user; the count is read by its new name."""

    version = "v6.6"

    def kvm_mmu_init_vm(self, kvm: Kvm) -> None:
        """kvm_mmu_init_vm() (v6.6): no page-track node (932844462ae3, eeb87272a364)."""

    def write_tracked(self, kvm: Kvm, slot: Any, gfn: int) -> bool:
        """kvm_gfn_is_write_tracked() (7b574863e718)."""
        r: bool = kvm.build.page_track.kvm_gfn_is_write_tracked(kvm, slot, gfn)
        return r

    def kvm_mmu_track_write(self, vcpu: Any, gpa: int, new: int, nbytes: int) -> None:
        """kvm_mmu_track_write() (932844462ae3): nothing to do without indirect shadow pages."""
        if not vcpu.kvm.arch.indirect_shadow_pages:
            return


class NoMmuWritableClear(Mmu):
    """Mutant: write-protection for tracking clears PT_WRITABLE_MASK but leaves the MMU-writable bit."""

    version = "no-mmu-writable-clear"

    def wrprot_mask(self) -> int:
        """The mutant's write_protect_gfn() clears only the hardware writable bit."""
        return PT_WRITABLE_MASK


class MmuV511(Mmu):
    """mmu.c at v5.11, as seed 004 runs it: the stage-2 fault is ``Mmu``'s (the same v5.11 .. v6.12)."""

    version = "v5.11"


class X86MmuStevensV9(Mmu):
    """Stevens "[PATCH v9 6/6] KVM: x86/mmu: Handle non-refcounted pages" as posted (2023-09-11).

    Read from the posted hunks (quoted whole in Maxim Levitsky's review of
    <20230911021637.1941096-7-stevensd@google.com>): __kvm_faultin_pfn() passes no
    FOLL_GET, is guarded_by_mmu_notifier and allows non-refcounted struct pages on
    x86-64 TDP (the SPTE bit SPTE_MMU_PAGE_REFCOUNTED); at out_unlock, still under
    mmu_lock, kvm_tdp_mmu_page_fault() marks a refcounted page accessed and the
    kvm_release_pfn_clean() that used to follow write_unlock is gone.  With 3/6
    keeping the lookup's reference, nothing ever drops it: every fault on a
    refcounted page leaks one.  (Shadow paging's FNAME(page_fault) marks the page
    after write_unlock; not modelled.)  The guest's fault->pfn is the kvm/next base
    of 2023-09: kvm_mmu_hugepage_adjust() aligns it in place.
    """

    version = "stevens-v9"

    def faultin_pfn(self, kvm: Kvm, gfn: int, write: bool) -> KvmFollowPfn:
        """__kvm_faultin_pfn (v9): guarded_by_mmu_notifier = true, no FOLL_GET."""
        kfp: KvmFollowPfn = kvm.build.kvm_main.kvm_follow_pfn(kvm, gfn, write, guarded=True)
        return kfp

    def kvm_mmu_page_fault(self, vcpu: KvmVcpu, gfn: int, write: bool) -> int:
        """kvm_tdp_mmu_page_fault() (Stevens): fault in, lock, stale check, map, out_unlock."""
        kvm = vcpu.kvm
        mmu_seq = self.sample_mmu_seq(kvm)  # fault->mmu_seq = ...; smp_rmb()
        kfp = self.faultin_pfn(kvm, gfn, write)
        if is_error_pfn(kfp.pfn):
            return EFAULT
        r = RET_PF_RETRY
        write_lock(kvm.mmu_lock)
        if not self.is_page_fault_stale(kvm, mmu_seq, gfn):
            orig = kfp.pfn
            kfp.pfn, level = self.kvm_mmu_hugepage_adjust(kvm, gfn, kfp.pfn)  # fault->pfn &= ~mask
            r = self.install_spte(kvm, gfn, kfp.pfn, level, kfp, orig)
        self.out_unlock(kvm, kfp)
        write_unlock(kvm.mmu_lock)
        self.after_read_unlock(kvm, kfp)
        return r

    def out_unlock(self, kvm: Kvm, kfp: KvmFollowPfn) -> None:
        """out_unlock (v9 6/6 as posted), before read_unlock: mark pfn_to_page(fault->pfn) accessed."""
        if kfp.is_refcounted_page:
            kvm.build.kvm_main.kvm_set_page_accessed(kvm.mm.pages[kfp.pfn])

    def after_read_unlock(self, kvm: Kvm, kfp: KvmFollowPfn) -> None:
        """After read_unlock (v9 6/6 as posted): nothing -- the release is gone."""

    def spte_refcounted(self, kfp: KvmFollowPfn) -> bool:
        """SPTE_MMU_PAGE_REFCOUNTED = fault->is_refcounted_page."""
        return kfp.is_refcounted_page

    def handle_changed_spte(self, kvm: Kvm, spte: Spte, old_pfn: int) -> None:
        """handle_changed_spte (Stevens): A/D go to pfn_to_page() only if the refcounted bit is set."""
        if not spte.refcounted:
            return
        kvm_main = kvm.build.kvm_main
        if READ_ONCE(spte, "accessed"):
            kvm_main.kvm_set_page_accessed(kvm.mm.pages[old_pfn])
        if READ_ONCE(spte, "dirty"):
            kvm_main.kvm_set_page_dirty(kvm.mm.pages[old_pfn])


class X86MmuStevensV9Resend(X86MmuStevensV9):
    """The corrected v9 6/6 resent on 2023-09-19 (<20230919022504.3153043-1-stevensd@chromium.org>).

    "I made a mistake when folding the v8->v9 delta": the fault releases the page
    after the unlock instead -- kvm_release_page_clean(pfn_to_page(fault->pfn)) if
    fault->is_refcounted_page -- which marks it accessed while KVM still holds it.
    """

    version = "stevens-v9-resend"

    def out_unlock(self, kvm: Kvm, kfp: KvmFollowPfn) -> None:
        """(nothing under the lock in the resent 6/6)."""

    def after_read_unlock(self, kvm: Kvm, kfp: KvmFollowPfn) -> None:
        """After read_unlock: kvm_release_page_clean(pfn_to_page(fault->pfn)) for a refcounted page."""
        if kfp.is_refcounted_page:
            kvm.build.kvm_main.kvm_release_page_clean(kvm.mm.pages[kfp.pfn])


class X86MmuStevensV11(X86MmuStevensV9):
    """ "[PATCH v11 8/8] KVM: x86/mmu: Handle non-refcounted pages" (2024-02-29).

    <20240229025759.1187910-9-stevensd@google.com>: no FOLL_GET, so 4/8 drops the
    lookup's reference at once; ``fault->accessed_page`` = kfp.refcounted_page ("Does
    NOT have an elevated refcount"); out_unlock does
    kvm_set_page_accessed(fault->accessed_page) before read_unlock -- also when the
    fault was found stale, i.e. when an invalidation may have let the page go.
    """

    version = "stevens-v11"

    def out_unlock(self, kvm: Kvm, kfp: KvmFollowPfn) -> None:
        """out_unlock (v11 8/8): kvm_set_page_accessed(fault->accessed_page), a NULL page is skipped."""
        kvm.build.kvm_main.kvm_set_page_accessed(kfp.refcounted_page)

    def spte_refcounted(self, kfp: KvmFollowPfn) -> bool:
        """make_spte(..., !!fault->accessed_page, ...): the shadow_refcounted_mask bit."""
        return kfp.refcounted_page is not None


class X86MmuV613(Mmu):
    """v6.13: release the refcounted page under mmu_lock; zap leaves struct pages alone."""

    version = "v6.13"

    def is_page_fault_stale(self, kvm: Kvm, mmu_seq: int, gfn: int) -> bool:
        """is_page_fault_stale() -> mmu_invalidate_retry_gfn() (the range always covers gfn here)."""
        return Mmu.is_page_fault_stale(self, kvm, mmu_seq, gfn)

    def kvm_mmu_page_fault(self, vcpu: KvmVcpu, gfn: int, write: bool) -> int:
        """kvm_tdp_mmu_page_fault() (v6.13): faultin, lock, stale check, map, finish under the lock."""
        kvm = vcpu.kvm
        mmu_seq = self.sample_mmu_seq(kvm)  # fault->mmu_seq = ...; smp_rmb()
        kfp = self.faultin_pfn(kvm, gfn, write)
        if is_error_pfn(kfp.pfn):
            return EFAULT
        r = RET_PF_RETRY
        write_lock(kvm.mmu_lock)
        if not self.is_page_fault_stale(kvm, mmu_seq, gfn):
            orig = kfp.pfn
            kfp.pfn, level = self.kvm_mmu_hugepage_adjust(kvm, gfn, kfp.pfn)  # fault->pfn &= ~mask
            r = self.install_spte(kvm, gfn, kfp.pfn, level, kfp, orig)
        self.kvm_mmu_finish_page_fault(kvm, kfp, r)
        write_unlock(kvm.mmu_lock)
        return r

    def kvm_mmu_finish_page_fault(self, kvm: Kvm, kfp: KvmFollowPfn, r: int) -> None:
        """kvm_mmu_finish_page_fault() (v6.13): release fault->refcounted_page (8dd861cc07e2)."""
        kvm.build.kvm_main.kvm_release_faultin_page(
            kvm, kfp.refcounted_page, r == RET_PF_RETRY, kfp.map_writable
        )

    def handle_changed_spte(self, kvm: Kvm, spte: Spte, old_pfn: int) -> None:
        """66bc627e7fee: zapping no longer marks the struct page accessed/dirty."""


class X86MmuNoStaleCheck(X86MmuV613):
    """Mutant: the fault does not recheck the invalidation sequence under mmu_lock."""

    version = "v6.13-no-stale-check"

    def is_page_fault_stale(self, kvm: Kvm, mmu_seq: int, gfn: int) -> bool:
        """(the recheck is gone)."""
        return False


class X86MmuReleaseAdjustedPfn(X86MmuV613):
    """Mutant: release the page of the huge-page-adjusted pfn, as before 8dd861cc07e2."""

    version = "release-adjusted-pfn"

    def kvm_mmu_finish_page_fault(self, kvm: Kvm, kfp: KvmFollowPfn, r: int) -> None:
        """kvm_release_pfn_clean(fault->pfn) after kvm_mmu_hugepage_adjust() moved fault->pfn."""
        page = kvm.mm.pages[kfp.pfn] if kfp.refcounted_page is not None else None
        kvm.build.kvm_main.kvm_release_faultin_page(kvm, page, r == RET_PF_RETRY, kfp.map_writable)
