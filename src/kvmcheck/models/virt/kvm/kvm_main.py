"""virt/kvm/kvm_main.c: the mmu notifier protocol and gfn/hva -> pfn (Linux v6.8).

Functions modelled: kvm_mmu_notifier_invalidate_range_start/_end,
kvm_mmu_invalidate_begin/_end, kvm_memslots, gfn_to_hva_memslot, hva_to_pfn
(GUP, then hva_to_pfn_remapped for VM_IO/VM_PFNMAP VMAs), kvm_try_get_pfn,
kvm_pfn_to_refcounted_page, kvm_release_pfn_clean/_dirty, kvm_set_pfn_dirty/
_accessed, kvm_vcpu_map/kvm_vcpu_unmap.  kvm_main_variants.py holds the earlier
and later versions (v5.11, v5.12, f8be156be163, stevens-v9, v6.13) as patches.
GUP fast and slow are one step here (get_user_pages): they differ only in
mmap_lock, which no scenario observes on that path.

Memslots are read under kvm->srcu (kvm_memslots() checks it, as the kernel's
srcu_dereference_check does).

The invalidation protocol (what the pfn cache relies on):
  range_start: mn_active_invalidate_count++ (under mn_invalidate_lock), then
               the pfn caches are invalidated, then (range overlaps a memslot)
               mmu_invalidate_begin under mmu_lock: in_progress++.
  range_end:   (range overlaps a memslot) under mmu_lock: mmu_invalidate_seq++,
               smp_wmb, in_progress--; then mn_active_invalidate_count--.
When the build has an x86 ``mmu`` subsystem (mmu.py; stage2_fault.py), range_start also
zaps the SPTEs of the range under mmu_lock (kvm_mmu_unmap_gfn_range, the
handler __kvm_handle_hva_range runs after on_lock = kvm_mmu_invalidate_begin).

Reference contract (v5.13 .. v6.12): hva_to_pfn returns a pfn with a reference
taken iff kvm_pfn_to_refcounted_page(pfn) is a page; kvm_release_pfn_clean
guesses the same way and drops it.  Pages KVM cannot refcount (tail pages of a
non-compound block: count 0) are refused with -EFAULT (f8be156be163).
"""

from __future__ import annotations

from dataclasses import dataclass

from kvmcheck.kernel import (
    READ_ONCE,
    WRITE_ONCE,
    KernelMapping,
    down_read,
    kmap,
    kunmap,
    lockdep_is_held,
    memremap,
    memunmap,
    smp_wmb,
    spin_lock,
    spin_unlock,
    srcu_dereference_check,
    srcu_read_lock,
    srcu_read_unlock,
    up_read,
    write_lock,
    write_unlock,
)
from kvmcheck.models.build import Subsystem
from kvmcheck.models.mm.memory import (
    EAGAIN,
    EFAULT,
    EINVAL,
    VM_IO,
    VM_PFNMAP,
    VmArea,
    find_vma,
    fixup_user_fault,
    follow_pte,
    pte_unmap_unlock,
)
from kvmcheck.models.mm.mm import MmStruct
from kvmcheck.models.mm.mm import __get_user_pages as get_user_pages_pfn
from kvmcheck.models.mm.page import (
    Page,
    SetPageDirty,
    get_page_unless_zero,
    mark_page_accessed,
    put_page,
)
from kvmcheck.models.virt.kvm.kvm_host import KVM_HVA_ERR_BAD, KVM_PFN_ERR_FAULT, Kvm, KvmMemslots


def kvm_memslots(kvm: Kvm) -> KvmMemslots:
    """``kvm_memslots()``: srcu_dereference_check(kvm->memslots, &kvm->srcu, slots_lock held)."""
    slots: KvmMemslots = srcu_dereference_check(kvm, "memslots", kvm.srcu, lockdep_is_held(kvm.slots_lock))
    return slots


def gfn_to_hva_memslot(slots: KvmMemslots, gfn: int) -> int:
    """gfn_to_hva_memslot() (include/linux/kvm_host.h, v6.8): the slot's hva, or KVM_HVA_ERR_BAD."""
    return slots.gfn_to_hva.get(gfn, KVM_HVA_ERR_BAD)


