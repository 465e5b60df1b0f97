"""drivers/gpu/drm/i915/gvt/kvmgt.c: KVMGT, the external page-track user (Linux v6.1; v6.6).

Modelled at v6.1 (``Kvmgt``, read from torvalds/linux kvmgt.c of that era
and the "-" lines of 3cca6b262876): the protect table ``info->ptable`` (a
hash of ``kvmgt_pgfn {gfn, hnode}``: add = kzalloc(GFP_ATOMIC) + hash_add,
del = hash_del + kfree, find = hash_for_each_possible),
``intel_gvt_page_track_add`` / ``_remove`` (kvm->srcu, write_lock(mmu_lock),
KVM's count and the table), ``kvmgt_page_track_write`` (no lock at all: the
use-after-free), ``kvmgt_page_track_flush_slot`` and the notifier
registration of intel_vgpu_open_device().

Variants (each overrides just what its patch changed):
  v6.1-lock-in-track-write  the naive fix: track_write takes mmu_lock around
                            the lookup and the handler -- which sleeps.
  yan-v2                    KVMGT uses the commit-time track_remove_slot hook
                            instead of track_flush_slot (patch 2/3 of the seed
                            series, read from its title: same body, new hook).
  v6.6                      3cca6b262876 (ptable under vgpu_lock, taken by
                            track_write around lookup + handler; the find
                            helper asserts it), 7b574863e718/96316a06700f (the
                            kvm_write_track_add_gfn API), b271e17defb0 (no
                            vCPU in track_write), c15fcf12ffb3/2ee05a4c275a
                            (track_remove_region: only the table entries go).
                            (torvalds/linux kvmgt.c @002c6ca75289 vs later.)
  gfn-lock                  v1 of Sean's series as posted ("[PATCH 08/27]
                            drm/i915/gvt: Hoist acquisition of vgpu_lock out to
                            kvmgt_page_track_write()" and "[PATCH 09/27]
                            drm/i915/gvt: Protect gfn hash table with dedicated
                            mutex", 2022-12-23): the table under a separate
                            info->gfn_lock, taken inside vgpu_lock by
                            track_write and alone by add/remove/remove_region;
                            the handler takes no lock (08/27).  Yan found the
                            re-entrant deadlock (2022-12-28); the series then
                            protected the table with vgpu_lock instead (v4 11/29,
                            merged as 3cca6b262876).

Locking contract:
  v6.1: info->ptable under kvm->mmu_lock (write) in add/remove/flush --
        and under nothing in kvmgt_page_track_write (the bug).
  v6.6: info->ptable under info->vgpu_lock (lockdep_assert_held in the find
        helper); order track_srcu -> vgpu_lock -> {cache_lock,
        kvm->srcu -> mmu_lock}.
  gfn-lock: info->ptable under info->gfn_lock (lockdep_assert_held in the
        find helper); order track_srcu -> vgpu_lock -> gfn_lock -> {cache_lock,
        kvm->srcu -> mmu_lock}; a handler that re-enters add/remove takes
        gfn_lock a second time.
Lifetime: a kvmgt_pgfn is kzalloc'ed by table_add and kfree'd by table_del
(or at close); a walker must hold the table's lock to dereference it.
Simplification: every gfn hashes to one bucket (the scenarios use one gfn).
"""

from __future__ import annotations

from typing import Any

from kvmcheck.kernel import (
    Mutex,
    Struct,
    kfree,
    kzalloc,
    lockdep_assert_held,
    mutex_lock,
    mutex_unlock,
    srcu_read_lock,
    srcu_read_unlock,
    write_lock,
    write_unlock,
)
from kvmcheck.models.arch.x86.kvm.mmu.page_track import KvmPageTrackNotifierNode, gpa_to_gfn
from kvmcheck.models.build import Subsystem
from kvmcheck.models.virt.kvm.kvm_host import Kvm
from kvmcheck.models.virt.kvm.kvm_set_memslot import gfn_to_memslot

EINVAL = -22
ESRCH = -3


