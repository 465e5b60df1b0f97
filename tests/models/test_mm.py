"""The host substrate: struct page refcount checks, the buddy allocator, VM_PFNMAP VMAs, TTM."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvmcheck import Result, check, join, scenario, spawn
from kvmcheck.models.drivers.gpu.drm.ttm.ttm_bo import (
    ttm_bo_create_system,
    ttm_bo_mmap,
    ttm_bo_release_backing,
)
from kvmcheck.models.mm.memory import (
    VM_FAULT_SIGBUS,
    FollowPfnmapArgs,
    fixup_user_fault,
    follow_pfn,
    follow_pfnmap_end,
    follow_pfnmap_start,
    follow_pte,
    pte_unmap_unlock,
    zero_page,
)
from kvmcheck.models.mm.mm import MmStruct, get_user_pages
from kvmcheck.models.mm.page import (
    SetPageDirty,
    get_page,
    get_page_unless_zero,
    phys_access,
    put_page,
)
from kvmcheck.models.mm.page_alloc import (
    __GFP_COMP,
    Zone,
    __free_pages,
    alloc_pages,
    boot_alloc,
    check_pages_returned,
)


def run(body: Callable[..., Any]) -> Result:
    return check(scenario(body))


def soft_kinds(r: Result) -> list[str]:
    return [w.kind for w in r.warnings] + ([r.finding.kind] if r.finding else [])


def test_put_page_on_a_zero_count_is_the_vm_bug_on_page_report() -> None:
    def body() -> None:
        zone = Zone([1, 2])
        boot_alloc(zone, 1, 1, "owner")  # non-compound: tail pfn 2 has count 0
        put_page(zone.pfn_to_page(2))

    r = run(body)
    assert r.verdict == "bug" and r.finding is not None
    assert r.finding.kind == "refcount"
    assert "VM_BUG_ON_PAGE(page_ref_count(page) == 0)" in r.finding.message
    assert "page dumped because: VM_BUG_ON_PAGE(page_ref_count(page) == 0)" in r.finding.details


def test_get_page_on_a_zero_count_is_reported_but_get_page_unless_zero_refuses_quietly() -> None:
    def bad() -> None:
        zone = Zone([1, 2])
        boot_alloc(zone, 1, 1, "owner")
        get_page(zone.pfn_to_page(2))

    r = run(bad)
    assert r.finding is not None and "page_ref_zero_or_close_to_overflow" in r.finding.message

    def fine() -> None:
        zone = Zone([1, 2])
        boot_alloc(zone, 1, 1, "owner")
        assert not get_page_unless_zero(zone.pfn_to_page(2))
        assert get_page_unless_zero(zone.pfn_to_page(1))

    r = run(fine)
    assert r.verdict == "ok" and r.complete, r.finding


def test_get_and_put_on_a_tail_page_frees_it_while_its_owner_still_has_the_block() -> None:
    """The CVE's host half: the tail goes back to the buddy allocator; the owner's free is a Bad page."""

    def body() -> None:
        zone = Zone([1, 2])
        head = boot_alloc(zone, 1, 1, "ttm")
        tail = zone.pfn_to_page(2)
        get_page(tail)  # 0 -> 1 (reported, CONFIG_DEBUG_VM)
        put_page(tail)  # 1 -> 0: freed
        assert tail.free
        page = alloc_pages(zone, 0, "another owner")
        assert page is tail
        __free_pages(head, 1)  # TTM frees its block: the tail now belongs to someone else

    r = run(body)
    bad = [f for f in [r.finding, *r.warnings] if f is not None and "Bad page state" in f.headline]
    assert bad, r.finding
    assert bad[0].kind == "refcount"
    assert bad[0].headline.startswith("BUG: Bad page state in process main")
    assert "page dumped because: nonzero _refcount" in bad[0].details


def test_a_page_freed_twice_is_reported_and_its_block_taken_out_of_circulation() -> None:
    """free_pages_prepare(): bad_page() reports the second free and the block is not freed (it leaks)."""
    state: dict[str, object] = {}

    def body() -> None:
        zone = Zone([1, 2])
        boot_alloc(zone, 1, 1, "ttm")
        tail = zone.pfn_to_page(2)
        get_page(tail)
        put_page(tail)  # the tail is free now
        __free_pages(zone.pfn_to_page(1), 1)  # and the owner frees it again
        state["free_area"] = zone.free_area
        state["head_free"] = zone.pfn_to_page(1).free
        state["head_leaked"] = zone.pfn_to_page(1).leaked_as_bad

    r = run(body)
    bad = [f for f in [r.finding, *r.warnings] if f is not None and "Bad page state" in f.headline]
    assert bad, r.finding
    assert bad[0].kind == "refcount"  # a report, not an oops: the task carried on (state was recorded)
    assert bad[0].headline == "BUG: Bad page state in process main  pfn:2"
    assert bad[0].message == (
        "Bad page state: pfn 2: nonzero mapcount (PageBuddy: the page is already free, this is a second free)"
    )
    # the tail stays on the free list once; the head is not freed with it: the block leaks
    assert state == {"free_area": ((2, 0),), "head_free": False, "head_leaked": True}


def test_a_flag_set_on_a_free_page_is_reported_at_its_next_allocation_with_who_set_it() -> None:
    def body() -> None:
        zone = Zone([1], free=[(1, 0)])
        page = alloc_pages(zone, 0, "first owner")
        assert page is not None
        put_page(page)
        SetPageDirty(page)  # on a page in the buddy allocator
        alloc_pages(zone, 0, "second owner")

    r = run(body)
    bad = [f for f in [r.finding, *r.warnings] if f is not None and "Bad page state" in f.headline]
    assert bad and bad[0].message == "Bad page state: pfn 1: PAGE_FLAGS_CHECK_AT_PREP set"
    assert "SetPageDirty: PG_dirty set on a FREE page (in the buddy allocator) by task main" in "\n".join(
        bad[0].details
    )


def test_check_pages_returned_reports_a_reference_never_dropped() -> None:
    def leaky() -> None:
        zone = Zone([1, 2])
        head = boot_alloc(zone, 1, 1, "ttm bo")
        owned = [(zone.pfn_to_page(1), head.gen), (zone.pfn_to_page(2), zone.pfn_to_page(2).gen)]
        get_page(head)  # someone takes a reference and never drops it
        __free_pages(head, 1)  # the owner frees its block: only the tail goes back
        check_pages_returned(owned, "ttm bo")

    r = run(leaky)
    assert r.finding is not None and r.finding.kind == "leak"
    assert r.finding.headline == "BUG: page leak: pfn 1 never returned to the buddy allocator (page_owner)"
    assert "pfn 1 is still allocated (refcount 1) after ttm bo freed it" in r.finding.message

    def clean() -> None:
        zone = Zone([1, 2])
        head = boot_alloc(zone, 1, 1, "ttm bo")
        owned = [(zone.pfn_to_page(1), head.gen), (zone.pfn_to_page(2), zone.pfn_to_page(2).gen)]
        __free_pages(head, 1)
        again = alloc_pages(zone, 0, "someone else")  # freed, then reallocated: not a leak
        assert again is not None
        check_pages_returned(owned, "ttm bo")

    r = run(clean)
    assert r.verdict == "ok" and r.complete, r.finding


def test_free_pages_of_a_non_compound_block_with_a_held_head_frees_only_the_tails() -> None:
    """__free_pages() since e320d3012d25: the head stays with whoever holds it."""

    def body() -> None:
        zone = Zone([1, 2])
        head = boot_alloc(zone, 1, 1, "ttm")
        get_page(head)  # someone else holds the head
        __free_pages(head, 1)
        assert zone.pfn_to_page(2).free and not head.free
        put_page(head)  # the last reference frees the head, order 0
        assert head.free

    r = run(body)
    assert r.verdict == "ok" and r.complete, r.finding


def test_compound_pages_count_on_the_head() -> None:
    def body() -> None:
        zone = Zone([1, 2], free=[(1, 1)])
        head = alloc_pages(zone, 1, "thp", gfp=__GFP_COMP)
        assert head is not None
        tail = zone.pfn_to_page(2)
        get_page(tail)
        assert head.__dict__["refcount"] == 2
        put_page(tail)
        put_page(head)
        assert head.free and tail.free

    r = run(body)
    assert r.verdict == "ok" and r.complete, r.finding


def test_an_access_to_a_reused_page_through_an_old_mapping_is_reported() -> None:
    def body() -> None:
        zone = Zone([1], free=[(1, 0)])
        page = alloc_pages(zone, 0, "first owner")
        assert page is not None
        gen = page.gen
        put_page(page)
        again = alloc_pages(zone, 0, "second owner")
        assert again is page
        phys_access(page, gen, "a stale mapping")

    r = run(body)
    assert r.finding is not None and r.finding.kind == "use-after-free"
    assert "reallocated to second owner" in r.finding.message


def test_reserved_and_zero_pages() -> None:
    zp = zero_page()
    assert zp.reserved and zp.zero_page


def test_follow_pte_holds_the_pte_lock_follow_pfn_drops_it_and_gup_refuses_pfnmap() -> None:
    def body() -> None:
        mm, zone = MmStruct(), Zone([1, 2])
        bo = ttm_bo_create_system(zone, 1, 1)
        vma = ttm_bo_mmap(mm, bo, 0x100)
        assert get_user_pages(mm, 0x100) == 0  # VM_PFNMAP: GUP fails
        assert follow_pte(mm, 0x100) is None  # not present yet
        r, unlocked = fixup_user_fault(mm, 0x100, True)  # TTM's fault handler inserts the pfn
        assert (r, unlocked) == (0, False)
        pte = follow_pte(mm, 0x100)
        assert pte is not None and pte.pfn == 1  # with the PTE lock held
        pte_unmap_unlock(mm)
        assert follow_pfn(vma, 0x100)[:2] == (0, 1)  # the lock is dropped again
        args = FollowPfnmapArgs()
        assert follow_pfnmap_start(vma, 0x100, args) == 0 and args.pfn == 1
        follow_pfnmap_end(vma)
        ttm_bo_release_backing(bo)  # unmap_mapping_range + __free_pages(head, 1)
        assert follow_pte(mm, 0x100) is None
        assert bo.vmas[0].fault is not None
        assert bo.vmas[0].fault(vma, 0x100, False) == VM_FAULT_SIGBUS
        assert zone.pfn_to_page(1).free and zone.pfn_to_page(2).free

    r = run(body)
    assert r.verdict == "ok" and r.complete, r.finding


def test_unmap_mapping_range_fires_the_notifiers() -> None:
    calls: list[str] = []

    def body() -> None:
        calls.clear()
        mm, zone = MmStruct(), Zone([1, 2])
        bo = ttm_bo_create_system(zone, 1, 1)
        ttm_bo_mmap(mm, bo, 0x100)
        mm.notifiers.append(
            (lambda _mm, s, e: calls.append(f"start {s:#x}-{e:#x}"), lambda _mm, s, e: calls.append("end"))
        )
        t = spawn(ttm_bo_release_backing, bo)
        join(t)

    r = run(body)
    assert r.verdict == "ok"
    assert calls == ["start 0x100-0x102", "end"]
