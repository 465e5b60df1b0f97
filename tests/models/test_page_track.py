"""Seed 001: page tracking and KVMGT, every variant (verdicts: verdicts_page_track.py).

Each property has a mutant that breaks it, and a test that sees it broken:
  KASAN on KVMGT's table      -- v6.1 (no lock in track_write)
  might_sleep under mmu_lock  -- v6.1-lock-in-track-write
  lockdep (recursion)         -- gfn-lock (v1 09/27 as posted)
  lockdep (cycles)            -- v6.1-lock-in-track-write (mmu_lock -> vgpu_lock)
  interception (fast path)    -- no-make-spte-recheck, no-mmu-writable-clear
  interception (memslot MOVE) -- v6.1 (the flush hook before the point of no return)
"""

from __future__ import annotations

from typing import Any

import pytest

from kvmcheck import check, join, replay, scenario, spawn
from kvmcheck._engine import search as search_mod  # the serial search makes the session
from kvmcheck.kernel import Struct, rcu_assign_pointer, write_lock, write_unlock
from kvmcheck.kernel.lockdep import Graph
from kvmcheck.models.arch.x86.kvm.mmu.page_track import (
    head_of,
    kvm_page_track_unregister_notifier,
    write_track_count,
)
from kvmcheck.models.arch.x86.kvm.mmu.page_track_variants import ALL, BUILDS, PageTrack66
from kvmcheck.models.drivers.gpu.drm.i915.gvt.kvmgt import ptable_gfns
from kvmcheck.models.virt.kvm.kvm_set_memslot import kvm_set_memory_region
from kvmcheck.scenarios import page_track as pt

SCENARIOS = [pt.kvmgt_hash, pt.fast_path, pt.memslot_move, pt.reentrant_remove]


def reports(r: Any) -> list[Any]:
    return [f for f in [r.finding, *r.warnings] if f is not None]


def test_every_scenario_runs_every_variant() -> None:
    for s in SCENARIOS:
        assert tuple(s.variants) == ALL


def test_every_variant_and_scenario_says_where_it_was_read() -> None:
    assert set(pt.SOURCES) == set(ALL)
    provenance = {v: pt.SOURCES[v].provenance for v in ALL}
    assert provenance == {
        "v6.1": "reconstructed",  # no v6.1 tree in the index (SOURCES.md): pre-images of posted patches
        "v6.1-lock-in-track-write": "mutant",
        "no-make-spte-recheck": "mutant",
        "no-mmu-writable-clear": "mutant",
        "yan-v2": "posted",
        "v6.6": "tree",
        "gfn-lock": "posted",
    }
    gfn = pt.SOURCES["gfn-lock"].source
    assert "<20221223005739.1295925-9-seanjc@google.com>" in gfn  # v1 08/27
    assert "<20221223005739.1295925-10-seanjc@google.com>" in gfn  # v1 09/27
    for s in SCENARIOS:
        assert s.source is not None and s.source.provenance in ("tree", "posted"), s.name
        assert all(s.source_of(v) is pt.SOURCES[v] for v in s.variants), s.name


def test_builds_patch_the_files_their_patches_touch() -> None:
    assert BUILDS["v6.1"].versions == dict.fromkeys(
        ("gvt_page_track", "kvmgt", "mmu", "page_track", "spte", "x86"), "v6.1"
    )
    yan = BUILDS["yan-v2"].versions
    assert {k for k, v in yan.items() if v == "yan-v2"} == {"page_track", "x86", "kvmgt"}
    gfn = BUILDS["gfn-lock"].versions
    assert {k for k, v in gfn.items() if v != "v6.6"} == {"kvmgt"}  # v1 08/27 + 09/27 on v6.6
    assert BUILDS["no-make-spte-recheck"].versions["spte"] == "no-make-spte-recheck"
    assert BUILDS["no-mmu-writable-clear"].versions["mmu"] == "no-mmu-writable-clear"