class KvmgtPgfn(Struct):
    """``struct kvmgt_pgfn``: a gfn KVMGT write-protects, and its ``hnode.next``."""

    gfn: int = 0
    next: Any = None

    def __init__(self, **fields: Any) -> None:
        super().__init__(**fields)
        self.pprev: tuple[Any, str] | None = None  # hnode.pprev: changed only by table writers

    def _kc_label(self) -> str:
        return f"kvmgt_pgfn[gfn {self.__dict__['gfn']:#x}]"


class PtableBucket(Struct):
    """One ``struct hlist_head`` of ``info->ptable``."""

    first: Any = None

    def _kc_label(self) -> str:
        return "ptable"


class IntelVgpu(Struct):
    """``struct intel_vgpu`` (the fields KVMGT's page tracking uses)."""

    failsafe: bool = False
    shadow_writes: int = 0  # writes the shadow-PPGTT handler has seen (GVT's shadow state)

    def __init__(self, kvm: Kvm) -> None:
        super().__init__()
        self.kvm = kvm
        self.vgpu_lock = Mutex("vgpu->vgpu_lock")
        self.cache_lock = Mutex("vgpu->cache_lock")
        self.gfn_lock = Mutex("vgpu->gfn_lock")  # the gfn-lock variant only
        self.ptable = PtableBucket()
        self.page_track_tree: dict[int, Any] = {}  # gvt/page_track.c's radix tree
        self.track_node = KvmPageTrackNotifierNode("vgpu->track_node")
        self.attached = True
        # the gfn of a new page table a guest PTE write makes present (None: no such write);
        # the shadow handler then shadows and write-protects it (a harness setting)
        self.populate_gfn: int | None = None

    def _kc_label(self) -> str:
        return "vgpu"


# -- <linux/hashtable.h> on one bucket ---------------------------------------------------
def hash_add(head: PtableBucket, n: KvmgtPgfn) -> None:
    """hash_add() -> hlist_add_head()."""
    first = head.first
    n.next = first
    if first is not None:
        first.pprev = (n, "next")
    head.first = n  # WRITE_ONCE(h->first, n)
    n.pprev = (head, "first")


def hash_del(n: KvmgtPgfn) -> None:
    """hash_del() -> hlist_del_init(): unlink (``*pprev = next``), then n->next = NULL."""
    assert n.pprev is not None
    holder, field = n.pprev
    nxt = n.next
    setattr(holder, field, nxt)  # WRITE_ONCE(*pprev, next)
    if nxt is not None:
        nxt.pprev = n.pprev
    n.next = None
    n.pprev = None


