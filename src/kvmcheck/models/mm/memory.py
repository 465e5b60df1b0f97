"""VMAs and their page tables (mm/memory.c, mm/mmap.c, mm/gup.c), reduced to what KVM observes.

Modelled, per version where they differ:

* ``struct vm_area_struct`` with VM_IO / VM_PFNMAP / VM_MIXEDMAP and a fault
  handler (``vm_ops->fault``), one PTE per page (mm.py's ``Pte``);
* ``vmf_insert_pfn_prot()`` (the TTM fault handler's way to map a pfn: no
  reference taken, no mapcount: the pfn may not even have a struct page);
* ``unmap_mapping_range()``: for every VMA of the mapping, the PTEs are cleared
  under the PTE lock between ``mmu_notifier_invalidate_range_start`` and ``_end``
  (zap_page_range_single); PFNMAP PTEs hold no page references, so none are dropped;
* ``follow_pfn()`` (v5.11): looks the PTE up under the PTE lock, **drops the lock**
  and returns the pfn -- the caller's get_page() runs unlocked;
* ``follow_pte()`` (v5.12 .. v6.9): returns with the PTE lock **held**, the caller
  unlocks (pte_unmap_unlock);
* ``follow_pfnmap_start()`` / ``follow_pfnmap_end()`` (v6.12, Peter Xu): the same
  contract as follow_pte, with pfn and writability in the args;
* ``fixup_user_fault()``: handle_mm_fault() of one address under mmap_lock (read)
  -> the VMA's fault handler; VM_FAULT_SIGBUS is -EFAULT.  The model's handlers
  never drop mmap_lock (so ``unlocked`` stays false).

Not modelled: huge PMDs in page tables (a VMA is ``huge`` when the host maps it at
PMD level: host_pfn_mapping_level()), TLB flushes, anon rmap.

Locking contract: the PTE lock (``mm->page_table_lock``) protects every PTE;
mmap_lock (read) is held around VMA lookups by GUP's slow path, KVM and
fixup_user_fault; VMAs themselves are fixed before the threads start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kvmcheck.kernel import BUG_ON, spin_lock, spin_unlock
from kvmcheck.models.mm.mm import (
    MmStruct,
    Pte,
    mmu_notifier_invalidate_range_end,
    mmu_notifier_invalidate_range_start,
)
from kvmcheck.models.mm.page import Page

VM_IO = 0x4000
VM_PFNMAP = 0x400
VM_MIXEDMAP = 0x10000000
VM_FAULT_NOPAGE = 0x100
VM_FAULT_SIGBUS = 0x2
EFAULT, EINVAL, EAGAIN = -14, -22, -11

ZERO_PFN = 0  # the zero page's pfn in these models


def zero_page() -> Page:
    """ZERO_PAGE(0): a reserved page that is nevertheless refcounted (is_zero_pfn())."""
    page = Page(ZERO_PFN, refcount=1, reserved=True)
    page.zero_page = True
    page.owner = "the zero page"
    return page


@dataclass
class VmArea:
    """``struct vm_area_struct``: [vm_start, vm_end) in pages, flags, fault handler, mapping."""

    vm_mm: MmStruct
    vm_start: int
    vm_end: int
    vm_flags: int
    fault: Callable[[VmArea, int, bool], int] | None = None  # vm_ops->fault(vmf): VM_FAULT_*
    vm_private_data: Any = None  # the driver's object (TTM: the buffer object)
    huge: bool = False  # the host maps it at PMD level (host_pfn_mapping_level() > 4K)


def mmap_region(mm: MmStruct, start: int, npages: int, flags: int, **kw: Any) -> VmArea:
    """mmap(): a new VMA of ``npages`` pages with empty (not present) PTEs; before threads start."""
    vma = VmArea(mm, start, start + npages, flags, **kw)
    mm.vmas.append(vma)
    for hva in range(start, start + npages):
        mm.ptes.setdefault(hva, Pte(mm.page_table_lock, 0))
    return vma


def find_vma(mm: MmStruct, hva: int) -> VmArea | None:
    """vma_lookup(): the VMA containing ``hva`` (VMAs are fixed, so no step)."""
    return next((v for v in mm.vmas if v.vm_start <= hva < v.vm_end), None)


def vmf_insert_pfn_prot(vma: VmArea, hva: int, pfn: int, gen: int, write: bool = True) -> int:
    """vmf_insert_pfn_prot() (mm/memory.c): map ``pfn`` at ``hva`` unless a PTE is there.

    ``gen`` is the ghost generation of the memory behind ``pfn`` (page.py).
    """
    BUG_ON(not vma.vm_flags & (VM_PFNMAP | VM_MIXEDMAP), "vmf_insert_pfn_prot on a normal VMA")
    mm = vma.vm_mm
    pte = mm.ptes[hva]
    spin_lock(mm.page_table_lock)
    if not pte.pfn:  # insert_pfn(): pte_none
        pte.write = write
        pte.pfn = pfn
        pte.gen = gen
    spin_unlock(mm.page_table_lock)
    return VM_FAULT_NOPAGE


def unmap_mapping_range(vmas: list[VmArea]) -> None:
    """unmap_mapping_range() (mm/memory.c): zap every PTE of the mapping's VMAs, notifiers around it."""
    for vma in vmas:
        mm = vma.vm_mm
        mmu_notifier_invalidate_range_start(mm, vma.vm_start, vma.vm_end)
        spin_lock(mm.page_table_lock)
        for hva in range(vma.vm_start, vma.vm_end):
            mm.ptes[hva].pfn = 0
        spin_unlock(mm.page_table_lock)
        mmu_notifier_invalidate_range_end(mm, vma.vm_start, vma.vm_end)


