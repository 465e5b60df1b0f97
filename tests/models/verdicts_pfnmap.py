"""Seed 004 (pfnmap.*): the reviewed verdict of every bundled pair and the kernel fact it rests on.

Gathered by tests/models/test_verdicts.py, which asserts that the union of the
verdicts_*.py tables equals every bundled scenario's expect= exactly.  Message-ids and
shas are those of SOURCES in src/kvmcheck/scenarios/pfnmap.py.
"""

from __future__ import annotations

_CVE = "before f8be156be163 (CVE-2021-22543) kvm_get_pfn() is a plain get_page() on any non-reserved pfn"
_F8 = "f8be156be163: kvm_try_get_pfn() = get_page_unless_zero(), -EFAULT when it fails"
_V9 = "v9 3/6 <20230911021637.1941096-4-stevensd@google.com>"
_V9_6 = "posted v9 6/6 <20230911021637.1941096-7-stevensd@google.com>"
_RESEND = "resent v9 6/6 <20230919022504.3153043-1-stevensd@chromium.org>"
_V11 = "v11 8/8 <20240229025759.1187910-9-stevensd@google.com>"
_V11_1 = "v11 1/8 <20240229025759.1187910-2-stevensd@google.com>"
_NONREF = "x86-64 TDP faults pass allow_non_refcounted_struct_page and are guarded_by_mmu_notifier"
_VMAP = "kvm_vcpu_map is not guarded_by_mmu_notifier: a pfn without a reference is -EFAULT unless allow_unsafe_mappings"
_UNSAFE = "allow_unsafe_mappings=1 maps the VRAM pfn with memremap() and no notifier protection (the documented opt-in)"
_613_PIN = (
    "v6.13 2bcb52a3602b/68e51d0a437b: kvm_vcpu_map pins (FOLL_PIN); a remapped pfn cannot be pinned: -EINVAL"
)

