"""struct page and its reference count (include/linux/mm.h, include/linux/page_ref.h,
mm/page_alloc.c, mm/swap.c), as in Linux v5.11 .. v6.13 (unchanged in what is modelled).

Modelled: ``_refcount`` (field ``refcount``) with get_page / get_page_unless_zero /
put_page (atomic RMW, one visible step each), ``flags`` (PG_dirty, PG_referenced:
SetPageDirty, mark_page_accessed), and ``data``, the page's contents (what a
kernel mapping or a guest SPTE reads and writes).

The kernel's checks, with the kernel's words:

* get_page() on a page whose count is 0: ``VM_BUG_ON_PAGE(page_ref_zero_or_close_to_overflow(page))``;
* put_page() on a page whose count is 0: ``VM_BUG_ON_PAGE(page_ref_count(page) == 0)``
  (put_page_testzero);
* a page freed while its _refcount is not 0, or freed when it is already free:
  "BUG: Bad page state" (free_pages_prepare -> bad_page(), in page_alloc.py);
* an access through a mapping (SPTE, kmap, memremap) to a page that was freed, or
  freed and handed to another owner, since the mapping was made (``phys_access``).

VM_BUG_ON_PAGE is a BUG only with CONFIG_DEBUG_VM; production kernels (distros)
build without it and carry on.  It is reported here as a WARN-class finding, so
the run goes on and shows what a production kernel does next (the underflow's
free, the reuse, the stale access) -- the verdict is ``bug`` either way.

Pages that belong to a buddy zone (``page.zone``) go back to it when their count
drops to 0 and can be allocated again (page_alloc.py).  Pages without a zone
(the pfncache scenarios' pages) are retired for good: any later access is a
KASAN use-after-free, as before.

Ghost state (plain attributes, the checker's bookkeeping, not kernel memory):
``free``, ``owner`` and ``gen`` (bumped at every allocation) say whose page it is;
``history`` records who took and dropped references, for the report.  Ghosts are
updated right after the visible step they belong to (the code between two
visible steps runs atomically), so they are always consistent with it.

Locking contract: ``_refcount`` and ``flags`` are only touched atomically (RMW);
``data`` is accessed through a mapping, with marked accesses (the guest's are
not kernel code; KCSAN is off in the pfnmap scenarios).  ``zone->lock`` protects
the free lists (page_alloc.py).
"""

from __future__ import annotations

import sys
from typing import Any

from kvmcheck.kernel._core import bug, current_thread, execution, site_here, warn
from kvmcheck.kernel.kasan import mark_freed
from kvmcheck.kernel.struct import Struct, rmw

PG_dirty = 1
PG_referenced = 2
GUP_PIN_COUNTING_BIAS = 1024  # include/linux/mm.h: a FOLL_PIN adds this much


class Page(Struct):
    """``struct page`` (only what KVM's memory management looks at)."""

    _kc_freeable = True  # a zone-less page can go back to the allocator for good
    refcount: int = 1  # page->_refcount
    flags: int = 0  # PG_dirty | PG_referenced
    data: int = 0  # the page's contents (e.g. vcpu_info->evtchn_upcall_pending)

    def __init__(
        self,
        pfn: int,
        refcount: int = 1,
        reserved: bool = False,
        struct_page: bool = True,
        refcounted: bool = True,
    ) -> None:
        super().__init__(refcount=refcount)
        self.pfn = pfn  # immutable after creation: plain attribute, not shared memory
        self.reserved = reserved  # PG_reserved: KVM treats it as not refcounted
        # False: device memory (VRAM, a BAR): !pfn_valid().  ``refcounted=False`` is the
        # older spelling of the same thing (a VM_PFNMAP pfn with no struct page).
        self.struct_page = struct_page and refcounted
        self.zone: Any = None  # the buddy zone it belongs to (page_alloc.py), or None
        self.head: Page = self  # compound_head(): the head of a compound page
        self.compound_order = 0  # PageHead's order (0: not compound)
        self.zero_page = False  # ZERO_PAGE(0): reserved, but refcounted (is_zero_pfn)
        # ghosts (see the module docstring)
        self.free = False
        self.leaked_as_bad = False  # its block was refused by free_pages_prepare (bad_page): never freed
        self.owner = "boot"
        self.gen = 0
        self.history: list[str] = []

    def _kc_label(self) -> str:
        return f"page[pfn {self.pfn}]"


