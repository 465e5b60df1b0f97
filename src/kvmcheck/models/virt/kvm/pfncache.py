"""virt/kvm/pfncache.c -- the gfn -> pfn cache, as in Linux v6.3 .. v6.8.

Modelled version: the shape between 9f87791d686d (v6.2, "Drop KVM's API to
allow temporarily unmapping gfn=>pfn cache": deactivate inlines the unmap and
no longer takes refresh_lock) and 6addfcf27139 (v6.9).  Sources read: the
pfncache.c of kali-linex/linex@555e8b16 (a v6.4-era mainline copy; pfncache.c
did not change in the ways modelled here until v6.9), sean-jc/linux@01a49f80,
the v6.9 form in virt-pvm/linux@13e830dc (gpc_map()/gpc_unmap()), the
9f87791d686d patch mail, and the seed thread.  Each method names the C function
it models; ``pfncache_variants.py`` holds the earlier and later versions and the
thread's proposals as small subclasses (a variant is a patch).

Mapping semantics (x86-64, no CONFIG_HIGHMEM): hva_to_pfn_retry() maps a pfn
that has a struct page (pfn_valid()) with kmap(), i.e. its direct-map address,
and gpc_unmap_khva() "unmaps" it with kunmap(), which does nothing -- so a
stale khva of such a pfn still reaches the page, and what can go wrong is a
use-after-free once the page's last reference is dropped.  A pfn without a
struct page (VM_IO|VM_PFNMAP memory outside the kernel's memmap) is mapped with
memremap() and torn down with memunmap(): a stale khva of it faults
(use-after-unmap).

Simplifications: one page per cache, so page offsets vanish (``khva`` is the
mapping itself); every cache is KVM_HOST_USES_PFN (all Xen caches are),
so the GUEST_USES_PFN vCPU kick is not modelled; kmap/memremap can not fail.

The retry loop, two ways (``Pfncache.retry_wait``):
  spin (default; mainline at every version modelled, v6.8 .. v6.13+): after
      mmu_notifier_retry_cache() says "retry", the loop unmaps and releases what
      it got, calls cond_resched() and goes round again -- GUP (a page reference),
      map, retake the lock, check -- for as long as *any* invalidation is in
      flight (mn_active_invalidate_count != 0, whatever its range).  The model
      runs those iterations as written, with one reduction: a failed iteration
      is repeated only once the count it saw has changed (spin_until_cond), since
      the C loop's repeats in between redo the same work with the same outcome.
      What the reduction drops: a repeat's transient GUP reference can make a
      concurrent migration's expected-refcount check fail (-EAGAIN), which only
      sends the migration round again.  Spinning therefore shows up as extra
      iterations, each with its transient GUP reference, whenever invalidations
      overlap (scenario
      pfncache.retry_unrelated_invalidation).  A literal unreduced loop (each
      iteration bought by one step of another thread) was tried: the search
      of pfncache.mmu_notifier on v6.8 was still bounded after 140,756
      executions (600 s, ~18% covered).
  wait ("[PATCH v3 3/5] KVM: pfncache: Wait for pending invalidations instead of
      spinning", D. Woodhouse, 2024-08-21, <20240821202814.711673-3-dwmw2@infradead.org>,
      NOT merged): before each GUP, gpc_wait_for_invalidations() sleeps on
      kvm->gpc_invalidate_wq while an invalidation is pending.  The posted wait
      tests 2/5's per-range condition (the in-flight invalidations' union covers
      gpc->uhva); the model has no range tracking (2/5 is not modelled) and waits
      for mn_active_invalidate_count == 0, the moment the patch's wake_up() fires.
  Until 2026-12 this model always waited (an annotation on the mainline loop);
  that hid the spinning, so it is now an option that names the patch it comes from.

Locking contract (as it really is in v6.3 .. v6.8):
  gpc->lock (rwlock_t), write side -> every write of valid, pfn, khva, gpa,
      generation, uhva, active.  Readers (kvm_gpc_check + deref) hold it for read.
  gpc->refresh_lock (mutex) -> serialises refresh against refresh ONLY.
      hva_to_pfn_retry reads gpc->uhva and gpc->pfn with gpc->lock dropped,
      relying on refresh_lock; but kvm_gpc_activate / kvm_gpc_deactivate do not
      take refresh_lock -- the hole of seed 000.  The callers' own locks
      (vcpu->mutex, kvm->arch.xen.xen_lock) are what serialises them in v6.8.
  Unlocked reads by design: ``active`` in activate/deactivate, ``valid`` in
      activate's KVM_BUG_ON, ``gpa`` in kvm_gpc_refresh.
  kvm->gpc_lock (spinlock) -> kvm->gpc_list membership.
Lock order: refresh_lock -> gpc->lock -> kvm->gpc_lock (never nested here).
Object lifetime: the cache holds no page reference: from the moment it drops
the GUP reference, only the mmu notifier (which clears ``valid`` before the
page can be freed or moved) keeps ``khva`` meaningful.  A memremap mapping is
owned by the cache while it is gpc->khva and must be unmapped exactly once
after it stops being so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from kvmcheck.kernel import (
    KVM_BUG_ON,
    READ_ONCE,
    WARN_ON_ONCE,
    KernelMapping,
    Mutex,
    RwLock,
    Struct,
    cond_resched,
    kmap,
    kunmap,
    lockdep_assert_held,
    lockdep_assert_held_write,
    memremap,
    memunmap,
    mutex_lock,
    mutex_unlock,
    smp_rmb,
    spin_lock,
    spin_unlock,
    spin_until_cond,
    struct_init,
    write_lock_irq,
    write_unlock_irq,
)
from kvmcheck.models.build import Subsystem
from kvmcheck.models.virt.kvm.kvm_host import (
    KVM_HVA_ERR_BAD,
    KVM_PFN_ERR_FAULT,
    PAGE_SIZE,
    Kvm,
)
from kvmcheck.models.virt.kvm.kvm_main import (
    gfn_to_hva_memslot,
    hva_to_pfn,
    is_error_noslot_pfn,
    kvm_memslots,
    kvm_release_pfn_clean,
)

F = TypeVar("F", bound=Callable[..., Any])


def c_name(name: str) -> Callable[[F], F]:
    """Give a method the C function's exact name in traces (``__kvm_gpc_refresh``).

    Python mangles ``__names`` inside classes, so the method is spelt with one
    underscore and renamed here.
    """

    def rename(fn: F) -> F:
        fn.__code__ = fn.__code__.replace(co_name=name)
        fn.__name__ = name
        return fn

    return rename


class GfnToPfnCache(Struct):
    """``struct gfn_to_pfn_cache``."""

    # Reads need one of these held, writes one held exclusively (see module docstring).
    __locking__ = dict.fromkeys(
        ("gpa", "generation", "uhva", "khva", "pfn", "active", "valid"),
        ("lock", "refresh_lock", "guard_lock"),
    )

    gpa: int = 0
    generation: int = 0
    uhva: int = KVM_HVA_ERR_BAD
    khva: KernelMapping | None = None
    pfn: int = KVM_PFN_ERR_FAULT
    active: bool = False
    valid: bool = False

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name  # e.g. "vcpu_info_cache"
        self.kvm: Kvm | None = None
        self.lock: RwLock | None = None
        self.refresh_lock: Mutex | None = None
        self.guard_lock: Mutex | None = None  # only in the sean-contract variant

    def __repr__(self) -> str:
        return f"<gpc {self.name}>"

    def _kc_label(self) -> str:
        return self.name


def pfn_valid(kvm: Kvm, pfn: int) -> bool:
    """``pfn_valid()``: the pfn has a struct page (it is in the memory map)."""
    return pfn in kvm.mm.pages


def pfn_to_phys_mem(kvm: Kvm, pfn: int) -> Any:
    """The memory behind a pfn with no struct page (what memremap() maps); model bookkeeping."""
    iomem: dict[int, Any] = getattr(kvm.build.kvm_main, "iomem", {})
    return iomem.get(pfn)


def kvm_is_error_hva(hva: int) -> bool:
    """kvm_is_error_hva() (include/linux/kvm_host.h): the hva is an error value."""
    return hva == KVM_HVA_ERR_BAD


class Pfncache(Subsystem):
    """virt/kvm/pfncache.c at v6.8.  Subclasses in pfncache_variants.py are patches on it."""

    subsystem = "pfncache"
    version = "v6.8"
    # False: mainline's spinning retry loop; True: the wait of the unmerged [PATCH v3 3/5].
    retry_wait = False

    # -- kvm_gpc_init -----------------------------------------------------------
    def kvm_gpc_init(self, gpc: GfnToPfnCache, kvm: Kvm, guard_lock: Mutex | None = None) -> None:
        """kvm_gpc_init(): init the locks; pfn/uhva to error values (active/valid rely on kzalloc)."""
        gpc.lock = RwLock("gpc->lock")
        gpc.refresh_lock = Mutex("gpc->refresh_lock")
        gpc.guard_lock = guard_lock  # the caller's mutex (vcpu->mutex, xen_lock): contract only
        gpc.kvm = kvm
        struct_init(gpc, pfn=KVM_PFN_ERR_FAULT, uhva=KVM_HVA_ERR_BAD)

    # -- kvm_gpc_check ----------------------------------------------------------
    def kvm_gpc_check(self, gpc: GfnToPfnCache, length: int) -> bool:
        """kvm_gpc_check(): caller holds gpc->lock for read; True means khva may be used."""
        assert gpc.kvm is not None
        slots = kvm_memslots(gpc.kvm)
        if not gpc.active:
            return False
        if (gpc.gpa % PAGE_SIZE) + length > PAGE_SIZE:
            return False
        if gpc.generation != slots.generation or kvm_is_error_hva(gpc.uhva):
            return False
        return bool(gpc.valid)

    # -- mapping helpers ----------------------------------------------------------
    def gpc_map(self, kvm: Kvm, pfn: int) -> KernelMapping:
        """The inline map in hva_to_pfn_retry (gpc_map() in v6.9): kmap() if pfn_valid(), else memremap()."""
        if pfn_valid(kvm, pfn):
            return kmap(kvm.mm.pages[pfn])
        return memremap(pfn, pfn_to_phys_mem(kvm, pfn))

    def gpc_unmap_khva(self, kvm: Kvm, pfn: int, khva: KernelMapping | None) -> None:
        """gpc_unmap_khva() (gpc_unmap() in v6.9): kunmap() the page if pfn_valid(), else memunmap()."""
        if is_error_noslot_pfn(pfn) or khva is None:
            return
        if pfn_valid(kvm, pfn):
            kunmap(kvm.mm.pages[pfn])  # a no-op on x86-64: the direct map stays
        else:
            memunmap(khva)

    # -- mmu_notifier_retry_cache -------------------------------------------------
    def mmu_notifier_retry_cache(self, kvm: Kvm, mmu_seq: int) -> bool:
        """mmu_notifier_retry_cache(): an invalidation is running, or ran since mmu_seq."""
        return self._retry_cache(kvm, mmu_seq) is not None

    @c_name("mmu_notifier_retry_cache")
    def _retry_cache(self, kvm: Kvm, mmu_seq: int) -> int | None:
        """mmu_notifier_retry_cache(), also saying what it saw (for the model's spin reduction).

        None: no retry; else the mn_active_invalidate_count it read (0: the sequence moved).

        The barrier (v6.8 pfncache.c, the function's own comment): the count is read
        before the sequence, with smp_rmb() between, so that a caller sees either the
        old, non-zero count or the new, bumped sequence -- the count is lowered only
        after the sequence was bumped (kvm_mmu_notifier_invalidate_range_end(): the
        bump under mmu_lock, the decrement under mn_invalidate_lock, after).  Both
        reads are plain in C, lockless; here they are READ_ONCE so that the LKMM
        gives the pairing a meaning (memory_model="lkmm"; under SC they are the same
        accesses).  The shape is the kernel's MP+unlocklockonceonce+fencermbonceonce.
        """
        count = int(READ_ONCE(kvm, "mn_active_invalidate_count"))  # a plain read in C, no lock
        if count:
            return count
        smp_rmb()  # pairs with the invalidation's ordering of seq++ before count-- (see above)
        if READ_ONCE(kvm, "mmu_invalidate_seq") != mmu_seq:
            return 0
        return None

    def sample_mmu_seq(self, kvm: Kvm) -> int:
        """hva_to_pfn_retry()'s ``mmu_seq = kvm->mmu_invalidate_seq; smp_rmb();`` before the GUP.

        The read is plain in C and READ_ONCE here (see _retry_cache); the smp_rmb()
        orders it before the PTE reads of hva_to_pfn().
        """
        mmu_seq = int(READ_ONCE(kvm, "mmu_invalidate_seq"))
        smp_rmb()
        return mmu_seq

    # -- the retry loop's back-off: spin (mainline) or wait ([PATCH v3 3/5], unmerged) ----
    def retry_backoff(self, kvm: Kvm, seen: int) -> None:
        """Mainline: nothing but the loop's cond_resched() -- it spins.

        Model reduction (not in the C code): a failed iteration that saw
        mn_active_invalidate_count == ``seen`` != 0 is repeated by the C loop, with
        the same outcome, until that count changes; the model goes round once per
        change (spin_until_cond on the count), so every distinct iteration -- its
        GUP reference, its mapping -- is explored, but not the stutter between.
        """
        if not self.retry_wait and seen:
            spin_until_cond(kvm, "mn_active_invalidate_count", lambda n: n != seen)

    def wait_for_invalidations(self, kvm: Kvm, mmu_seq: int) -> int:
        """gpc_wait_for_invalidations() of [PATCH v3 3/5] (unmerged), before each GUP.

        Sleeps on kvm->gpc_invalidate_wq until no invalidation is pending (the
        posted test is per range, from 2/5; here: mn_active_invalidate_count == 0);
        after a wait the patch goes round the loop again, i.e. samples
        mmu_invalidate_seq afresh: returns the sequence count to check against.
        Mainline has no such wait: returns ``mmu_seq`` unless ``retry_wait``.
        """
        if not self.retry_wait or not kvm.mn_active_invalidate_count:
            return mmu_seq
        spin_until_cond(kvm, "mn_active_invalidate_count", lambda n: n == 0)
        return self.sample_mmu_seq(kvm)

    # -- hva_to_pfn_retry -----------------------------------------------------------
    def hva_to_pfn_retry(self, gpc: GfnToPfnCache) -> int:
        """hva_to_pfn_retry(): entered and left with refresh_lock and gpc->lock (write) held."""
        kvm = gpc.kvm
        assert kvm is not None
        assert gpc.lock is not None
        assert gpc.refresh_lock is not None
        old_khva = gpc.khva
        new_pfn = KVM_PFN_ERR_FAULT
        new_khva: KernelMapping | None = None
        seen = 0  # what the last failed retry check saw
        lockdep_assert_held(gpc.refresh_lock)
        lockdep_assert_held_write(gpc.lock)
        gpc.valid = False  # so a concurrent check() fails while the lock is dropped
        while True:
            mmu_seq = self.sample_mmu_seq(kvm)
            write_unlock_irq(gpc.lock)
            if new_pfn != KVM_PFN_ERR_FAULT:  # the previous iteration lost to an invalidation
                if new_khva is not old_khva:
                    self.gpc_unmap_khva(kvm, new_pfn, new_khva)
                kvm_release_pfn_clean(kvm, new_pfn)
                cond_resched()
                self.retry_backoff(kvm, seen)
            mmu_seq = self.wait_for_invalidations(kvm, mmu_seq)
            new_pfn = hva_to_pfn(kvm, gpc.uhva)  # unlocked read of gpc->uhva
            if is_error_noslot_pfn(new_pfn):
                write_lock_irq(gpc.lock)
                return -14  # -EFAULT
            if new_pfn == gpc.pfn:  # unlocked read of gpc->pfn: reuse the old mapping
                new_khva = old_khva
            else:
                new_khva = self.gpc_map(kvm, new_pfn)
            write_lock_irq(gpc.lock)
            WARN_ON_ONCE(gpc.valid, "hva_to_pfn_retry: cache became valid while gpc->lock was dropped")
            retry = self._retry_cache(kvm, mmu_seq)  # mmu_notifier_retry_cache()
            if retry is None:
                break
            seen = retry
        gpc.valid = True
        gpc.pfn = new_pfn
        gpc.khva = new_khva
        kvm_release_pfn_clean(kvm, new_pfn)  # from now on the mmu notifier protects the pfn
        return 0

    # -- __kvm_gpc_refresh ----------------------------------------------------------
    @c_name("__kvm_gpc_refresh")
    def _kvm_gpc_refresh(self, gpc: GfnToPfnCache, gpa: int, length: int) -> int:
        """__kvm_gpc_refresh(): revalidate gpa -> uhva -> pfn -> khva."""
        kvm = gpc.kvm
        assert kvm is not None
        assert gpc.lock is not None
        assert gpc.refresh_lock is not None
        if (gpa % PAGE_SIZE) + length > PAGE_SIZE:
            return -22  # -EINVAL
        mutex_lock(gpc.refresh_lock)
        write_lock_irq(gpc.lock)
        ret, old_pfn, old_khva, unmap_old = self._refresh_locked(gpc, kvm, gpa)
        write_unlock_irq(gpc.lock)
        mutex_unlock(gpc.refresh_lock)
        if unmap_old:
            self.gpc_unmap_khva(kvm, old_pfn, old_khva)
        return ret

    def _refresh_locked(self, gpc: GfnToPfnCache, kvm: Kvm, gpa: int) -> tuple[int, int, Any, bool]:
        """The body of __kvm_gpc_refresh() between taking and dropping gpc->lock."""
        if not gpc.active:
            return -22, KVM_PFN_ERR_FAULT, None, False
        old_pfn = gpc.pfn
        old_khva = gpc.khva
        old_uhva = gpc.uhva
        slots = kvm_memslots(kvm)
        ret = 0
        if gpc.gpa != gpa or gpc.generation != slots.generation or kvm_is_error_hva(gpc.uhva):
            gpc.gpa = gpa
            gpc.generation = slots.generation
            gpc.uhva = gfn_to_hva_memslot(slots, gpa // PAGE_SIZE)
            if kvm_is_error_hva(gpc.uhva):
                ret = -14
        if ret == 0:
            if not gpc.valid or old_uhva != gpc.uhva:
                ret = self.hva_to_pfn_retry(gpc)
            else:
                gpc.khva = old_khva  # already valid: only the offset could change
                return 0, old_pfn, old_khva, False
        if ret:
            gpc.valid = False
            gpc.pfn = KVM_PFN_ERR_FAULT
            gpc.khva = None
        return ret, old_pfn, old_khva, old_pfn != gpc.pfn

    # -- kvm_gpc_refresh ----------------------------------------------------------------
    def kvm_gpc_refresh(self, gpc: GfnToPfnCache, length: int) -> int:
        """kvm_gpc_refresh(): refresh at the cache's current gpa (read with no lock held)."""
        return self._kvm_gpc_refresh(gpc, gpc.gpa, length)

    # -- kvm_gpc_activate / kvm_gpc_deactivate -------------------------------------------
    def kvm_gpc_activate(self, gpc: GfnToPfnCache, gpa: int, length: int) -> int:
        """kvm_gpc_activate(): put the cache on kvm->gpc_list, mark it active, refresh it."""
        kvm = gpc.kvm
        assert kvm is not None
        assert gpc.lock is not None
        if not gpc.active:  # unlocked read
            if KVM_BUG_ON(gpc.valid, kvm, "kvm_gpc_activate: inactive cache is still valid"):
                return -5  # -EIO
            spin_lock(kvm.gpc_lock)
            kvm.gpc_list = (*kvm.gpc_list, gpc)  # list_add(&gpc->list, &kvm->gpc_list)
            spin_unlock(kvm.gpc_lock)
            write_lock_irq(gpc.lock)
            gpc.active = True
            write_unlock_irq(gpc.lock)
        return self._kvm_gpc_refresh(gpc, gpa, length)

    def kvm_gpc_deactivate(self, gpc: GfnToPfnCache) -> None:
        """kvm_gpc_deactivate(): v6.2 .. v6.8, WITHOUT refresh_lock (the seed's race)."""
        kvm = gpc.kvm
        assert kvm is not None
        assert gpc.lock is not None
        if gpc.active:  # unlocked read
            write_lock_irq(gpc.lock)
            gpc.active = False
            gpc.valid = False
            old_khva = gpc.khva
            gpc.khva = None
            old_pfn = gpc.pfn
            gpc.pfn = KVM_PFN_ERR_FAULT
            write_unlock_irq(gpc.lock)
            spin_lock(kvm.gpc_lock)
            kvm.gpc_list = tuple(g for g in kvm.gpc_list if g is not gpc)  # list_del
            spin_unlock(kvm.gpc_lock)
            self.gpc_unmap_khva(kvm, old_pfn, old_khva)

    # -- the mmu notifier hook ----------------------------------------------------------------
    def gfn_to_pfn_cache_invalidate_start(self, kvm: Kvm, start: int, end: int) -> None:
        """gfn_to_pfn_cache_invalidate_start(): clear ``valid`` on every cache whose uhva is in range."""
        spin_lock(kvm.gpc_lock)
        for gpc in kvm.gpc_list:
            assert gpc.lock is not None
            write_lock_irq(gpc.lock)
            if gpc.valid and not is_error_noslot_pfn(gpc.pfn) and start <= gpc.uhva < end:
                gpc.valid = False
            write_unlock_irq(gpc.lock)
        spin_unlock(kvm.gpc_lock)


# C-style entry points (include/linux/kvm_host.h): dispatch to the VM's build of pfncache.c.
def kvm_gpc_init(gpc: GfnToPfnCache, kvm: Kvm, guard_lock: Mutex | None = None) -> None:
    """``kvm_gpc_init()`` of the VM's kernel build."""
    kvm.build.pfncache.kvm_gpc_init(gpc, kvm, guard_lock)


def _build_of(gpc: GfnToPfnCache) -> Any:
    assert gpc.kvm is not None, f"{gpc!r} used before kvm_gpc_init()"
    return gpc.kvm.build.pfncache


def kvm_gpc_check(gpc: GfnToPfnCache, length: int) -> bool:
    """``kvm_gpc_check()`` of the VM's kernel build."""
    ok: bool = _build_of(gpc).kvm_gpc_check(gpc, length)
    return ok


def kvm_gpc_refresh(gpc: GfnToPfnCache, length: int) -> int:
    """``kvm_gpc_refresh()`` of the VM's kernel build."""
    r: int = _build_of(gpc).kvm_gpc_refresh(gpc, length)
    return r


def kvm_gpc_activate(gpc: GfnToPfnCache, gpa: int, length: int) -> int:
    """``kvm_gpc_activate()`` of the VM's kernel build."""
    r: int = _build_of(gpc).kvm_gpc_activate(gpc, gpa, length)
    return r


def kvm_gpc_deactivate(gpc: GfnToPfnCache) -> None:
    """``kvm_gpc_deactivate()`` of the VM's kernel build."""
    _build_of(gpc).kvm_gpc_deactivate(gpc)