# -- kvmgt_hash: the use-after-free, and the naive fix -------------------------------------------
def test_v61_track_write_reads_a_freed_table_entry() -> None:
    r = check(pt.kvmgt_hash, variant="v6.1")
    f = r.finding
    assert f is not None
    assert f.kind == "use-after-free"
    assert "kvmgt_pgfn" in f.message
    functions = {fn for s in f.trace for fn in (s.site.function, *s.stack)}
    assert {"kvmgt_page_track_write", "intel_gvt_page_track_remove", "kvmgt_protect_table_del"} <= functions
    free = next(s.index for s in f.trace if s.op.startswith("kfree("))
    walker = [s for s in f.trace if s.thread_name == "vcpu" and "ptable" in s.op]
    assert walker
    assert walker[0].index < free  # the walker loaded the entry before GVT freed it


def test_lock_in_track_write_sleeps_under_mmu_lock_and_never_frees_under_the_walker() -> None:
    r = check(pt.kvmgt_hash, variant="v6.1-lock-in-track-write", keep_going=True)
    assert r.verdict == "bug"
    kinds = {f.kind for f in reports(r)}
    assert "use-after-free" not in kinds
    sleeps = [f for f in reports(r) if f.kind == "sleep-in-atomic"]
    assert any("vgpu->vgpu_lock" in f.message and "kvm->mmu_lock" in f.message for f in sleeps)
    # and a new finding: mmu_lock -> vgpu_lock inverts GVT's vgpu_lock -> mmu_lock: ABBA
    assert "deadlock" in kinds


@scenario(expect="bug", kcsan=False)
def lock_in_track_write_vs_unlocked_remove() -> None:
    """kvmgt_hash on the naive fix, with GVT removing from intel_vgpu_reset_gtt() (no vgpu_lock held)."""
    vm = pt.Vm("v6.1-lock-in-track-write", pt.SPTE_MMU_PRESENT | pt.MMU_WRITABLE, tracked=True)
    t1 = spawn(pt.emulated_write, vm.vcpu(0), name="vcpu")
    t2 = spawn(vm.kvm.build.kvmgt.intel_gvt_page_track_remove, vm.vgpu, pt.G, name="gvt")
    join(t1, t2)


def test_lock_in_track_write_fixes_the_use_after_free_exhaustively() -> None:
    # keep_going with no budget explores to the end of the DPOR search
    r = check(lock_in_track_write_vs_unlocked_remove, keep_going=True)
    kinds = {f.kind for f in reports(r)}
    assert "use-after-free" not in kinds
    assert "sleep-in-atomic" in kinds
    assert kinds <= {"sleep-in-atomic", "lock-order"}  # mmu_lock -> vgpu_lock vs GVT's order
    assert r.executions >= 2


# -- fast_path: Yan's question --------------------------------------------------------------------
def test_yans_question_fast_path_never_misses_a_write_protection_on_v61() -> None:
    r = check(pt.fast_path, variant="v6.1")
    assert r.verdict == "ok"
    assert r.complete
    assert r.executions > 100  # the figure quoted in the note (556 with this model)


def test_no_make_spte_recheck_maps_a_tracked_gfn_writable_under_mmu_lock() -> None:
    r = check(pt.fast_path, variant="no-make-spte-recheck")
    f = r.finding
    assert f is not None
    assert f.kind == "assertion"
    assert "a tracked gfn written without interception" in f.message
    last = [s for s in f.trace if s.op.startswith("try_cmpxchg64")][-1]
    assert "kvm_tdp_mmu_map" in last.stack  # the writable SPTE came from the map under mmu_lock
    assert "kvm->mmu_lock(r)" in last.held


def test_no_mmu_writable_clear_lets_fast_page_fault_make_a_tracked_gfn_writable() -> None:
    r = check(pt.fast_path, variant="no-mmu-writable-clear")
    f = r.finding
    assert f is not None
    assert "a tracked gfn written without interception" in f.message
    count_up = max(s.index for s in f.trace if s.op == "write gfn_track[gfn 0x100]->count")
    fast = [
        s.index
        for s in f.trace
        if s.op.startswith("try_cmpxchg64") and "fast_pf_fix_direct_spte" in (s.site.function, *s.stack)
    ]
    assert any(i > count_up for i in fast)  # fast_page_fault ran after tracking began, without mmu_lock


def test_the_end_invariant_alone_also_catches_the_mutants() -> None:
    for variant in ("no-make-spte-recheck", "no-mmu-writable-clear"):
        r = check(pt.fast_path, variant=variant, keep_going=True)
        assert any("writable SPTE for a tracked gfn" in f.message for f in reports(r)), variant