_HELPERS = frozenset(
    {
        "_where",
        "note",
        "dump_page",
        "VM_BUG_ON_PAGE",
        "get_page",
        "get_page_unless_zero",
        "try_grab_page_pin",
        "unpin_user_page",
        "put_page",
        "put_page_testzero",
        "_put",
        "__put_page",
        "phys_access",
        "stale_access",
        "free_the_page",
        "_free_the_page",
        "__free_pages_ok",
        "_prep_new_page",
        "bad_page",
        "SetPageDirty",
        "mark_page_accessed",
        "_on_free",
    }
)


def _caller_chain() -> str:
    """'f <- g <- h (file:line of f)': the three innermost model functions outside these helpers."""
    site = site_here()  # validates we are in a model; the file:line below comes from the frames
    del site
    frame = sys._getframe(1)
    names: list[str] = []
    where = ""
    while frame is not None and len(names) < 3:
        code = frame.f_code
        path = code.co_filename.replace("\\", "/")
        in_model = "/kvmcheck/models/" in path or "/kvmcheck/scenarios/" in path
        if in_model and code.co_name not in _HELPERS:
            if not names:
                where = f" ({path.split('/kvmcheck/', 1)[1]}:{frame.f_lineno})"
            names.append(code.co_name)
        frame = frame.f_back  # type: ignore[assignment]
    return " <- ".join(names) + where


def _where() -> str:
    ex = execution()
    if ex is None:
        return "setup"
    site = f" in {_caller_chain()}" if ex.tracing else ""
    return f"task {current_thread().name}{site}"


def note(page: Page, what: str) -> None:
    """Remember an event of the page's life for the report (ghost; cheap outside replays)."""
    if execution() is not None:
        page.history.append(f"{what} by {_where()}")


def dump_page(page: Page, reason: str) -> list[str]:
    """dump_page(): the page's state, then 'page dumped because:' and its history."""
    d = page.__dict__
    state = "free (in the buddy allocator)" if page.free else f"allocated to {page.owner}"
    return [
        f"page:pfn {page.pfn} refcount:{d['refcount']} flags:{d['flags']:#x} {state}",
        f"page dumped because: {reason}",
        *page.history,
    ]


def VM_BUG_ON_PAGE(cond: bool, page: Page, text: str) -> None:
    """VM_BUG_ON_PAGE() (include/linux/mmdebug.h): a BUG with CONFIG_DEBUG_VM (see docstring)."""
    if cond:
        warn(
            "refcount",
            f"VM_BUG_ON_PAGE({text}) on pfn {page.pfn}",
            "kernel BUG at include/linux/mm.h! (VM_BUG_ON_PAGE, CONFIG_DEBUG_VM)",
            dump_page(page, f"VM_BUG_ON_PAGE({text})"),
        )


def compound_head(page: Page) -> Page:
    """compound_head(): the head page of a compound page, else the page itself."""
    return page.head


def page_ref_count(page: Page) -> int:
    """``page_ref_count()``: an atomic read of _refcount."""
    old, _ = rmw(page, "refcount", lambda v: v, f"page_ref_count(pfn {page.pfn})")
    return int(old)


def get_page(page: Page) -> None:
    """get_page() (include/linux/mm.h): increment the head's count, which must not be 0."""
    head = compound_head(page)
    old, new = rmw(head, "refcount", lambda v: v + 1, f"get_page(pfn {head.pfn})")
    note(head, f"get_page: refcount {old} -> {new}")
    VM_BUG_ON_PAGE(old <= 0, head, "page_ref_zero_or_close_to_overflow(page)")


def get_page_unless_zero(page: Page) -> bool:
    """get_page_unless_zero() (include/linux/mm.h): increment unless 0; this page, not its head."""
    old, new = rmw(page, "refcount", lambda v: v + 1 if v else v, f"get_page_unless_zero(pfn {page.pfn})")
    if old:
        note(page, f"get_page_unless_zero: refcount {old} -> {new}")
    return bool(old)


def try_grab_page_pin(page: Page) -> None:
    """try_grab_page(FOLL_PIN) (mm/gup.c): an order-0 page's count grows by GUP_PIN_COUNTING_BIAS."""
    head = compound_head(page)
    old, new = rmw(head, "refcount", lambda v: v + GUP_PIN_COUNTING_BIAS, f"pin_user_page(pfn {head.pfn})")
    note(head, f"pin_user_pages: refcount {old} -> {new}")


