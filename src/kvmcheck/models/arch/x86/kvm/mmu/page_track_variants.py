"""Every version of page tracking in seed 001, each a patch on the v6.1 model, and the kernel builds.

page_track.c:
  v6.1     -- page_track.py.
  yan-v2   -- "[v2,1/3] KVM: x86: add a new page track hook track_remove_slot"
              (Yan Zhao, 2022-11-11): kvm_page_track_remove_slot(), called from
              kvm_arch_commit_memory_region() for DELETE/MOVE.  The series
              ("add track_remove_slot and remove track_flush_slot") also drops
              the flush hook (patch 3, read from its title: not in the seed).
  v6.6     -- 7b574863e718 / e18c5429e0c4 / 96316a06700f / f22b1e8500b4:
              kvm_write_track_add_gfn()/remove_gfn() take kvm->srcu and mmu_lock
              themselves and the internal helpers assert them; b83ab124ded3:
              kvm_page_track_delete_slot() -> track_remove_region at commit;
              d104d5bbbc2d: no flush hook; 932844462ae3: KVM is no longer a
              notifier user; c70934e0ab2d: kvm_page_track_has_external_user().
              (torvalds/linux arch/x86/kvm/mmu/page_track.c @03c11eb3b16d.)

``VARIANTS`` names the build of each variant of issue 11: which version of
page_track.c, mmu.c (mmu_fault.py), spte.c, x86.c's memslot hooks and KVMGT.
"""

from __future__ import annotations

from typing import Any

from kvmcheck.kernel import (
    KVM_BUG_ON,
    READ_ONCE,
    WARN_ON_ONCE,
    lockdep_assert_held_write,
    lockdep_is_held,
    srcu_read_lock,
    srcu_read_lock_held,
    srcu_read_unlock,
    write_lock,
    write_unlock,
)
from kvmcheck.models.arch.x86.kvm.mmu.mmu_fault import Mmu, Mmu66, NoMmuWritableClear
from kvmcheck.models.arch.x86.kvm.mmu.page_track import PageTrack, head_of
from kvmcheck.models.arch.x86.kvm.mmu.spte import NoMakeSpteRecheck, Spte, Spte66
from kvmcheck.models.build import Build, Subsystem
from kvmcheck.models.drivers.gpu.drm.i915.gvt.kvmgt import (
    Kvmgt,
    Kvmgt66,
    KvmgtGfnLock,
    KvmgtLockInTrackWrite,
    KvmgtYanV2,
)
from kvmcheck.models.drivers.gpu.drm.i915.gvt.page_track import GvtPageTrack, GvtPageTrack66
from kvmcheck.models.virt.kvm.kvm_host import Kvm
from kvmcheck.models.virt.kvm.kvm_set_memslot import X86, X86V66, X86YanV2, gfn_to_memslot

EINVAL = -22


class PageTrackYanV2(PageTrack):
    """Yan's seed patch: a "remove" hook run when a DELETE/MOVE is about to be committed."""

    version = "yan-v2"

    def kvm_page_track_remove_slot(self, kvm: Kvm, slot: Any) -> None:
        """kvm_page_track_remove_slot() (seed patch 1/3): each node's track_remove_slot under track_srcu."""
        head = head_of(kvm)
        if not READ_ONCE(head, "track_notifier_list"):
            return
        idx = srcu_read_lock(head.track_srcu)
        for n in self._nodes(head):
            if n.track_remove_slot is not None:
                n.track_remove_slot(kvm, slot, n)
        srcu_read_unlock(head.track_srcu, idx)