# -- memslot_move: the flush hook that runs too early ----------------------------------------------
def test_v61_failed_move_leaves_a_tracked_gfn_unprotected() -> None:
    r = check(pt.memslot_move, variant="v6.1")
    f = r.finding
    assert f is not None
    assert "a tracked gfn written without interception" in f.message
    ops = [s.op for s in f.trace]
    functions = {fn for s in f.trace for fn in (s.site.function, *s.stack)}
    assert "kvmgt_page_track_flush_slot" in functions
    assert "kvm_activate_memslot" in functions  # the revert after the failed prepare
    assert any("may_fail(kvm_alloc_memslot_metadata)" in op for op in ops)


@pytest.mark.parametrize("variant", ["yan-v2", "v6.6"])
def test_fixed_variants_cover_both_the_failed_and_the_committed_move(variant: str) -> None:
    r = check(pt.memslot_move, variant=variant)
    assert r.verdict == "ok"
    assert r.complete


# -- reentrant_remove and gfn-lock (v1 08/27 + 09/27 as posted) ----------------------------------------
def test_gfn_lock_self_deadlocks_through_the_reentrant_remove() -> None:
    r = check(
        pt.reentrant_remove, variant="gfn-lock", keep_going=True
    )  # a WARN is printed first in that run: ask for the first oops
    f = r.finding
    assert f is not None
    assert f.kind == "deadlock"
    assert f.headline == "WARNING: possible recursive locking detected"
    assert "vgpu->gfn_lock is already held by this task" in f.message
    functions = {fn for s in f.trace for fn in (s.site.function, *s.stack)}
    assert {"kvmgt_page_track_write_66", "intel_vgpu_page_track_handler", "handle"} <= functions
    vcpu = f.trace[f.step]
    assert vcpu.op == "read vgpu->failsafe"  # failsafe: the handler goes on to remove the tracking
    assert {"vgpu->vgpu_lock", "vgpu->gfn_lock"} <= set(vcpu.held)  # 08/27's vgpu_lock, then 09/27's


def test_gfn_lock_handler_takes_no_lock_of_its_own() -> None:
    # v1 08/27 hoisted vgpu_lock out of intel_vgpu_page_track_handler(): the v6.6 handler
    assert BUILDS["gfn-lock"].versions["gvt_page_track"] == "v6.6"
    r = check(pt.reentrant_remove, variant="gfn-lock")
    assert r.finding is not None
    takes = [s for s in r.finding.trace if s.op == "mutex_lock(vgpu->vgpu_lock)" and s.thread_name != "main"]
    assert [s.site.function for s in takes] == ["kvmgt_page_track_write_66"]  # not the handler too


def test_gfn_lock_orders_vgpu_lock_before_gfn_lock_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    # The old model kept vgpu_lock in the handler (gfn_lock -> vgpu_lock) and found an ABBA
    # against GVT's add under vgpu_lock; the posted 08/27 + 09/27 have one order: no cycle.
    shared = Graph()
    orig = search_mod.Session

    def one_graph(**kw: Any) -> Any:
        session = orig(**kw)
        session["lockdep"] = shared
        return session

    monkeypatch.setattr(search_mod, "Session", one_graph)
    for s in (pt.kvmgt_hash, pt.fast_path, pt.memslot_move):
        r = check(s, variant="gfn-lock", keep_going=True)
        assert r.verdict == "ok", r.finding and str(r.finding)
        assert r.complete
    edges = {(a, b) for a, after in shared.edges.items() for b in after}
    assert ("vgpu->vgpu_lock", "vgpu->gfn_lock") in edges
    assert ("vgpu->gfn_lock", "vgpu->cache_lock") in edges  # the handler runs under gfn_lock
    assert ("vgpu->gfn_lock", "kvm->mmu_lock") in edges  # add/remove: gfn_lock -> kvm->srcu -> mmu_lock
    assert ("vgpu->gfn_lock", "vgpu->vgpu_lock") not in edges
    assert not shared.reported


@pytest.mark.parametrize("scn", [pt.kvmgt_hash, pt.fast_path, pt.memslot_move], ids=lambda s: s.name)
def test_gfn_lock_is_ok_where_it_has_no_reentry(scn: Any) -> None:
    r = check(scn, variant="gfn-lock")
    assert r.verdict == "ok", r.finding and str(r.finding)
    assert r.complete


