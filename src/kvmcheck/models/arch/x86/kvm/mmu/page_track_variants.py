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

``BUILDS`` names the build of each variant of issue 11: which version of
page_track.c, mmu.c (mmu.py, mmu_variants.py), spte.c, x86.c's memslot hooks and KVMGT.
"""

from __future__ import annotations

from typing import Any

from kvmcheck import Source
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
from kvmcheck.models.arch.x86.kvm.mmu.mmu import Mmu
from kvmcheck.models.arch.x86.kvm.mmu.mmu_variants import Mmu66, NoMmuWritableClear
from kvmcheck.models.arch.x86.kvm.mmu.page_track import PageTrack, head_of
from kvmcheck.models.arch.x86.kvm.mmu.spte import NoMakeSpteRecheck, Spte, Spte66
from kvmcheck.models.build import Build
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
V61 = Build(PageTrack(), Mmu(), Spte(), X86(), Kvmgt(), GvtPageTrack())
V66 = Build(PageTrack66(), Mmu66(), Spte66(), X86V66(), Kvmgt66(), GvtPageTrack66())

BUILDS: dict[str, Build] = {
    "v6.1": V61,
    "v6.1-lock-in-track-write": V61.patched(KvmgtLockInTrackWrite()),
    "no-make-spte-recheck": V61.patched(NoMakeSpteRecheck()),
    "no-mmu-writable-clear": V61.patched(NoMmuWritableClear()),
    "yan-v2": V61.patched(PageTrackYanV2(), X86YanV2(), KvmgtYanV2()),
    "v6.6": V66,
    "gfn-lock": V66.patched(KvmgtGfnLock()),  # v1 08/27 + 09/27: the v6.6 handler, vgpu_lock -> gfn_lock
}
ALL = tuple(BUILDS)

# -- where each build was read (issue 23 item 3) -------------------------------------------------
V1 = "2022-12-23"  # Sean's v1 series, "[PATCH 00/27] drm/i915/gvt: KVM: KVMGT fixes and page-track cleanups"
V1_08 = (
    "[PATCH 08/27] drm/i915/gvt: Hoist acquisition of vgpu_lock out to kvmgt_page_track_write()"
    f" — {V1} — <20221223005739.1295925-9-seanjc@google.com>"
)
V1_09 = (
    "[PATCH 09/27] drm/i915/gvt: Protect gfn hash table with dedicated mutex"
    f" — {V1} — <20221223005739.1295925-10-seanjc@google.com>"
)
V4_11 = (
    "[PATCH v4 11/29] drm/i915/gvt: Protect gfn hash table with vgpu_lock"
    " — 2023-07-28 — <20230729013535.1070024-12-seanjc@google.com>"
)
V61_FILES = (
    "v6.1: arch/x86/kvm/mmu/{page_track.c, mmu.c, tdp_mmu.c, spte.c}, arch/x86/kvm/x86.c,"
    " virt/kvm/kvm_main.c, drivers/gpu/drm/i915/gvt/{kvmgt.c, page_track.c}"
)
V61_NOTE = (
    "the v6.1 tag could not be pinned in the code index (SOURCES.md: no v6.1 row; the Makefile is"
    " never stored at a page_track.c or kvmgt.c version), so v6.1 is rebuilt from text whose code is"
    " the pre-v6.6 shape: KVMGT from the pre-images of the posted " + V1_08 + " and " + V1_09 + " (base"
    " 9d75a3251adf: unlocked track_write, add/remove/flush_slot under kvm->srcu + mmu_lock, the"
    " handler taking vgpu_lock); make_spte / mmu_try_to_unsync_pages as Sean quotes them on"
    " 2022-11-15 <Y3Ljjji0Bwt5+WxH@google.com>; kvm_page_track_flush_slot() from the pre-image of"
    " Yan's [PATCH v2 3/3] <20221111103504.22431-1-yan.y.zhao@intel.com> (its x86.c context already"
    " sits on Sean's 2022-11-10 series, so v6.1's flush path -- kvm_arch_flush_shadow_memslot() calling"
    " only the hook, KVM's own node zapping from it -- is from diff context, digest 03 correction 3);"
    " the fault path, write-protection and kvm_set_memslot from 6.1-era per-file copies of unproven"
    " tag (digest 03 corrections 1, 2, 5, 8)"
)

SOURCES: dict[str, Source] = {
    "v6.1": Source("reconstructed", V61_FILES, V61_NOTE),
    "v6.1-lock-in-track-write": Source(
        "mutant",
        V61_FILES,
        "v6.1 with kvmgt_page_track_write() taking write_lock(&kvm->mmu_lock) around the table lookup"
        " and the handler: the fix the changelogs of " + V1_09 + " and " + V4_11 + " rule out"
        " (mmu_lock is a r/w spinlock and the handler may sleep on vgpu->cache_lock); never posted as code",
    ),
    "no-make-spte-recheck": Source(
        "mutant",
        V61_FILES,
        "v6.1 with make_spte() not calling mmu_try_to_unsync_pages(), i.e. trusting the fault's"
        " lockless read of the write-track count: the re-check Sean points to in the seed thread"
        " (2022-11-15, <Y3Ljjji0Bwt5+WxH@google.com>) removed",
    ),
    "no-mmu-writable-clear": Source(
        "mutant",
        V61_FILES,
        "v6.1 with write-protection for tracking (kvm_mmu_slot_gfn_write_protect -> the TDP MMU's"
        " write_protect_gfn) clearing PT_WRITABLE_MASK but leaving the MMU-writable bit, whose clearing"
        " the kernel comments 'to ensure future writes continue to be intercepted' (digest 03 correction 2)",
    ),
    "yan-v2": Source(
        "posted",
        "[PATCH v2 1/3] KVM: x86: add a new page track hook track_remove_slot — 2022-11-11 —"
        " <20221111103350.22326-1-yan.y.zhao@intel.com>; [PATCH v2 2/3] drm/i915/gvt: switch from"
        " track_flush_slot to track_remove_slot — 2022-11-11 — <20221111103436.22381-1-yan.y.zhao@intel.com>;"
        " [PATCH v2 3/3] KVM: x86: Remove the unused page track hook track_flush_slot — 2022-11-11 —"
        " <20221111103504.22431-1-yan.y.zhao@intel.com>",
        "all three patches read as posted, applied to the v6.1 model (itself reconstructed, see v6.1);"
        " the series' base, Sean's <20221110014821.1548347-1-seanjc@google.com> (KVM no longer relies on"
        " the flush hook), is modelled only as 3/3's post-image: kvm_arch_flush_shadow_memslot() zaps"
        " directly. 2/3 was read on this pass (earlier only its title): the KVMGT body is the old"
        " flush_slot renamed to remove_slot, as modelled",
    ),
    "v6.6": Source(
        "tree",
        "v6.6 (merge of kvm-x86-mmu-6.6, 2023-09-07): arch/x86/kvm/mmu/page_track.c read at"
        " torvalds/linux @03c11eb3b16d; drivers/gpu/drm/i915/gvt/{kvmgt.c, page_track.c} = 3cca6b262876 as"
        " posted in " + V4_11 + ", c15fcf12ffb3, 2ee05a4c275a; x86.c c70934e0ab2d, b83ab124ded3",
        "the v6.6 tag is not proven by SOURCES.md's recipe (no v6.6 row: the Makefile is not stored at the"
        " per-file commits); the modelled shas are checked to have reached mainline in the v6.6 merge"
        " window (digest 03 corrections, search id 66997220076); the KVM fault path and memslot update"
        " are the v6.1 reading with 932844462ae3 / eeb87272a364 applied; KVMGT's add/remove/track_write/"
        "remove_region were also compared with a stored post-v6.6 kvmgt.c (find_string id 77688213, whose"
        " repository the tool does not name): the same locking",
    ),
    "gfn-lock": Source(
        "posted",
        V1_08 + "; " + V1_09,
        "both read as posted and applied to the v6.6 model: the handler without its own vgpu_lock"
        " (08/27, the same hunk as v6.6's), vgpu_lock -> gfn_lock in kvmgt_page_track_write(), gfn_lock"
        " around the table in add/remove (09/27); the KVM calls and the region hook are the v1 series'"
        " own later forms ([PATCH 24/27] <20221223005739.1295925-25-seanjc@google.com>: kvm_write_track_"
        "add/remove_gfn(kvm, gfn); [PATCH 16/27] <20221223005739.1295925-17-seanjc@google.com>: remove_region"
        " under gfn_lock alone). Replaces an earlier reconstruction from the review mail that kept"
        " vgpu_lock in the handler (gfn_lock -> vgpu_lock: a cycle the posted patch does not have)",
    ),
}
