"""arch/x86/kvm/mmu/mmu.c (and tdp_mmu.c) on the write-fault path (Linux v6.1), as seed 001 needs it.

One half of the one ``mmu`` subsystem (``Mmu`` in mmu.py); the v6.6 version and
the no-mmu-writable-clear mutant are in mmu_variants.py.

Modelled, for a direct (TDP) MMU, as in v6.1:
  direct_page_fault():   page_fault_handle_page_track() -- lockless read of the
                         write-track count, only for a *present write* fault;
                         fast_page_fault() -- lockless, may make an SPTE
                         writable by cmpxchg, only if it is MMU-writable;
                         kvm_faultin_pfn() -- retry while the slot is INVALID;
                         then read_lock(mmu_lock) and kvm_tdp_mmu_map():
                         make_spte() (spte.c) -> mmu_try_to_unsync_pages(),
                         which re-reads the count under mmu_lock; the new SPTE
                         is installed with cmpxchg; a write-protected result of
                         a write fault means RET_PF_EMULATE.
  mmu_try_to_unsync_pages() with mmu_unsync_pages_lock around kvm_unsync_page.
  kvm_mmu_slot_gfn_write_protect() -> the TDP MMU's write_protect_gfn(): clear
                         PT_WRITABLE_MASK *and* the MMU-writable bit ("to ensure
                         future writes continue to be intercepted").
  KVM's own page-track node (v6.1 only: kvm_mmu_pte_write, and the memslot
  zap as its flush hook; gone in v6.6 by 932844462ae3 / eeb87272a364).
Read from 6.1-era mmu.c/tdp_mmu.c copies and the diffs of the 2023 series.

Locking contract: leaf SPTEs as in spte.py.  The fault path holds kvm->srcu
(the vCPU's) for the whole fault and mmu_lock for read around the map;
write-protection and zapping hold mmu_lock for write.  fast_page_fault runs
under rcu_read_lock (walk_shadow_page_lockless_begin on the TDP MMU).
mmu_unsync_pages_lock (spinlock) nests inside mmu_lock (read).
Simplifications: no mmu-notifier sequence check (no invalidation runs in these
scenarios), one root that never goes obsolete, no TLB: a flush is a no-op and a
guest access reads the SPTE itself; "kvm_mmu_zap_all_fast" zaps the slot's leaf
SPTEs at once under mmu_lock instead of invalidating roots.
"""

from __future__ import annotations

from typing import Any

from kvmcheck.kernel import (
    READ_ONCE,
    WARN_ON_ONCE,
    lockdep_assert_held_write,
    rcu_read_lock,
    rcu_read_unlock,
    read_lock,
    read_unlock,
    spin_lock,
    spin_unlock,
    write_lock,
    write_unlock,
)
from kvmcheck.models.arch.x86.kvm.mmu.page_track import (
    KvmPageTrackNotifierNode,
    kvm_page_track_register_notifier,
)
from kvmcheck.models.arch.x86.kvm.mmu.spte import (
    ACC_ALL,
    MMU_WRITABLE,
    PT_WRITABLE_MASK,
    Sptep,
    is_mmu_writable_spte,
    is_shadow_present_pte,
    is_writable_pte,
    spte_read,
    spte_xchg,
    try_cmpxchg64,
)
from kvmcheck.models.virt.kvm.kvm_host import Kvm
from kvmcheck.models.virt.kvm.kvm_set_memslot import KVM_MEMSLOT_INVALID, gfn_to_memslot

RET_PF_CONTINUE, RET_PF_RETRY, RET_PF_EMULATE, RET_PF_INVALID, RET_PF_FIXED, RET_PF_SPURIOUS = range(6)
EPERM = -1


class KvmPageFault:
    """``struct kvm_page_fault``: what the exit reported and what the fault path found."""

    def __init__(self, gfn: int, write: bool, present: bool) -> None:
        self.gfn = gfn
        self.write = write
        self.present = present  # the error code's PRESENT bit: the SPTE was present
        self.rsvd = False
        self.slot: Any = None
        self.slot_invalid = False  # the retry was for an INVALID memslot (scenario's spin hint)


