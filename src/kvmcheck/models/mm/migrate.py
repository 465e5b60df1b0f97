"""mm/migrate.c and mm/rmap.c's try_to_migrate(), as in Linux v6.8, for one anonymous page.

What KVM's pfn caches observe of page migration (compaction, NUMA balancing,
memory hotplug all end in migrate_pages()):

1. isolation: folio_isolate_lru() takes a reference on the source page;
2. unmap: try_to_migrate() brackets the PTE change with
   mmu_notifier_invalidate_range_start/_end; under the PTE lock it replaces the
   PTE with a *migration entry* and drops the mapping's reference
   (page_remove_rmap + folio_put);
3. move: folio_migrate_mapping() of an anonymous page with no mapping checks
   that the page's reference count is exactly the expected one (the isolation
   reference); if anybody else holds a reference -- a GUP caller between
   get_user_pages() and put_page() -- migration fails with -EAGAIN and
   remove_migration_ptes() puts the source page back in the PTE;
4. otherwise the contents are copied, remove_migration_ptes() points the PTE
   at the new page, and dropping the isolation reference frees the old page.

A GUP meeting the migration entry waits for the move to end
(migration_entry_wait(), in models/mm/mm.py's get_user_pages).

Simplified -- what v6.8 does and this model does not:
- one attempt: migrate_pages() retries a page that failed with -EAGAIN up to
  NR_MAX_MIGRATE_PAGES_RETRY (10) times; here a caller may call again;
- no folio lock: migrate_folio_unmap() takes folio_trylock()/folio_lock() on
  the source (and the new folio is locked) around unmap and move; no modelled
  thread locks the folio, so nothing can observe its absence here;
- no pinned check beyond the expected refcount: folio_migrate_mapping()'s
  refcount test is modelled (so a GUP reference makes it fail with -EAGAIN),
  but not the earlier checks for long-term pinned (FOLL_PIN) folios, the
  mapcount, page-cache or swap-cache references, or writeback.

Locking contract: the PTE lock (mm->page_table_lock here) protects the PTE
(written with set_pte_at(), a WRITE_ONCE, as a waiter may look at it locklessly);
page->_refcount is atomic; the mmu notifier callbacks run with no mm lock held.
Lifetimes: the source page lives until its isolation reference is dropped;
after a successful migration that is the moment it is freed.
"""

from __future__ import annotations

from kvmcheck.kernel import WRITE_ONCE, spin_lock, spin_unlock
from kvmcheck.models.mm.mm import (
    MmStruct,
    mmu_notifier_invalidate_range_end,
    mmu_notifier_invalidate_range_start,
)
from kvmcheck.models.mm.page import Page, get_page, page_ref_count, put_page

MIGRATEPAGE_SUCCESS, EAGAIN = 0, -11


def make_migration_entry(pfn: int) -> int:
    """``make_readable_migration_entry()``: a non-present PTE naming the page being moved."""
    return -pfn


def try_to_migrate(mm: MmStruct, hva: int, src: Page) -> None:
    """try_to_migrate() (mm/rmap.c) for the one PTE mapping ``src``: invalidate, install a migration entry."""
    mmu_notifier_invalidate_range_start(mm, hva, hva + 1)
    spin_lock(mm.page_table_lock)
    WRITE_ONCE(mm.ptes[hva], "pfn", make_migration_entry(src.pfn))  # set_pte_at(): native_set_pte()
    spin_unlock(mm.page_table_lock)
    put_page(src)  # page_remove_rmap() + folio_put(): the mapping's reference
    mmu_notifier_invalidate_range_end(mm, hva, hva + 1)


def remove_migration_ptes(mm: MmStruct, hva: int, page: Page) -> None:
    """remove_migration_ptes() (mm/migrate.c): the migration entry becomes a PTE for ``page``."""
    get_page(page)  # folio_get(): the new mapping's reference
    spin_lock(mm.page_table_lock)
    WRITE_ONCE(mm.ptes[hva], "pfn", page.pfn)  # set_pte_at()
    spin_unlock(mm.page_table_lock)


def folio_migrate_mapping(src: Page, expected: int = 1) -> int:
    """folio_migrate_mapping() for an anonymous page without mapping: refcount must be ``expected``."""
    if page_ref_count(src) != expected:
        return EAGAIN  # somebody holds an extra reference (a GUP pin): leave the page
    return MIGRATEPAGE_SUCCESS


def migrate_pages(mm: MmStruct, hva: int, dst: Page) -> int:
    """migrate_pages() (mm/migrate.c, v6.8) of the page mapped at ``hva`` to ``dst``: one attempt.

    ``dst`` comes from the allocator with no reference held by anybody but the
    migration (its initial count is the migration's; the PTE takes its own).
    Returns MIGRATEPAGE_SUCCESS, or -EAGAIN if the source page was pinned.
    """
    pte = mm.ptes[hva]
    spin_lock(mm.page_table_lock)
    src = mm.pages[pte.pfn]
    spin_unlock(mm.page_table_lock)
    get_page(src)  # folio_isolate_lru()
    try_to_migrate(mm, hva, src)
    rc = folio_migrate_mapping(src)
    if rc == MIGRATEPAGE_SUCCESS:
        dst.data = src.data  # folio_migrate_copy()
        mm.add_page(dst)
        remove_migration_ptes(mm, hva, dst)
        put_page(dst)  # migrate_folio_done(): the allocation reference; the PTE keeps one
    else:
        remove_migration_ptes(mm, hva, src)
    put_page(src)  # putback / migrate_folio_done(): the isolation reference; frees src on success
    return rc
