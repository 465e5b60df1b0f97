"""The buddy allocator (mm/page_alloc.c), as in Linux v5.11 .. v6.13, reduced to one zone.

Modelled: alloc_pages(order, __GFP_COMP or not) from the zone's free list (a
higher-order block is split when no block of the order is free); prep_new_page:
check_new_page ("Bad page state" if the page has a count or flags), the head's
count set to 1, tails left at 0 -- or, with __GFP_COMP, a compound page whose
tails point to the head; __free_pages(page, order) (e320d3012d25, v5.10: if the
head's count does not drop to 0 and the block is not compound, the tail pages are
freed anyway); free_the_page / free_pages_prepare with bad_page()'s checks
("nonzero _refcount"; a page already free is "nonzero mapcount", as PageBuddy
lives in _mapcount); a block with a bad page is reported and never freed (it
leaks, as in the kernel); freeing clears the flags.  At teardown a scenario can
check that an owner's pages all went back (check_pages_returned: the page leak
CONFIG_PAGE_OWNER would show).  Not modelled: merging buddies, per-cpu lists,
migratetypes, watermarks.

Each allocation and free also makes one marked step on the page's ``data`` (KASAN
unpoisons/poisons the memory), so the checker orders it against accesses through
mappings (page.py: phys_access).

Locking contract: ``zone->lock`` (spinlock) protects ``free_area``; a page's
count and flags are atomic.
"""

from __future__ import annotations

from kvmcheck.kernel import SpinLock, Struct, spin_lock, spin_unlock
from kvmcheck.kernel._core import bug, warn
from kvmcheck.kernel.struct import rmw
from kvmcheck.models.mm.page import Page, dump_page, note, put_page_testzero

__GFP_COMP = 1


class Zone(Struct):
    """``struct zone``: the free list (``free_area``: (pfn, order) blocks) and the memory map."""

    __locking__ = {"free_area": "lock"}

    free_area: tuple[tuple[int, int], ...] = ()

    def __init__(self, pfns: list[int], free: list[tuple[int, int]] | None = None) -> None:
        super().__init__(free_area=tuple(free or ()))
        self.lock = SpinLock("zone->lock")
        self.mem_map = {pfn: Page(pfn, refcount=0) for pfn in pfns}
        for page in self.mem_map.values():
            page.zone = self
            page.free = True
            page.owner = ""

    def pfn_to_page(self, pfn: int) -> Page:
        return self.mem_map[pfn]

    def free_the_page(self, page: Page, order: int) -> None:
        """free_the_page() (mm/page_alloc.c): check, then give the block back."""
        _free_the_page(self, page, order)


def _free_the_page(zone: Zone, page: Page, order: int) -> None:
    __free_pages_ok(zone, page, order)


def boot_alloc(zone: Zone, pfn: int, order: int, owner: str, gfp: int = 0) -> Page:
    """An allocation made before the threads start (setup): the block at ``pfn``."""
    return _prep_new_page(zone, pfn, order, owner, gfp)


def alloc_pages(zone: Zone, order: int, owner: str, gfp: int = 0) -> Page | None:
    """alloc_pages() (mm/page_alloc.c): a block of 2^order pages, or None (no memory)."""
    spin_lock(zone.lock)
    blocks = list(zone.free_area)
    found = next((b for b in blocks if b[1] >= order), None)
    if found is None:
        spin_unlock(zone.lock)
        return None
    blocks.remove(found)
    pfn, have = found
    while have > order:  # expand(): split, the upper halves stay free
        have -= 1
        blocks.append((pfn + (1 << have), have))
    zone.free_area = tuple(blocks)
    spin_unlock(zone.lock)
    return _prep_new_page(zone, pfn, order, owner, gfp)


def _prep_new_page(zone: Zone, pfn: int, order: int, owner: str, gfp: int) -> Page:
    """prep_new_page(): check_new_page on each page, set the head's count to 1, compound or not."""
    head = zone.pfn_to_page(pfn)
    for i in range(1 << order):
        page = zone.pfn_to_page(pfn + i)
        rmw(page, "data", lambda v: v, f"kasan_unpoison_pages(pfn {page.pfn})")
        if page.__dict__["refcount"] or page.__dict__["flags"]:
            bad_page(
                page, "nonzero _refcount" if page.__dict__["refcount"] else "PAGE_FLAGS_CHECK_AT_PREP set"
            )
        page.free, page.owner, page.gen = False, owner, page.gen + 1
        page.head = head if gfp & __GFP_COMP else page
        shape = "compound" if gfp & __GFP_COMP else "not compound"
        role = "head page" if i == 0 else "tail page (its count stays 0)"
        note(page, f"allocated to {owner}: {role} of an order-{order} block, {shape}")
    head.compound_order = order if gfp & __GFP_COMP else 0
    rmw(head, "refcount", lambda v: 1, f"set_page_refcounted(pfn {pfn})")
    return head