class PageTrack66(PageTrack):
    """page_track.c at v6.6 (the 2023 page-track API overhaul, merged for 6.6)."""

    version = "v6.6"

    def kvm_gfn_is_write_tracked(self, kvm: Kvm, slot: Any, gfn: int) -> bool:
        """kvm_gfn_is_write_tracked() (7b574863e718): the lockless READ_ONCE of the count."""
        return self.kvm_slot_page_track_is_active(kvm, slot, gfn)

    def _assert_locked(self, kvm: Kvm) -> None:
        """e18c5429e0c4: mmu_lock held for write; the slot pinned by slots_lock or kvm->srcu."""
        lockdep_assert_held_write(kvm.mmu_lock)
        WARN_ON_ONCE(
            not (lockdep_is_held(kvm.slots_lock) or srcu_read_lock_held(kvm.srcu)),
            "lockdep_assert_once(slots_lock || kvm->srcu) failed",
        )

    def kvm_write_track_add_gfn_locked(self, kvm: Kvm, slot: Any, gfn: int) -> None:
        """__kvm_write_track_add_gfn(): asserts, count++, write-protect, flush."""
        self._assert_locked(kvm)
        if KVM_BUG_ON(not self.kvm_page_track_write_tracking_enabled(kvm), kvm, "write tracking disabled"):
            return
        self.update_gfn_track(slot, gfn, 1)
        if kvm.build.mmu.kvm_mmu_slot_gfn_write_protect(kvm, slot, gfn):
            kvm.build.mmu.kvm_flush_remote_tlbs(kvm)

    def kvm_write_track_remove_gfn_locked(self, kvm: Kvm, slot: Any, gfn: int) -> None:
        """__kvm_write_track_remove_gfn(): asserts, count--."""
        self._assert_locked(kvm)
        if KVM_BUG_ON(not self.kvm_page_track_write_tracking_enabled(kvm), kvm, "write tracking disabled"):
            return
        self.update_gfn_track(slot, gfn, -1)

    def kvm_write_track_add_gfn(self, kvm: Kvm, gfn: int) -> int:
        """kvm_write_track_add_gfn(): the external API; takes kvm->srcu and mmu_lock (write) itself."""
        idx = srcu_read_lock(kvm.srcu)
        slot = gfn_to_memslot(kvm, gfn)
        if slot is None:
            srcu_read_unlock(kvm.srcu, idx)
            return EINVAL
        write_lock(kvm.mmu_lock)
        self.kvm_write_track_add_gfn_locked(kvm, slot, gfn)
        write_unlock(kvm.mmu_lock)
        srcu_read_unlock(kvm.srcu, idx)
        return 0

    def kvm_write_track_remove_gfn(self, kvm: Kvm, gfn: int) -> int:
        """kvm_write_track_remove_gfn(): as kvm_write_track_add_gfn(), count--."""
        idx = srcu_read_lock(kvm.srcu)
        slot = gfn_to_memslot(kvm, gfn)
        if slot is None:
            srcu_read_unlock(kvm.srcu, idx)
            return EINVAL
        write_lock(kvm.mmu_lock)
        self.kvm_write_track_remove_gfn_locked(kvm, slot, gfn)
        write_unlock(kvm.mmu_lock)
        srcu_read_unlock(kvm.srcu, idx)
        return 0

    def kvm_page_track_write(self, vcpu: Any, gpa: int, new: int, nbytes: int) -> None:
        """kvm_page_track_write() (page_track.h, v6.6): external users, then kvm_mmu_track_write()."""
        self.kvm_page_track_write_external(vcpu.kvm, gpa, new, nbytes)
        vcpu.kvm.build.mmu.kvm_mmu_track_write(vcpu, gpa, new, nbytes)

    def kvm_page_track_write_external(self, kvm: Kvm, gpa: int, new: int, nbytes: int) -> None:
        """__kvm_page_track_write(): track_write(gpa, new, bytes, node) -- no vCPU since b271e17defb0."""
        head = head_of(kvm)
        if not READ_ONCE(head, "track_notifier_list"):
            return
        idx = srcu_read_lock(head.track_srcu)
        for n in self._nodes(head):
            if n.track_write is not None:
                n.track_write(gpa, new, nbytes, n)
        srcu_read_unlock(head.track_srcu, idx)

    def kvm_page_track_flush_slot(self, kvm: Kvm, slot: Any) -> None:
        """Removed by d104d5bbbc2d: nothing calls it at v6.6."""
        raise AssertionError("kvm_page_track_flush_slot() does not exist at v6.6")

    def kvm_page_track_delete_slot(self, kvm: Kvm, slot: Any) -> None:
        """kvm_page_track_delete_slot() (b83ab124ded3): track_remove_region(base_gfn, npages) at commit."""
        head = head_of(kvm)
        if not READ_ONCE(head, "track_notifier_list"):
            return
        idx = srcu_read_lock(head.track_srcu)
        for n in self._nodes(head):
            if n.track_remove_region is not None:
                n.track_remove_region(slot.base_gfn, slot.npages, n)
        srcu_read_unlock(head.track_srcu, idx)

    def kvm_page_track_has_external_user(self, kvm: Kvm) -> bool:
        """kvm_page_track_has_external_user() (c70934e0ab2d, with the inverted check fixed)."""
        return bool(READ_ONCE(head_of(kvm), "track_notifier_list"))


# -- the builds of issue 11 ----------------------------------------------------------------
V61: tuple[Subsystem, ...] = (PageTrack(), Mmu(), Spte(), X86(), Kvmgt(), GvtPageTrack())
V66: tuple[Subsystem, ...] = (PageTrack66(), Mmu66(), Spte66(), X86V66(), Kvmgt66(), GvtPageTrack66())

VARIANTS: dict[str, tuple[Subsystem, ...]] = {
    "v6.1": V61,
    "v6.1-lock-in-track-write": (*V61, KvmgtLockInTrackWrite()),
    "no-make-spte-recheck": (*V61, NoMakeSpteRecheck()),
    "no-mmu-writable-clear": (*V61, NoMmuWritableClear()),
    "yan-v2": (*V61, PageTrackYanV2(), X86YanV2(), KvmgtYanV2()),
    "v6.6": V66,
    "gfn-lock": (*V66, KvmgtGfnLock(), GvtPageTrack()),  # the handler keeps its own vgpu_lock
}
ALL = tuple(VARIANTS)


def build_for(variant: str) -> Build:
    """The kernel of ``variant``: its base release, with the variant's patches on top."""
    parts = VARIANTS[variant]
    base = V66 if parts[: len(V66)] == V66 else V61
    return Build(*base).patched(*parts[len(base) :])