def follow_pte(mm: MmStruct, hva: int) -> Pte | None:
    """follow_pte() (mm/memory.c, v5.12 .. v6.9): the present PTE with the PTE lock HELD, or None."""
    pte = mm.ptes.get(hva)
    if pte is None:
        return None
    spin_lock(mm.page_table_lock)
    if not pte.pfn:
        spin_unlock(mm.page_table_lock)
        return None
    return pte


def pte_unmap_unlock(mm: MmStruct) -> None:
    """pte_unmap_unlock(): drop the PTE lock follow_pte() returned with."""
    spin_unlock(mm.page_table_lock)


def follow_pfn(vma: VmArea, hva: int) -> tuple[int, int, int]:
    """follow_pfn() (mm/memory.c, v5.11): (0, pfn, gen) or (-EINVAL, 0, 0); the PTE lock is DROPPED."""
    if not vma.vm_flags & (VM_IO | VM_PFNMAP):
        return EINVAL, 0, 0
    pte = follow_pte(vma.vm_mm, hva)
    if pte is None:
        return EINVAL, 0, 0
    pfn, gen = pte.pfn, pte.gen
    pte_unmap_unlock(vma.vm_mm)
    return 0, pfn, gen


@dataclass
class FollowPfnmapArgs:
    """``struct follow_pfnmap_args`` (v6.12): the outputs of follow_pfnmap_start()."""

    pfn: int = 0
    writable: bool = False
    gen: int = 0  # ghost


def follow_pfnmap_start(vma: VmArea, hva: int, args: FollowPfnmapArgs) -> int:
    """follow_pfnmap_start() (mm/memory.c, v6.12): 0 with the PTE lock held, or -EINVAL."""
    if not vma.vm_flags & (VM_IO | VM_PFNMAP):
        return EINVAL
    pte = follow_pte(vma.vm_mm, hva)
    if pte is None:
        return EINVAL
    args.pfn, args.writable, args.gen = pte.pfn, pte.write, pte.gen
    return 0


def follow_pfnmap_end(vma: VmArea) -> None:
    """follow_pfnmap_end(): drop the PTE lock."""
    pte_unmap_unlock(vma.vm_mm)


def fixup_user_fault(mm: MmStruct, hva: int, write: bool) -> tuple[int, bool]:
    """fixup_user_fault() (mm/gup.c): fault ``hva`` in under mmap_lock; (0 or -EFAULT, unlocked)."""
    vma = find_vma(mm, hva)
    if vma is None or vma.fault is None:
        return EFAULT, False
    ret = vma.fault(vma, hva, write)  # handle_mm_fault() -> vm_ops->fault
    if ret & VM_FAULT_SIGBUS:
        return EFAULT, False
    return 0, False
