"""The shadow_root_allocated publication (v6.1), with its release/acquire pair (issue 20 item 3).

Seed 001's bundled models run with CONFIG_KVM_EXTERNAL_WRITE_TRACKING=y (KVMGT selects
it): there kvm_page_track_write_tracking_enabled() is true before it reads anything,
every memslot gets its gfn_track array when it is created, and the pairing below is
never executed (Sean Christopherson says so on the list: "When
CONFIG_KVM_EXTERNAL_WRITE_TRACKING=y, then the mmu_first_shadow_root_alloc() doesn't
touch the memslots because everything is pre-allocated", search id 43001141621).  It
is executed by a VM with TDP and no external tracker -- the lazy allocation this
module models on its own, as models/virt/kvm/mmu_invalidate.py does for its pairing.

What is modelled, and where it was read (v6.1):

* ``mmu_first_shadow_root_alloc()`` (arch/x86/kvm/mmu/mmu.c; search id 30119175777,
  6251747035): if kvm_shadow_root_allocated() return; take slots_arch_lock; re-check;
  for every memslot allocate the rmaps and, through
  kvm_page_track_write_tracking_alloc(), ``slot->arch.gfn_track[KVM_PAGE_TRACK_WRITE]``
  (a plain store of the new array's pointer); then, with the comment that
  shadow_root_allocated must become true "strictly after all the related pointers are
  set", ``smp_store_release(&kvm->arch.shadow_root_allocated, true)``; unlock.
* ``kvm_shadow_root_allocated()`` (arch/x86/kvm/mmu.h; search id 236408580):
  ``smp_load_acquire(&kvm->arch.shadow_root_allocated)``, commented "Read
  shadow_root_allocated before related pointers ... Pairs with smp_store_release in
  mmu_first_shadow_root_alloc".
* ``kvm_page_track_write_tracking_enabled()`` (page_track.c): EXTERNAL_WRITE_TRACKING
  || !tdp_enabled || kvm_shadow_root_allocated(); here the first two are false.
* ``kvm_slot_page_track_is_active()`` (page_track.c; search id 35752118234): if write
  tracking is not enabled, false; else READ_ONCE of
  ``slot->arch.gfn_track[mode][index]`` -- the array pointer itself read plainly.

The liberty taken: the array pointer is stored and loaded with WRITE_ONCE/READ_ONCE
(plain in C), so that under the LKMM a stale NULL has a meaning (herd7 would call the
plain race a data race and say nothing of the value); with the kernel's pair the access
is not a race at all.  The rmaps are published the same way and not modelled.

Variants (``VARIANTS``):

  v6.1                    smp_store_release() / smp_load_acquire(), as in the tree
  store-release-weakened  mutant: the smp_store_release() weakened to WRITE_ONCE()
  load-acquire-weakened   mutant: the smp_load_acquire() weakened to READ_ONCE()
"""

from __future__ import annotations

from typing import Any

from kvmcheck import Source
from kvmcheck.kernel import (
    READ_ONCE,
    WRITE_ONCE,
    Mutex,
    Struct,
    mutex_lock,
    mutex_unlock,
    smp_load_acquire,
    smp_store_release,
)

VARIANTS = ("v6.1", "store-release-weakened", "load-acquire-weakened")
KVM_PAGE_TRACK_WRITE = 0

_V61 = (
    "v6.1: arch/x86/kvm/mmu/mmu.c (mmu_first_shadow_root_alloc), "
    "arch/x86/kvm/mmu.h (kvm_shadow_root_allocated)"
)
SOURCES: dict[str, Source] = {
    "v6.1": Source("tree", _V61 + ", arch/x86/kvm/mmu/page_track.c (kvm_slot_page_track_is_active)"),
    "store-release-weakened": Source(
        "mutant",
        _V61,
        "The v6.1 model with smp_store_release(&kvm->arch.shadow_root_allocated, true) "
        "weakened to WRITE_ONCE().",
    ),
    "load-acquire-weakened": Source(
        "mutant",
        _V61,
        "The v6.1 model with kvm_shadow_root_allocated()'s smp_load_acquire() weakened to READ_ONCE().",
    ),
}