class Kvmgt(Subsystem):
    """drivers/gpu/drm/i915/gvt/kvmgt.c at v6.1."""

    subsystem = "kvmgt"
    version = "v6.1"

    # -- the protect table -------------------------------------------------------------------
    def ptable_lock_held(self, info: IntelVgpu) -> None:
        """The find helper's lockdep assertion: none at v6.1."""

    def __kvmgt_protect_table_find(self, info: IntelVgpu, gfn: int) -> KvmgtPgfn | None:
        """__kvmgt_protect_table_find(): hash_for_each_possible over the bucket."""
        self.ptable_lock_held(info)
        p = info.ptable.first
        while p is not None:
            if p.gfn == gfn:
                found: KvmgtPgfn = p
                return found
            p = p.next
        return None

    def kvmgt_gfn_is_write_protected(self, info: IntelVgpu, gfn: int) -> bool:
        """kvmgt_gfn_is_write_protected()."""
        return self.__kvmgt_protect_table_find(info, gfn) is not None

    def kvmgt_protect_table_add(self, info: IntelVgpu, gfn: int) -> None:
        """kvmgt_protect_table_add(): kzalloc(GFP_ATOMIC) a node and hash_add it (unless present)."""
        if self.kvmgt_gfn_is_write_protected(info, gfn):
            return
        p = kzalloc(KvmgtPgfn, gfn=gfn)
        hash_add(info.ptable, p)

    def kvmgt_protect_table_del(self, info: IntelVgpu, gfn: int) -> None:
        """kvmgt_protect_table_del(): hash_del and kfree."""
        p = self.__kvmgt_protect_table_find(info, gfn)
        if p is not None:
            hash_del(p)
            kfree(p)

    # -- add / remove --------------------------------------------------------------------------
    def intel_gvt_page_track_add(self, info: IntelVgpu, gfn: int) -> int:
        """intel_gvt_page_track_add() (v6.1): kvm->srcu, mmu_lock (write) around count and table."""
        kvm = info.kvm
        if not info.attached:
            return ESRCH
        idx = srcu_read_lock(kvm.srcu)
        slot = gfn_to_memslot(kvm, gfn)
        if slot is None:
            srcu_read_unlock(kvm.srcu, idx)
            return EINVAL
        write_lock(kvm.mmu_lock)
        if not self.kvmgt_gfn_is_write_protected(info, gfn):
            kvm.build.page_track.kvm_slot_page_track_add_page(kvm, slot, gfn)
            self.kvmgt_protect_table_add(info, gfn)
        write_unlock(kvm.mmu_lock)
        srcu_read_unlock(kvm.srcu, idx)
        return 0

    def intel_gvt_page_track_remove(self, info: IntelVgpu, gfn: int) -> int:
        """intel_gvt_page_track_remove() (v6.1): as add; the table entry is kfree'd under mmu_lock."""
        kvm = info.kvm
        if not info.attached:
            return 0
        idx = srcu_read_lock(kvm.srcu)
        slot = gfn_to_memslot(kvm, gfn)
        if slot is None:
            srcu_read_unlock(kvm.srcu, idx)
            return EINVAL
        write_lock(kvm.mmu_lock)
        if self.kvmgt_gfn_is_write_protected(info, gfn):
            kvm.build.page_track.kvm_slot_page_track_remove_page(kvm, slot, gfn)
            self.kvmgt_protect_table_del(info, gfn)
        write_unlock(kvm.mmu_lock)
        srcu_read_unlock(kvm.srcu, idx)
        return 0

    # -- the page-track hooks ------------------------------------------------------------------
    def kvmgt_page_track_write(self, vcpu: Any, gpa: int, val: int, nbytes: int, node: Any) -> None:
        """kvmgt_page_track_write() (v6.1): the table is walked with no lock held."""
        info = node.owner
        if self.kvmgt_gfn_is_write_protected(info, gpa_to_gfn(gpa)):
            info.kvm.build.gvt_page_track.intel_vgpu_page_track_handler(info, gpa)

    def kvmgt_page_track_flush_slot(self, kvm: Kvm, slot: Any, node: Any) -> None:
        """kvmgt_page_track_flush_slot() (v6.1): drop tracking and table entries of every gfn in the slot."""
        info = node.owner
        write_lock(kvm.mmu_lock)
        for gfn in range(slot.base_gfn, slot.base_gfn + slot.npages):
            if self.kvmgt_gfn_is_write_protected(info, gfn):
                kvm.build.page_track.kvm_slot_page_track_remove_page(kvm, slot, gfn)
                self.kvmgt_protect_table_del(info, gfn)
        write_unlock(kvm.mmu_lock)

    def set_hooks(self, vgpu: IntelVgpu) -> None:
        """intel_vgpu_open_device()'s hook assignment (v6.1: track_write, track_flush_slot)."""
        n = vgpu.track_node
        n.track_write = self.kvmgt_page_track_write
        n.track_flush_slot = self.kvmgt_page_track_flush_slot

    def intel_vgpu_open_device(self, vgpu: IntelVgpu) -> int:
        """intel_vgpu_open_device(): the page-track part (hooks, then register the node)."""
        vgpu.track_node.owner = vgpu  # container_of(node, struct intel_vgpu, track_node)
        self.set_hooks(vgpu)
        r: int = vgpu.kvm.build.page_track.kvm_page_track_register_notifier(vgpu.kvm, vgpu.track_node)
        return r


