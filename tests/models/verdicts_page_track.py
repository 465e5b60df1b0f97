"""Seed 001 (page tracking / KVMGT): the reviewed verdict of every bundled ``page_track.*`` pair.

(scenario, variant, verdict, the kernel fact it rests on).  tests/models/test_verdicts.py asserts
that these rows equal the scenarios' ``expect=`` tables exactly and runs each pair once.

Mails cited (subject abbreviated, date, message-id):
  v1 08/27  "drm/i915/gvt: Hoist acquisition of vgpu_lock out to kvmgt_page_track_write()",
            2022-12-23, <20221223005739.1295925-9-seanjc@google.com>
  v1 09/27  "drm/i915/gvt: Protect gfn hash table with dedicated mutex",
            2022-12-23, <20221223005739.1295925-10-seanjc@google.com>
  Sean 01-03 "Re: [PATCH 09/27] ...", 2023-01-03, <Y7STZZkd3EaRXLTC@google.com>
  v4 11/29  "drm/i915/gvt: Protect gfn hash table with vgpu_lock" (merged as 3cca6b262876),
            2023-07-28, <20230729013535.1070024-12-seanjc@google.com>
  Sean 11-11 / 11-15  seed thread replies, <Y26SI3uh8JV0vvO6@google.com> / <Y3Ljjji0Bwt5+WxH@google.com>
  Yan v2    "add track_remove_slot and remove track_flush_slot", 2022-11-11,
            <20221111103247.22275-1-yan.y.zhao@intel.com> (patches 1/3, 2/3, 3/3)
"""

from __future__ import annotations

UAF = (
    "kvmgt_page_track_write() walks info->ptable with no lock while intel_gvt_page_track_remove() kfree's"
    " the entry: the use-after-free in the changelog of v4 11/29 (3cca6b262876)"
)
SLEEP = (
    "taking the r/w spinlock mmu_lock in track_write puts the handler's vgpu_lock/cache_lock mutexes under"
    " it: 'not an option' per the changelogs of v1 09/27 and v4 11/29"
)
FLUSH_EARLY = (
    "the v6.1 flush hook drops KVMGT's tracking before the MOVE is guaranteed, and kvm_set_memslot()"
    " reverts a MOVE whose prepare fails (Sean 11-11: 'KVM might ultimately keep the existing memslot')"
)
RECHECK = (
    "a stale lockless count is caught by make_spte() -> mmu_try_to_unsync_pages() re-reading it under"
    " mmu_lock, and write-protection clears the MMU-writable bit (Sean 11-15)"
)

