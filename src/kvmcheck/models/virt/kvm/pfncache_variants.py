"""Every version of pfncache.c (and of the xen.c lock that guards it) the seed 000 thread touches.

Each pfncache.c version is a small subclass of the v6.8 model (a variant is a
patch); ``build_for(variant)`` pairs it with the xen.c it shipped or was posted with.

pre-9f87791d686d   -- v6.1 .. v6.2-rc: kvm_gpc_deactivate() clears ``active``, unlinks the
                      cache, then calls kvm_gpc_unmap(), which takes refresh_lock (read in
                      the 9f87791d686d patch mail, "KVM: Drop KVM's API to allow temporarily
                      unmapping gfn=>pfn cache").  Activation still reinitialises the fields
                      (5762cb10235 came after 9f87791d686d in the same series).
v6.8               -- the base model (pfncache.py): 9f87791d686d (v6.2) .. v6.8; xen.c v6.8.
v6.8-no-xen-lock   -- v6.8 pfncache.c with 7a36d680658b applied to xen.c alone: what the
                      v6.9 xen.c change would have been without 6addfcf27139.
seed-v1            -- "[PATCH] KVM: pfncache: rework __kvm_gpc_refresh() to fix locking
                      issues" (2024-01-12): hva_to_pfn_retry() no longer touches the gpc;
                      refresh drops gpc->lock around it and, after retaking it, discards the
                      new mapping only if ``uhva`` changed.  On v6.8.
seed-v2            -- the same rework with the discard test the reworded commit message
                      ("KVM: pfncache: clean up and simplify locking mess", 2024-01-23)
                      describes: also discard when ``active`` changed.  That mail carries
                      no code; the code is in the xenfv series ([PATCH v12 20/20] and
                      [PATCH v13 21/21], dwmw2/xenfv), which this variant follows.  On v6.8.
6addfcf27139       -- "KVM: pfncache: simplify locking and make more self-contained" alone:
                      refresh_lock taken by kvm_gpc_refresh, activate and deactivate
                      (guard(mutex)), asserted by __kvm_gpc_refresh; xen.c still v6.8.
v6.9               -- 6addfcf27139 + 7a36d680658b, as merged for v6.9 (tag kvm-x86-xen-6.9).
seed-final         -- the rework rebased on 6addfcf27139, as posted last: "[PATCH 6/6] KVM:
                      pfncache: clean up rwlock abuse" (2024-02-17) and "[PATCH v2 8/8]"
                      (2024-02-27, identical code; not applied): discard if ret, !active or
                      uhva changed, WARN_ON_ONCE(gpc->valid) after retaking the lock; with
                      the series' 7a36d680658b.
seed-final-recheck -- seed-final with mmu_notifier_retry_cache() re-checked under gpc->lock,
                      next to the active/uhva checks: the fix for the finding
                      (docs/findings/pfncache-retry-check-outside-lock.md).
sean-contract      -- Sean Christopherson's proposal in the thread (2024-01-17): the
                      guarding mutex is passed to kvm_gpc_init and asserted held by
                      refresh/activate/deactivate; refresh_lock is dropped.  On v6.8.
"""

from __future__ import annotations

from typing import Any

from kvmcheck.kernel import (
    WARN_ON_ONCE,
    KernelMapping,
    Mutex,
    Struct,
    guard,
    lockdep_assert_held,
    mutex_lock,
    mutex_unlock,
    spin_lock,
    spin_unlock,
    spin_until_cond,
    struct_init,
    write_lock_irq,
    write_unlock_irq,
)
from kvmcheck.models.arch.x86.kvm.xen import Xen, Xen_7a36d680658b
from kvmcheck.models.build import Build
from kvmcheck.models.virt.kvm.kvm_host import KVM_HVA_ERR_BAD, KVM_PFN_ERR_FAULT, PAGE_SIZE, Kvm
from kvmcheck.models.virt.kvm.kvm_main import (
    KvmMain,
    gfn_to_hva_memslot,
    hva_to_pfn,
    is_error_noslot_pfn,
    kvm_memslots,
    kvm_release_pfn_clean,
)
from kvmcheck.models.virt.kvm.pfncache import GfnToPfnCache, Pfncache, c_name, kvm_is_error_hva

EFAULT, EINVAL = -14, -22


