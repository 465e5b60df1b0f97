"""A host process address space: page tables, GUP and mmu notifiers (mm/gup.c,
mm/mmu_notifier.c), as in Linux v6.8, reduced to what KVM observes.
VMAs, VM_PFNMAP and the follow_pte family are in memory.py; migration in migrate.py;
zap_page_range_single() (MADV_DONTNEED of one page) here.

Modelled: one page-table entry per user virtual address the scenario uses
(``hva -> pfn``), protected by ``page_table_lock`` (the PTE lock);
``get_user_pages`` resolves an hva and takes a page reference.  A negative
PTE value is a migration entry (page migration is in models/mm/migrate.py):
GUP waits for the migration to finish, as migration_entry_wait() does, and
faults again.

Locking contract:
  page_table_lock (spinlock_t) protects Pte.pfn and Pte.write (the PTE lock).
  mmap_lock (rw_semaphore) is held for read by GUP's slow path, fixup_user_fault
  and KVM's VMA lookup; VMAs are fixed before the threads start.
  Notifier subscribers are fixed before threads start (plain list).
Lock order: mmu notifier callbacks run with no mm lock held here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvmcheck.kernel import (
    WRITE_ONCE,
    RwSem,
    SpinLock,
    Struct,
    cond_resched,
    spin_lock,
    spin_unlock,
    spin_until_cond,
)
from kvmcheck.models.mm.page import Page, get_page, put_page, try_grab_page_pin


class Pte(Struct):
    """One page-table entry: the pfn an hva maps to (0: not present)."""

    __locking__ = {"pfn": "ptl", "write": "ptl"}

    pfn: int = 0
    write: bool = True  # pte_write()

    def __init__(self, ptl: SpinLock, pfn: int, gen: int = 0) -> None:
        super().__init__(pfn=pfn)
        self.ptl = ptl
        self.gen = gen  # ghost: the generation of the page the PTE maps (page.py)


# A subscriber's (start, end) callbacks take (mm, start, end).
Notifier = tuple[Callable[[Any, int, int], None], Callable[[Any, int, int], None]]


class MmStruct:
    """``struct mm_struct``: the VMAs' page tables and the mmu notifier subscriptions."""

    def __init__(self) -> None:
        self.page_table_lock = SpinLock("mm->page_table_lock")
        self.ptes: dict[int, Pte] = {}
        self.pages: dict[int, Page] = {}  # pfn -> struct page (the memory map)
        self.notifiers: list[Notifier] = []
        self.iomem: dict[int, Page] = {}  # pfn -> device memory with no struct page (!pfn_valid)
        self.vmas: list[Any] = []  # struct vm_area_struct (memory.py), fixed before threads start
        self.mmap_lock = RwSem("mm->mmap_lock")

    def map_page(self, hva: int, page: Page) -> None:
        """Set up a present mapping before the threads start (the page's own reference)."""
        self.pages[page.pfn] = page
        self.ptes[hva] = Pte(self.page_table_lock, page.pfn, page.gen)

    def add_page(self, page: Page) -> None:
        """Put a page in the memory map (its struct page), not mapped anywhere yet."""
        self.pages[page.pfn] = page


def is_migration_entry(pte_val: int) -> bool:
    """``is_migration_entry()``: the PTE holds a migration entry (here: a negative value)."""
    return pte_val < 0


def get_user_pages(mm: MmStruct, hva: int) -> int:  # get_user_pages_unlocked() for one page
    """GUP of one page: the pfn ``hva`` maps to, with a reference taken; 0 if not present.

    Like __get_user_pages(), it may sleep and calls cond_resched() for each page.
    """
    pfn, _ = __get_user_pages(mm, hva)
    return pfn


def __get_user_pages(mm: MmStruct, hva: int, pin: bool = False) -> tuple[int, int]:
    """__get_user_pages() for one page: (pfn, ghost generation); (0, 0) if not present.

    check_vma_flags(): a VM_IO or VM_PFNMAP VMA fails (the pfns may have no struct
    page); a VM_MIXEDMAP one works for pfns with a struct page (vm_normal_page).
    FOLL_PIN (``pin``) pins instead of taking a reference (try_grab_page).
    """
    from kvmcheck.models.mm.memory import VM_IO, VM_PFNMAP, find_vma

    vma = find_vma(mm, hva)
    if vma is not None and vma.vm_flags & (VM_IO | VM_PFNMAP):
        return 0, 0
    pte = mm.ptes.get(hva)
    if pte is None:
        return 0, 0
    cond_resched()
    spin_lock(mm.page_table_lock)
    pfn = pte.pfn
    while is_migration_entry(pfn):  # handle_mm_fault -> migration_entry_wait(), then fault again
        spin_unlock(mm.page_table_lock)
        spin_until_cond(pte, "pfn", lambda p: not is_migration_entry(p))
        spin_lock(mm.page_table_lock)
        pfn = pte.pfn
    gen = pte.gen
    if pfn and pfn not in mm.pages:
        pfn = 0  # no struct page (device memory in a VM_MIXEDMAP VMA): GUP fails
    if pfn:
        if pin:
            try_grab_page_pin(mm.pages[pfn])
        else:
            get_page(mm.pages[pfn])
    spin_unlock(mm.page_table_lock)
    return pfn, gen


def mmu_notifier_invalidate_range_start(mm: MmStruct, start: int, end: int) -> None:
    """mmu_notifier_invalidate_range_start() (include/linux/mmu_notifier.h, v6.8): call every subscriber."""
    for on_start, _ in mm.notifiers:
        on_start(mm, start, end)


def mmu_notifier_invalidate_range_end(mm: MmStruct, start: int, end: int) -> None:
    """mmu_notifier_invalidate_range_end() (include/linux/mmu_notifier.h, v6.8): call every subscriber."""
    for _, on_end in mm.notifiers:
        on_end(mm, start, end)


def zap_page_range_single(mm: MmStruct, hva: int) -> None:
    """zap_page_range_single() of one present page (MADV_DONTNEED, munmap): the PTE goes, then the page.

    Brackets the PTE change with mmu_notifier_invalidate_range_start/_end (mm/memory.c);
    clears the PTE under the PTE lock and drops the mapping's reference (the
    TLB flush and rmap bookkeeping are not modelled).
    """
    mmu_notifier_invalidate_range_start(mm, hva, hva + 1)
    spin_lock(mm.page_table_lock)
    pte = mm.ptes[hva]
    page = mm.pages[pte.pfn]
    WRITE_ONCE(pte, "pfn", 0)  # pte_clear()
    spin_unlock(mm.page_table_lock)
    put_page(page)  # page_remove_rmap() + the mmu_gather's free
    mmu_notifier_invalidate_range_end(mm, hva, hva + 1)