def unpin_user_page(page: Page) -> None:
    """unpin_user_page() (mm/gup.c): drop a FOLL_PIN."""
    _put(compound_head(page), GUP_PIN_COUNTING_BIAS, "unpin_user_page")


def put_page(page: Page) -> None:
    """put_page() (include/linux/mm.h, mm/swap.c): drop a reference; the last one frees the page."""
    _put(compound_head(page), 1, "put_page")


def put_page_testzero(page: Page) -> bool:
    """put_page_testzero(): VM_BUG_ON_PAGE on a zero count, then dec-and-test."""
    old, new = rmw(page, "refcount", lambda v: v - 1, f"put_page_testzero(pfn {page.pfn})")
    note(page, f"put_page_testzero: refcount {old} -> {new}")
    VM_BUG_ON_PAGE(old == 0, page, "page_ref_count(page) == 0")
    return bool(new == 0)


def _put(head: Page, n: int, how: str) -> None:
    old, new = rmw(head, "refcount", lambda v: v - n, f"{how}(pfn {head.pfn})")
    note(head, f"{how}: refcount {old} -> {new}")
    VM_BUG_ON_PAGE(old < n, head, "page_ref_count(page) == 0")
    if new == 0 and old > 0:
        __put_page(head)


def __put_page(page: Page) -> None:
    """__put_page() (mm/swap.c): the count reached 0; free the (compound) page."""
    if page.zone is not None:
        page.zone.free_the_page(page, page.compound_order)
    elif not page.reserved:
        mark_freed(page, f"free_page(pfn {page.pfn})")  # zone-less: retired for good (KASAN)


def SetPageDirty(page: Page) -> None:
    """SetPageDirty(): set PG_dirty (an atomic bit operation); noted, so a later report names who."""
    rmw(page, "flags", lambda v: v | PG_dirty, f"SetPageDirty(pfn {page.pfn})")
    note(page, f"SetPageDirty: PG_dirty set{_on_free(page)}")


def mark_page_accessed(page: Page) -> None:
    """mark_page_accessed() (mm/swap.c), reduced to setting PG_referenced; noted like SetPageDirty."""
    rmw(page, "flags", lambda v: v | PG_referenced, f"mark_page_accessed(pfn {page.pfn})")
    note(page, f"mark_page_accessed: PG_referenced set{_on_free(page)}")


def _on_free(page: Page) -> str:
    """What the flag landed on, when that is already wrong: a page in the buddy allocator."""
    return " on a FREE page (in the buddy allocator)" if page.free else ""


def phys_access(page: Page, gen: int, how: str, write: bool = True) -> None:
    """A write (or read) of the page's memory through a mapping made when the page was at ``gen``.

    The access is a marked step on ``data``; then the checker asks whether the page is
    still the one the mapping was made to: freed since (use-after-free), or freed and
    allocated to another owner (a page reused while still mapped) -- CVE-2021-22543's
    last step.  ``how`` names the mapping ("guest write through SPTE gfn 1").
    """
    report_stale_access(stale_access(page, gen, how, write))


def stale_access(page: Page, gen: int, how: str, write: bool = True) -> tuple[str, str, list[str]] | None:
    """The access step alone; returns what is wrong with it (judged at the step), or None."""
    verb = "write" if write else "read"
    rmw(page, "data", (lambda v: v + 1) if write else (lambda v: v), f"{how} (pfn {page.pfn})")
    if page.free:
        reason = "the page is free: freed while still mapped"
    elif page.gen != gen:
        reason = f"the page was freed and reallocated to {page.owner} while still mapped"
    else:
        return None
    return (
        f"{how}: {verb} of pfn {page.pfn} after it was freed ({reason})",
        f"BUG: {verb} of freed pfn {page.pfn}: {how}",
        [f"{verb} of pfn {page.pfn} by {_where()}", *dump_page(page, reason)],
    )


def report_stale_access(found: tuple[str, str, list[str]] | None) -> None:
    """Report what stale_access() found: an oops of the accessing task."""
    if found is not None:
        message, headline, details = found
        bug("use-after-free", message, headline, details)
