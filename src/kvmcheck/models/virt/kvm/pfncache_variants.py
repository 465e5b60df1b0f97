"""Every version of pfncache.c (and of the xen.c lock that guards it) the seed 000 thread touches.

Each pfncache.c version is a small subclass of the v6.8 model (a variant is a
patch); ``BUILDS`` pairs it with the xen.c it shipped or was posted with (a
scenario gets it with ``build_for(BUILDS, variant)``).  ``SOURCES`` (below the
table) says where each was read and how
(tree / posted / reconstructed / mutant); ``kvmcheck list`` shows it.

pre-9f87791d686d   -- 6.1.y's shape: kvm_gfn_to_pfn_cache_destroy() (kvm_gpc_deactivate() from
                      the v6.2 merge window) clears ``active``, unlinks the cache, then calls
                      kvm_gfn_to_pfn_cache_unmap() (kvm_gpc_unmap() in the v6.2 merge window),
                      which takes refresh_lock.  Reconstructed from the '-' side of the posted
                      9f87791d686d ("KVM: Drop KVM's API to allow temporarily unmapping
                      gfn=>pfn cache") and a 6.1-era pfncache.c; activation still reinitialises
                      the fields (5762cb10235 came after).  The build keeps v6.8's xen.c.
v6.8               -- the base model (pfncache.py): 9f87791d686d (v6.2) .. v6.8; xen.c v6.8.
v6.8-no-xen-lock   -- COUNTERFACTUAL (mutant): v6.8 pfncache.c with 7a36d680658b applied to
                      xen.c alone.  Never a commit: 7a36d680658b went in after 6addfcf27139
                      and relies on it; this build asks what it would have done without.
seed-v1            -- "[PATCH] KVM: pfncache: rework __kvm_gpc_refresh() to fix locking
                      issues" (2024-01-12): hva_to_pfn_retry() no longer touches the gpc;
                      refresh drops gpc->lock around it and, after retaking it, discards the
                      new mapping only if ``uhva`` changed.  On v6.8.
seed-v2            -- the rework as re-posted in Paul Durrant's series ([PATCH v12 20/20],
                      [PATCH v13 21/21]): also discard when ``active`` changed, and
                      WARN_ON_ONCE(gpc->valid) after retaking the lock.  The reworded commit
                      message of 2024-01-23 in the seed thread carries no code.  On v6.8 +
                      21dadfcd665e (v13 19/21, underneath it in the series).
21dadfcd665e       -- (not a variant of its own) "KVM: pfncache: check the need for invalidation
                      under read lock first" (v13 19/21), in 6addfcf27139, v6.9, seed-v2 and
                      the seed-final builds.
6addfcf27139       -- "KVM: pfncache: simplify locking and make more self-contained" as applied
                      (guard(mutex) in kvm_gpc_refresh, activate and deactivate; asserted by
                      __kvm_gpc_refresh), on 21dadfcd665e; xen.c still v6.8.
v6.9               -- 21dadfcd665e + 6addfcf27139 + 7a36d680658b, as merged for v6.9
                      (tag kvm-x86-xen-6.9).
seed-final         -- the rework rebased on 6addfcf27139, as posted last: "[PATCH 6/6] KVM:
                      pfncache: clean up rwlock abuse" (2024-02-17) and "[PATCH v2 8/8]"
                      (2024-02-27, identical code; not applied): discard if ret, !active or
                      uhva changed, WARN_ON_ONCE(gpc->valid) after retaking the lock; with
                      the series' 7a36d680658b.
seed-final-recheck -- OUR PROPOSED FIX (mutant), never posted: seed-final with
                      mmu_notifier_retry_cache() re-checked under gpc->lock, next to the
                      active/uhva checks (docs/findings/pfncache-retry-check-outside-lock.md).
sean-contract      -- Sean Christopherson's proposal in the thread (2024-01-17), reconstructed
                      from its prose: the guarding mutex is passed to kvm_gpc_init and asserted
                      held by refresh/activate/deactivate; refresh_lock is dropped.  On v6.8.
v6.9-wait-v3       -- (mutant) v6.9 with the retry loop's spinning replaced by the wait of the
                      unmerged "[PATCH v3 3/5] KVM: pfncache: Wait for pending invalidations
                      instead of spinning" (2024-08-21); see pfncache.py, "The retry loop, two
                      ways".  Every other variant spins, as mainline still does.
"""