VERDICTS: tuple[tuple[str, str, str, str], ...] = (
    # -- pfnmap.ttm_fault: a fault on TTM's tail page (count 0), an allocator, the guest, TTM's teardown
    ("pfnmap.ttm_fault", "v5.11", "bug", f"{_CVE}: get 0->1, the release's put frees the tail while mapped"),
    ("pfnmap.ttm_fault", "v5.12", "bug", f"bd2fae8da794 moved the get under the PTE lock, but {_CVE}"),
    ("pfnmap.ttm_fault", "f8be156be163", "ok", f"{_F8}: the tail page is never mapped"),
    (
        "pfnmap.ttm_fault",
        "stevens-v9",
        "ok",
        f"{_V9}: the tail is mapped with no reference, zapped by the notifier",
    ),
    (
        "pfnmap.ttm_fault",
        "stevens-v9-resend",
        "ok",
        f"{_RESEND} releases only refcounted pages; the tail is not one",
    ),
    (
        "pfnmap.ttm_fault",
        "stevens-v11",
        "ok",
        f"{_V11}: accessed_page is NULL for the tail; nothing marked or put",
    ),
    (
        "pfnmap.ttm_fault",
        "v6.13",
        "ok",
        "v6.13 8b15c3764c05: remapped pfns get no reference; the stale check guards",
    ),
    (
        "pfnmap.ttm_fault",
        "v6.13-no-stale-check",
        "bug",
        "mutant: without is_page_fault_stale an SPTE outlives TTM's free",
    ),
    ("pfnmap.ttm_fault", "release-adjusted-pfn", "ok", "mutant differs only for huge mappings; none here"),
    # -- pfnmap.ttm_fault_maps: the fault on the tail page must map it
    ("pfnmap.ttm_fault_maps", "v5.11", "bug", f"{_CVE}: VM_BUG_ON_PAGE on the zero count (CONFIG_DEBUG_VM)"),
    ("pfnmap.ttm_fault_maps", "v5.12", "bug", f"{_CVE}: VM_BUG_ON_PAGE on the zero count (CONFIG_DEBUG_VM)"),
    (
        "pfnmap.ttm_fault_maps",
        "f8be156be163",
        "bug",
        f"{_F8}: KVM_RUN fails, the cost Stevens' series set out to fix",
    ),
    ("pfnmap.ttm_fault_maps", "stevens-v9", "ok", f"{_V9_6}: {_NONREF}"),
    ("pfnmap.ttm_fault_maps", "stevens-v9-resend", "ok", f"{_RESEND}: {_NONREF}"),
    (
        "pfnmap.ttm_fault_maps",
        "stevens-v11",
        "ok",
        f"{_V11}: allow_non_refcounted_struct_page = shadow_refcounted_mask",
    ),
    ("pfnmap.ttm_fault_maps", "v6.13", "ok", "v6.13 hva_to_pfn_remapped maps the pfn without a reference"),
    (
        "pfnmap.ttm_fault_maps",
        "v6.13-no-stale-check",
        "ok",
        "mutant of v6.13's fault recheck only; one thread, no race",
    ),
    (
        "pfnmap.ttm_fault_maps",
        "release-adjusted-pfn",
        "ok",
        "mutant of v6.13's release only; no huge mapping",
    ),
    # -- pfnmap.vcpu_map: kvm_vcpu_map of a VRAM pfn while TTM moves the object (allow_unsafe_mappings=0)
    (
        "pfnmap.vcpu_map",
        "v5.11",
        "bug",
        "pre-6.13 kvm_vcpu_map memremap()s a pfn without struct page, no protection",
    ),
    (
        "pfnmap.vcpu_map",
        "v5.12",
        "bug",
        "pre-6.13 kvm_vcpu_map memremap()s a pfn without struct page, no protection",
    ),
    (
        "pfnmap.vcpu_map",
        "f8be156be163",
        "bug",
        "kvm_try_get_pfn succeeds without a reference for !pfn_valid; memremap",
    ),
    ("pfnmap.vcpu_map", "stevens-v9", "ok", f"{_V9}: {_VMAP}"),
    ("pfnmap.vcpu_map", "stevens-v9-resend", "ok", f"{_V9}: {_VMAP}"),
    ("pfnmap.vcpu_map", "stevens-v11", "ok", f"v11 4/8 + 5/8: {_VMAP}"),
    ("pfnmap.vcpu_map", "v6.13", "ok", _613_PIN),
    ("pfnmap.vcpu_map", "v6.13-no-stale-check", "ok", f"{_613_PIN} (the mutant changes only the fault)"),
    ("pfnmap.vcpu_map", "release-adjusted-pfn", "ok", f"{_613_PIN} (the mutant changes only the fault)"),
    # -- pfnmap.vcpu_map_unsafe: the same with allow_unsafe_mappings=1
    (
        "pfnmap.vcpu_map_unsafe",
        "v5.11",
        "bug",
        "no such parameter before Stevens' series: always unprotected",
    ),
    (
        "pfnmap.vcpu_map_unsafe",
        "v5.12",
        "bug",
        "no such parameter before Stevens' series: always unprotected",
    ),
    (
        "pfnmap.vcpu_map_unsafe",
        "f8be156be163",
        "bug",
        "no such parameter before Stevens' series: always unprotected",
    ),
    ("pfnmap.vcpu_map_unsafe", "stevens-v9", "bug", f"{_V9}: {_UNSAFE}"),
    ("pfnmap.vcpu_map_unsafe", "stevens-v9-resend", "bug", f"{_V9}: {_UNSAFE}"),
    ("pfnmap.vcpu_map_unsafe", "stevens-v11", "bug", f"v11 4/8: {_UNSAFE}"),
    ("pfnmap.vcpu_map_unsafe", "v6.13", "bug", f"68e51d0a437b: {_UNSAFE}"),
    ("pfnmap.vcpu_map_unsafe", "v6.13-no-stale-check", "bug", f"68e51d0a437b: {_UNSAFE}"),
    ("pfnmap.vcpu_map_unsafe", "release-adjusted-pfn", "bug", f"68e51d0a437b: {_UNSAFE}"),
    # -- pfnmap.notifier_race: a fault on TTM's head page races with its teardown; every page comes back
    (
        "pfnmap.notifier_race",
        "v5.11",
        "bug",
        "v5.11 follow_pfn() drops the PTE lock before kvm_get_pfn() (bd2fae8da794)",
    ),
    (
        "pfnmap.notifier_race",
        "v5.12",
        "ok",
        "bd2fae8da794: the get runs under the PTE lock; the release puts it",
    ),
    ("pfnmap.notifier_race", "f8be156be163", "ok", f"{_F8}, under the PTE lock; the release puts it"),
    (
        "pfnmap.notifier_race",
        "stevens-v9",
        "bug",
        f"{_V9} keeps the lookup's reference and {_V9_6} never puts it",
    ),
    (
        "pfnmap.notifier_race",
        "stevens-v9-resend",
        "ok",
        f"{_RESEND}: kvm_release_page_clean() after the unlock",
    ),
    (
        "pfnmap.notifier_race",
        "stevens-v11",
        "bug",
        f"{_V11} marks accessed_page (no ref) after a stale fault; {_V11_1} WARNs",
    ),
    (
        "pfnmap.notifier_race",
        "v6.13",
        "ok",
        "v6.13: no reference on remapped pfns; is_page_fault_stale under mmu_lock",
    ),
    (
        "pfnmap.notifier_race",
        "v6.13-no-stale-check",
        "bug",
        "mutant: without the recheck the guest writes a freed page",
    ),
    (
        "pfnmap.notifier_race",
        "release-adjusted-pfn",
        "ok",
        "mutant differs only for huge mappings; none here",
    ),
    # -- pfnmap.stale_fault_accessed: a stale fault must not touch a page it holds no reference to
    (
        "pfnmap.stale_fault_accessed",
        "v5.11",
        "bug",
        "v5.11 follow_pfn() race: get_page on the freed head, freed twice",
    ),
    (
        "pfnmap.stale_fault_accessed",
        "v5.12",
        "ok",
        "kvm_release_pfn_clean puts the reference taken under the PTE lock",
    ),
    (
        "pfnmap.stale_fault_accessed",
        "f8be156be163",
        "ok",
        "kvm_release_pfn_clean puts the reference taken under the PTE lock",
    ),
    (
        "pfnmap.stale_fault_accessed",
        "stevens-v9",
        "bug",
        f"{_V9} keeps the reference, {_V9_6} never puts it: page leak",
    ),
    (
        "pfnmap.stale_fault_accessed",
        "stevens-v9-resend",
        "ok",
        f"{_RESEND} marks and puts a page it still holds",
    ),
    (
        "pfnmap.stale_fault_accessed",
        "stevens-v11",
        "bug",
        f"{_V11}: accessed_page 'Does NOT have an elevated refcount'",
    ),
    (
        "pfnmap.stale_fault_accessed",
        "v6.13",
        "ok",
        "8eaa98004b23: kvm_release_faultin_page does not mark an unused page",
    ),
    (
        "pfnmap.stale_fault_accessed",
        "v6.13-no-stale-check",
        "ok",
        "no guest here: the stale SPTE is never used; no ref",
    ),
    (
        "pfnmap.stale_fault_accessed",
        "release-adjusted-pfn",
        "ok",
        "mutant differs only for huge mappings; none here",
    ),
    # -- pfnmap.hugepage_release: a 2M SPTE over two refcounted 4K pages; get and put must hit one page
    (
        "pfnmap.hugepage_release",
        "f8be156be163",
        "ok",
        "before v5.16 the adjusted pfn was a local of __direct_map",
    ),
    ("pfnmap.hugepage_release", "stevens-v9", "bug", f"{_V9_6} never puts the GUP reference: page leak"),
    (
        "pfnmap.hugepage_release",
        "stevens-v9-resend",
        "bug",
        f"{_RESEND} puts pfn_to_page(fault->pfn) after the huge-page adjust",
    ),
    (
        "pfnmap.hugepage_release",
        "stevens-v11",
        "bug",
        f"{_V11}: a stale fault marks the truncated page; {_V11_1} WARNs",
    ),
    (
        "pfnmap.hugepage_release",
        "v6.13",
        "ok",
        "8dd861cc07e2: put fault->refcounted_page, not the adjusted pfn",
    ),
    ("pfnmap.hugepage_release", "release-adjusted-pfn", "bug", "mutant = v5.16..v6.12 before 8dd861cc07e2"),
)