def _overlaps_memslot(kvm: Kvm, start: int, end: int) -> bool:
    """The memslot lookup of __kvm_handle_hva_range(), under kvm->srcu."""
    idx = srcu_read_lock(kvm.srcu)
    slots = kvm_memslots(kvm)
    hit = any(start <= hva < end for hva in slots.gfn_to_hva.values())
    srcu_read_unlock(kvm.srcu, idx)
    return hit


def _gfns_in_range(kvm: Kvm, start: int, end: int) -> list[int]:
    """The gfns whose hva lies in [start, end) (memslots are fixed in the pfnmap scenarios)."""
    slots: KvmMemslots = kvm.__dict__["memslots"]
    return sorted(gfn for gfn, hva in slots.gfn_to_hva.items() if start <= hva < end)


def kvm_mmu_invalidate_begin(kvm: Kvm) -> None:
    """kvm_mmu_invalidate_begin(): the build's kvm_main.c (KvmMain.kvm_mmu_invalidate_begin)."""
    kvm.build.kvm_main.kvm_mmu_invalidate_begin(kvm)


def kvm_mmu_invalidate_end(kvm: Kvm) -> None:
    """kvm_mmu_invalidate_end(): the build's kvm_main.c (KvmMain.kvm_mmu_invalidate_end)."""
    kvm.build.kvm_main.kvm_mmu_invalidate_end(kvm)


def kvm_mmu_notifier_invalidate_range_start(mm: MmStruct, kvm: Kvm, start: int, end: int) -> None:
    """kvm_mmu_notifier_invalidate_range_start() (virt/kvm/kvm_main.c, v6.8): count++, caches, begin."""
    spin_lock(kvm.mn_invalidate_lock)
    kvm.mn_active_invalidate_count = kvm.mn_active_invalidate_count + 1
    spin_unlock(kvm.mn_invalidate_lock)
    kvm.build.pfncache.gfn_to_pfn_cache_invalidate_start(kvm, start, end)
    if _overlaps_memslot(kvm, start, end):
        write_lock(kvm.mmu_lock)
        kvm_mmu_invalidate_begin(kvm)
        if "mmu" in kvm.build.versions:  # the handler: kvm_mmu_unmap_gfn_range()
            kvm.build.mmu.kvm_unmap_gfn_range(kvm, _gfns_in_range(kvm, start, end))
        write_unlock(kvm.mmu_lock)


def kvm_mmu_notifier_invalidate_range_end(mm: MmStruct, kvm: Kvm, start: int, end: int) -> None:
    """kvm_mmu_notifier_invalidate_range_end() (virt/kvm/kvm_main.c, v6.8): end, then count--."""
    if _overlaps_memslot(kvm, start, end):
        write_lock(kvm.mmu_lock)
        kvm_mmu_invalidate_end(kvm)
        write_unlock(kvm.mmu_lock)
    spin_lock(kvm.mn_invalidate_lock)
    kvm.mn_active_invalidate_count = kvm.mn_active_invalidate_count - 1
    spin_unlock(kvm.mn_invalidate_lock)


def kvm_init_mmu_notifier(kvm: Kvm) -> None:
    """kvm_init_mmu_notifier() (virt/kvm/kvm_main.c, v6.8): subscribe the VM to its mm's notifier."""
    kvm.mm.notifiers.append(
        (
            lambda mm, s, e: kvm_mmu_notifier_invalidate_range_start(mm, kvm, s, e),
            lambda mm, s, e: kvm_mmu_notifier_invalidate_range_end(mm, kvm, s, e),
        )
    )


KVM_PFN_ERR_RO_FAULT = -3  # KVM_PFN_ERR_MASK + 2: a write fault on a read-only PTE


def is_error_pfn(pfn: int) -> bool:
    """is_error_pfn() (include/linux/kvm_host.h): any error pfn."""
    return pfn < 0