from __future__ import annotations

from kvmcheck import Source
from kvmcheck.kernel import (
    WARN_ON_ONCE,
    KernelMapping,
    Mutex,
    Struct,
    guard,
    lockdep_assert_held,
    mutex_lock,
    mutex_unlock,
    read_lock_irq,
    read_unlock_irq,
    spin_lock,
    spin_unlock,
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
    """6.1.y: deactivation unmaps through kvm_gfn_to_pfn_cache_unmap(), under refresh_lock.

    The C names are 6.1.y's: kvm_gfn_to_pfn_cache_destroy() (this build's
    kvm_gpc_deactivate) calls kvm_gfn_to_pfn_cache_unmap().  The v6.2 merge
    window shortened them to kvm_gpc_deactivate()/kvm_gpc_unmap() (Luczaj) just
    before 9f87791d686d folded the unmap into deactivate and dropped the
    refresh_lock ("Omit acquiring refresh_lock as concurrent calls to
    kvm_gpc_deactivate() are not allowed", <20221013211234.1318131-12-seanjc@google.com>).
    Activation (6.1.y: kvm_gfn_to_pfn_cache_init) still reinitialises the fields
    (5762cb10235 came after 9f87791d686d).  Not modelled: 6.1.y's activation
    also re-runs rwlock_init/mutex_init (moved to kvm_gpc_init by 52491a38b2c2).
    """

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

    def kvm_gfn_to_pfn_cache_unmap(self, gpc: GfnToPfnCache) -> None:
        """kvm_gfn_to_pfn_cache_unmap() (6.1.y; kvm_gpc_unmap() until 9f87791d686d): under refresh_lock."""
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

    @c_name("kvm_gfn_to_pfn_cache_destroy")
    def kvm_gpc_deactivate(self, gpc: GfnToPfnCache) -> None:
        """kvm_gfn_to_pfn_cache_destroy() (6.1.y): clear active, unlink, then kvm_gfn_to_pfn_cache_unmap()."""
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
            self.kvm_gfn_to_pfn_cache_unmap(gpc)


class Check21dadfcd665e(Pfncache):
    """21dadfcd665e (v6.9): the invalidation pre-checks each cache under gpc->lock held for read.

    "[PATCH v13 19/21] KVM: pfncache: check the need for invalidation under read
    lock first" (Paul Durrant, 2024-02-15, <20240215152916.1158-20-paul@xen.org>),
    applied as 21dadfcd665e to kvm-x86 xen (b4-ty 2024-02-20), ahead of 6addfcf27139.
    """

    version = "21dadfcd665e"

    def gfn_to_pfn_cache_invalidate_start(self, kvm: Kvm, start: int, end: int) -> None:
        """gfn_to_pfn_cache_invalidate_start() after 21dadfcd665e: read-locked check, write-locked recheck."""
        spin_lock(kvm.gpc_lock)
        for gpc in kvm.gpc_list:
            assert gpc.lock is not None
            read_lock_irq(gpc.lock)
            if gpc.valid and not is_error_noslot_pfn(gpc.pfn) and start <= gpc.uhva < end:
                read_unlock_irq(gpc.lock)
                # "There is a small window here where the cache could be modified": check again
                write_lock_irq(gpc.lock)
                if gpc.valid and not is_error_noslot_pfn(gpc.pfn) and start <= gpc.uhva < end:
                    gpc.valid = False
                write_unlock_irq(gpc.lock)
                continue
            read_unlock_irq(gpc.lock)
        spin_unlock(kvm.gpc_lock)


class SeedV1(Pfncache):
    """The seed patch as posted: the mapping is built with gpc->lock dropped, then installed."""

    version = "seed-v1"

    def hva_to_pfn_retry(self, kvm: Kvm, uhva: int) -> tuple[int, int, KernelMapping | None, int]:  # type: ignore[override]
        """hva_to_pfn_retry(kvm, uhva, &pfn, &khva): a pinned pfn and a fresh mapping; no gpc.

        Returns (ret, pfn, khva, mmu_seq); the C function does not return mmu_seq
        (only seed-final-recheck uses it).
        """
        while True:
            mmu_seq = self.sample_mmu_seq(kvm)  # mmu_seq = kvm->mmu_invalidate_seq; smp_rmb();
            mmu_seq = self.wait_for_invalidations(kvm, mmu_seq)  # no-op unless retry_wait (not in this patch)
            new_pfn = hva_to_pfn(kvm, uhva)
            if is_error_noslot_pfn(new_pfn):
                return EFAULT, KVM_PFN_ERR_FAULT, None, mmu_seq
            new_khva = self.gpc_map(kvm, new_pfn)  # always a new mapping: no reuse
            # NB: checked with gpc->lock NOT held; the caller installs after retaking it.
            seen = self._retry_cache(kvm, mmu_seq)  # mmu_notifier_retry_cache()
            if seen is None:
                return 0, new_pfn, new_khva, mmu_seq
            self.gpc_unmap_khva(kvm, new_pfn, new_khva)
            kvm_release_pfn_clean(kvm, new_pfn)
            self.retry_backoff(kvm, seen)  # as posted the loop spins (no cond_resched); model reduction

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


class SeedV2(SeedV1, Check21dadfcd665e):
    """[PATCH v12 20/20] / [PATCH v13 21/21] (Durrant's series): discard if ``uhva`` *or* ``active``
    changed, and WARN_ON_ONCE(gpc->valid) after retaking the lock.  The series has
    21dadfcd665e (v13 19/21) underneath, so this build has it too."""

    version = "seed-v2"

    def relocked(self, gpc: GfnToPfnCache) -> None:
        """v12 20/20, v13 21/21, 6/6, v2 8/8: WARN_ON_ONCE(gpc->valid) right after retaking gpc->lock."""
        WARN_ON_ONCE(gpc.valid, "__kvm_gpc_refresh: cache became valid while gpc->lock was dropped")

    def discard_new(self, gpc: GfnToPfnCache, ret: int, new_uhva: int, mmu_seq: int) -> bool:
        """Lost the race if uhva changed or the cache is no longer active."""
        return ret != 0 or not gpc.active or gpc.uhva != new_uhva


class Fix6addfcf27139(Check21dadfcd665e):
    """6addfcf27139: refresh_lock is held across refresh, activate and deactivate, whole.

    On kvm-x86 xen it sits on top of 21dadfcd665e (same branch, applied earlier),
    so this build has the read-lock pre-check too.
    """

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
    """Our proposed fix (a mutant, never posted): seed-final with the retry check repeated under gpc->lock."""

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
    """The caller's mutex guards the cache: passed to kvm_gpc_init, asserted, refresh_lock gone.

    Proposed on v6.8 (2024-01-17), so the invalidation hook is v6.8's (no 21dadfcd665e).
    """

    version = "sean-contract"
    gfn_to_pfn_cache_invalidate_start = Pfncache.gfn_to_pfn_cache_invalidate_start

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


class V69WaitV3(Fix6addfcf27139):
    """v6.9 with the retry loop's spinning replaced by the wait of the unmerged [PATCH v3 3/5]."""

    version = "v6.9-wait-v3"
    retry_wait = True


# Each variant's kernel: the v6.8 kvm_main.c with its pfncache.c and xen.c
V6_8 = Build(KvmMain(), Pfncache(), Xen())
BUILDS: dict[str, Build] = {
    "pre-9f87791d686d": V6_8.patched(Pre9f87791d686d()),
    "v6.8": V6_8,
    "v6.8-no-xen-lock": V6_8.patched(Xen_7a36d680658b()),
    "seed-v1": V6_8.patched(SeedV1()),
    "seed-v2": V6_8.patched(SeedV2()),
    "6addfcf27139": V6_8.patched(Fix6addfcf27139()),
    "v6.9": V6_8.patched(Fix6addfcf27139(), Xen_7a36d680658b()),
    "seed-final": V6_8.patched(SeedFinal(), Xen_7a36d680658b()),
    "seed-final-recheck": V6_8.patched(SeedFinalRecheck(), Xen_7a36d680658b()),
    "sean-contract": V6_8.patched(SeanContract()),
    "v6.9-wait-v3": V6_8.patched(V69WaitV3(), Xen_7a36d680658b()),
}
VARIANTS = tuple(BUILDS)


# Where each variant's code was read (issue 23; kvmcheck list shows it).  Message-ids are the
# mails' own headers, read with the code index (find_string / read_file) or the seed thread file.
_V68_NOTE = (
    "pfncache.c: v6.8's shape (9f87791d686d .. 6addfcf27139) read in sean-jc/linux@01a49f80 and "
    "kali-linex/linex@555e8b16 (a renamed 6.4 fork, SOURCES.md 'Rejected') and checked against the "
    "'-' side of [PATCH v13 19/21] and [PATCH v2 4/8], which apply to it; no copy whose Makefile "
    "proves 6.8 holds pfncache.c (SOURCES.md). xen.c read at ultrarisc/linux-6.8@e2f1f355 "
    "(Makefile 6.8.12)."
)
V2_4_8 = (
    "[PATCH v2 4/8] KVM: pfncache: simplify locking and make more self-contained — 2024-02-27 — "
    "<20240227115648.3104-5-dwmw2@infradead.org>"
)
V2_5_8 = (
    "[PATCH v2 5/8] KVM: x86/xen: fix recursive deadlock in timer injection — 2024-02-27 — "
    "<20240227115648.3104-6-dwmw2@infradead.org>"
)
V13_19 = (
    "[PATCH v13 19/21] KVM: pfncache: check the need for invalidation under read lock first — "
    "2024-02-15 — <20240215152916.1158-20-paul@xen.org>"
)
SOURCES: dict[str, Source] = {
    "pre-9f87791d686d": Source(
        "reconstructed",
        "6.1.y: virt/kvm/pfncache.c (kvm_gfn_to_pfn_cache_unmap() under refresh_lock, called on "
        "deactivation); xen.c v6.8",
        "From the '-' side of 9f87791d686d as posted ('KVM: Drop KVM's API to allow temprorarily "
        "unmapping gfn=>pfn cache', 2022-10-27, <20221027161849.2989332-12-pbonzini@redhat.com>, "
        "where the function is already kvm_gpc_unmap()) and a pfncache.c in the code index with "
        "kvm_gfn_to_pfn_cache_unmap()/kvm_gpc_activate(kvm, gpc, vcpu, usage, gpa, len) (find_string "
        "id 88438329; its version cannot be proven by a Makefile). The build keeps v6.8's xen.c: its "
        "Xen callers are not 6.1.y's.",
    ),
    "v6.8": Source("tree", "v6.8: virt/kvm/pfncache.c, arch/x86/kvm/xen.c", _V68_NOTE),
    "v6.8-no-xen-lock": Source(
        "mutant",
        "v6.8: virt/kvm/pfncache.c + " + V2_5_8,
        "Counterfactual: 7a36d680658b's xen.c hunk (no xen_lock in kvm_xen_set_evtchn) on v6.8's "
        "pfncache.c, WITHOUT 6addfcf27139. Never a commit: 7a36d680658b was applied after "
        "6addfcf27139 on kvm-x86 xen (b4-ty 2024-03-04) and its message rests on it ('Now that the "
        "gfn_to_pfn_cache has its own self-sufficient locking').",
    ),
    "seed-v1": Source(
        "posted",
        "[PATCH] KVM: pfncache: rework __kvm_gpc_refresh() to fix locking issues — 2024-01-12 — "
        "<9a82db197449bdb97ee889d2f3cdd7998abd9692.camel@amazon.co.uk>",
        "Diff read in the seed thread (/work/shared/seeds/000_*.txt); applied to v6.8's pfncache.c "
        "(posted on dwmw2's xenfv tree).",
    ),
    "seed-v2": Source(
        "posted",
        "[PATCH v13 21/21] KVM: pfncache: rework __kvm_gpc_refresh() to fix locking issues — "
        "2024-02-15 — <20240215152916.1158-22-paul@xen.org>",
        "Same code as [PATCH v12 20/20] (2024-01-15, <20240115125707.1183-21-paul@xen.org>): discard "
        "if ret, !active or uhva changed, WARN_ON_ONCE(gpc->valid) after relocking. The 2024-01-23 "
        "reworded message in the seed thread carries no code. Built on v6.8 + 21dadfcd665e (v13 19/21); "
        "the rest of the v13 series (uhva page offset, HVA activation) is not modelled.",
    ),
    "6addfcf27139": Source(
        "posted",
        V2_4_8,
        "As applied: Sean's b4-ty (2024-03-04) and reply <ZeZimEcn7DuOrEcN@google.com> -- guard(mutex) "
        "in kvm_gpc_refresh/__kvm_gpc_activate/kvm_gpc_deactivate. On the kvm-x86 xen branch it sits "
        "on 21dadfcd665e, so the build has it; xen.c still v6.8's (7a36d680658b came next).",
    ),
    "v6.9": Source(
        "posted",
        "v6.9 (tag kvm-x86-xen-6.9, up to 7a36d680658b): " + V13_19 + "; " + V2_4_8 + "; " + V2_5_8,
        "The three patches of the v6.9 pull that touch what is modelled, read as posted (21dadfcd665e "
        "is v13 19/21, 6addfcf27139 v2 4/8 as applied with guard(mutex), 7a36d680658b v2 5/8). No "
        "v6.9 tree copy was proven by its Makefile (SOURCES.md).",
    ),
    "seed-final": Source(
        "posted",
        "[PATCH v2 8/8] KVM: pfncache: clean up rwlock abuse — 2024-02-27 — "
        "<20240227115648.3104-9-dwmw2@infradead.org>",
        "Same code as [PATCH 6/6] (2024-02-17, <20240217114017.11551-7-dwmw2@infradead.org>); not "
        "applied (b4-ty 2024-03-04). On 6addfcf27139 + 21dadfcd665e, with the series' 7a36d680658b.",
    ),
    "seed-final-recheck": Source(
        "mutant",
        "[PATCH v2 8/8] KVM: pfncache: clean up rwlock abuse — 2024-02-27 — "
        "<20240227115648.3104-9-dwmw2@infradead.org> + our one-line fix",
        "OUR proposed fix, never posted: seed-final with mmu_notifier_retry_cache(gpc->kvm, mmu_seq) "
        "added to the discard test under gpc->lock (docs/findings/pfncache-retry-check-outside-lock.md).",
    ),
    "sean-contract": Source(
        "reconstructed",
        "Re: [PATCH] KVM: pfncache: rework __kvm_gpc_refresh() to fix locking issues (Sean "
        "Christopherson) — 2024-01-17 — <Zaf7yCYt8XFuMhAd@google.com>",
        "From the prose of Sean's three steps ('Pass in the guarding mutex to kvm_gpc_init() and "
        "assert that said mutex is held for __refresh(), activate(), and deactivate()'; 'Fix the "
        "cases where that doesn't hold true'; 'Drop refresh_mutex'); no code was posted. Steps 1 and "
        "3 on v6.8; step 2 deliberately not applied.",
    ),
    "v6.9-wait-v3": Source(
        "mutant",
        "v6.9 + [PATCH v3 3/5] KVM: pfncache: Wait for pending invalidations instead of spinning — "
        "2024-08-21 — <20240821202814.711673-3-dwmw2@infradead.org>",
        "3/5's wait (gpc_wait_for_invalidations() on kvm->gpc_invalidate_wq before each GUP) on v6.9, "
        "without 1/5, 2/5 (range tracking) and 4/5: it waits for mn_active_invalidate_count == 0, "
        "when 3/5's wake_up() fires. Unmerged: mainline still spins.",
    ),
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
