"""virt/kvm/kvm_main.c kvm_set_memslot() for DELETE/MOVE, and x86.c's memslot hooks (Linux v6.1, v6.6).

kvm_main.c (the same at v6.1 and v6.6 on this path; read from torvalds/linux
and the 2021 memslot rework by Maciej Szmigiero / Sean Christopherson):

  kvm_set_memslot(DELETE|MOVE):
    slots_arch_lock; kzalloc the INVALID copy;
    kvm_invalidate_memslot(): publish the copy with KVM_MEMSLOT_INVALID,
        kvm_swap_active_memslots() (drops slots_arch_lock, synchronize_srcu),
        kvm_arch_flush_shadow_memslot(old)     <- the page-track flush hook up to v6.5
        retake slots_arch_lock; old->arch = invalid_slot->arch;
    r = kvm_prepare_memory_region()            <- may fail, AFTER the flush
    r != 0: kvm_activate_memslot(invalid_slot, old): the old slot is back; kfree
    r == 0: delete / move; kfree; kvm_commit_memory_region() -> arch commit.

x86.c hooks (class ``X86``, subsystem "x86"; the hooks live in x86.c, and
kvm_arch_flush_shadow_memslot() moved to mmu.c in v6.6 by db0d70e61082 --
kept together here because only the memslot path calls them):
  v6.1   prepare fails for a MOVE/CREATE when the new slot's metadata cannot
         be allocated (-ENOMEM, below), or beyond kvm_mmu_max_gfn() (-EINVAL, in
         the x86.c the digest's correction 5 read; not used by the scenarios);
         flush_shadow_memslot = kvm_page_track_flush_slot (KVM's own zap and
         KVMGT's flush both run from it, correction 3 of digest 03).
  yan-v2 commit calls kvm_page_track_remove_slot() for DELETE/MOVE; the flush
         hook is gone, so flush_shadow_memslot zaps directly.
  v6.6   prepare refuses MOVE when an external page-track user exists
         (c70934e0ab2d); commit calls kvm_page_track_delete_slot() for DELETE
         (b83ab124ded3); flush_shadow_memslot zaps directly (eeb87272a364).

Nondeterministic failure: kvm_arch_prepare_memory_region() for a CREATE or
MOVE allocates the new slot's metadata (kvm_alloc_memslot_metadata: rmaps,
lpage_info, gfn_track), which may fail with -ENOMEM -- ``may_fail()``, so the
search explores both the failed and the committed MOVE.  A deterministic
failure is modelled too: a new range beyond kvm_mmu_max_gfn() is -EINVAL.

Locking contract: kvm->slots_lock (mutex) is held by the caller for the whole
update; kvm->slots_arch_lock (mutex) protects the slots' arch data against
mmu_first_shadow_root_alloc() and is dropped across each swap; kvm->memslots
is published with rcu_assign_pointer and read under kvm->srcu; a swap waits
for readers with synchronize_srcu(kvm->srcu).  Lock order: slots_lock ->
slots_arch_lock, slots_lock -> (hooks) -> mmu_lock / the hooks' own locks.
Lifetime: the INVALID copy is kmalloc'ed per update and kfree'd when the
update ends either way; ``arch`` (gfn_track) is shared by the old slot and
its copy.  Simplifications: one address space; the new slot of a MOVE is only
its range (the move itself is never committed in these scenarios).
"""

from __future__ import annotations

from typing import Any

from kvmcheck.kernel import (
    Struct,
    kfree,
    kzalloc,
    may_fail,
    mutex_lock,
    mutex_unlock,
    rcu_assign_pointer,
    struct_init,
    synchronize_srcu,
)
from kvmcheck.models.build import Subsystem
from kvmcheck.models.virt.kvm.kvm_host import Kvm, KvmMemslots
from kvmcheck.models.virt.kvm.kvm_main import kvm_memslots

KVM_MEMSLOT_INVALID = 1 << 16
KVM_MR_CREATE, KVM_MR_DELETE, KVM_MR_MOVE, KVM_MR_FLAGS_ONLY = range(4)
EINVAL = -22
ENOMEM = -12
KVM_MMU_MAX_GFN = 0xF_FFFF  # kvm_mmu_max_gfn() of the modelled host (small MAXPHYADDR)


