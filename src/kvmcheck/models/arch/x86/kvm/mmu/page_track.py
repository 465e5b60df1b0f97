"""arch/x86/kvm/mmu/page_track.c: write tracking of guest pages and its notifiers (Linux v6.1; v6.6).

Modelled, at v6.1 (``PageTrack``; read from the v6.1-era source and the
diffs of the 2023 cleanup series that quote it): the per-slot write-track
counts and ``update_gfn_track``; ``kvm_slot_page_track_add_page`` /
``_remove_page`` (count, then write-protect every SPTE of the gfn and flush);
the lockless ``kvm_slot_page_track_is_active``; the notifier head
(``track_srcu`` + list) with register / unregister; ``kvm_page_track_write``
and ``kvm_page_track_flush_slot``.  ``page_track_variants.py`` holds Yan's
seed series (``track_remove_slot``) and v6.6 (torvalds/linux @03c11eb3b16d,
the shape v6.6 .. v6.8 share: ``kvm_write_track_add_gfn`` and friends,
``track_remove_region``, ``kvm_page_track_has_external_user``).

Locking contract (Sean in the seed thread; asserted from v6.6, e18c5429e0c4):
  slot->arch.gfn_track[]  written under kvm->mmu_lock held for write, with the
                          slot pinned by kvm->srcu or kvm->slots_lock; read
                          under mmu_lock (mmu_try_to_unsync_pages) or locklessly
                          with READ_ONCE (page_fault_handle_page_track).
  notifier list           changed under mmu_lock (write); walked under
                          track_srcu; unregister waits for walkers with
                          synchronize_srcu(track_srcu).
Lock order: track_srcu (read) is outermost: a track_write hook may take its
user's locks and, through them, kvm->srcu and mmu_lock.
Lifetime: gfn_track lives with the slot's ``arch``, which a memslot DELETE or
MOVE copies to the INVALID slot and back (old->arch = invalid_slot->arch), so
counts changed meanwhile survive a reverted MOVE.
Simplifications: write tracking only (KVM_PAGE_TRACK_WRITE), always enabled
(CONFIG_KVM_EXTERNAL_WRITE_TRACKING=y, as with KVMGT); no huge pages, so the
disallow/allow-lpage bookkeeping is omitted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvmcheck.kernel import (
    READ_ONCE,
    WARN_ON_ONCE,
    SpinLock,
    Srcu,
    Struct,
    rcu_assign_pointer,
    srcu_dereference,
    srcu_read_lock,
    srcu_read_unlock,
    synchronize_srcu,
    write_lock,
    write_unlock,
)
from kvmcheck.models.build import Subsystem
from kvmcheck.models.virt.kvm.kvm_host import Kvm

PAGE_SHIFT = 12
USHRT_MAX = 0xFFFF


def gpa_to_gfn(gpa: int) -> int:
    """gpa_to_gfn() (include/linux/kvm_host.h)."""
    return gpa >> PAGE_SHIFT


class GfnTrack(Struct):
    """One element of ``slot->arch.gfn_track[KVM_PAGE_TRACK_WRITE][]`` (a u16 count)."""

    # Written under mmu_lock (write); read locklessly by the fault path, by design.
    __locking__ = {"count": {"write": "mmu_lock", "read": ()}}

    count: int = 0

    def __init__(self, gfn: int, mmu_lock: Any = None) -> None:
        super().__init__()
        self.gfn = gfn
        self.mmu_lock = mmu_lock  # kvm->mmu_lock, for the locking contract

    def _kc_label(self) -> str:
        return f"gfn_track[gfn {self.gfn:#x}]"


class KvmArchMemorySlot:
    """``struct kvm_arch_memory_slot`` (the gfn_track part): one count per gfn of the slot."""

    def __init__(self, base_gfn: int, npages: int, mmu_lock: Any = None) -> None:
        self.gfn_track = {g: GfnTrack(g, mmu_lock) for g in range(base_gfn, base_gfn + npages)}


class KvmPageTrackNotifierNode:
    """``struct kvm_page_track_notifier_node``: a user's hooks (None: not implemented)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.owner: Any = None  # the user this node is embedded in (container_of)
        self.track_write: Callable[..., None] | None = None
        self.track_flush_slot: Callable[..., None] | None = None  # up to v6.5
        self.track_remove_slot: Callable[..., None] | None = None  # Yan's seed patch
        self.track_remove_region: Callable[..., None] | None = None  # v6.6

    def __repr__(self) -> str:
        return f"<track node {self.name}>"