def __free_pages(page: Page, order: int) -> None:
    """__free_pages() (mm/page_alloc.c, since e320d3012d25 in v5.10).

    Drop the caller's reference on the head; if others still hold the head of a
    non-compound block, its tail pages are freed all the same.
    """
    zone = page.zone
    if put_page_testzero(page):
        zone.free_the_page(page, order)
    elif page.compound_order == 0:
        while order > 0:
            order -= 1
            zone.free_the_page(zone.pfn_to_page(page.pfn + (1 << order)), order)


def __free_pages_ok(zone: Zone, page: Page, order: int) -> None:
    """free_pages_prepare() + __free_one_page(): bad_page() checks, poison, back to the free list.

    As in the kernel, a block with a bad page is not freed at all: free_pages_prepare()
    reports each bad page and returns false, and the whole block leaks -- also when the
    bad page is one already in the buddy allocator (a second free): it is reported
    ("nonzero mapcount": PageBuddy lives in _mapcount) and not put on the free list
    again.  The task goes on (bad_page() taints, it does not oops).
    """
    bad = False
    for i in range(1 << order):
        p = zone.pfn_to_page(page.pfn + i)
        rmw(p, "data", lambda v: v, f"kasan_poison_pages(pfn {p.pfn})")
        count = rmw(p, "refcount", lambda v: v, f"free_pages_check(pfn {p.pfn})")[0]
        if p.free:
            bad_page(p, "nonzero mapcount (PageBuddy: the page is already free, this is a second free)")
            bad = True
        elif count:
            bad_page(p, "nonzero _refcount")
            bad = True
    if bad:
        for i in range(1 << order):
            p = zone.pfn_to_page(page.pfn + i)
            if not p.free:  # a page already in the buddy allocator stays where it is
                p.leaked_as_bad = True
                note(p, f"not freed: free_pages_prepare() refused the order-{order} block at pfn {page.pfn}")
        return
    for i in range(1 << order):
        p = zone.pfn_to_page(page.pfn + i)
        rmw(p, "flags", lambda v: 0, f"free_pages_prepare(pfn {p.pfn}): clear flags")
        p.free, p.owner = True, ""
        p.head = p
        note(p, f"freed to the buddy allocator (order {order} block at pfn {page.pfn})")
    page.compound_order = 0
    spin_lock(zone.lock)
    zone.free_area = (*zone.free_area, (page.pfn, order))
    spin_unlock(zone.lock)


def bad_page(page: Page, reason: str) -> None:
    """bad_page() (mm/page_alloc.c): "BUG: Bad page state in process ..." -- a report, not an oops.

    The kernel prints, dumps the page, taints (TAINT_BAD_PAGE) and goes on; the
    caller does not free the page.  A WARN-class finding here, for every bad page
    (a page freed twice included: the kernel reports it the same way).
    """
    from kvmcheck.kernel._core import current_thread

    warn(
        "refcount",
        f"Bad page state: pfn {page.pfn}: {reason}",
        f"BUG: Bad page state in process {current_thread().name}  pfn:{page.pfn}",
        dump_page(page, reason),
    )


def check_pages_returned(pages: list[tuple[Page, int]], owner: str) -> None:
    """Teardown check: every page ``owner`` allocated went back to the buddy allocator.

    ``pages`` pairs each page with its generation when ``owner`` got it.  A page still
    allocated under that generation (never freed, never reallocated) and not refused
    by bad_page() holds a reference nobody will drop: it never returns to the buddy
    allocator.  The kernel has no detector that fires for this; it is what
    CONFIG_PAGE_OWNER's /sys/kernel/debug/page_owner shows after the owner is gone
    (the page still listed as allocated, with who allocated it) -- reported here as a
    leak, with the page's history naming who took the reference that was never put.
    """
    for page, gen in pages:
        if page.free or page.gen != gen or page.leaked_as_bad:
            continue
        count = page.__dict__["refcount"]
        bug(
            "leak",
            f"page leak: pfn {page.pfn} is still allocated (refcount {count}) after {owner} freed it: "
            "a reference taken on it was never dropped",
            f"BUG: page leak: pfn {page.pfn} never returned to the buddy allocator (page_owner)",
            dump_page(page, f"still allocated (refcount {count}) after {owner} freed it"),
        )
