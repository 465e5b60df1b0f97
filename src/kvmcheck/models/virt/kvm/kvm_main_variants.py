"""virt/kvm/kvm_main.c at each version of seed 004, each a patch on the v6.8 model (kvm_main.py).

v5.12          -- bd2fae8da794 "KVM: do not assume PTE is writable after follow_pfn"
                  (v5.12-rc): hva_to_pfn_remapped uses follow_pte, checks pte_write and
                  calls kvm_get_pfn(pfn) under the PTE lock; kvm_get_pfn is a plain
                  get_page() on any pfn kvm_is_reserved_pfn() does not exclude, and
                  kvm_release_pfn_clean a plain put_page().
v5.11          -- before it: follow_pfn() (PTE lock dropped), writable assumed, and
                  kvm_get_pfn(pfn) after the lock is gone.
f8be156be163   -- "KVM: do not allow mapping valid but non-reference-counted pages"
                  (N. Piggin, CVE-2021-22543; first released in v5.13 -- there was no
                  v5.13-rc8): kvm_try_get_pfn = reserved -> no ref, else
                  get_page_unless_zero(); failure -> -EFAULT.  This is the v6.8 base's
                  behaviour; the release keeps v5.13's form (no accessed marking).
stevens-v9     -- David Stevens, "[PATCH v9 3/6] KVM: mmu: Improve handling of
                  non-refcounted pfns" (2023-09-11,
                  <20230911021637.1941096-4-stevensd@google.com>), as posted: the lookup
                  reports ``is_refcounted_page``; a pfn KVM could not take a reference
                  to is still returned to callers plugged into the mmu notifier
                  (``guarded_by_mmu_notifier``: the x86 fault), and refused to others
                  unless the module parameter ``allow_unsafe_mappings`` is set.
                  kvm_follow_refcounted_pfn() keeps the reference it was handed (no
                  put when the caller passed no FOLL_GET: what Sean asked about on
                  2024-02-13, <ZcrkhTn1Da5-vND2@google.com>).  The x86 half is in
                  mmu_variants.py (6/6 as posted, and as resent: stevens-v9-resend
                  runs this same kvm_main).
stevens-v11    -- "[PATCH v11 4/8] KVM: mmu: Improve handling of non-refcounted pfns"
                  (2024-02-29, <20240229025759.1187910-5-stevensd@google.com>): FOLL_GET
                  is honoured -- without it kvm_follow_refcounted_pfn() puts the page
                  and still outputs it as ``refcounted_page``; with Sean's "[PATCH v11
                  1/8] KVM: Assert that a page's refcount is elevated when marking
                  accessed/dirty" (<20240229025759.1187910-2-stevensd@google.com>).
v6.13          -- "KVM: Stop grabbing references to PFNMAP'd pages" (Sean
                  Christopherson, v13, merged for v6.13): kvm_follow_pfn() outputs the
                  ``refcounted_page`` KVM holds (GUP'd pages only); remapped pfns get no
                  reference at all (follow_pfnmap_start, 8b15c3764c05); kvm_vcpu_map pins
                  with FOLL_PIN (2bcb52a3602b) and refuses what it cannot pin unless
                  allow_unsafe_mappings (68e51d0a437b); kvm_release_faultin_page()
                  (dc06193532af) asserts mmu_lock unless the page was unused.
"""

from __future__ import annotations

from kvmcheck.kernel import kmap, kunmap, lockdep_is_held, memremap, memunmap
from kvmcheck.kernel._core import warn
from kvmcheck.models.mm.memory import (
    EAGAIN,
    EFAULT,
    EINVAL,
    FollowPfnmapArgs,
    VmArea,
    fixup_user_fault,
    follow_pfn,
    follow_pfnmap_end,
    follow_pfnmap_start,
)
from kvmcheck.models.mm.page import (
    Page,
    SetPageDirty,
    dump_page,
    get_page,
    get_page_unless_zero,
    mark_page_accessed,
    page_ref_count,
    put_page,
    unpin_user_page,
)
from kvmcheck.models.virt.kvm.kvm_host import Kvm
from kvmcheck.models.virt.kvm.kvm_main import (
    KVM_PFN_ERR_RO_FAULT,
    KvmFollowPfn,
    KvmHostMap,
    KvmMain,
    is_error_noslot_pfn,
    is_error_pfn,
)