class Pre9f87791d686d(Pfncache):
    """Before 9f87791d686d: deactivate unmaps through kvm_gpc_unmap(), under refresh_lock."""

    version = "pre-9f87791d686d"

    def kvm_gpc_activate(self, gpc: GfnToPfnCache, gpa: int, length: int) -> int:
        """kvm_gpc_activate() before 5762cb10235: reinitialise khva/pfn/uhva/valid, then link and refresh."""
        kvm = gpc.kvm
        assert kvm is not None
        assert gpc.lock is not None
        if not gpc.active:  # unlocked read
            gpc.khva = None  # plain writes, no lock held (as in the C code)
            gpc.pfn = KVM_PFN_ERR_FAULT
            gpc.uhva = KVM_HVA_ERR_BAD
            gpc.valid = False
            spin_lock(kvm.gpc_lock)
            kvm.gpc_list = (*kvm.gpc_list, gpc)
            spin_unlock(kvm.gpc_lock)
            write_lock_irq(gpc.lock)
            gpc.active = True
            write_unlock_irq(gpc.lock)
        return self._kvm_gpc_refresh(gpc, gpa, length)

    def kvm_gpc_unmap(self, gpc: GfnToPfnCache) -> None:
        """kvm_gpc_unmap() (removed by 9f87791d686d): invalidate and unmap under refresh_lock."""
        kvm = gpc.kvm
        assert kvm is not None
        assert gpc.lock is not None
        assert gpc.refresh_lock is not None
        mutex_lock(gpc.refresh_lock)
        write_lock_irq(gpc.lock)
        gpc.valid = False
        old_khva = gpc.khva
        old_pfn = gpc.pfn
        gpc.khva = None
        gpc.pfn = KVM_PFN_ERR_FAULT
        write_unlock_irq(gpc.lock)
        mutex_unlock(gpc.refresh_lock)
        self.gpc_unmap_khva(kvm, old_pfn, old_khva)

    def kvm_gpc_deactivate(self, gpc: GfnToPfnCache) -> None:
        """kvm_gpc_deactivate() before 9f87791d686d: clear active, unlink, then kvm_gpc_unmap()."""
        kvm = gpc.kvm
        assert kvm is not None
        assert gpc.lock is not None
        if gpc.active:  # unlocked read
            write_lock_irq(gpc.lock)
            gpc.active = False
            write_unlock_irq(gpc.lock)
            spin_lock(kvm.gpc_lock)
            kvm.gpc_list = tuple(g for g in kvm.gpc_list if g is not gpc)
            spin_unlock(kvm.gpc_lock)
            self.kvm_gpc_unmap(gpc)