class WriteFault:
    """mmu.c (+ tdp_mmu.c) at v6.1 on the write-fault path: one half of the ``mmu`` subsystem.

    Not a subsystem by itself: ``Mmu`` (mmu.py) is mmu.c, this path and the
    stage-2 one (stage2_fault.py) together; its variants are in mmu_variants.py.
    """

    # -- KVM as a page-track user (v6.1) ---------------------------------------------------
    def kvm_mmu_init_vm(self, kvm: Kvm) -> None:
        """kvm_mmu_init_vm(): register KVM's own node (kvm->arch.mmu_sp_tracker)."""
        node: KvmPageTrackNotifierNode = kvm.arch.mmu_sp_tracker
        node.track_write = lambda vcpu, gpa, new, nbytes, n: self.kvm_mmu_pte_write(vcpu, gpa, new, nbytes)
        node.track_flush_slot = lambda k, slot, n: self.kvm_mmu_zap_all_fast(k, slot)
        kvm_page_track_register_notifier(kvm, node)

    def kvm_mmu_pte_write(self, vcpu: Any, gpa: int, new: int, nbytes: int) -> None:
        """kvm_mmu_pte_write(): nothing to do without indirect shadow pages (the early return)."""
        if not vcpu.kvm.arch.indirect_shadow_pages:
            return

    def kvm_mmu_zap_all_fast(self, kvm: Kvm, slot: Any) -> None:
        """The memslot zap (kvm_mmu_invalidate_zap_pages_in_memslot -> kvm_mmu_zap_all_fast), simplified.

        Zaps the slot's leaf SPTEs under mmu_lock (write) and flushes.
        """
        write_lock(kvm.mmu_lock)
        for gfn in range(slot.base_gfn, slot.base_gfn + slot.npages):
            spte_xchg(kvm.arch.sptes[gfn], 0)
        self.kvm_flush_remote_tlbs(kvm)
        write_unlock(kvm.mmu_lock)

    def kvm_flush_remote_tlbs(self, kvm: Kvm) -> None:
        """kvm_flush_remote_tlbs(): no TLB is modelled (a guest access reads the SPTE), so nothing to do."""

    # -- write protection ----------------------------------------------------------------------
    def wrprot_mask(self) -> int:
        """The bits write_protect_gfn() clears: PT_WRITABLE_MASK | shadow_mmu_writable_mask."""
        return PT_WRITABLE_MASK | MMU_WRITABLE

    def kvm_mmu_slot_gfn_write_protect(self, kvm: Kvm, slot: Any, gfn: int) -> bool:
        """kvm_mmu_slot_gfn_write_protect() -> kvm_tdp_mmu_write_protect_gfn() -> write_protect_gfn().

        No rmaps (no shadow MMU SPTEs).  True if an SPTE changed (the caller flushes).
        """
        lockdep_assert_held_write(kvm.mmu_lock)
        sptep: Sptep = kvm.arch.sptes[gfn]
        old = spte_read(sptep)
        if not is_shadow_present_pte(old):
            return False
        new = old & ~self.wrprot_mask()
        if new == old:
            return False
        spte_xchg(sptep, new)  # kvm_tdp_mmu_write_spte(): xchg, the SPTE has volatile bits
        return True

    # -- the fault path ----------------------------------------------------------------------
    def write_tracked(self, kvm: Kvm, slot: Any, gfn: int) -> bool:
        """kvm_slot_page_track_is_active(kvm, slot, gfn, KVM_PAGE_TRACK_WRITE) (v6.1 name)."""
        r: bool = kvm.build.page_track.kvm_slot_page_track_is_active(kvm, slot, gfn)
        return r

    def page_fault_handle_page_track(self, vcpu: Any, fault: KvmPageFault) -> bool:
        """page_fault_handle_page_track(): only a present write fault reads the count -- locklessly."""
        if fault.rsvd:
            return False
        if not fault.present or not fault.write:
            return False
        return self.write_tracked(vcpu.kvm, fault.slot, fault.gfn)

    def page_fault_can_be_fast(self, fault: KvmPageFault) -> bool:
        """page_fault_can_be_fast() with A/D bits enabled: a present write fault."""
        return not fault.rsvd and fault.present and fault.write

    def fast_pf_fix_direct_spte(self, sptep: Sptep, old_spte: int, new_spte: int) -> bool:
        """fast_pf_fix_direct_spte(): try_cmpxchg64 (dirty logging is not modelled)."""
        return try_cmpxchg64(sptep, old_spte, new_spte)

    def fast_page_fault(self, vcpu: Any, fault: KvmPageFault) -> int:
        """fast_page_fault(): without mmu_lock, make an MMU-writable SPTE writable by cmpxchg."""
        ret = RET_PF_INVALID
        if not self.page_fault_can_be_fast(fault):
            return ret
        rcu_read_lock()  # walk_shadow_page_lockless_begin() on the TDP MMU
        sptep: Sptep = vcpu.kvm.arch.sptes[fault.gfn]
        for _retry in range(5):  # "if (++retry_count > 4) break": five attempts
            spte = spte_read(sptep)
            if not is_shadow_present_pte(spte):
                break
            if is_writable_pte(spte):  # is_access_allowed(): spurious
                ret = RET_PF_SPURIOUS
                break
            new_spte = spte
            if fault.write and is_mmu_writable_spte(spte):
                new_spte |= PT_WRITABLE_MASK
            if new_spte == spte or not is_writable_pte(new_spte):
                break
            if self.fast_pf_fix_direct_spte(sptep, spte, new_spte):
                ret = RET_PF_FIXED
                break
        rcu_read_unlock()
        return ret

    def kvm_faultin_pfn(self, vcpu: Any, fault: KvmPageFault) -> int:
        """kvm_faultin_pfn(): retry while the gfn's memslot is being deleted or moved (INVALID)."""
        if fault.slot is not None and fault.slot.flags & KVM_MEMSLOT_INVALID:
            fault.slot_invalid = True
            return RET_PF_RETRY
        return RET_PF_CONTINUE  # pfn == gfn: the host page is pinned and never moves here

    def mmu_try_to_unsync_pages(self, kvm: Kvm, slot: Any, gfn: int, can_unsync: bool, prefetch: bool) -> int:
        """mmu_try_to_unsync_pages(): -EPERM for a tracked gfn (re-read under mmu_lock), else unsync SPs."""
        if self.write_tracked(kvm, slot, gfn):
            return EPERM
        locked = False
        for sp in kvm.arch.shadow_pages.get(gfn, ()):
            if not can_unsync:
                return EPERM
            if sp.unsync:
                continue
            if not locked:
                locked = True
                spin_lock(kvm.arch.mmu_unsync_pages_lock)
                if READ_ONCE(sp, "unsync"):
                    continue
            sp.unsync = True  # kvm_unsync_page()
        if locked:
            spin_unlock(kvm.arch.mmu_unsync_pages_lock)
        return 0  # after smp_wmb()

    def kvm_tdp_mmu_map(self, vcpu: Any, fault: KvmPageFault) -> int:
        """kvm_tdp_mmu_map() -> tdp_mmu_map_handle_target_level(), under mmu_lock held for read."""
        sptep: Sptep = vcpu.kvm.arch.sptes[fault.gfn]
        old_spte = spte_read(sptep)
        wrprot, new_spte = vcpu.kvm.build.spte.make_spte(vcpu, fault.slot, ACC_ALL, fault.gfn, old_spte, True)
        WARN_ON_ONCE(  # check_spte_writable_invariants()
            is_writable_pte(new_spte) and not is_mmu_writable_spte(new_spte),
            "writable SPTE, not MMU-writable",
        )
        if new_spte == old_spte:
            ret = RET_PF_SPURIOUS
        elif not try_cmpxchg64(sptep, old_spte, new_spte):  # tdp_mmu_set_spte_atomic()
            return RET_PF_RETRY
        else:
            ret = RET_PF_FIXED
        if wrprot and fault.write:
            ret = RET_PF_EMULATE
        return ret

    def direct_page_fault(self, vcpu: Any, fault: KvmPageFault) -> int:
        """direct_page_fault() (v6.1): track check, fast path, pfn, then map under mmu_lock (read)."""
        kvm = vcpu.kvm
        fault.slot = gfn_to_memslot(kvm, fault.gfn)  # kvm_vcpu_gfn_to_memslot()
        if self.page_fault_handle_page_track(vcpu, fault):
            return RET_PF_EMULATE
        r = self.fast_page_fault(vcpu, fault)
        if r != RET_PF_INVALID:
            return r
        r = self.kvm_faultin_pfn(vcpu, fault)
        if r != RET_PF_CONTINUE:
            return r
        if fault.slot is None:  # no memslot: KVM_PFN_NOSLOT, emulated as MMIO (no MMIO SPTE cache here)
            return RET_PF_EMULATE
        read_lock(kvm.mmu_lock)  # the TDP MMU maps under mmu_lock held for read
        r = self.kvm_tdp_mmu_map(vcpu, fault)
        read_unlock(kvm.mmu_lock)
        return r

    def kvm_mmu_track_write(self, vcpu: Any, gpa: int, new: int, nbytes: int) -> None:
        """Not in v6.1: KVM gets emulated writes through its own page-track node."""


def emulator_write_phys(vcpu: Any, gpa: int, val: int, nbytes: int) -> bool:
    """emulator_write_phys() (arch/x86/kvm/x86.c): write guest RAM, then kvm_page_track_write().

    kvm_vcpu_write_guest() fails when the gfn has no usable memslot (none, or one
    being deleted/moved: __gfn_to_hva_many() refuses an INVALID slot); the
    emulator then treats the store as MMIO (an exit to userspace) and the
    page-track hooks are not called.  Called under the vCPU's kvm->srcu.
    """
    slot = gfn_to_memslot(vcpu.kvm, gpa >> 12)
    if slot is None or slot.flags & KVM_MEMSLOT_INVALID:
        return False
    vcpu.kvm.build.page_track.kvm_page_track_write(vcpu, gpa, val, nbytes)
    return True


# C-style entry point of the fault path.
def kvm_mmu_page_fault(vcpu: Any, fault: KvmPageFault) -> int:
    """kvm_mmu_page_fault() -> kvm_mmu_do_page_fault() -> direct_page_fault() of the VM's build."""
    r: int = vcpu.kvm.build.mmu.direct_page_fault(vcpu, fault)
    return r
