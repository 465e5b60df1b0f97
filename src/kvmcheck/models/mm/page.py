"""struct page and its reference count (include/linux/mm.h, include/linux/page_ref.h,
mm/page_alloc.c), as in Linux v6.8.

Modelled: ``_refcount`` (field ``refcount``) with get_page / put_page (atomic RMW, one visible step
each); a page whose count drops to zero goes back to the allocator, after
which any access to it -- through a kernel mapping or directly -- is a KASAN
use-after-free.  Pages can be ``reserved`` (never freed by put_page: e.g.
the zero page) or not refcounted at all (``VM_PFNMAP`` memory with no struct
page, seed 004), where get_page must not be used.

Locking contract: ``_refcount`` is only touched atomically; ``data`` stands for
the page's contents and is accessed through a kernel mapping.
"""

from __future__ import annotations

from kvmcheck.kernel import WARN_ON_ONCE, Struct
from kvmcheck.kernel.kasan import mark_freed
from kvmcheck.kernel.struct import rmw


class Page(Struct):
    """``struct page`` (only what KVM's memory management looks at)."""

    _kc_freeable = True  # a page can go back to the allocator
    refcount: int = 1  # page->_refcount
    data: int = 0  # the page's contents (e.g. vcpu_info->evtchn_upcall_pending)

    def __init__(self, pfn: int, refcount: int = 1, reserved: bool = False, refcounted: bool = True) -> None:
        super().__init__(refcount=refcount)
        self.pfn = pfn  # immutable after creation: plain attribute, not shared memory
        self.reserved = reserved  # PG_reserved: put_page never frees it
        self.refcounted = refcounted  # False: a VM_PFNMAP pfn with no refcounted struct page

    def _kc_label(self) -> str:
        return f"page[pfn {self.pfn}]"


def page_ref_count(page: Page) -> int:
    """``page_ref_count()``: an atomic read of _refcount."""
    old, _ = rmw(page, "refcount", lambda v: v, f"page_ref_count(pfn {page.pfn})")
    return int(old)


def get_page(page: Page) -> None:
    """``get_page()``: take a reference (WARNs on a page whose count is already 0)."""
    WARN_ON_ONCE(not page.refcounted, f"get_page() on pfn {page.pfn}, which is not refcounted")
    old, _ = rmw(page, "refcount", lambda v: v + 1, f"get_page(pfn {page.pfn})")
    WARN_ON_ONCE(old <= 0, f"get_page() on pfn {page.pfn} with refcount {old}")


def put_page(page: Page) -> None:
    """``put_page()``: drop a reference; the last one frees the page (unless reserved)."""
    _, new = rmw(page, "refcount", lambda v: v - 1, f"put_page(pfn {page.pfn})")
    if new == 0 and not page.reserved:
        __free_page(page)


def __free_page(page: Page) -> None:
    """``__free_pages()``: the page returns to the buddy allocator."""
    mark_freed(page, f"free_page(pfn {page.pfn})")
