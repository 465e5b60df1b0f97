"""The x86 stage-2 (TDP) page fault and SPTE zap (arch/x86/kvm/mmu/mmu.c, tdp_mmu.c),
reduced to what seed 004 needs: one leaf SPTE per gfn (or one 2-page "huge" SPTE).

Base version (``Stage2Fault``): v5.11, unchanged in what is modelled up to v6.12 --
direct_page_fault(): snapshot ``mmu_invalidate_seq`` (mmu_notifier_seq before
v6.3), smp_rmb, fault the pfn in (gfn_to_pfn -> hva_to_pfn, may sleep), take
mmu_lock, ``mmu_notifier_retry()`` (in progress, or the sequence moved: retry),
huge-page adjust, install the SPTE, unlock, then ``kvm_release_pfn_clean(pfn)``
outside mmu_lock.  Until the kvm_page_fault refactor (v5.16) the adjusted pfn was
a local of __direct_map, so the release used the pfn hva_to_pfn returned; from
v5.16 to v6.12 it released ``fault->pfn`` *after* kvm_mmu_hugepage_adjust()
changed it (fixed by 8dd861cc07e2 in v6.13; the ``release-adjusted-pfn`` mutant).
Zapping an SPTE (kvm_unmap_gfn_range, from the mmu notifier, under mmu_lock)
passes the old SPTE's accessed/dirty bits on with kvm_set_pfn_accessed/_dirty --
struct page updates on pages KVM holds no reference to.

This is one half of the one ``mmu`` subsystem (``Mmu`` in mmu.py, with the
page-track write-fault path of mmu_fault.py).  The versions of seed 004 --
Stevens' v9 / v9 resend / v11, v6.13 and its two mutants -- are variants of
``Mmu`` in mmu_variants.py, each overriding just the functions its patch changed.

Locking contract:
  kvm->mmu_lock (write here; the TDP MMU's read mode is not modelled) protects
  every write of an SPTE.  The guest's page walker reads SPTEs without it
  (READ_ONCE) and sets the accessed/dirty bits with atomic updates.
  mmu_invalidate_seq is sampled locklessly (a plain read in C, racing with the
  notifier's plain ++ by design; READ_ONCE here, so that LKMM exploration gives a
  stale value a meaning), then smp_rmb(), then re-checked under mmu_lock.
Lock order: kvm->srcu -> mmap_lock (read, in hva_to_pfn) -> PTE lock; mmu_lock
is never held while faulting the pfn in.
"""

from __future__ import annotations

from typing import Any

from kvmcheck.kernel import (
    READ_ONCE,
    WRITE_ONCE,
    RwLock,
    Struct,
    read_lock,
    read_unlock,
    smp_rmb,
    write_lock,
    write_unlock,
)
from kvmcheck.models.mm.memory import EFAULT, find_vma
from kvmcheck.models.mm.page import Page, note, report_stale_access, stale_access
from kvmcheck.models.virt.kvm.kvm_host import Kvm, KvmVcpu
from kvmcheck.models.virt.kvm.kvm_main import KvmFollowPfn, is_error_pfn

RET_PF_RETRY = 1
RET_PF_FIXED = 4
PG_LEVEL_4K, PG_LEVEL_2M = 1, 2  # a "2M" page here spans 2 gfns


class Spte(Struct):
    """One leaf SPTE: the pfn it maps (0: not present) and its bits."""

    __locking__ = {
        "pfn": {"write": "mmu_lock", "read": ()},  # the guest's walker reads it locklessly
        "refcounted": "mmu_lock",
    }

    pfn: int = 0
    refcounted: bool = False  # Stevens' series: SPTE_MMU_PAGE_REFCOUNTED
    accessed: bool = False  # set by the CPU's walker
    dirty: bool = False  # set by the CPU's walker

    def __init__(self, mmu_lock: Any, gfn: int) -> None:
        super().__init__()
        self.mmu_lock = mmu_lock
        self.gfn = gfn
        self.level = PG_LEVEL_4K  # written with pfn, under mmu_lock
        self.gens: dict[int, int] = {}  # ghost: pfn -> generation of the memory it maps

    def _kc_label(self) -> str:
        return f"spte[gfn {self.gfn}]"


class KvmArchMmu:
    """The stage-2 page table of one VM (kvm->arch.tdp_mmu_roots, reduced to one SPTE per gfn)."""

    def __init__(self, kvm: Kvm, gfns: list[int]) -> None:
        self.sptes = {gfn: Spte(kvm.mmu_lock, gfn) for gfn in gfns}
        # The TLB shootdown: kvm_flush_remote_tlbs() IPIs every vCPU and waits until it
        # has left guest mode, so a guest access in flight (walk + memory access)
        # completes before the flush returns.  Modelled as a lock the guest holds
        # (read) across one access and the flush takes (write) once.
        self.guest_mode = RwLock("vcpu guest mode (TLB shootdown)")