class KvmMemorySlot(Struct):
    """``struct kvm_memory_slot``: the fields these models use.  ``flags`` is set before publication."""

    flags: int = 0

    def __init__(self, slot_id: int = 0, base_gfn: int = 0, npages: int = 0, arch: Any = None) -> None:
        super().__init__()
        self.id = slot_id
        self.base_gfn = base_gfn
        self.npages = npages
        self.arch = arch  # struct kvm_arch_memory_slot (page_track.py)

    def _kc_label(self) -> str:
        return f"memslot{self.id}"


def gfn_to_memslot(kvm: Kvm, gfn: int) -> KvmMemorySlot | None:
    """gfn_to_memslot(): the slot holding gfn in kvm->memslots (INVALID ones included), under kvm->srcu."""
    for slot in kvm_memslots(kvm).slots:
        if slot.base_gfn <= gfn < slot.base_gfn + slot.npages:
            s: KvmMemorySlot = slot
            return s
    return None


def kvm_copy_memslot(dest: KvmMemorySlot, src: KvmMemorySlot) -> None:
    """kvm_copy_memslot(): dest is not published yet, so this is initialisation, not an access."""
    dest.id, dest.base_gfn, dest.npages, dest.arch = src.id, src.base_gfn, src.npages, src.arch
    struct_init(dest, flags=src.__dict__["flags"])


def kvm_swap_active_memslots(kvm: Kvm, slots: tuple[KvmMemorySlot, ...]) -> None:
    """kvm_swap_active_memslots(): publish the new set, drop slots_arch_lock, wait for kvm->srcu readers."""
    old: KvmMemslots = kvm_memslots(kvm)
    new = KvmMemslots(old.gfn_to_hva, old.generation + 1, slots)
    rcu_assign_pointer(kvm, "memslots", new)
    mutex_unlock(kvm.slots_arch_lock)
    synchronize_srcu(kvm.srcu)


def _replaced(kvm: Kvm, old: KvmMemorySlot, new: KvmMemorySlot) -> tuple[KvmMemorySlot, ...]:
    """kvm_replace_memslot(): the slot set with ``old`` replaced by ``new``."""
    return tuple(new if s is old else s for s in kvm_memslots(kvm).slots)


def kvm_invalidate_memslot(kvm: Kvm, old: KvmMemorySlot, invalid_slot: KvmMemorySlot) -> None:
    """kvm_invalidate_memslot(): publish the INVALID copy, then flush the old slot (the hook)."""
    kvm_copy_memslot(invalid_slot, old)
    struct_init(invalid_slot, flags=invalid_slot.__dict__["flags"] | KVM_MEMSLOT_INVALID)
    kvm_swap_active_memslots(kvm, _replaced(kvm, old, invalid_slot))
    kvm.build.x86.kvm_arch_flush_shadow_memslot(kvm, old)
    mutex_lock(kvm.slots_arch_lock)  # released by kvm_swap_active_memslots(), reacquire
    old.arch = invalid_slot.arch


def kvm_activate_memslot(kvm: Kvm, old: KvmMemorySlot, new: KvmMemorySlot) -> None:
    """kvm_activate_memslot(): make ``new`` the active slot in place of ``old``."""
    kvm_swap_active_memslots(kvm, _replaced(kvm, old, new))


def kvm_set_memslot(kvm: Kvm, old: KvmMemorySlot, new: KvmMemorySlot | None, change: int) -> int:
    """kvm_set_memslot() (kvm_main.c) for DELETE and MOVE: invalidate, prepare, revert or commit."""
    mutex_lock(kvm.slots_arch_lock)
    invalid_slot = kzalloc(KvmMemorySlot)
    kvm_invalidate_memslot(kvm, old, invalid_slot)
    r = kvm.build.x86.kvm_arch_prepare_memory_region(kvm, old, new, change)
    if r:
        kvm_activate_memslot(kvm, invalid_slot, old)  # "revert the above INVALID change"
        kfree(invalid_slot)
        return int(r)
    if change == KVM_MR_DELETE:
        kvm_swap_active_memslots(kvm, tuple(s for s in kvm_memslots(kvm).slots if s is not invalid_slot))
    else:
        assert new is not None
        kvm_activate_memslot(kvm, invalid_slot, new)
    kfree(invalid_slot)
    kvm.build.x86.kvm_arch_commit_memory_region(kvm, old, new, change)
    return 0


