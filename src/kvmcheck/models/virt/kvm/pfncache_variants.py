"""Every version of the pfncache fix discussed in seed 000, each a patch on the v6.8 model.

v6.8           -- the base model (pfncache.py): 9f87791d686d (v6.2) .. v6.8.
seed-v1        -- "[PATCH] KVM: pfncache: rework __kvm_gpc_refresh() to fix locking
                  issues" as posted (2024-01-12): hva_to_pfn_retry no longer touches
                  the gpc; refresh drops gpc->lock around it and, after retaking it,
                  discards the new mapping only if ``uhva`` changed.
seed-v2        -- its reworded v2 ("clean up and simplify locking mess", 2024-01-23):
                  also discards when ``active`` changed.
6addfcf27139   -- what landed in v6.9 ("KVM: pfncache: simplify locking and make more
                  self-contained"): refresh_lock taken by kvm_gpc_refresh, activate
                  and deactivate (guard(mutex)), asserted by __kvm_gpc_refresh; init
                  clears active/valid.
sean-contract  -- Sean Christopherson's proposal in the thread (2024-01-17): the
                  guarding mutex is passed to kvm_gpc_init and asserted held by
                  refresh/activate/deactivate; refresh_lock is dropped.
"""

from __future__ import annotations

from kvmcheck.kernel import (
    KernelMapping,
    Mutex,
    guard,
    lockdep_assert_held,
    mutex_lock,
    mutex_unlock,
    spin_until_cond,
    struct_init,
    write_lock_irq,
    write_unlock_irq,
)
from kvmcheck.models.build import Build
from kvmcheck.models.virt.kvm.kvm_host import KVM_PFN_ERR_FAULT, PAGE_SIZE, Kvm
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


class SeedV1(Pfncache):
    """The seed patch as posted: the mapping is built with gpc->lock dropped, then installed."""

    version = "seed-v1"

    def hva_to_pfn_retry(self, kvm: Kvm, uhva: int) -> tuple[int, int, KernelMapping | None]:  # type: ignore[override]
        """hva_to_pfn_retry(kvm, uhva, &pfn, &khva): a pinned pfn and a fresh mapping; no gpc."""
        while True:
            mmu_seq = kvm.mmu_invalidate_seq  # then smp_rmb()
            new_pfn = hva_to_pfn(kvm, uhva)
            if is_error_noslot_pfn(new_pfn):
                return EFAULT, KVM_PFN_ERR_FAULT, None
            new_khva = self.gpc_map(kvm, new_pfn)  # always a new mapping: no reuse
            # NB: checked with gpc->lock NOT held; the caller installs after retaking it.
            if not self.mmu_notifier_retry_cache(kvm, mmu_seq):
                return 0, new_pfn, new_khva
            self.gpc_unmap_khva(new_pfn, new_khva)
            kvm_release_pfn_clean(kvm, new_pfn)
            # model annotation, as in Pfncache.hva_to_pfn_retry
            spin_until_cond(kvm, "mn_active_invalidate_count", lambda n: n == 0)

    def discard_new(self, gpc: GfnToPfnCache, ret: int, new_uhva: int) -> bool:
        """v1: lost the race only if the uhva changed while gpc->lock was dropped."""
        return ret != 0 or gpc.uhva != new_uhva

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
            self.gpc_unmap_khva(old_pfn, old_khva)
        return ret

    def _refresh_body(self, gpc: GfnToPfnCache, kvm: Kvm, gpa: int) -> tuple[int, int, KernelMapping | None]:
        """The seed patch's body under gpc->lock: drop it for hva_to_pfn_retry(), retake, install/discard."""
        assert gpc.lock is not None
        if not gpc.active:
            return EINVAL, KVM_PFN_ERR_FAULT, None
        old_uhva = gpc.uhva
        old_khva = gpc.khva
        slots = kvm_memslots(kvm)
        if gpc.gpa != gpa or gpc.generation != slots.generation or kvm_is_error_hva(gpc.uhva):
            gpc.gpa = gpa
            gpc.generation = slots.generation
            gpc.uhva = gfn_to_hva_memslot(slots, gpa // PAGE_SIZE)
            if kvm_is_error_hva(gpc.uhva):
                gpc.valid = False
                gpc.pfn = KVM_PFN_ERR_FAULT
                gpc.khva = None
                return EFAULT, KVM_PFN_ERR_FAULT, None
            if gpc.uhva != old_uhva:
                gpc.valid = False
        if gpc.valid:
            gpc.khva = old_khva  # + page offset; old_pfn must not be unmapped: it was reused
            return 0, KVM_PFN_ERR_FAULT, None
        new_uhva = gpc.uhva
        gpc.valid = False
        write_unlock_irq(gpc.lock)
        ret, new_pfn, new_khva = self.hva_to_pfn_retry(kvm, new_uhva)
        write_lock_irq(gpc.lock)
        if self.discard_new(gpc, ret, new_uhva):
            old_pfn, old_khva = new_pfn, new_khva  # purge the new mapping
        else:
            old_pfn, old_khva = gpc.pfn, gpc.khva
            gpc.pfn = new_pfn
            gpc.khva = new_khva
            gpc.valid = True
        kvm_release_pfn_clean(kvm, new_pfn)  # the mmu notifier tracks the pfn from here
        return ret, old_pfn, old_khva


class SeedV2(SeedV1):
    """The v2 wording: discard the new mapping if ``uhva`` *or* ``active`` changed."""

    version = "seed-v2"

    def discard_new(self, gpc: GfnToPfnCache, ret: int, new_uhva: int) -> bool:
        """v2 (2024-01-23): lost the race if uhva changed or the cache is no longer active."""
        return ret != 0 or not gpc.active or gpc.uhva != new_uhva


class Fix6addfcf27139(Pfncache):
    """v6.9: refresh_lock is held across refresh, activate and deactivate, whole."""

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
            self.gpc_unmap_khva(old_pfn, old_khva)  # still under refresh_lock (the caller's guard)
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


VARIANTS: dict[str, type[Pfncache]] = {
    "v6.8": Pfncache,
    "seed-v1": SeedV1,
    "seed-v2": SeedV2,
    "6addfcf27139": Fix6addfcf27139,
    "sean-contract": SeanContract,
}


def build_for(variant: str) -> Build:
    """The v6.8 kernel with pfncache.c at ``variant``."""
    return Build(KvmMain(), VARIANTS[variant]())