@scenario(expect={"v6.1": "ok", "v6.6": "ok", "gfn-lock": "bug"}, kcsan=False)
def populate_from_handler(variant: str) -> None:
    """Yan's chain on v1 09/27 (2022-12-28): a guest PTE write whose new entry GVT shadows from the handler.

    The emulated write to G (a shadowed page table) makes an entry present that points at
    page table G + 1; the handler populates it: intel_vgpu_enable_page_track(G + 1) ->
    intel_gvt_page_track_add().  At the end G + 1 is tracked by GVT, counted and in the table.
    """
    vm = pt.Vm(variant, pt.SPTE_MMU_PRESENT | pt.MMU_WRITABLE, tracked=True, npages=2)
    g2 = pt.G + 1
    track = vm.kvm.build.gvt_page_track.intel_vgpu_register_page_track(vm.vgpu, g2)
    vm.vgpu.populate_gfn = g2
    join(spawn(pt.emulated_write, vm.vcpu(0), name="vcpu"))
    assert track.tracked, "GVT did not start shadowing the new page table"
    assert write_track_count(vm.slot, g2) == 1
    assert sorted(ptable_gfns(vm.vgpu)) == [pt.G, g2]


@pytest.mark.parametrize("variant", ["v6.1", "v6.6"])
def test_handler_may_add_tracking_on_the_kernels(variant: str) -> None:
    r = check(populate_from_handler, variant=variant)
    assert r.verdict == "ok", r.finding and str(r.finding)
    assert r.complete


def test_gfn_lock_deadlocks_on_yans_populate_chain() -> None:
    r = check(populate_from_handler, variant="gfn-lock")
    f = r.finding
    assert f is not None
    assert f.kind == "deadlock"
    assert "vgpu->gfn_lock is already held by this task" in f.message
    functions = {fn for s in f.trace for fn in (s.site.function, *s.stack)}
    assert {
        "kvmgt_page_track_write_66",
        "ppgtt_write_protection_handler",
        "intel_vgpu_enable_page_track",
    } <= functions
    last = f.trace[f.step]  # the new page table is not tracked yet: add takes gfn_lock again
    assert last.op == "read page_track[gfn 0x101]->tracked"
    assert {"vgpu->vgpu_lock", "vgpu->gfn_lock"} <= set(last.held)


# -- lockdep over every scenario at v6.6 --------------------------------------------------------------
def test_v66_lock_order_has_no_cycle_over_all_scenarios(monkeypatch: pytest.MonkeyPatch) -> None:
    shared = Graph()
    orig = search_mod.Session

    def one_graph(**kw: Any) -> Any:
        session = orig(**kw)
        session["lockdep"] = shared  # one dependency graph across the four checks
        return session

    monkeypatch.setattr(search_mod, "Session", one_graph)
    for s in SCENARIOS:
        r = check(s, variant="v6.6", keep_going=True)
        assert r.verdict == "ok", r.finding and str(r.finding)
        assert r.complete
    edges = {(a, b) for a, after in shared.edges.items() for b in after}
    assert ("vgpu->vgpu_lock", "vgpu->cache_lock") in edges
    assert ("vgpu->vgpu_lock", "kvm->mmu_lock") in edges
    assert ("kvm->slots_lock", "kvm->mmu_lock") in edges
    assert ("kvm->mmu_lock", "vgpu->vgpu_lock") not in edges
    assert not shared.reported  # no cycle, no irq inversion anywhere


def test_counterexamples_replay() -> None:
    r = check(pt.fast_path, variant="no-mmu-writable-clear")
    assert r.finding is not None
    again = replay(pt.fast_path, r.finding.schedule, variant="no-mmu-writable-clear")
    assert again.finding is not None
    assert (again.finding.kind, again.finding.message) == (r.finding.kind, r.finding.message)


# -- the notifier head: unregister waits for track_srcu walkers ------------------------------------
class Closed(Struct):
    """The vGPU's release: after it, the node's owner is gone."""

    closed: bool = False


class UnregisterWithoutSync(PageTrack66):
    """Mutant: kvm_page_track_unregister_notifier() without synchronize_srcu(track_srcu)."""

    version = "unregister-without-sync"

    def kvm_page_track_unregister_notifier(self, kvm: Any, n: Any) -> None:
        head = head_of(kvm)
        write_lock(kvm.mmu_lock)
        rcu_assign_pointer(head, "track_notifier_list", ())
        write_unlock(kvm.mmu_lock)