class KvmPageTrackNotifierHead(Struct):
    """``struct kvm_page_track_notifier_head``: the hlist of nodes and its SRCU domain."""

    track_notifier_list: tuple[KvmPageTrackNotifierNode, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.track_srcu = Srcu("kvm->arch.track_notifier_head.track_srcu")

    def _kc_label(self) -> str:
        return "track_notifier_head"


class KvmMmuPage(Struct):
    """``struct kvm_mmu_page`` of an indirect (shadow) page table: only its ``unsync`` flag."""

    unsync: bool = False


class KvmArch:
    """``struct kvm_arch``: the fields the page-track and fault models use.

    ``sptes`` stands for the TDP MMU's leaf SPTEs (gfn -> Sptep), ``shadow_pages``
    for the indirect shadow pages per gfn (empty under TDP, as in the scenarios).
    """

    def __init__(self, sptes: dict[int, Any]) -> None:
        self.track_notifier_head = KvmPageTrackNotifierHead()
        self.mmu_unsync_pages_lock = SpinLock("kvm->arch.mmu_unsync_pages_lock")
        self.sptes = dict(sptes)
        self.shadow_pages: dict[int, tuple[KvmMmuPage, ...]] = {}
        self.indirect_shadow_pages = 0  # never changes here: no shadow paging
        self.mmu_sp_tracker = KvmPageTrackNotifierNode("kvm->arch.mmu_sp_tracker")


def head_of(kvm: Kvm) -> KvmPageTrackNotifierHead:
    """``&kvm->arch.track_notifier_head``."""
    head: KvmPageTrackNotifierHead = kvm.arch.track_notifier_head
    return head


class PageTrack(Subsystem):
    """arch/x86/kvm/mmu/page_track.c at v6.1."""

    subsystem = "page_track"
    version = "v6.1"

    # -- the counts -----------------------------------------------------------------
    def new_arch_memslot(self, kvm: Kvm, base_gfn: int, npages: int) -> KvmArchMemorySlot:
        """kvm_page_track_create_memslot(): a zeroed gfn_track for a new (or moved) slot."""
        return KvmArchMemorySlot(base_gfn, npages, kvm.mmu_lock)

    def kvm_page_track_write_tracking_enabled(self, kvm: Kvm) -> bool:
        """kvm_page_track_write_tracking_enabled(): always, with CONFIG_KVM_EXTERNAL_WRITE_TRACKING=y."""
        return True

    def update_gfn_track(self, slot: Any, gfn: int, count: int) -> None:
        """update_gfn_track(): a plain read-modify-write; WARN (and skip) on under/overflow."""
        t = slot.arch.gfn_track[gfn]
        val = t.count
        if WARN_ON_ONCE(val + count < 0 or val + count > USHRT_MAX, "update_gfn_track: count out of range"):
            return
        t.count = val + count

    def kvm_slot_page_track_add_page(self, kvm: Kvm, slot: Any, gfn: int) -> None:
        """kvm_slot_page_track_add_page(): count++, then write-protect the gfn's SPTEs and flush.

        v6.1 states its contract only in a comment ("under the protection both of
        mmu-lock and kvm->srcu or kvm->slots_lock"); no lockdep assertion yet.
        """
        if WARN_ON_ONCE(not self.kvm_page_track_write_tracking_enabled(kvm), "write tracking disabled"):
            return
        self.update_gfn_track(slot, gfn, 1)
        if kvm.build.mmu.kvm_mmu_slot_gfn_write_protect(kvm, slot, gfn):
            kvm.build.mmu.kvm_flush_remote_tlbs(kvm)

    def kvm_slot_page_track_remove_page(self, kvm: Kvm, slot: Any, gfn: int) -> None:
        """kvm_slot_page_track_remove_page(): count-- (huge pages allowed again: not modelled)."""
        if WARN_ON_ONCE(not self.kvm_page_track_write_tracking_enabled(kvm), "write tracking disabled"):
            return
        self.update_gfn_track(slot, gfn, -1)

    def kvm_slot_page_track_is_active(self, kvm: Kvm, slot: Any, gfn: int) -> bool:
        """kvm_slot_page_track_is_active(): READ_ONCE of the count -- no lock needed by the reader."""
        if slot is None or not self.kvm_page_track_write_tracking_enabled(kvm):
            return False
        return bool(READ_ONCE(slot.arch.gfn_track[gfn], "count"))

    # -- the notifiers -------------------------------------------------------------------
    def kvm_page_track_register_notifier(self, kvm: Kvm, n: KvmPageTrackNotifierNode) -> int:
        """kvm_page_track_register_notifier(): hlist_add_head_rcu under mmu_lock (write)."""
        head = head_of(kvm)
        write_lock(kvm.mmu_lock)
        rcu_assign_pointer(head, "track_notifier_list", (n, *head.track_notifier_list))
        write_unlock(kvm.mmu_lock)
        return 0

    def kvm_page_track_unregister_notifier(self, kvm: Kvm, n: KvmPageTrackNotifierNode) -> None:
        """kvm_page_track_unregister_notifier(): hlist_del_rcu under mmu_lock, then wait for walkers."""
        head = head_of(kvm)
        write_lock(kvm.mmu_lock)
        rest = tuple(m for m in head.track_notifier_list if m is not n)
        rcu_assign_pointer(head, "track_notifier_list", rest)
        write_unlock(kvm.mmu_lock)
        synchronize_srcu(head.track_srcu)

    def _nodes(self, head: KvmPageTrackNotifierHead) -> tuple[KvmPageTrackNotifierNode, ...]:
        """hlist_for_each_entry_srcu(n, &head->track_notifier_list, ...): the list as the walker sees it."""
        nodes: tuple[KvmPageTrackNotifierNode, ...] = srcu_dereference(
            head, "track_notifier_list", head.track_srcu
        )
        return nodes

    def kvm_page_track_write(self, vcpu: Any, gpa: int, new: int, nbytes: int) -> None:
        """kvm_page_track_write(): after an emulated write, call every node's track_write under track_srcu."""
        head = head_of(vcpu.kvm)
        if not READ_ONCE(head, "track_notifier_list"):  # hlist_empty()
            return
        idx = srcu_read_lock(head.track_srcu)
        for n in self._nodes(head):
            if n.track_write is not None:
                n.track_write(vcpu, gpa, new, nbytes, n)
        srcu_read_unlock(head.track_srcu, idx)

    def kvm_page_track_flush_slot(self, kvm: Kvm, slot: Any) -> None:
        """kvm_page_track_flush_slot(): each node's track_flush_slot, from kvm_arch_flush_shadow_memslot()."""
        head = head_of(kvm)
        if not READ_ONCE(head, "track_notifier_list"):
            return
        idx = srcu_read_lock(head.track_srcu)
        for n in self._nodes(head):
            if n.track_flush_slot is not None:
                n.track_flush_slot(kvm, slot, n)
        srcu_read_unlock(head.track_srcu, idx)


# C-style entry points: dispatch to the VM's build of page_track.c.
def kvm_page_track_write(vcpu: Any, gpa: int, new: int, nbytes: int) -> None:
    """``kvm_page_track_write()`` of the VM's kernel build (the emulator's call after a write)."""
    vcpu.kvm.build.page_track.kvm_page_track_write(vcpu, gpa, new, nbytes)


def kvm_page_track_register_notifier(kvm: Kvm, n: KvmPageTrackNotifierNode) -> int:
    """``kvm_page_track_register_notifier()`` of the VM's kernel build."""
    r: int = kvm.build.page_track.kvm_page_track_register_notifier(kvm, n)
    return r


def kvm_page_track_unregister_notifier(kvm: Kvm, n: KvmPageTrackNotifierNode) -> None:
    """``kvm_page_track_unregister_notifier()`` of the VM's kernel build."""
    kvm.build.page_track.kvm_page_track_unregister_notifier(kvm, n)


def write_track_count(slot: Any, gfn: int) -> int:
    """The count itself, for a scenario's final check (no lock: all threads have been joined)."""
    c: int = slot.arch.gfn_track[gfn].count
    return c