def kvm_mmu_init_vm(kvm: Kvm) -> None:
    """kvm_mmu_init_vm(): the VM's stage-2 table, one SPTE per memslot gfn."""
    slots = kvm.__dict__["memslots"]
    kvm.arch_mmu = KvmArchMmu(kvm, sorted(slots.gfn_to_hva))  # type: ignore[attr-defined]


def arch_mmu(kvm: Kvm) -> KvmArchMmu:
    mmu: KvmArchMmu = kvm.arch_mmu  # type: ignore[attr-defined]
    return mmu


def mem_of(kvm: Kvm, pfn: int) -> Page:
    """The memory at ``pfn``: its struct page, or the device memory (no struct page)."""
    return kvm.mm.pages.get(pfn) or kvm.mm.iomem[pfn]


class Stage2Fault:
    """mmu.c's stage-2 fault and zap at v5.11 (the same, for what is modelled, through v6.12).

    Not a subsystem by itself: one half of ``Mmu`` (mmu.py), with the page-track
    write-fault path (mmu_fault.py); its variants are in mmu_variants.py.
    """

    def faultin_pfn(self, kvm: Kvm, gfn: int, write: bool) -> KvmFollowPfn:
        """kvm_faultin_pfn() / try_async_pf(): __gfn_to_pfn_memslot (a reference if refcounted)."""
        kfp: KvmFollowPfn = kvm.build.kvm_main.kvm_follow_pfn(kvm, gfn, write)
        return kfp

    def sample_mmu_seq(self, kvm: Kvm) -> int:
        """``mmu_seq = kvm->mmu_invalidate_seq; smp_rmb();`` before the pfn is faulted in.

        The read is plain in C, racy by design; here it is READ_ONCE so that under
        memory_model="lkmm" it may read a stale value, and the smp_rmb() -- which orders
        it before the host page-table reads of the fault-in -- is an LKMM event.  Under
        SC the same access as before.
        """
        mmu_seq = int(READ_ONCE(kvm, "mmu_invalidate_seq"))
        smp_rmb()
        return mmu_seq

    def is_page_fault_stale(self, kvm: Kvm, mmu_seq: int, gfn: int) -> bool:
        """mmu_notifier_retry() (v5.11) / is_page_fault_stale(): under mmu_lock.

        The smp_rmb() is mmu_invalidate_retry()'s, there for callers without mmu_lock
        (PowerPC Book3s HV); here both counters are read under the lock their writer holds.
        """
        if kvm.mmu_invalidate_in_progress:
            return True
        smp_rmb()
        return bool(kvm.mmu_invalidate_seq != mmu_seq)

    def kvm_mmu_hugepage_adjust(self, kvm: Kvm, gfn: int, pfn: int) -> tuple[int, int]:
        """kvm_mmu_hugepage_adjust(): map at 2M if the host does and the slot covers the range."""
        hva = kvm.build.kvm_main.gfn_to_hva(kvm, gfn)
        vma = find_vma(kvm.mm, hva)
        base = gfn & ~1
        if vma is None or not vma.huge or not {base, base + 1} <= set(arch_mmu(kvm).sptes):
            return pfn, PG_LEVEL_4K
        return pfn & ~1, PG_LEVEL_2M  # host_pfn_mapping_level() > 4K: align the pfn down

    def install_spte(self, kvm: Kvm, gfn: int, pfn: int, level: int, kfp: KvmFollowPfn, orig: int) -> int:
        """make_spte() + tdp_mmu_set_spte(): write the leaf SPTE (mmu_lock held).

        ``orig`` is the pfn hva_to_pfn returned (the ghost generation is that lookup's).
        """
        base = gfn & ~1 if level == PG_LEVEL_2M else gfn
        spte = arch_mmu(kvm).sptes[base]
        spte.refcounted = self.spte_refcounted(kfp)
        WRITE_ONCE(spte, "pfn", pfn)  # kvm_tdp_mmu_write_spte()
        spte.level = level
        spte.gens = {p: (kfp.gen if p == orig else mem_of(kvm, p).gen) for p in range(pfn, pfn + level)}
        for p in spte.gens:
            note(mem_of(kvm, p), f"mapped into the guest by SPTE gfn {base + p - pfn}")
        return RET_PF_FIXED

    def spte_refcounted(self, kfp: KvmFollowPfn) -> bool:
        """The SPTE's refcounted bit (only Stevens' series has one)."""
        return True

    def kvm_mmu_page_fault(self, vcpu: KvmVcpu, gfn: int, write: bool) -> int:
        """direct_page_fault() (v5.11 .. v5.15): fault in, recheck under mmu_lock, map, release."""
        kvm = vcpu.kvm
        mmu_seq = self.sample_mmu_seq(kvm)
        kfp = self.faultin_pfn(kvm, gfn, write)
        if is_error_pfn(kfp.pfn):
            return EFAULT  # kvm_handle_bad_page(): KVM_RUN returns -EFAULT
        r = RET_PF_RETRY
        write_lock(kvm.mmu_lock)
        if not self.is_page_fault_stale(kvm, mmu_seq, gfn):
            pfn, level = self.kvm_mmu_hugepage_adjust(kvm, gfn, kfp.pfn)  # a local in __direct_map
            r = self.install_spte(kvm, gfn, pfn, level, kfp, kfp.pfn)
        write_unlock(kvm.mmu_lock)
        self.release(kvm, kfp)
        return r

    def release(self, kvm: Kvm, kfp: KvmFollowPfn) -> None:
        """kvm_release_pfn_clean(pfn) after mmu_lock is dropped."""
        kvm.build.kvm_main.kvm_release_pfn_clean(kvm, kfp.pfn)

    def kvm_unmap_gfn_range(self, kvm: Kvm, gfns: list[int]) -> None:
        """kvm_unmap_gfn_range() -> zap the leaf SPTEs (mmu_lock held by the notifier)."""
        sptes = arch_mmu(kvm).sptes
        flush = False
        for gfn in gfns:
            spte = sptes[gfn]
            pfn = spte.pfn
            if pfn:
                WRITE_ONCE(spte, "pfn", 0)
                for p in spte.gens:
                    note(mem_of(kvm, p), f"SPTE gfn {spte.gfn + p - pfn} zapped")
                self.handle_changed_spte(kvm, spte, pfn)
                flush = True
        if flush:
            kvm_flush_remote_tlbs(kvm)

    def handle_changed_spte(self, kvm: Kvm, spte: Spte, old_pfn: int) -> None:
        """handle_changed_spte_acc_track/_dirty_log (v5.11 .. v6.12): pass A/D on to the struct page."""
        if READ_ONCE(spte, "accessed"):
            kvm.build.kvm_main.kvm_set_pfn_accessed(kvm, old_pfn)
        if READ_ONCE(spte, "dirty"):
            kvm.build.kvm_main.kvm_set_pfn_dirty(kvm, old_pfn)