class KvmMainV512(KvmMain):
    """v5.12: follow_pte + kvm_get_pfn under the PTE lock; release = put_page if not reserved."""

    version = "v5.12"

    def hva_to_pfn_remapped_get(self, kvm: Kvm, kfp: KvmFollowPfn, pfn: int) -> int:
        """Under the PTE lock (v5.12): kvm_get_pfn(), a plain get_page (0 -> 1 on a TTM tail page)."""
        self.kvm_get_pfn(kvm, pfn)
        return 0

    def kvm_is_reserved_pfn(self, kvm: Kvm, pfn: int) -> bool:
        """kvm_is_reserved_pfn() (v5.11 .. v5.19): !pfn_valid, or PageReserved and not the zero page."""
        page = kvm.mm.pages.get(pfn)
        if page is None:
            return True
        return page.reserved and not page.zero_page

    def kvm_get_pfn(self, kvm: Kvm, pfn: int) -> None:
        """kvm_get_pfn() (v5.11, v5.12): get_page() unless reserved -- whatever the count is."""
        if not self.kvm_is_reserved_pfn(kvm, pfn):
            get_page(kvm.mm.pages[pfn])

    def kvm_pfn_to_refcounted_page(self, kvm: Kvm, pfn: int) -> Page | None:
        """(v5.x has kvm_is_reserved_pfn instead; the same guess)."""
        return None if self.kvm_is_reserved_pfn(kvm, pfn) else kvm.mm.pages[pfn]

    def kvm_release_pfn_clean(self, kvm: Kvm, pfn: int) -> None:
        """kvm_release_pfn_clean() (v5.11 .. v5.19): put_page() unless error or reserved."""
        if not is_error_noslot_pfn(pfn) and not self.kvm_is_reserved_pfn(kvm, pfn):
            put_page(kvm.mm.pages[pfn])


class KvmMainV511(KvmMainV512):
    """v5.11: follow_pfn() drops the PTE lock before kvm_get_pfn(); the PTE is assumed writable."""

    version = "v5.11"

    def hva_to_pfn_remapped(self, kvm: Kvm, vma: VmArea, kfp: KvmFollowPfn) -> tuple[int, int]:
        """hva_to_pfn_remapped() (v5.11): follow_pfn, fixup_user_fault, follow_pfn, kvm_get_pfn."""
        r, pfn, gen = follow_pfn(vma, kfp.hva)
        if r:
            r, unlocked = fixup_user_fault(kvm.mm, kfp.hva, kfp.write)
            if unlocked:
                return EAGAIN, 0
            if r:
                return r, 0
            r, pfn, gen = follow_pfn(vma, kfp.hva)
            if r:
                return r, 0
        kfp.map_writable, kfp.gen = True, gen  # the bug bd2fae8da794 fixed
        self.kvm_get_pfn(kvm, pfn)  # the PTE lock is no longer held
        return 0, pfn


class KvmMainF8be156be163(KvmMainV512):
    """f8be156be163 (v5.13): kvm_try_get_pfn() -- get_page_unless_zero -- and -EFAULT if it fails."""

    version = "f8be156be163"

    def hva_to_pfn_remapped_get(self, kvm: Kvm, kfp: KvmFollowPfn, pfn: int) -> int:
        """Under the PTE lock (v5.13): kvm_try_get_pfn(), -EFAULT if it fails -- the patch itself."""
        return KvmMain.hva_to_pfn_remapped_get(self, kvm, kfp, pfn)

    def kvm_try_get_pfn(self, kvm: Kvm, pfn: int) -> bool:
        """kvm_try_get_pfn() (f8be156be163): reserved -> 1 (no ref); else get_page_unless_zero()."""
        if self.kvm_is_reserved_pfn(kvm, pfn):
            return True
        return get_page_unless_zero(kvm.mm.pages[pfn])