VERDICTS: tuple[tuple[str, str, str, str], ...] = (
    # -- kvmgt_hash: emulated write vs GVT removing the tracking -------------------------------------
    ("page_track.kvmgt_hash", "v6.1", "bug", UAF),
    ("page_track.kvmgt_hash", "v6.1-lock-in-track-write", "bug", SLEEP),
    ("page_track.kvmgt_hash", "no-make-spte-recheck", "bug", "the mutant keeps v6.1's KVMGT: " + UAF),
    ("page_track.kvmgt_hash", "no-mmu-writable-clear", "bug", "the mutant keeps v6.1's KVMGT: " + UAF),
    (
        "page_track.kvmgt_hash",
        "yan-v2",
        "bug",
        "Yan's v2 changes only the memslot hooks (2/3 renames flush_slot to remove_slot): " + UAF,
    ),
    (
        "page_track.kvmgt_hash",
        "v6.6",
        "ok",
        "3cca6b262876 (v4 11/29): the table is under vgpu_lock in track_write and in GVT's add/remove,"
        " asserted in __kvmgt_protect_table_find()",
    ),
    (
        "page_track.kvmgt_hash",
        "gfn-lock",
        "ok",
        "v1 09/27 puts every table access under gfn_lock (no use-after-free) and v1 08/27 takes vgpu_lock"
        " before it in track_write, the order GVT's callers already use (no cycle)",
    ),
    # -- fast_path: Yan's question ---------------------------------------------------------------------
    ("page_track.fast_path", "v6.1", "ok", RECHECK),
    ("page_track.fast_path", "v6.1-lock-in-track-write", "bug", SLEEP),
    (
        "page_track.fast_path",
        "no-make-spte-recheck",
        "bug",
        "mutant: without the mmu_try_to_unsync_pages() re-check Sean quotes (11-15) a fault that read count 0"
        " maps the now-tracked gfn writable",
    ),
    (
        "page_track.fast_path",
        "no-mmu-writable-clear",
        "bug",
        "mutant: write-protection must also clear the MMU-writable bit 'to ensure future writes continue to"
        " be intercepted' (TDP MMU write_protect_gfn), else fast_page_fault makes the gfn writable unlocked",
    ),
    ("page_track.fast_path", "yan-v2", "ok", "Yan's v2 leaves v6.1's fault path as is: " + RECHECK),
    ("page_track.fast_path", "v6.6", "ok", RECHECK + "; 3cca6b262876 adds only vgpu_lock around KVMGT"),
    (
        "page_track.fast_path",
        "gfn-lock",
        "ok",
        "v6.6's fault path; v1 08/27 makes the order vgpu_lock -> gfn_lock ('the lock order should ideally be"
        " vgpu_lock => gfn_lock'), the same in track_write and in GVT's add",
    ),
    # -- memslot_move: a MOVE that fails after the flush hook ---------------------------------------------
    ("page_track.memslot_move", "v6.1", "bug", FLUSH_EARLY),
    ("page_track.memslot_move", "v6.1-lock-in-track-write", "bug", "v6.1's memslot path: " + FLUSH_EARLY),
    ("page_track.memslot_move", "no-make-spte-recheck", "bug", "v6.1's memslot path: " + FLUSH_EARLY),
    ("page_track.memslot_move", "no-mmu-writable-clear", "bug", "v6.1's memslot path: " + FLUSH_EARLY),
    (
        "page_track.memslot_move",
        "yan-v2",
        "ok",
        "Yan's v2 1/3 calls track_remove_slot from kvm_arch_commit_memory_region(), which a failed MOVE never"
        " reaches; 2/3 moves KVMGT there; 3/3 removes the flush hook",
    ),
    (
        "page_track.memslot_move",
        "v6.6",
        "ok",
        "c70934e0ab2d rejects MOVE in prepare while an external page-track user exists, and d104d5bbbc2d"
        " removed the flush hook: KVMGT's tracking is untouched",
    ),
    (
        "page_track.memslot_move",
        "gfn-lock",
        "ok",
        "v6.6's memslot path (c70934e0ab2d, posted in the same v1 series as 13/27): the MOVE is refused and"
        " no hook runs",
    ),
    # -- reentrant_remove: the failsafe handler removes the tracking from inside track_write ------------
    (
        "page_track.reentrant_remove",
        "v6.1",
        "bug",
        "the failsafe handler's remove kfree's the entry while the other vCPU's unlocked track_write walks"
        " the table: " + UAF,
    ),
    (
        "page_track.reentrant_remove",
        "v6.1-lock-in-track-write",
        "bug",
        "track_write holds mmu_lock and the failsafe handler's intel_gvt_page_track_remove() takes it again"
        " (v6.1's remove takes write_lock(mmu_lock) itself)",
    ),
    ("page_track.reentrant_remove", "no-make-spte-recheck", "bug", "the mutant keeps v6.1's KVMGT: " + UAF),
    ("page_track.reentrant_remove", "no-mmu-writable-clear", "bug", "the mutant keeps v6.1's KVMGT: " + UAF),
    ("page_track.reentrant_remove", "yan-v2", "bug", "Yan's v2 keeps v6.1's unlocked track_write: " + UAF),
    (
        "page_track.reentrant_remove",
        "v6.6",
        "ok",
        "3cca6b262876: track_write holds vgpu_lock and the failsafe remove nests kvm->srcu -> mmu_lock inside"
        " it without retaking vgpu_lock (the handler no longer takes it)",
    ),
    (
        "page_track.reentrant_remove",
        "gfn-lock",
        "bug",
        "v1 09/27: track_write holds gfn_lock and the failsafe handler's intel_gvt_page_track_remove() takes"
        " it again -- Sean's 'even more simply' chain in reply to Yan (01-03, <Y7STZZkd3EaRXLTC@google.com>)",
    ),
)