class KvmgtLockInTrackWrite(Kvmgt):
    """The naive fix Sean rejected: take mmu_lock in kvmgt_page_track_write() -- the handler sleeps."""

    version = "v6.1-lock-in-track-write"

    def kvmgt_page_track_write(self, vcpu: Any, gpa: int, val: int, nbytes: int, node: Any) -> None:
        """kvmgt_page_track_write() with write_lock(&kvm->mmu_lock) around the lookup and the handler."""
        info = node.owner
        write_lock(info.kvm.mmu_lock)
        if self.kvmgt_gfn_is_write_protected(info, gpa_to_gfn(gpa)):
            info.kvm.build.gvt_page_track.intel_vgpu_page_track_handler(info, gpa)
        write_unlock(info.kvm.mmu_lock)


class KvmgtYanV2(Kvmgt):
    """Seed series patch 2/3: KVMGT drops its write protection from the commit-time remove hook."""

    version = "yan-v2"

    def kvmgt_page_track_remove_slot(self, kvm: Kvm, slot: Any, node: Any) -> None:
        """kvmgt_page_track_remove_slot(): the old flush_slot body, now run at commit."""
        self.kvmgt_page_track_flush_slot(kvm, slot, node)

    def set_hooks(self, vgpu: IntelVgpu) -> None:
        """track_write and track_remove_slot (no track_flush_slot)."""
        n = vgpu.track_node
        n.track_write = self.kvmgt_page_track_write
        n.track_remove_slot = self.kvmgt_page_track_remove_slot


class Kvmgt66(Kvmgt):
    """kvmgt.c at v6.6: the table under vgpu_lock (3cca6b262876) and the new page-track API."""

    version = "v6.6"

    def ptable_lock_held(self, info: IntelVgpu) -> None:
        """3cca6b262876: lockdep_assert_held(&info->vgpu_lock) in the find helper."""
        lockdep_assert_held(info.vgpu_lock)

    def intel_gvt_page_track_add(self, info: IntelVgpu, gfn: int) -> int:
        """intel_gvt_page_track_add() (v6.6): table check (vgpu_lock held), KVM's count, then the table."""
        if not info.attached:
            return ESRCH
        if self.kvmgt_gfn_is_write_protected(info, gfn):
            return 0
        r: int = info.kvm.build.page_track.kvm_write_track_add_gfn(info.kvm, gfn)
        if r:
            return r
        self.kvmgt_protect_table_add(info, gfn)
        return 0

    def intel_gvt_page_track_remove(self, info: IntelVgpu, gfn: int) -> int:
        """intel_gvt_page_track_remove() (v6.6): the table entry is kfree'd after mmu_lock is dropped."""
        if not info.attached:
            return ESRCH
        if not self.kvmgt_gfn_is_write_protected(info, gfn):
            return 0
        r: int = info.kvm.build.page_track.kvm_write_track_remove_gfn(info.kvm, gfn)
        if r:
            return r
        self.kvmgt_protect_table_del(info, gfn)
        return 0

    def kvmgt_page_track_write_66(self, gpa: int, val: int, nbytes: int, node: Any) -> None:
        """kvmgt_page_track_write() (v6.6): vgpu_lock around the lookup and the handler."""
        info = node.owner
        mutex_lock(info.vgpu_lock)
        if self.kvmgt_gfn_is_write_protected(info, gpa_to_gfn(gpa)):
            info.kvm.build.gvt_page_track.intel_vgpu_page_track_handler(info, gpa)
        mutex_unlock(info.vgpu_lock)

    def kvmgt_page_track_remove_region(self, gfn: int, nr_pages: int, node: Any) -> None:
        """kvmgt_page_track_remove_region() (c15fcf12ffb3): under vgpu_lock, only the table entries go."""
        info = node.owner
        mutex_lock(info.vgpu_lock)
        for g in range(gfn, gfn + nr_pages):
            if self.kvmgt_gfn_is_write_protected(info, g):
                self.kvmgt_protect_table_del(info, g)
        mutex_unlock(info.vgpu_lock)

    def set_hooks(self, vgpu: IntelVgpu) -> None:
        """track_write (v6.6 signature) and track_remove_region."""
        n = vgpu.track_node
        n.track_write = self.kvmgt_page_track_write_66
        n.track_remove_region = self.kvmgt_page_track_remove_region