class KvmMainStevensV9(KvmMain):
    """Stevens v9 3/6: is_refcounted_page; non-refcounted pfns only under mmu-notifier protection.

    As posted, kvm_follow_refcounted_pfn() only records that the page is refcounted:
    the reference GUP (or get_page_unless_zero) took stays with the caller, whatever
    its FOLL_GET -- "v9 instead returns pfns with a refcount" (the author, 2023-09-19).
    """

    version = "stevens-v9"

    def kvm_resolve_pfn(self, kvm: Kvm, kfp: KvmFollowPfn, pfn: int, gup: bool) -> int:
        """hva_to_pfn_fast/_slow (v9): the GUP'd page goes through kvm_follow_refcounted_pfn()."""
        if gup:
            self.kvm_follow_refcounted_pfn(kfp, kvm.mm.pages[pfn])
        return pfn

    def kvm_follow_refcounted_pfn(self, kfp: KvmFollowPfn, page: Page) -> None:
        """kvm_follow_refcounted_pfn() (v9 3/6): set is_refcounted_page; the reference is kept."""
        kfp.is_refcounted_page = True

    def kvm_is_ad_tracked_page(self, page: Page) -> bool:
        """kvm_is_ad_tracked_page() (v6.6): not PageReserved."""
        return not page.reserved

    def kvm_set_page_accessed(self, page: Page | None) -> None:
        """kvm_set_page_accessed() (exported by v9 6/6): mark_page_accessed if A/D-tracked."""
        if page is not None and self.kvm_is_ad_tracked_page(page):
            mark_page_accessed(page)

    def kvm_set_page_dirty(self, page: Page | None) -> None:
        """kvm_set_page_dirty() (exported by v9 6/6): SetPageDirty if A/D-tracked."""
        if page is not None and self.kvm_is_ad_tracked_page(page):
            SetPageDirty(page)

    def kvm_release_page_clean(self, page: Page) -> None:
        """kvm_release_page_clean() (v6.6): mark accessed, then put_page()."""
        self.kvm_set_page_accessed(page)
        put_page(page)

    def hva_to_pfn_remapped_get(self, kvm: Kvm, kfp: KvmFollowPfn, pfn: int) -> int:
        """Under the PTE lock (v9): try a reference; the result says who may use the pfn."""
        page = self.kvm_pfn_to_refcounted_page(kvm, pfn)
        if page is not None and get_page_unless_zero(page):
            self.kvm_follow_refcounted_pfn(kfp, page)
        return 0

    def hva_to_pfn_remapped_out(self, kvm: Kvm, kfp: KvmFollowPfn, r: int, pfn: int) -> tuple[int, int]:
        """After the unlock (v9): without a reference, only guarded callers get the pfn."""
        if is_error_pfn(pfn) or kfp.is_refcounted_page:
            return r, pfn
        # the same struct page as under the lock: the memory map (pfn_to_page) never changes
        if self.kvm_pfn_to_refcounted_page(kvm, pfn) is not None and not kfp.allow_non_refcounted_struct_page:
            r = EFAULT  # "TODO: remove once all callers play nice with non-refcounted struct pages"
        elif not kfp.guarded_by_mmu_notifier and not self.allow_unsafe_mappings:
            r = EFAULT
        return r, pfn

    def kvm_vcpu_map(self, kvm: Kvm, gfn: int) -> tuple[int, KvmHostMap | None]:
        """kvm_vcpu_map() (v9): not guarded by the notifier, so non-refcounted pfns need the opt-in."""
        r, m = KvmMain.kvm_vcpu_map(self, kvm, gfn)
        if m is not None:
            m.refcounted = self.kvm_pfn_to_refcounted_page(kvm, m.pfn) is not None and m.page is not None
        return r, m

    def kvm_vcpu_unmap(self, kvm: Kvm, kmap_: KvmHostMap, dirty: bool) -> None:
        """kvm_vcpu_unmap() (v9): release only a reference that was taken."""
        if kmap_.page is not None:
            kunmap(kmap_.hva)
        else:
            memunmap(kmap_.hva)
        if kmap_.refcounted:
            if dirty:
                self.kvm_release_pfn_dirty(kvm, kmap_.pfn)
            else:
                self.kvm_release_pfn_clean(kvm, kmap_.pfn)


class KvmMainStevensV11(KvmMainStevensV9):
    """Stevens v11 1/8 + 4/8 + 5/8: FOLL_GET honoured; refcounted_page; A/D marking asserts a count.

    4/8: kvm_follow_refcounted_pfn() drops the GUP reference when the caller did not
    pass FOLL_GET (the put_page Sean asked back for on 2024-02-13) and outputs the
    page as ``refcounted_page`` anyway ("will not have an elevated refcount").
    1/8 (Sean's): kvm_is_ad_tracked_page() does WARN_ON_ONCE(!page_count(page)) and
    then declines to mark the page.  5/8: kvm_vcpu_map keeps the reference (FOLL_GET)
    and kvm_vcpu_unmap releases it only if the page was refcounted (as v9's).
    """

    version = "stevens-v11"

    def kvm_follow_refcounted_pfn(self, kfp: KvmFollowPfn, page: Page) -> None:
        """kvm_follow_refcounted_pfn() (v11 4/8): put_page() unless FOLL_GET; refcounted_page = page."""
        if not kfp.get:
            put_page(page)
        kfp.refcounted_page = page
        kfp.is_refcounted_page = True

    def kvm_is_ad_tracked_page(self, page: Page) -> bool:
        """kvm_is_ad_tracked_page() (v11 1/8): a page nobody holds must not be marked (WARN_ON_ONCE)."""
        if page_ref_count(page) == 0:  # page_count(): the head's count; these pages are not compound
            warn(
                "warn",
                f"WARN_ON_ONCE(!page_count(page)) in kvm_is_ad_tracked_page: KVM marks pfn {page.pfn} "
                "accessed/dirty, but nobody holds a reference to it: the page was freed",
                "WARNING: at virt/kvm/kvm_main.c kvm_is_ad_tracked_page (WARN_ON_ONCE(!page_count(page)))",
                dump_page(page, "KVM marks it accessed/dirty with a zero refcount"),
            )
            return False
        return not page.reserved


