"""virt/kvm/kvm_main.c: the mmu notifier protocol and gfn/hva -> pfn (Linux v6.8).

Functions modelled: kvm_mmu_notifier_invalidate_range_start/_end,
kvm_mmu_invalidate_begin/_end, kvm_memslots, gfn_to_hva_memslot, hva_to_pfn,
kvm_release_pfn_clean.

Memslots are read under kvm->srcu (kvm_memslots() checks it, as the kernel's
srcu_dereference_check does).

The invalidation protocol (what the pfn cache relies on):
  range_start: mn_active_invalidate_count++ (under mn_invalidate_lock), then
               the pfn caches are invalidated, then (range overlaps a memslot)
               mmu_invalidate_begin under mmu_lock: in_progress++.
  range_end:   (range overlaps a memslot) under mmu_lock: mmu_invalidate_seq++,
               smp_wmb, in_progress--; then mn_active_invalidate_count--.
Simplification: the KVM MMU's own SPTE zapping is not modelled (no seed needs it here).
"""

from __future__ import annotations

from kvmcheck.kernel import (
    lockdep_is_held,
    spin_lock,
    spin_unlock,
    srcu_dereference_check,
    srcu_read_lock,
    srcu_read_unlock,
    write_lock,
    write_unlock,
)
from kvmcheck.models.build import Subsystem
from kvmcheck.models.mm.mm import MmStruct, get_user_pages
from kvmcheck.models.mm.page import put_page
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


def kvm_mmu_invalidate_begin(kvm: Kvm) -> None:
    """kvm_mmu_invalidate_begin() (virt/kvm/kvm_main.c, v6.8): under mmu_lock, in_progress++."""
    kvm.mmu_invalidate_in_progress = kvm.mmu_invalidate_in_progress + 1


def kvm_mmu_invalidate_end(kvm: Kvm) -> None:
    """kvm_mmu_invalidate_end() (virt/kvm/kvm_main.c, v6.8): under mmu_lock, seq++, in_progress--."""
    kvm.mmu_invalidate_seq = kvm.mmu_invalidate_seq + 1  # then smp_wmb()
    kvm.mmu_invalidate_in_progress = kvm.mmu_invalidate_in_progress - 1


def kvm_mmu_notifier_invalidate_range_start(mm: MmStruct, kvm: Kvm, start: int, end: int) -> None:
    """kvm_mmu_notifier_invalidate_range_start() (virt/kvm/kvm_main.c, v6.8): count++, caches, begin."""
    spin_lock(kvm.mn_invalidate_lock)
    kvm.mn_active_invalidate_count = kvm.mn_active_invalidate_count + 1
    spin_unlock(kvm.mn_invalidate_lock)
    kvm.build.pfncache.gfn_to_pfn_cache_invalidate_start(kvm, start, end)
    if _overlaps_memslot(kvm, start, end):
        write_lock(kvm.mmu_lock)
        kvm_mmu_invalidate_begin(kvm)
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


class KvmMain(Subsystem):
    """virt/kvm/kvm_main.c at v6.8: the functions other subsystems call and variants patch."""

    subsystem = "kvm_main"
    version = "v6.8"

    def hva_to_pfn(self, kvm: Kvm, hva: int) -> int:
        """``hva_to_pfn()``: GUP the page (takes a reference, may sleep); error pfn if not present."""
        pfn = get_user_pages(kvm.mm, hva)
        return pfn if pfn else KVM_PFN_ERR_FAULT

    def kvm_release_pfn_clean(self, kvm: Kvm, pfn: int) -> None:
        """``kvm_release_pfn_clean()``: drop the reference hva_to_pfn took."""
        if pfn != KVM_PFN_ERR_FAULT:
            put_page(kvm.mm.pages[pfn])


# C-style entry points: dispatch to this VM's build of kvm_main.
def hva_to_pfn(kvm: Kvm, hva: int) -> int:
    """``hva_to_pfn()`` of the VM's kernel build."""
    pfn: int = kvm.build.kvm_main.hva_to_pfn(kvm, hva)
    return pfn


def kvm_release_pfn_clean(kvm: Kvm, pfn: int) -> None:
    """``kvm_release_pfn_clean()`` of the VM's kernel build."""
    kvm.build.kvm_main.kvm_release_pfn_clean(kvm, pfn)


def is_error_noslot_pfn(pfn: int) -> bool:
    """is_error_noslot_pfn() (include/linux/kvm_host.h): the pfn is an error or no-slot value."""
    return pfn == KVM_PFN_ERR_FAULT
