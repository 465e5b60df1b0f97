"""drivers/gpu/drm/i915/gvt/page_track.c: GVT's own record of the guest pages it shadows (v6.1, v6.6).

Modelled: ``struct intel_vgpu_page_track`` (its ``tracked`` flag), register /
find (a radix tree, filled before the scenario's threads start and then
fixed, so a plain dict here), enable / disable (KVMGT's add/remove, then the
flag), and ``intel_vgpu_page_track_handler()``: at v6.1 it takes
``vgpu->vgpu_lock`` itself; 3cca6b262876 (v6.6) hoisted that to its only
caller, kvmgt_page_track_write().  In failsafe mode the handler removes the
write protection ("to prevent future traps") -- the re-entrant chain
kvmgt_page_track_write -> handler -> intel_gvt_page_track_remove.

The shadow-PPGTT handler is reduced to what matters for locking: it may
reach ``vgpu->cache_lock`` (ppgtt_handle_guest_write_page_table ->
ppgtt_invalidate_pte -> intel_gvt_dma_unmap_guest_page, per 3cca6b262876's
changelog), a mutex, and it counts the write it shadowed.

Locking contract: ``tracked`` and the shadow state are GVT's, under
vgpu->vgpu_lock; vgpu_lock is taken outside cache_lock.
A page track with ``tracked`` set is what GVT believes: "every guest write to
this gfn reaches my handler" -- the property the scenarios check.
"""

from __future__ import annotations

from typing import Any

from kvmcheck.kernel import Struct, mutex_lock, mutex_unlock
from kvmcheck.models.build import Subsystem

PAGE_SHIFT = 12
ENXIO = -6


class IntelVgpuPageTrack(Struct):
    """``struct intel_vgpu_page_track``."""

    tracked: bool = False

    def __init__(self, gfn: int) -> None:
        super().__init__()
        self.gfn = gfn

    def _kc_label(self) -> str:
        return f"page_track[gfn {self.gfn:#x}]"


class GvtPageTrack(Subsystem):
    """gvt/page_track.c at v6.1."""

    subsystem = "gvt_page_track"
    version = "v6.1"

    def intel_vgpu_register_page_track(self, vgpu: Any, gfn: int) -> IntelVgpuPageTrack:
        """intel_vgpu_register_page_track(): insert into the vGPU's radix tree (setup only)."""
        pt = IntelVgpuPageTrack(gfn)
        vgpu.page_track_tree[gfn] = pt
        return pt

    def intel_vgpu_find_page_track(self, vgpu: Any, gfn: int) -> IntelVgpuPageTrack | None:
        """intel_vgpu_find_page_track(): radix_tree_lookup (the tree does not change after setup)."""
        pt: IntelVgpuPageTrack | None = vgpu.page_track_tree.get(gfn)
        return pt

    def intel_vgpu_enable_page_track(self, vgpu: Any, gfn: int) -> int:
        """intel_vgpu_enable_page_track(): KVMGT write-protects the gfn, then tracked = true."""
        pt = self.intel_vgpu_find_page_track(vgpu, gfn)
        if pt is None:
            return ENXIO
        if pt.tracked:
            return 0
        ret: int = vgpu.kvm.build.kvmgt.intel_gvt_page_track_add(vgpu, gfn)
        if ret:
            return ret
        pt.tracked = True
        return 0

    def intel_vgpu_disable_page_track(self, vgpu: Any, gfn: int) -> int:
        """intel_vgpu_disable_page_track(): KVMGT drops the write protection, then tracked = false."""
        pt = self.intel_vgpu_find_page_track(vgpu, gfn)
        if pt is None:
            return ENXIO
        if not pt.tracked:
            return 0
        ret: int = vgpu.kvm.build.kvmgt.intel_gvt_page_track_remove(vgpu, gfn)
        if ret:
            return ret
        pt.tracked = False
        return 0

    def ppgtt_write_protection_handler(self, vgpu: Any, pt: IntelVgpuPageTrack, gpa: int) -> int:
        """The shadow-PPGTT write handler: may take vgpu->cache_lock deep down; shadows the write.

        The old entry's removal reaches cache_lock (ppgtt_handle_guest_entry_removal ->
        ppgtt_invalidate_pte -> intel_gvt_dma_unmap_guest_page); a new present entry that
        points at a page table not yet shadowed is populated and write-protected
        (ppgtt_handle_guest_entry_add -> ppgtt_populate_spt_by_guest_entry ->
        intel_vgpu_enable_page_track: the chain of Yan's report on v1 09/27).
        """
        mutex_lock(vgpu.cache_lock)  # intel_gvt_dma_unmap_guest_page()
        vgpu.shadow_writes = vgpu.shadow_writes + 1
        mutex_unlock(vgpu.cache_lock)
        if vgpu.populate_gfn is not None:
            return self.intel_vgpu_enable_page_track(vgpu, vgpu.populate_gfn)
        return 0

    def handle(self, vgpu: Any, gpa: int) -> int:
        """The body of intel_vgpu_page_track_handler() between the vgpu_lock of v6.1."""
        gfn = gpa >> PAGE_SHIFT
        pt = self.intel_vgpu_find_page_track(vgpu, gfn)
        if pt is None:
            return ENXIO
        if vgpu.failsafe:
            vgpu.kvm.build.kvmgt.intel_gvt_page_track_remove(vgpu, gfn)  # "prevent future traps"
            return 0
        return self.ppgtt_write_protection_handler(vgpu, pt, gpa)

    def intel_vgpu_page_track_handler(self, vgpu: Any, gpa: int) -> int:
        """intel_vgpu_page_track_handler() (v6.1): takes vgpu->vgpu_lock itself."""
        mutex_lock(vgpu.vgpu_lock)
        ret = self.handle(vgpu, gpa)
        mutex_unlock(vgpu.vgpu_lock)
        return ret


class GvtPageTrack66(GvtPageTrack):
    """gvt/page_track.c after 3cca6b262876: the caller (kvmgt_page_track_write) holds vgpu_lock."""

    version = "v6.6"

    def intel_vgpu_page_track_handler(self, vgpu: Any, gpa: int) -> int:
        """intel_vgpu_page_track_handler() (v6.6): no locking of its own."""
        return self.handle(vgpu, gpa)