@dataclass
class KvmFollowPfn:
    """``struct kvm_follow_pfn`` (v6.13; Stevens' series before it): one gfn -> pfn lookup.

    Earlier versions pass the same inputs as arguments (write_fault, &writable);
    the outputs ``refcounted_page`` (v6.13) and ``is_refcounted_page`` (stevens-v9)
    exist only in those versions.  ``gen`` is a ghost: the generation of the memory
    the host PTE mapped when KVM read it (page.py), carried into the SPTE.
    """

    hva: int
    write: bool = True  # FOLL_WRITE
    pin: bool = False  # FOLL_PIN (v6.13 kvm_vcpu_map)
    get: bool = True  # FOLL_GET: the caller keeps the reference (stevens-v9's guarded faults do not)
    guarded_by_mmu_notifier: bool = False  # stevens-v9
    allow_non_refcounted_struct_page: bool = False  # stevens-v9 (true for the x86-64 TDP fault)
    map_writable: bool = False
    refcounted_page: Page | None = None  # v6.13: the page KVM holds a reference to, if any
    is_refcounted_page: bool = False  # stevens-v9
    pfn: int = KVM_PFN_ERR_FAULT
    gen: int = 0


@dataclass
class KvmHostMap:
    """``struct kvm_host_map``: a kvm_vcpu_map() of one guest page."""

    pfn: int
    hva: KernelMapping
    mem: Page  # the memory behind the mapping (struct page, or device memory)
    gen: int  # ghost
    page: Page | None = None  # map->page (pre-6.13) / map->pinned_page (v6.13)
    refcounted: bool = True  # stevens-v9: whether unmap releases a reference


