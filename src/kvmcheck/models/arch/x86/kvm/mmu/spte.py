"""arch/x86/kvm/mmu/spte.c and spte.h: building an SPTE (Linux v6.1; unchanged on this path in v6.6).

Modelled: the SPTE bits the write-tracking argument needs, ``struct`` of one
leaf SPTE (``Sptep``: the u64 the TDP MMU points at), ``make_spte()`` and the
predicates of spte.h (``is_shadow_present_pte``, ``is_writable_pte``,
``is_mmu_writable_spte``).  Read from the v6.1 source as quoted by Sean in the
seed thread (2022-11-15) and the 6.1-era spte.c.

An SPTE is an int of bits:
  SPTE_MMU_PRESENT    the SPTE maps something;
  PT_WRITABLE_MASK    the hardware may write through it;
  MMU_WRITABLE        ``shadow_mmu_writable_mask``: KVM's MMU allows the SPTE
                      to be made writable *without mmu_lock* (fast_page_fault);
                      cleared together with PT_WRITABLE_MASK by write-protection
                      for write tracking, so that later writes keep faulting.
Invariant (check_spte_writable_invariants): PT_WRITABLE implies MMU_WRITABLE.

Locking contract (Documentation/virt/kvm/locking.rst, TDP MMU):
  A leaf SPTE is written under kvm->mmu_lock held for write (plain or xchg
  store), under mmu_lock held for read with cmpxchg (the fault path), or with
  no lock at all by fast_page_fault's cmpxchg, which may only set
  PT_WRITABLE_MASK on an SPTE that is MMU_WRITABLE.  All reads are READ_ONCE.
Simplifications: one 4K leaf SPTE per gfn, no huge pages, no A/D or access
tracking bits, no MMIO SPTEs, pfn == gfn (the host page never moves here).
"""

from __future__ import annotations

from typing import Any

from kvmcheck.kernel import READ_ONCE, Struct
from kvmcheck.kernel.struct import rmw
from kvmcheck.models.build import Subsystem

SPTE_MMU_PRESENT = 0x1
PT_WRITABLE_MASK = 0x2
MMU_WRITABLE = 0x4  # shadow_mmu_writable_mask

ACC_WRITE_MASK = 0x2
ACC_ALL = 0x7


class Sptep(Struct):
    """One leaf SPTE of the TDP MMU (``u64 *sptep``)."""

    spte: int = 0

    def __init__(self, gfn: int, spte: int = 0) -> None:
        super().__init__(spte=spte)
        self.gfn = gfn

    def _kc_label(self) -> str:
        return f"spte[gfn {self.gfn:#x}]"


def is_shadow_present_pte(spte: int) -> bool:
    """is_shadow_present_pte() (spte.h)."""
    return bool(spte & SPTE_MMU_PRESENT)


def is_writable_pte(spte: int) -> bool:
    """is_writable_pte() (spte.h): PT_WRITABLE_MASK."""
    return bool(spte & PT_WRITABLE_MASK)


def is_mmu_writable_spte(spte: int) -> bool:
    """is_mmu_writable_spte() (spte.h): may be made writable outside mmu_lock."""
    return bool(spte & MMU_WRITABLE)


def spte_read(sptep: Sptep) -> int:
    """READ_ONCE(*sptep)."""
    v: int = READ_ONCE(sptep, "spte")
    return v


def try_cmpxchg64(sptep: Sptep, old: int, new: int) -> bool:
    """try_cmpxchg64(sptep, &old, new): one atomic step; True if *sptep was ``old``."""
    before, _ = rmw(sptep, "spte", lambda v: new if v == old else v, "try_cmpxchg64(spte)")
    return bool(before == old)


def spte_xchg(sptep: Sptep, new: int) -> int:
    """xchg(sptep, new) (kvm_tdp_mmu_write_spte on an SPTE with volatile bits): returns the old SPTE."""
    before, _ = rmw(sptep, "spte", lambda v: new, "xchg(spte)")
    return int(before)


class Spte(Subsystem):
    """arch/x86/kvm/mmu/spte.c at v6.1."""

    subsystem = "spte"
    version = "v6.1"

    def make_spte(
        self, vcpu: Any, slot: Any, pte_access: int, gfn: int, old_spte: int, can_unsync: bool
    ) -> tuple[bool, int]:
        """make_spte() (spte.c, v6.1): the new leaf SPTE and whether it had to be write-protected.

        A writable request sets PT_WRITABLE and MMU_WRITABLE; unless the old SPTE
        was already writable, mmu_try_to_unsync_pages() re-checks write tracking
        under mmu_lock and, for a tracked gfn, the SPTE is built read-only with
        both bits clear (Sean's answer to Yan, seed thread 2022-11-15).
        """
        spte = SPTE_MMU_PRESENT
        wrprot = False
        if pte_access & ACC_WRITE_MASK:
            spte |= PT_WRITABLE_MASK | MMU_WRITABLE
            if is_writable_pte(old_spte):
                return wrprot, spte
            if self.unsync_or_wrprot(vcpu, slot, gfn, can_unsync):
                wrprot = True
                spte &= ~(PT_WRITABLE_MASK | MMU_WRITABLE)
        return wrprot, spte

    def unsync_or_wrprot(self, vcpu: Any, slot: Any, gfn: int, can_unsync: bool) -> bool:
        """make_spte()'s call of mmu_try_to_unsync_pages() (mmu.c): nonzero means write-protect."""
        r: int = vcpu.kvm.build.mmu.mmu_try_to_unsync_pages(vcpu.kvm, slot, gfn, can_unsync, False)
        return r != 0


class Spte66(Spte):
    """spte.c at v6.6: make_spte() is the same on this path."""

    version = "v6.6"


class NoMakeSpteRecheck(Spte):
    """Mutant: make_spte() trusts the fault path's lockless read and never re-checks tracking."""

    version = "no-make-spte-recheck"

    def unsync_or_wrprot(self, vcpu: Any, slot: Any, gfn: int, can_unsync: bool) -> bool:
        """The mutant drops the mmu_try_to_unsync_pages() call: a writable SPTE is always allowed."""
        return False