def kvm_set_memory_region(kvm: Kvm, slot_id: int, new_base_gfn: int | None) -> int:
    """KVM_SET_USER_MEMORY_REGION for an existing slot: MOVE to new_base_gfn, or DELETE (None).

    kvm_set_memory_region() takes kvm->slots_lock around __kvm_set_memory_region().
    """
    mutex_lock(kvm.slots_lock)
    old = next(s for s in kvm_memslots(kvm).slots if s.id == slot_id)
    if new_base_gfn is None:
        r = kvm_set_memslot(kvm, old, None, KVM_MR_DELETE)
    else:
        new = KvmMemorySlot(slot_id, new_base_gfn, old.npages)
        r = kvm_set_memslot(kvm, old, new, KVM_MR_MOVE)
    mutex_unlock(kvm.slots_lock)
    return r


class X86(Subsystem):
    """arch/x86/kvm/x86.c's memslot hooks at v6.1."""

    subsystem = "x86"
    version = "v6.1"

    def kvm_arch_prepare_memory_region(
        self, kvm: Kvm, old: KvmMemorySlot, new: KvmMemorySlot | None, change: int
    ) -> int:
        """kvm_arch_prepare_memory_region(): CREATE/MOVE: range check, then the new metadata."""
        if change in (KVM_MR_CREATE, KVM_MR_MOVE):
            assert new is not None
            if new.base_gfn + new.npages - 1 > KVM_MMU_MAX_GFN:
                return EINVAL
            return self.kvm_alloc_memslot_metadata(kvm, new)
        return 0

    def kvm_alloc_memslot_metadata(self, kvm: Kvm, slot: KvmMemorySlot) -> int:
        """kvm_alloc_memslot_metadata(): fresh rmaps / lpage_info / gfn_track (zero counts); may fail."""
        if may_fail("kvm_alloc_memslot_metadata"):
            return ENOMEM
        slot.arch = kvm.build.page_track.new_arch_memslot(kvm, slot.base_gfn, slot.npages)
        return 0

    def kvm_arch_commit_memory_region(
        self, kvm: Kvm, old: KvmMemorySlot, new: KvmMemorySlot | None, change: int
    ) -> None:
        """kvm_arch_commit_memory_region(): nothing on this path at v6.1."""

    def kvm_arch_flush_shadow_memslot(self, kvm: Kvm, slot: KvmMemorySlot) -> None:
        """kvm_arch_flush_shadow_memslot() (x86.c, v6.1): kvm_page_track_flush_slot()."""
        kvm.build.page_track.kvm_page_track_flush_slot(kvm, slot)


class X86YanV2(X86):
    """Yan's seed series: the remove hook at commit, the flush hook gone (KVM zaps directly)."""

    version = "yan-v2"

    def kvm_arch_commit_memory_region(
        self, kvm: Kvm, old: KvmMemorySlot, new: KvmMemorySlot | None, change: int
    ) -> None:
        """Seed patch 1/3: kvm_page_track_remove_slot(kvm, old) for DELETE and MOVE."""
        if change in (KVM_MR_DELETE, KVM_MR_MOVE):
            kvm.build.page_track.kvm_page_track_remove_slot(kvm, old)

    def kvm_arch_flush_shadow_memslot(self, kvm: Kvm, slot: KvmMemorySlot) -> None:
        """With track_flush_slot removed (patch 3/3), KVM zaps the slot's SPTEs itself."""
        kvm.build.mmu.kvm_mmu_zap_all_fast(kvm, slot)


class X86V66(X86):
    """x86.c / mmu.c memslot hooks at v6.6."""

    version = "v6.6"

    def kvm_arch_prepare_memory_region(
        self, kvm: Kvm, old: KvmMemorySlot, new: KvmMemorySlot | None, change: int
    ) -> int:
        """c70934e0ab2d: MOVE is refused (-EINVAL) while an external page-track user is attached."""
        if change == KVM_MR_MOVE and kvm.build.page_track.kvm_page_track_has_external_user(kvm):
            return EINVAL
        return super().kvm_arch_prepare_memory_region(kvm, old, new, change)

    def kvm_arch_commit_memory_region(
        self, kvm: Kvm, old: KvmMemorySlot, new: KvmMemorySlot | None, change: int
    ) -> None:
        """b83ab124ded3: kvm_page_track_delete_slot(kvm, old) for DELETE, past the point of no return."""
        if change == KVM_MR_DELETE:
            kvm.build.page_track.kvm_page_track_delete_slot(kvm, old)

    def kvm_arch_flush_shadow_memslot(self, kvm: Kvm, slot: KvmMemorySlot) -> None:
        """kvm_arch_flush_shadow_memslot() (mmu.c since db0d70e61082): zap directly (eeb87272a364)."""
        kvm.build.mmu.kvm_mmu_zap_all_fast(kvm, slot)