class SeedV1(Pfncache):
    """The seed patch as posted: the mapping is built with gpc->lock dropped, then installed."""

    version = "seed-v1"

    def hva_to_pfn_retry(self, kvm: Kvm, uhva: int) -> tuple[int, int, KernelMapping | None, int]:  # type: ignore[override]
        """hva_to_pfn_retry(kvm, uhva, &pfn, &khva): a pinned pfn and a fresh mapping; no gpc.

        Returns (ret, pfn, khva, mmu_seq); the C function does not return mmu_seq
        (only seed-final-recheck uses it).
        """
        while True:
            mmu_seq = kvm.mmu_invalidate_seq  # then smp_rmb()
            new_pfn = hva_to_pfn(kvm, uhva)
            if is_error_noslot_pfn(new_pfn):
                return EFAULT, KVM_PFN_ERR_FAULT, None, mmu_seq
            new_khva = self.gpc_map(kvm, new_pfn)  # always a new mapping: no reuse
            # NB: checked with gpc->lock NOT held; the caller installs after retaking it.
            if not self.mmu_notifier_retry_cache(kvm, mmu_seq):
                return 0, new_pfn, new_khva, mmu_seq
            self.gpc_unmap_khva(kvm, new_pfn, new_khva)
            kvm_release_pfn_clean(kvm, new_pfn)
            # model annotation, as in Pfncache.hva_to_pfn_retry
            spin_until_cond(kvm, "mn_active_invalidate_count", lambda n: n == 0)

    def discard_new(self, gpc: GfnToPfnCache, ret: int, new_uhva: int, mmu_seq: int) -> bool:
        """v1: lost the race only if the uhva changed while gpc->lock was dropped."""
        return ret != 0 or gpc.uhva != new_uhva

    def relocked(self, gpc: GfnToPfnCache) -> None:
        """What the patch does right after retaking gpc->lock (nothing in v1)."""

    @c_name("__kvm_gpc_refresh")
    def _kvm_gpc_refresh(self, gpc: GfnToPfnCache, gpa: int, length: int) -> int:
        """__kvm_gpc_refresh() as the seed patch rewrote it: the old mapping is unmapped last."""
        kvm = gpc.kvm
        assert kvm is not None
        assert gpc.lock is not None
        assert gpc.refresh_lock is not None
        if (gpa % PAGE_SIZE) + length > PAGE_SIZE:
            return EINVAL
        mutex_lock(gpc.refresh_lock)  # now "purely an optimisation"
        write_lock_irq(gpc.lock)
        ret, old_pfn, old_khva = self._refresh_body(gpc, kvm, gpa)
        write_unlock_irq(gpc.lock)
        mutex_unlock(gpc.refresh_lock)
        if old_pfn != KVM_PFN_ERR_FAULT:
            self.gpc_unmap_khva(kvm, old_pfn, old_khva)
        return ret

    def _refresh_body(self, gpc: GfnToPfnCache, kvm: Kvm, gpa: int) -> tuple[int, int, KernelMapping | None]:
        """The body under gpc->lock: drop it for hva_to_pfn_retry(), retake, install or discard.

        Returns (ret, old_pfn, old_khva): what to unmap once every lock is dropped.
        """
        assert gpc.lock is not None
        if not gpc.active:
            return EINVAL, KVM_PFN_ERR_FAULT, None
        old_pfn = gpc.pfn
        old_khva = gpc.khva
        old_uhva = gpc.uhva
        slots = kvm_memslots(kvm)
        if gpc.gpa != gpa or gpc.generation != slots.generation or kvm_is_error_hva(gpc.uhva):
            gpc.gpa = gpa
            gpc.generation = slots.generation
            gpc.uhva = gfn_to_hva_memslot(slots, gpa // PAGE_SIZE)
            if kvm_is_error_hva(gpc.uhva):
                gpc.valid = False
                gpc.pfn = KVM_PFN_ERR_FAULT
                gpc.khva = None
                return EFAULT, old_pfn, old_khva  # goto out_unlock: the old mapping is unmapped
            if gpc.uhva != old_uhva:
                gpc.valid = False
        if gpc.valid:
            gpc.khva = old_khva  # + page offset; old_pfn must not be unmapped: it was reused
            return 0, KVM_PFN_ERR_FAULT, None
        new_uhva = gpc.uhva
        gpc.valid = False
        write_unlock_irq(gpc.lock)
        ret, new_pfn, new_khva, mmu_seq = self.hva_to_pfn_retry(kvm, new_uhva)
        write_lock_irq(gpc.lock)
        self.relocked(gpc)
        if self.discard_new(gpc, ret, new_uhva, mmu_seq):
            old_pfn, old_khva = new_pfn, new_khva  # purge the new mapping
        else:
            old_pfn, old_khva = gpc.pfn, gpc.khva
            gpc.pfn = new_pfn
            gpc.khva = new_khva
            gpc.valid = True
        kvm_release_pfn_clean(kvm, new_pfn)  # the mmu notifier tracks the pfn from here
        return ret, old_pfn, old_khva


class SeedV2(SeedV1):
    """The v2 wording / xenfv v12 20/20, v13 21/21: discard if ``uhva`` *or* ``active`` changed."""

    version = "seed-v2"

    def discard_new(self, gpc: GfnToPfnCache, ret: int, new_uhva: int, mmu_seq: int) -> bool:
        """Lost the race if uhva changed or the cache is no longer active."""
        return ret != 0 or not gpc.active or gpc.uhva != new_uhva


class Fix6addfcf27139(Pfncache):
    """6addfcf27139: refresh_lock is held across refresh, activate and deactivate, whole."""

    version = "6addfcf27139"

    def kvm_gpc_init(self, gpc: GfnToPfnCache, kvm: Kvm, guard_lock: Mutex | None = None) -> None:
        """kvm_gpc_init() after 6addfcf27139: also sets active = valid = false."""
        super().kvm_gpc_init(gpc, kvm, guard_lock)
        struct_init(gpc, active=False, valid=False)

    def kvm_gpc_refresh(self, gpc: GfnToPfnCache, length: int) -> int:
        """kvm_gpc_refresh() after 6addfcf27139: guard(mutex)(&gpc->refresh_lock), then read gpa."""
        assert gpc.refresh_lock is not None
        with guard(gpc.refresh_lock):
            return self._kvm_gpc_refresh(gpc, gpc.gpa, length)

    @c_name("__kvm_gpc_refresh")
    def _kvm_gpc_refresh(self, gpc: GfnToPfnCache, gpa: int, length: int) -> int:
        """__kvm_gpc_refresh() after 6addfcf27139: asserts refresh_lock instead of taking it."""
        kvm = gpc.kvm
        assert kvm is not None
        assert gpc.lock is not None
        assert gpc.refresh_lock is not None
        lockdep_assert_held(gpc.refresh_lock)
        if (gpa % PAGE_SIZE) + length > PAGE_SIZE:
            return EINVAL
        write_lock_irq(gpc.lock)
        ret, old_pfn, old_khva, unmap_old = self._refresh_locked(gpc, kvm, gpa)
        write_unlock_irq(gpc.lock)
        if unmap_old:
            self.gpc_unmap_khva(kvm, old_pfn, old_khva)  # still under refresh_lock (the caller's guard)
        return ret

    def kvm_gpc_activate(self, gpc: GfnToPfnCache, gpa: int, length: int) -> int:
        """__kvm_gpc_activate(): the whole body under guard(mutex)(&gpc->refresh_lock)."""
        assert gpc.refresh_lock is not None
        with guard(gpc.refresh_lock):
            return Pfncache.kvm_gpc_activate(self, gpc, gpa, length)

    def kvm_gpc_deactivate(self, gpc: GfnToPfnCache) -> None:
        """kvm_gpc_deactivate() after 6addfcf27139: the whole body under refresh_lock."""
        assert gpc.refresh_lock is not None
        with guard(gpc.refresh_lock):
            Pfncache.kvm_gpc_deactivate(self, gpc)


class SeedFinal(SeedV2, Fix6addfcf27139):
    """[PATCH 6/6] / [PATCH v2 8/8] "KVM: pfncache: clean up rwlock abuse", on top of 6addfcf27139."""

    version = "seed-final"

    def relocked(self, gpc: GfnToPfnCache) -> None:
        """6/6 and v2 8/8 add WARN_ON_ONCE(gpc->valid) right after retaking gpc->lock."""
        WARN_ON_ONCE(gpc.valid, "__kvm_gpc_refresh: cache became valid while gpc->lock was dropped")

    @c_name("__kvm_gpc_refresh")
    def _kvm_gpc_refresh(self, gpc: GfnToPfnCache, gpa: int, length: int) -> int:
        """__kvm_gpc_refresh() in 6/6: refresh_lock is the caller's (asserted), not taken here."""
        kvm = gpc.kvm
        assert kvm is not None
        assert gpc.lock is not None
        assert gpc.refresh_lock is not None
        lockdep_assert_held(gpc.refresh_lock)
        if (gpa % PAGE_SIZE) + length > PAGE_SIZE:
            return EINVAL
        write_lock_irq(gpc.lock)
        ret, old_pfn, old_khva = self._refresh_body(gpc, kvm, gpa)
        write_unlock_irq(gpc.lock)
        if old_pfn != KVM_PFN_ERR_FAULT:
            self.gpc_unmap_khva(kvm, old_pfn, old_khva)
        return ret


class SeedFinalRecheck(SeedFinal):
    """seed-final, with the mmu notifier retry check repeated under gpc->lock (the fix)."""

    version = "seed-final-recheck"

    def discard_new(self, gpc: GfnToPfnCache, ret: int, new_uhva: int, mmu_seq: int) -> bool:
        """Also discard if an invalidation ran since mmu_seq: the cache stays invalid, ret stays 0,
        and the caller's check-refresh loop refreshes again."""
        assert gpc.kvm is not None
        return (
            ret != 0
            or not gpc.active
            or gpc.uhva != new_uhva
            or self.mmu_notifier_retry_cache(gpc.kvm, mmu_seq)
        )


class SeanContract(Fix6addfcf27139):
    """The caller's mutex guards the cache: passed to kvm_gpc_init, asserted, refresh_lock gone."""

    version = "sean-contract"

    def kvm_gpc_init(self, gpc: GfnToPfnCache, kvm: Kvm, guard_lock: Mutex | None = None) -> None:
        """kvm_gpc_init() under Sean's proposal: takes the guarding mutex."""
        Pfncache.kvm_gpc_init(self, gpc, kvm)
        assert guard_lock is not None, "sean-contract: kvm_gpc_init needs the guarding mutex"
        gpc.refresh_lock = guard_lock  # "1. Pass in the guarding mutex"; "3. Drop refresh_mutex"

    def kvm_gpc_refresh(self, gpc: GfnToPfnCache, length: int) -> int:
        """kvm_gpc_refresh() under Sean's proposal: takes no lock; __kvm_gpc_refresh asserts the guard."""
        return self._kvm_gpc_refresh(gpc, gpc.gpa, length)

    def kvm_gpc_activate(self, gpc: GfnToPfnCache, gpa: int, length: int) -> int:
        """kvm_gpc_activate() under Sean's proposal: lockdep_assert_held(guard)."""
        assert gpc.refresh_lock is not None
        lockdep_assert_held(gpc.refresh_lock)
        return Pfncache.kvm_gpc_activate(self, gpc, gpa, length)

    def kvm_gpc_deactivate(self, gpc: GfnToPfnCache) -> None:
        """kvm_gpc_deactivate() under Sean's proposal: lockdep_assert_held(guard)."""
        assert gpc.refresh_lock is not None
        lockdep_assert_held(gpc.refresh_lock)
        Pfncache.kvm_gpc_deactivate(self, gpc)


# variant -> (pfncache.c, xen.c)
VARIANTS: dict[str, tuple[type[Pfncache], type[Xen]]] = {
    "pre-9f87791d686d": (Pre9f87791d686d, Xen),
    "v6.8": (Pfncache, Xen),
    "v6.8-no-xen-lock": (Pfncache, Xen_7a36d680658b),
    "seed-v1": (SeedV1, Xen),
    "seed-v2": (SeedV2, Xen),
    "6addfcf27139": (Fix6addfcf27139, Xen),
    "v6.9": (Fix6addfcf27139, Xen_7a36d680658b),
    "seed-final": (SeedFinal, Xen_7a36d680658b),
    "seed-final-recheck": (SeedFinalRecheck, Xen_7a36d680658b),
    "sean-contract": (SeanContract, Xen),
}


class PhysMem(Struct):
    """Memory with no struct page (outside the kernel's memmap), e.g. mapped to userspace
    through /dev/mem or a driver's remap_pfn_range(): a VM_IO|VM_PFNMAP vma."""

    data: int = 0

    def __init__(self, pfn: int) -> None:
        super().__init__()
        self.pfn = pfn

    def _kc_label(self) -> str:
        return f"iomem[pfn {self.pfn}]"


class KvmMainPfnmap(KvmMain):
    """kvm_main.c v6.8's hva_to_pfn() for VM_IO|VM_PFNMAP memory with no struct page.

    GUP refuses such a vma, so hva_to_pfn() falls back to hva_to_pfn_remapped(),
    which reads the pfn from the PTE and takes no reference (there is no page to
    refcount); kvm_release_pfn_clean() finds no refcounted page and does nothing.
    A stand-in for the pfncache scenarios until the kvm_main model (seed 004)
    covers VM_PFNMAP; pfns not in ``iomem`` go to the ordinary GUP path.
    """

    version = "v6.8"

    def __init__(self, iomem: dict[int, PhysMem]) -> None:
        self.iomem = iomem

    def hva_to_pfn(self, kvm: Kvm, hva: int) -> int:
        """hva_to_pfn() -> hva_to_pfn_remapped() for an iomem PTE; GUP otherwise."""
        pte = kvm.mm.ptes.get(hva)
        if pte is not None:
            spin_lock(kvm.mm.page_table_lock)  # follow_pte() takes the PTE lock
            pfn = pte.pfn
            spin_unlock(kvm.mm.page_table_lock)
            if pfn in self.iomem:
                return int(pfn)
        return super().hva_to_pfn(kvm, hva)

    def kvm_release_pfn_clean(self, kvm: Kvm, pfn: int) -> None:
        """kvm_release_pfn_clean(): nothing to put for a pfn without a struct page."""
        if pfn not in self.iomem:
            super().kvm_release_pfn_clean(kvm, pfn)


def build_for(variant: str, iomem: dict[int, Any] | None = None) -> Build:
    """The v6.8 kernel with pfncache.c and xen.c at ``variant``.

    ``iomem``: pfns that have no struct page (PhysMem), which hva_to_pfn() resolves
    through hva_to_pfn_remapped() and the cache maps with memremap().
    """
    pfncache, xen = VARIANTS[variant]
    kvm_main = KvmMain() if iomem is None else KvmMainPfnmap(iomem)
    return Build(kvm_main, pfncache(), xen())