class KvmMain(Subsystem):
    """virt/kvm/kvm_main.c at v6.8: the functions other subsystems call and variants patch.

    ``allow_unsafe_mappings`` is the module parameter of 68e51d0a437b (v6.13) and of
    Stevens' series; versions without it ignore it.
    """

    subsystem = "kvm_main"
    version = "v6.8"

    def __init__(self, allow_unsafe_mappings: bool = False) -> None:
        self.allow_unsafe_mappings = allow_unsafe_mappings

    # -- the mmu_invalidate counters -------------------------------------------------------
    def kvm_mmu_invalidate_begin(self, kvm: Kvm) -> None:
        """kvm_mmu_invalidate_begin() (virt/kvm/kvm_main.c, v6.8): under mmu_lock, in_progress++.

        The C's accesses to the two counters are plain; here they are marked (READ_ONCE/
        WRITE_ONCE) so that, under memory_model="lkmm", a lockless reader's stale value
        has a meaning (models/virt/kvm/mmu_invalidate.py takes the same liberty).  Under
        SC they are the same accesses.
        """
        WRITE_ONCE(kvm, "mmu_invalidate_in_progress", READ_ONCE(kvm, "mmu_invalidate_in_progress") + 1)

    def kvm_mmu_invalidate_end(self, kvm: Kvm) -> None:
        """kvm_mmu_invalidate_end() (virt/kvm/kvm_main.c, v6.8): under mmu_lock, seq++; smp_wmb; count--.

        The smp_wmb() pairs with the smp_rmb() of a lockless mmu_invalidate_retry()
        (the count read, then the sequence): the sequence is bumped before the count drops.
        """
        WRITE_ONCE(kvm, "mmu_invalidate_seq", READ_ONCE(kvm, "mmu_invalidate_seq") + 1)
        smp_wmb()
        WRITE_ONCE(kvm, "mmu_invalidate_in_progress", READ_ONCE(kvm, "mmu_invalidate_in_progress") - 1)

    # -- gfn/hva -> pfn ------------------------------------------------------------------
    def hva_to_pfn(self, kvm: Kvm, hva: int) -> int:
        """``hva_to_pfn(addr, write_fault=true)``: the pfn, with a reference if refcounted."""
        return self.hva_to_pfn_kfp(kvm, KvmFollowPfn(hva=hva))

    def hva_to_pfn_kfp(self, kvm: Kvm, kfp: KvmFollowPfn) -> int:
        """hva_to_pfn() (virt/kvm/kvm_main.c, v6.8): GUP; else, for VM_IO|VM_PFNMAP, the PTE."""
        pfn, gen = get_user_pages_pfn(kvm.mm, kfp.hva, pin=kfp.pin)  # hva_to_pfn_fast/_slow
        if pfn:
            kfp.map_writable, kfp.gen = True, gen
            kfp.pfn = self.kvm_resolve_pfn(kvm, kfp, pfn, gup=True)
            return kfp.pfn
        mm = kvm.mm
        down_read(mm.mmap_lock)
        while True:
            vma = find_vma(mm, kfp.hva)
            if vma is None or not vma.vm_flags & (VM_IO | VM_PFNMAP):
                pfn = KVM_PFN_ERR_FAULT
                break
            r, pfn = self.hva_to_pfn_remapped(kvm, vma, kfp)
            if r == EAGAIN:
                continue
            if r < 0:
                pfn = KVM_PFN_ERR_FAULT
            break
        up_read(mm.mmap_lock)
        kfp.pfn = pfn
        return pfn

    def kvm_resolve_pfn(self, kvm: Kvm, kfp: KvmFollowPfn, pfn: int, gup: bool) -> int:
        """What a version records about the pfn it resolved (nothing before Stevens' series)."""
        return pfn

    def hva_to_pfn_remapped(self, kvm: Kvm, vma: VmArea, kfp: KvmFollowPfn) -> tuple[int, int]:
        """hva_to_pfn_remapped() (v5.12 .. v6.8): follow_pte; the pfn is resolved under the PTE lock.

        The versions differ only in what they do with the pfn under the lock
        (:meth:`hva_to_pfn_remapped_get`) and, in Stevens' series, after it
        (:meth:`hva_to_pfn_remapped_out`): a variant overrides those, not this.
        """
        mm = kvm.mm
        pte = follow_pte(mm, kfp.hva)
        if pte is None:
            r, unlocked = fixup_user_fault(mm, kfp.hva, kfp.write)
            if unlocked:
                return EAGAIN, 0
            if r:
                return r, 0
            pte = follow_pte(mm, kfp.hva)
            if pte is None:
                return EINVAL, 0
        r = 0
        if kfp.write and not pte.write:
            pfn = KVM_PFN_ERR_RO_FAULT
        else:
            kfp.map_writable, pfn, kfp.gen = pte.write, pte.pfn, pte.gen
            r = self.hva_to_pfn_remapped_get(kvm, kfp, pfn)
        pte_unmap_unlock(mm)
        return self.hva_to_pfn_remapped_out(kvm, kfp, r, pfn)

    def hva_to_pfn_remapped_get(self, kvm: Kvm, kfp: KvmFollowPfn, pfn: int) -> int:
        """Under the PTE lock (v5.13 .. v6.8): kvm_try_get_pfn(); 0 or -EFAULT."""
        if not self.kvm_try_get_pfn(kvm, pfn):
            return EFAULT  # f8be156be163: a valid page KVM cannot take a reference to
        return 0

    def hva_to_pfn_remapped_out(self, kvm: Kvm, kfp: KvmFollowPfn, r: int, pfn: int) -> tuple[int, int]:
        """After pte_unmap_unlock(): the result as it stands (v5.12 .. v6.8)."""
        return r, pfn

    def kvm_pfn_to_refcounted_page(self, kvm: Kvm, pfn: int) -> Page | None:
        """kvm_pfn_to_refcounted_page() (v6.0 .. v6.12): a valid pfn that is !Reserved or the zero page."""
        page = kvm.mm.pages.get(pfn)  # pfn_valid()
        if page is None:
            return None
        if not page.reserved or page.zero_page:
            return page
        return None

    def kvm_try_get_pfn(self, kvm: Kvm, pfn: int) -> bool:
        """kvm_try_get_pfn() (f8be156be163): no page -> success without a ref; else get_page_unless_zero."""
        page = self.kvm_pfn_to_refcounted_page(kvm, pfn)
        if page is None:
            return True
        return get_page_unless_zero(page)

    def gfn_to_hva(self, kvm: Kvm, gfn: int) -> int:
        """gfn_to_hva_memslot() under kvm->srcu."""
        idx = srcu_read_lock(kvm.srcu)
        hva = gfn_to_hva_memslot(kvm_memslots(kvm), gfn)
        srcu_read_unlock(kvm.srcu, idx)
        return hva

    def kvm_follow_pfn(self, kvm: Kvm, gfn: int, write: bool, guarded: bool = False) -> KvmFollowPfn:
        """__gfn_to_pfn_memslot() / kvm_follow_pfn(): the lookup the x86 fault makes."""
        kfp = KvmFollowPfn(
            hva=self.gfn_to_hva(kvm, gfn),
            write=write,
            get=not guarded,
            guarded_by_mmu_notifier=guarded,
            allow_non_refcounted_struct_page=guarded,
        )
        self.hva_to_pfn_kfp(kvm, kfp)
        return kfp

    # -- releasing what hva_to_pfn took ---------------------------------------------------
    def kvm_release_pfn_clean(self, kvm: Kvm, pfn: int) -> None:
        """kvm_release_pfn_clean() (v6.8): if the pfn has a refcounted page, mark it accessed, put it."""
        if is_error_noslot_pfn(pfn):
            return
        page = self.kvm_pfn_to_refcounted_page(kvm, pfn)
        if page is not None:
            mark_page_accessed(page)  # kvm_release_page_clean -> kvm_set_page_accessed
            put_page(page)

    def kvm_release_pfn_dirty(self, kvm: Kvm, pfn: int) -> None:
        """kvm_release_pfn_dirty(): kvm_set_pfn_dirty, then release."""
        self.kvm_set_pfn_dirty(kvm, pfn)
        self.kvm_release_pfn_clean(kvm, pfn)

    def kvm_set_pfn_dirty(self, kvm: Kvm, pfn: int) -> None:
        """kvm_set_pfn_dirty() (v6.0 .. v6.12): SetPageDirty on a refcounted page, no reference needed."""
        page = self.kvm_pfn_to_refcounted_page(kvm, pfn)
        if page is not None:
            SetPageDirty(page)

    def kvm_set_pfn_accessed(self, kvm: Kvm, pfn: int) -> None:
        """kvm_set_pfn_accessed(): mark_page_accessed on a refcounted page, no reference needed."""
        page = self.kvm_pfn_to_refcounted_page(kvm, pfn)
        if page is not None:
            mark_page_accessed(page)

    # -- direct maps: kvm_vcpu_map ---------------------------------------------------------
    def kvm_vcpu_map(self, kvm: Kvm, gfn: int) -> tuple[int, KvmHostMap | None]:
        """kvm_vcpu_map() (v5.11 .. v6.12): gfn_to_pfn, then kmap or memremap; no notifier protection."""
        kfp = self.kvm_follow_pfn(kvm, gfn, write=True)
        pfn = kfp.pfn
        if is_error_noslot_pfn(pfn) or is_error_pfn(pfn):
            return EINVAL, None
        page = kvm.mm.pages.get(pfn)  # pfn_valid()
        if page is not None:
            return 0, KvmHostMap(pfn, kmap(page), page, kfp.gen, page=page)
        return 0, KvmHostMap(pfn, memremap(pfn), kvm.mm.iomem[pfn], kfp.gen)

    def kvm_vcpu_unmap(self, kvm: Kvm, kmap_: KvmHostMap, dirty: bool) -> None:
        """kvm_vcpu_unmap() (v5.11 .. v6.12): unmap, then kvm_release_pfn(dirty)."""
        if kmap_.page is not None:
            kunmap(kmap_.hva)
        else:
            memunmap(kmap_.hva)
        if dirty:
            self.kvm_release_pfn_dirty(kvm, kmap_.pfn)
        else:
            self.kvm_release_pfn_clean(kvm, kmap_.pfn)