class KvmgtGfnLock(Kvmgt66):
    """v1 08/27 + 09/27 of Sean's KVMGT series: the table under its own ``gfn_lock``, inside ``vgpu_lock``.

    08/27 hoisted vgpu_lock out of intel_vgpu_page_track_handler() into
    kvmgt_page_track_write() (the v6.6 handler, GvtPageTrack66) so that the
    order is vgpu_lock -> gfn_lock; 09/27 added gfn_lock around every table
    access.  The KVM calls are the v6.6 API the same v1 series converts them to
    (24/27), and the region hook is 16/27's (gfn_lock only).
    """

    version = "gfn-lock"

    def ptable_lock_held(self, info: IntelVgpu) -> None:
        """09/27: lockdep_assert_held(&info->gfn_lock) in the find helper."""
        lockdep_assert_held(info.gfn_lock)

    def intel_gvt_page_track_add(self, info: IntelVgpu, gfn: int) -> int:
        """intel_gvt_page_track_add() (09/27, 24/27): gfn_lock around table check, KVM's count, add."""
        if not info.attached:
            return ESRCH
        mutex_lock(info.gfn_lock)
        ret = 0
        if not self.kvmgt_gfn_is_write_protected(info, gfn):
            ret = info.kvm.build.page_track.kvm_write_track_add_gfn(info.kvm, gfn)
            if not ret:
                self.kvmgt_protect_table_add(info, gfn)
        mutex_unlock(info.gfn_lock)
        return ret

    def intel_gvt_page_track_remove(self, info: IntelVgpu, gfn: int) -> int:
        """intel_gvt_page_track_remove() (09/27, 24/27): as add; the entry is kfree'd under gfn_lock."""
        if not info.attached:
            return 0
        mutex_lock(info.gfn_lock)
        ret = 0
        if self.kvmgt_gfn_is_write_protected(info, gfn):
            ret = info.kvm.build.page_track.kvm_write_track_remove_gfn(info.kvm, gfn)
            if not ret:
                self.kvmgt_protect_table_del(info, gfn)
        mutex_unlock(info.gfn_lock)
        return ret

    def kvmgt_page_track_write_66(self, gpa: int, val: int, nbytes: int, node: Any) -> None:
        """kvmgt_page_track_write(): vgpu_lock (08/27), then gfn_lock (09/27), around lookup and handler."""
        info = node.owner
        mutex_lock(info.vgpu_lock)
        mutex_lock(info.gfn_lock)
        if self.kvmgt_gfn_is_write_protected(info, gpa_to_gfn(gpa)):
            info.kvm.build.gvt_page_track.intel_vgpu_page_track_handler(info, gpa)
        mutex_unlock(info.gfn_lock)
        mutex_unlock(info.vgpu_lock)

    def kvmgt_page_track_remove_region(self, gfn: int, nr_pages: int, node: Any) -> None:
        """kvmgt_page_track_remove_region() (v1 16/27): the table entries go under gfn_lock alone."""
        info = node.owner
        mutex_lock(info.gfn_lock)
        for g in range(gfn, gfn + nr_pages):
            if self.kvmgt_gfn_is_write_protected(info, g):
                self.kvmgt_protect_table_del(info, g)
        mutex_unlock(info.gfn_lock)


# C-style entry points used by GVT (gvt/page_track.c, gtt.c).
def intel_gvt_page_track_add(info: IntelVgpu, gfn: int) -> int:
    """``intel_gvt_page_track_add()`` of the VM's kernel build."""
    r: int = info.kvm.build.kvmgt.intel_gvt_page_track_add(info, gfn)
    return r


def intel_gvt_page_track_remove(info: IntelVgpu, gfn: int) -> int:
    """``intel_gvt_page_track_remove()`` of the VM's kernel build."""
    r: int = info.kvm.build.kvmgt.intel_gvt_page_track_remove(info, gfn)
    return r


def ptable_gfns(info: IntelVgpu) -> list[int]:
    """The gfns in the table, for a scenario's final check (all threads joined)."""
    out, p = [], info.ptable.first
    while p is not None:
        out.append(p.gfn)
        p = p.next
    return out