def unregister_race(patch: Any) -> None:
    vm = pt.Vm("v6.6", pt.SPTE_MMU_PRESENT | pt.MMU_WRITABLE, tracked=True)
    if patch is not None:
        vm.kvm.build = vm.kvm.build.patched(patch)
    gone = Closed()
    node = vm.vgpu.track_node
    hook = node.track_write
    assert hook is not None

    def track_write(gpa: int, val: int, nbytes: int, n: Any) -> None:
        assert not gone.closed, "track_write ran after its node was unregistered and released"
        hook(gpa, val, nbytes, n)

    node.track_write = track_write

    def close() -> None:  # intel_vgpu_close_device(): unregister, then the node's owner goes away
        kvm_page_track_unregister_notifier(vm.kvm, node)
        gone.closed = True

    join(spawn(pt.emulated_write, vm.vcpu(0), name="vcpu"), spawn(close, name="close"))


@scenario(expect="ok", kcsan=False)
def unregister_vs_track_write() -> None:
    unregister_race(None)


@scenario(expect="bug", kcsan=False)
def unregister_without_sync_vs_track_write() -> None:
    unregister_race(UnregisterWithoutSync())


def test_unregister_waits_for_track_write_walkers() -> None:
    r = check(unregister_vs_track_write)
    assert r.verdict == "ok"
    assert r.complete
    bad = check(unregister_without_sync_vs_track_write)
    assert bad.finding is not None
    assert "after its node was unregistered" in bad.finding.message


# -- Yan's literal case: no SPTE yet (the lockless read is then skipped: correction 1) --------------
@scenario(expect={"v6.1": "ok", "v6.6": "ok", "no-make-spte-recheck": "bug"}, kcsan=False)
def fast_path_from_no_spte(variant: str) -> None:
    pt.race_tracking_with_faults(variant, 0)


@pytest.mark.parametrize("variant", ["v6.1", "v6.6", "no-make-spte-recheck"])
def test_fast_path_from_a_not_present_spte(variant: str) -> None:
    r = check(fast_path_from_no_spte, variant=variant)
    assert r.verdict == fast_path_from_no_spte.expect[variant], r.finding and str(r.finding)
    if r.verdict == "ok":
        assert r.complete


def test_kcsan_on_v66_reports_only_the_deliberate_lockless_count_read() -> None:
    races = []
    for s in SCENARIOS:
        r = check(s, variant="v6.6", kcsan=True, keep_going=True)
        races += [(f.kind, f.message) for f in reports(r)]
    assert races == [("data-race", "write of GfnTrack.count by gvt races with read by vcpu0")]


# -- memslot DELETE: the hooks that run at commit ----------------------------------------------------
@scenario(expect={"v6.1": "ok", "yan-v2": "ok", "v6.6": "ok", "gfn-lock": "ok"}, kcsan=False)
def memslot_delete(variant: str) -> None:
    """DELETE of G's slot (cannot fail in prepare) racing with a guest store to G."""
    vm = pt.Vm(variant, pt.SPTE_MMU_PRESENT | pt.MMU_WRITABLE, tracked=True)

    def ioctl() -> None:
        assert kvm_set_memory_region(vm.kvm, pt.SLOT_ID, None) == 0

    join(spawn(ioctl, name="ioctl"), spawn(pt.guest_write, vm, vm.vcpu(0), name="vcpu"))
    assert vm.kvm.memslots.slots == ()
    assert ptable_gfns(vm.vgpu) == []  # flush (v6.1), remove_slot (yan-v2), remove_region (v6.6, gfn-lock)


@pytest.mark.parametrize("variant", ["v6.1", "yan-v2", "v6.6", "gfn-lock"])
def test_memslot_delete_drops_kvmgts_entries_on_every_version(variant: str) -> None:
    # A DELETE cannot fail after the flush hook, so v6.1's early hook is harmless here;
    # a store emulated on the INVALID slot goes to userspace as MMIO (no track_write).
    r = check(memslot_delete, variant=variant)
    assert r.verdict == "ok", r.finding and str(r.finding)
    assert r.complete