class GfnTrackCount(Struct):
    """One u16 of ``slot->arch.gfn_track[KVM_PAGE_TRACK_WRITE][]``."""

    count: int = 0


class KvmArchMemorySlot(Struct):
    """``struct kvm_arch_memory_slot``: the write-tracking array's pointer (NULL until allocated)."""

    gfn_track_write: Any = None  # gfn_track[KVM_PAGE_TRACK_WRITE]: a tuple of counts, or NULL


class KvmMemorySlot:
    """``struct kvm_memory_slot``: base_gfn, npages, arch."""

    def __init__(self, base_gfn: int, npages: int) -> None:
        self.base_gfn = base_gfn
        self.npages = npages
        self.arch = KvmArchMemorySlot()


class KvmArch(Struct):
    """The part of ``struct kvm_arch`` (and of ``struct kvm``) the publication is about."""

    shadow_root_allocated: bool = False

    def __init__(self, slots: tuple[KvmMemorySlot, ...], variant: str) -> None:
        super().__init__()
        self.slots = slots
        self.variant = variant
        self.slots_arch_lock = Mutex("kvm->slots_arch_lock")


def kvm_shadow_root_allocated(kvm: KvmArch) -> bool:
    """kvm_shadow_root_allocated() (mmu.h, v6.1): smp_load_acquire(&kvm->arch.shadow_root_allocated)."""
    if kvm.variant == "load-acquire-weakened":
        return bool(READ_ONCE(kvm, "shadow_root_allocated"))
    return bool(smp_load_acquire(kvm, "shadow_root_allocated"))


def kvm_page_track_write_tracking_enabled(kvm: KvmArch) -> bool:
    """kvm_page_track_write_tracking_enabled() (v6.1) for a TDP VM without an external tracker."""
    return kvm_shadow_root_allocated(kvm)


def kvm_page_track_write_tracking_alloc(slot: KvmMemorySlot) -> None:
    """__kvm_page_track_write_tracking_alloc(): allocate the array unless the slot has one."""
    if READ_ONCE(slot.arch, "gfn_track_write") is not None:
        return
    counts = tuple(GfnTrackCount() for _ in range(slot.npages))  # __vcalloc(): zeroed
    WRITE_ONCE(slot.arch, "gfn_track_write", counts)


def mmu_first_shadow_root_alloc(kvm: KvmArch) -> None:
    """mmu_first_shadow_root_alloc() (mmu.c, v6.1): allocate the metadata, then publish the flag."""
    if kvm_shadow_root_allocated(kvm):
        return
    mutex_lock(kvm.slots_arch_lock)
    if not kvm_shadow_root_allocated(kvm):  # re-check under the lock
        for slot in kvm.slots:
            kvm_page_track_write_tracking_alloc(slot)  # (memslot_rmap_alloc() likewise, not modelled)
        if kvm.variant == "store-release-weakened":
            WRITE_ONCE(kvm, "shadow_root_allocated", True)
        else:
            smp_store_release(kvm, "shadow_root_allocated", True)
    mutex_unlock(kvm.slots_arch_lock)


def kvm_slot_page_track_is_active(kvm: KvmArch, slot: KvmMemorySlot, gfn: int) -> bool:
    """kvm_slot_page_track_is_active(kvm, slot, gfn, KVM_PAGE_TRACK_WRITE) (page_track.c, v6.1)."""
    if not kvm_page_track_write_tracking_enabled(kvm):
        return False
    index = gfn - slot.base_gfn
    arr = READ_ONCE(slot.arch, "gfn_track_write")
    return bool(READ_ONCE(arr[index], "count"))  # NULL[index]: the oops a stale pointer is
