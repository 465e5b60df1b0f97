"""A host process address space: page tables, GUP and mmu notifiers (mm/gup.c,
mm/mmu_notifier.c), as in Linux v6.8, reduced to what KVM observes.

Modelled: one page-table entry per user virtual address the scenario uses
(``hva -> pfn``), protected by ``page_table_lock`` (the PTE lock);
``get_user_pages`` resolves an hva and takes a page reference.  A negative
PTE value is a migration entry (page migration is in models/mm/migrate.py):
GUP waits for the migration to finish, as migration_entry_wait() does, and
faults again.

Locking contract:
  page_table_lock (spinlock_t) protects Pte.pfn.
  Notifier subscribers are fixed before threads start (plain list).
Lock order: mmu notifier callbacks run with no mm lock held here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvmcheck.kernel import SpinLock, Struct, cond_resched, spin_lock, spin_unlock, spin_until_cond
from kvmcheck.models.mm.page import Page, get_page


class Pte(Struct):
    """One page-table entry: the pfn an hva maps to (0: not present)."""

    __locking__ = {"pfn": "ptl"}

    pfn: int = 0

    def __init__(self, ptl: SpinLock, pfn: int) -> None:
        super().__init__(pfn=pfn)
        self.ptl = ptl


# A subscriber's (start, end) callbacks take (mm, start, end).
Notifier = tuple[Callable[[Any, int, int], None], Callable[[Any, int, int], None]]


class MmStruct:
    """``struct mm_struct``: the VMAs' page tables and the mmu notifier subscriptions."""

    def __init__(self) -> None:
        self.page_table_lock = SpinLock("mm->page_table_lock")
        self.ptes: dict[int, Pte] = {}
        self.pages: dict[int, Page] = {}  # pfn -> struct page (the memory map)
        self.notifiers: list[Notifier] = []

    def map_page(self, hva: int, page: Page) -> None:
        """Set up a present mapping before the threads start (the page's own reference)."""
        self.pages[page.pfn] = page
        self.ptes[hva] = Pte(self.page_table_lock, page.pfn)

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
    pte = mm.ptes.get(hva)
    if pte is None:
        return 0
    cond_resched()
    spin_lock(mm.page_table_lock)
    pfn = pte.pfn
    while is_migration_entry(pfn):  # handle_mm_fault -> migration_entry_wait(), then fault again
        spin_unlock(mm.page_table_lock)
        spin_until_cond(pte, "pfn", lambda p: not is_migration_entry(p))
        spin_lock(mm.page_table_lock)
        pfn = pte.pfn
    if pfn:
        get_page(mm.pages[pfn])
    spin_unlock(mm.page_table_lock)
    return pfn


def mmu_notifier_invalidate_range_start(mm: MmStruct, start: int, end: int) -> None:
    """mmu_notifier_invalidate_range_start() (include/linux/mmu_notifier.h, v6.8): call every subscriber."""
    for on_start, _ in mm.notifiers:
        on_start(mm, start, end)


def mmu_notifier_invalidate_range_end(mm: MmStruct, start: int, end: int) -> None:
    """mmu_notifier_invalidate_range_end() (include/linux/mmu_notifier.h, v6.8): call every subscriber."""
    for _, on_end in mm.notifiers:
        on_end(mm, start, end)