class KvmMainV613(KvmMain):
    """v6.13: references only on GUP'd pages (``refcounted_page``); FOLL_PIN for kvm_vcpu_map."""

    version = "v6.13"

    def kvm_resolve_pfn(self, kvm: Kvm, kfp: KvmFollowPfn, pfn: int, gup: bool) -> int:
        """kvm_resolve_pfn() (v6.13): record the page a GUP reference (or pin) was taken on."""
        kfp.refcounted_page = kvm.mm.pages[pfn] if gup else None
        return pfn

    def hva_to_pfn_remapped(self, kvm: Kvm, vma: VmArea, kfp: KvmFollowPfn) -> tuple[int, int]:
        """hva_to_pfn_remapped() (v6.13): no reference; a pin is refused unless allow_unsafe_mappings."""
        if kfp.pin and not self.allow_unsafe_mappings:
            return EINVAL, 0
        args = FollowPfnmapArgs()
        r = follow_pfnmap_start(vma, kfp.hva, args)
        if r:
            r, unlocked = fixup_user_fault(kvm.mm, kfp.hva, kfp.write)
            if unlocked:
                return EAGAIN, 0
            if r:
                return r, 0
            r = follow_pfnmap_start(vma, kfp.hva, args)
            if r:
                return r, 0
        if kfp.write and not args.writable:
            pfn = KVM_PFN_ERR_RO_FAULT
        else:
            kfp.map_writable, kfp.gen = args.writable, args.gen
            pfn = self.kvm_resolve_pfn(kvm, kfp, args.pfn, gup=False)
        follow_pfnmap_end(vma)
        return 0, pfn

    def kvm_release_faultin_page(self, kvm: Kvm, page: Page | None, unused: bool, dirty: bool) -> None:
        """kvm_release_faultin_page() (include/linux/kvm_host.h, v6.13): under mmu_lock unless unused."""
        if not (lockdep_is_held(kvm.mmu_lock) or unused):
            warn(
                "assert-held",
                "lockdep_assert_once(lockdep_is_held(&kvm->mmu_lock) || unused) failed: "
                "kvm->mmu_lock is not held",
                "WARNING: kvm_release_faultin_page: lockdep_assert_once failed",
            )
        if page is None:
            return
        if unused:
            put_page(page)
        else:
            if dirty:
                SetPageDirty(page)  # kvm_release_page_dirty -> kvm_set_page_dirty
            mark_page_accessed(page)  # kvm_release_page_clean -> kvm_set_page_accessed
            put_page(page)

    def kvm_vcpu_map(self, kvm: Kvm, gfn: int) -> tuple[int, KvmHostMap | None]:
        """__kvm_vcpu_map() (v6.13): FOLL_PIN; kmap the pinned page, memremap only if unsafe is allowed."""
        kfp = KvmFollowPfn(hva=self.gfn_to_hva(kvm, gfn), write=True, pin=True)
        pfn = self.hva_to_pfn_kfp(kvm, kfp)
        if is_error_noslot_pfn(pfn) or is_error_pfn(pfn):
            return EINVAL, None
        page = kfp.refcounted_page  # map->pinned_page
        if page is not None:
            return 0, KvmHostMap(pfn, kmap(page), page, kfp.gen, page=page)
        if self.allow_unsafe_mappings:
            mem = kvm.mm.pages.get(pfn) or kvm.mm.iomem[pfn]
            return 0, KvmHostMap(pfn, memremap(pfn), mem, kfp.gen, refcounted=False)
        return EFAULT, None

    def kvm_vcpu_unmap(self, kvm: Kvm, kmap_: KvmHostMap, dirty: bool) -> None:
        """kvm_vcpu_unmap() (v6.13): unmap; dirty and unpin the pinned page."""
        if kmap_.page is not None:
            kunmap(kmap_.hva)
            if dirty:
                SetPageDirty(kmap_.page)
            unpin_user_page(kmap_.page)
        else:
            memunmap(kmap_.hva)


VARIANTS: dict[str, type[KvmMain]] = {
    "v5.11": KvmMainV511,
    "v5.12": KvmMainV512,
    "f8be156be163": KvmMainF8be156be163,
    "stevens-v9": KvmMainStevensV9,
    "stevens-v9-resend": KvmMainStevensV9,  # the resent 6/6 changed only the x86 mmu
    "stevens-v11": KvmMainStevensV11,
    "v6.13": KvmMainV613,
}