# C-style entry points: dispatch to this VM's build of kvm_main.
def hva_to_pfn(kvm: Kvm, hva: int) -> int:
    """``hva_to_pfn()`` of the VM's kernel build."""
    pfn: int = kvm.build.kvm_main.hva_to_pfn(kvm, hva)
    return pfn


def kvm_release_pfn_clean(kvm: Kvm, pfn: int) -> None:
    """``kvm_release_pfn_clean()`` of the VM's kernel build."""
    kvm.build.kvm_main.kvm_release_pfn_clean(kvm, pfn)


def kvm_vcpu_map(kvm: Kvm, gfn: int) -> tuple[int, KvmHostMap | None]:
    """``kvm_vcpu_map()`` of the VM's kernel build: (0 or -errno, the map)."""
    r: tuple[int, KvmHostMap | None] = kvm.build.kvm_main.kvm_vcpu_map(kvm, gfn)
    return r


def kvm_vcpu_unmap(kvm: Kvm, map_: KvmHostMap, dirty: bool) -> None:
    """``kvm_vcpu_unmap()`` of the VM's kernel build."""
    kvm.build.kvm_main.kvm_vcpu_unmap(kvm, map_, dirty)


def is_error_noslot_pfn(pfn: int) -> bool:
    """is_error_noslot_pfn() (include/linux/kvm_host.h): the pfn is an error or no-slot value."""
    return pfn == KVM_PFN_ERR_FAULT