def kvm_flush_remote_tlbs(kvm: Kvm) -> None:
    """kvm_flush_remote_tlbs(): wait until no vCPU is in the middle of a guest access."""
    mmu = arch_mmu(kvm)
    write_lock(mmu.guest_mode)
    write_unlock(mmu.guest_mode)


def kvm_mmu_page_fault(vcpu: KvmVcpu, gfn: int, write: bool = True) -> int:
    """kvm_mmu_page_fault() of the VM's kernel build: RET_PF_FIXED, RET_PF_RETRY or -EFAULT."""
    r: int = vcpu.kvm.build.mmu.kvm_mmu_page_fault(vcpu, gfn, write)
    return r


def guest_access(vcpu: KvmVcpu, gfn: int, write: bool = True) -> bool:
    """The guest touches ``gfn``: the CPU walks the SPTEs (no lock) and accesses the memory.

    Returns False if no SPTE maps the gfn (the CPU would take an EPT violation).
    """
    kvm = vcpu.kvm
    mmu = arch_mmu(kvm)
    read_lock(mmu.guest_mode)
    ok, found = _walk_and_access(kvm, mmu, gfn, write)
    read_unlock(mmu.guest_mode)  # the vCPU leaves guest mode before the report (it is no oops there)
    report_stale_access(found)
    return ok


def _walk_and_access(kvm: Kvm, mmu: KvmArchMmu, gfn: int, write: bool) -> tuple[bool, Any]:
    """The CPU's page walk through the SPTEs, then the access to memory."""
    sptes = mmu.sptes
    spte, pfn = None, 0
    base = sptes.get(gfn & ~1)
    if base is not None and base.gfn != gfn:  # an odd gfn: a 2M SPTE at gfn - 1 may cover it
        pfn = READ_ONCE(base, "pfn")
        if pfn and base.level == PG_LEVEL_2M:
            spte, pfn = base, pfn + 1
    if spte is None:
        spte = sptes[gfn]
        pfn = READ_ONCE(spte, "pfn")
    if not pfn:
        return False, None
    gen = spte.gens.get(pfn, -1)
    how = f"guest {'write' if write else 'read'} through SPTE gfn {gfn}"
    found = stale_access(mem_of(kvm, pfn), gen, how, write)
    WRITE_ONCE(spte, "accessed", True)
    if write:
        WRITE_ONCE(spte, "dirty", True)
    return True, found
