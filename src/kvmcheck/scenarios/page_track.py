"""Seed 001: KVM page tracking and KVMGT, per variant (digest 03 with its Corrections).

Every scenario builds one VM on the variant's kernel (page_track_variants.py)
with one memslot holding one gfn ``G`` (a guest GTT page), a TDP MMU leaf SPTE
for it, and one KVMGT vGPU attached (its page-track node registered; at v6.1
KVM's own node too).  GVT has registered its page track for ``G``
(gvt/page_track.c); ``tracked`` on it is GVT's belief that every guest write
to ``G`` reaches its handler.

The guest (``guest_write``) stores to ``G`` as a CPU does: it reads the SPTE
(no TLB is modelled, so a flush is implicit); if the SPTE is writable the
store lands without KVM seeing it; otherwise it exits with a write fault
(PRESENT bit = the SPTE was present), KVM handles it under the vCPU's
kvm->srcu, and either emulates the store (then kvm_page_track_write() runs
the track_write hooks) or lets the guest retry.  A retry caused by an
INVALID memslot waits, outside kvm->srcu, until the memslot set changes
(``spin_until_cond`` on kvm->memslots: a model annotation -- the failed
retries change nothing).

The property checked at the guest-write point, in every scenario that stores
through the SPTE: "a tracked gfn written without interception" -- GVT's
``tracked`` flag, read just before the guest reads the SPTE, is set and the
SPTE is writable.  Each scenario adds its own end-of-execution invariant.

KCSAN is off: the lockless READ_ONCE of the count races with the plain
``+=`` under mmu_lock by design (Sean: "a fast path that deliberately reads
out of mmu_lock"); what these scenarios ask about is use-after-free,
sleeping in atomic context, deadlock and the interception property.  With
``--kcsan`` on v6.6 that race is the only report (tests/models/test_page_track.py).
"""

from __future__ import annotations

from kvmcheck import Source, join, scenario, spawn
from kvmcheck.kernel import (
    data_race,
    mutex_lock,
    mutex_unlock,
    spin_until_cond,
    srcu_read_lock,
    srcu_read_unlock,
)
from kvmcheck.models.arch.x86.kvm.mmu.mmu_fault import (
    RET_PF_EMULATE,
    KvmPageFault,
    emulator_write_phys,
    kvm_mmu_page_fault,
)
from kvmcheck.models.arch.x86.kvm.mmu.page_track import (
    KvmArch,
    KvmArchMemorySlot,
    write_track_count,
)
from kvmcheck.models.arch.x86.kvm.mmu.page_track_variants import ALL, BUILDS, SOURCES
from kvmcheck.models.arch.x86.kvm.mmu.spte import (
    MMU_WRITABLE,
    SPTE_MMU_PRESENT,
    Sptep,
    is_shadow_present_pte,
    is_writable_pte,
    spte_read,
)
from kvmcheck.models.build import build_for
from kvmcheck.models.drivers.gpu.drm.i915.gvt.kvmgt import IntelVgpu, ptable_gfns
from kvmcheck.models.drivers.gpu.drm.i915.gvt.page_track import IntelVgpuPageTrack
from kvmcheck.models.mm.mm import MmStruct
from kvmcheck.models.virt.kvm.kvm_host import Kvm, KvmMemslots, KvmVcpu
from kvmcheck.models.virt.kvm.kvm_set_memslot import (
    EINVAL,
    ENOMEM,
    KVM_MEMSLOT_INVALID,
    KvmMemorySlot,
    kvm_set_memory_region,
)

G = 0x100  # the guest GTT page
GPA = G << 12
NEW_G = 0x200  # where the MOVE would put G's slot
SLOT_ID = 1
MAX_EXITS = 6  # a guest store needs at most 3 exits here; more would be a livelock


class Vm:
    """The harness's handles on one VM: kvm, its memslot, G's SPTE, the vGPU and GVT's page track."""

    def __init__(
        self, variant: str, spte: int, tracked: bool, failsafe: bool = False, npages: int = 1
    ) -> None:
        build = build_for(BUILDS, variant)
        self.slot = KvmMemorySlot(SLOT_ID, G, npages)
        self.kvm = Kvm(MmStruct(), build, KvmMemslots({}, 0, (self.slot,)))
        self.slot.arch = KvmArchMemorySlot(G, npages, self.kvm.mmu_lock)
        self.sptep = Sptep(G, spte)
        self.kvm.arch = KvmArch({G + i: Sptep(G + i, spte) for i in range(1, npages)} | {G: self.sptep})
        build.mmu.kvm_mmu_init_vm(self.kvm)
        self.vgpu = IntelVgpu(self.kvm)
        self.vgpu.failsafe = failsafe
        build.kvmgt.intel_vgpu_open_device(self.vgpu)
        self.pt: IntelVgpuPageTrack = build.gvt_page_track.intel_vgpu_register_page_track(self.vgpu, G)
        if tracked:
            gvt_enable(self)

    def vcpu(self, vcpu_id: int) -> KvmVcpu:
        return KvmVcpu(self.kvm, vcpu_id)


def gvt_enable(vm: Vm) -> None:
    """GVT shadows G (e.g. ppgtt_populate_spt): intel_vgpu_enable_page_track under vgpu_lock."""
    mutex_lock(vm.vgpu.vgpu_lock)
    vm.kvm.build.gvt_page_track.intel_vgpu_enable_page_track(vm.vgpu, G)
    mutex_unlock(vm.vgpu.vgpu_lock)


def gvt_disable(vm: Vm) -> None:
    """GVT stops shadowing G (shadow PPGTT teardown): intel_vgpu_disable_page_track under vgpu_lock."""
    mutex_lock(vm.vgpu.vgpu_lock)
    vm.kvm.build.gvt_page_track.intel_vgpu_disable_page_track(vm.vgpu, G)
    mutex_unlock(vm.vgpu.vgpu_lock)


def emulated_write(vcpu: KvmVcpu) -> None:
    """The vCPU's emulator stores to G (emulator_write_phys -> kvm_page_track_write) under kvm->srcu."""
    idx = srcu_read_lock(vcpu.kvm.srcu)
    emulator_write_phys(vcpu, GPA, 1, 8)
    srcu_read_unlock(vcpu.kvm.srcu, idx)


def _slot_valid(slots: KvmMemslots) -> bool:
    return all(not (s.__dict__["flags"] & KVM_MEMSLOT_INVALID) for s in slots.slots if s.base_gfn == G)


def guest_write(vm: Vm, vcpu: KvmVcpu) -> str:
    """The guest stores to G: through a writable SPTE, or by a write fault and KVM's emulation."""
    kvm = vcpu.kvm
    for _exit in range(MAX_EXITS):
        tracked = data_race(vm.pt, "tracked")  # GVT's belief just before the store (a harness read)
        spte = spte_read(vm.sptep)  # the CPU's page walk
        if is_writable_pte(spte):
            assert not tracked, (
                f"a tracked gfn written without interception: GVT tracks gfn {G:#x} "
                f"but the guest stored through a writable SPTE ({spte:#x})"
            )
            return "direct"
        fault = KvmPageFault(G, write=True, present=is_shadow_present_pte(spte))
        idx = srcu_read_lock(kvm.srcu)  # kvm_vcpu_srcu_read_lock() in vcpu_run()
        r = kvm_mmu_page_fault(vcpu, fault)
        ram = r == RET_PF_EMULATE and emulator_write_phys(vcpu, GPA, 1, 8)
        srcu_read_unlock(kvm.srcu, idx)
        if r == RET_PF_EMULATE:  # RAM: emulated and notified; no usable memslot: MMIO, to userspace
            return "emulated" if ram else "mmio"
        if fault.slot_invalid:  # annotation: the retries change nothing until the memslots do
            spin_until_cond(kvm, "memslots", _slot_valid)
    raise AssertionError(f"the guest store to gfn {G:#x} did not complete in {MAX_EXITS} exits")


@scenario(
    name="page_track.kvmgt_hash",
    source=Source(
        "posted",
        "[PATCH v4 11/29] drm/i915/gvt: Protect gfn hash table with vgpu_lock — 2023-07-28 —"
        " <20230729013535.1070024-12-seanjc@google.com>",
        "the race of its changelog: kvmgt_page_track_write() walking the table vs"
        " intel_gvt_page_track_remove() freeing the entry; GVT's side runs with vgpu_lock held",
    ),
    sources=SOURCES,
    expect={
        "v6.1": "bug",
        "v6.1-lock-in-track-write": "bug",
        "no-make-spte-recheck": "bug",
        "no-mmu-writable-clear": "bug",
        "yan-v2": "bug",
        "v6.6": "ok",
        "gfn-lock": "ok",
    },
    kcsan=False,
)
def kvmgt_hash(variant: str) -> None:
    """An emulated guest write to G races with GVT removing G's tracking (digest 03 section 3a).

    Threads: vcpu -- kvm_page_track_write(G) under kvm->srcu (the emulator's call);
    gvt -- intel_vgpu_disable_page_track(G) under vgpu_lock (shadow teardown).
    Initial: G tracked (count 1, ptable = {G}, GVT tracked).
    Property: KASAN (no access to a freed kvmgt_pgfn), might_sleep, lockdep; at the
    end G is neither counted nor in the table.
    v6.1: track_write walks the table with no lock while remove kfree's the entry
      under mmu_lock: use-after-free of the kvmgt_pgfn (fixed by 3cca6b262876).
    v6.1-lock-in-track-write: no use-after-free any more, but the handler takes the
      vgpu_lock / cache_lock mutexes under the spinning mmu_lock: sleep-in-atomic.
    yan-v2: the seed series does not touch the table's locking: the same use-after-free.
    v6.6: the table is under vgpu_lock on both sides: ok.
    gfn-lock: the table is under gfn_lock on both sides (v1 09/27), always taken
      inside vgpu_lock (v1 08/27 hoisted vgpu_lock into track_write): ok.
    Kernel paths: both threads follow paths each version can take (the emulator's
    track_write; GVT's teardown with vgpu_lock held, as Sean found its callers do).
    """
    vm = Vm(variant, SPTE_MMU_PRESENT | MMU_WRITABLE, tracked=True)
    t1 = spawn(emulated_write, vm.vcpu(0), name="vcpu")
    t2 = spawn(gvt_disable, vm, name="gvt")
    join(t1, t2)
    assert write_track_count(vm.slot, G) == 0, "G is still write-tracked after its removal"
    assert ptable_gfns(vm.vgpu) == [], "G is still in KVMGT's table after its removal"


@scenario(
    name="page_track.fast_path",
    source=Source(
        "posted",
        "Re: [PATCH v2 1/3] KVM: x86: add a new page track hook track_remove_slot — 2022-11-15 —"
        " <Y3Ljjji0Bwt5+WxH@google.com>",
        "Yan's false-negative question and Sean's answer: the lockless count read of a present write"
        " fault, then make_spte() -> mmu_try_to_unsync_pages() re-reading it under mmu_lock",
    ),
    sources=SOURCES,
    expect={
        "v6.1": "ok",
        "v6.1-lock-in-track-write": "bug",
        "no-make-spte-recheck": "bug",
        "no-mmu-writable-clear": "bug",
        "yan-v2": "ok",
        "v6.6": "ok",
        "gfn-lock": "ok",
    },
    kcsan=False,
)
def fast_path(variant: str) -> None:
    """Yan's question: can the lockless read of the count miss a write-protection?

    Threads: vcpu0 and vcpu1 -- a guest store to G each (write fault: lockless
    count check, fast_page_fault, then the map under mmu_lock (read) with
    make_spte's re-check; emulation if write-protected); gvt -- GVT starts
    shadowing G: intel_vgpu_enable_page_track under vgpu_lock (count++,
    write-protect, flush, then tracked = true).
    Initial: G's SPTE present, read-only but MMU-writable (as after dirty-logging
    write-protection), so the store faults as *present* and the fault path does read
    the count locklessly (a not-present fault never reads it: digest correction 1);
    count 0.
    Property: (1) at every guest store: GVT's ``tracked`` set => the store did not go
    through a writable SPTE; (2) at the end: count(G) > 0 => G's SPTE is not writable.
    v6.1, yan-v2, v6.6: ok -- a stale 0 read locklessly is caught by the re-check under
    mmu_lock in make_spte -> mmu_try_to_unsync_pages, or by the write-protection that
    runs after the fast path's cmpxchg (write_lock excludes the map, cmpxchg fails on a
    changed SPTE).
    gfn-lock: v6.6's KVM side; KVMGT's gfn_lock nests inside vgpu_lock in both the
    emulated write and the add, so the order is the same everywhere: ok.
    no-make-spte-recheck: make_spte trusts the stale read and maps G writable.
    no-mmu-writable-clear: write-protection leaves the MMU-writable bit, so the second
    fault's fast_page_fault makes the tracked gfn writable without mmu_lock.
    Kernel paths: all three threads follow paths v6.1 and v6.6 can take with the TDP
    MMU and A/D bits enabled (the mutants are not kernels).
    """
    race_tracking_with_faults(variant, SPTE_MMU_PRESENT | MMU_WRITABLE)


def race_tracking_with_faults(variant: str, initial_spte: int) -> None:
    """fast_path's threads and checks, from any initial SPTE of G."""
    vm = Vm(variant, initial_spte, tracked=False)
    t1 = spawn(guest_write, vm, vm.vcpu(0), name="vcpu0")
    t2 = spawn(gvt_enable, vm, name="gvt")
    t3 = spawn(guest_write, vm, vm.vcpu(1), name="vcpu1")
    join(t1, t2, t3)
    spte = vm.sptep.spte
    count = write_track_count(vm.slot, G)
    assert not (count > 0 and is_writable_pte(spte)), (
        f"writable SPTE for a tracked gfn: count {count}, spte {spte:#x} after tracking completed"
    )


@scenario(
    name="page_track.memslot_move",
    source=Source(
        "posted",
        "Re: [PATCH v2 1/3] KVM: x86: add a new page track hook track_remove_slot — 2022-11-11 —"
        " <Y26SI3uh8JV0vvO6@google.com>",
        "Sean: the flush hook runs before the memslot operation is guaranteed; the revert path is"
        " kvm_set_memslot()'s (digest 03 correction 5)",
    ),
    sources=SOURCES,
    expect={
        "v6.1": "bug",
        "v6.1-lock-in-track-write": "bug",
        "no-make-spte-recheck": "bug",
        "no-mmu-writable-clear": "bug",
        "yan-v2": "ok",
        "v6.6": "ok",
        "gfn-lock": "ok",
    },
    kcsan=False,
)
def memslot_move(variant: str) -> None:
    """A memslot MOVE that may fail after the flush hook ran, with a guest store to the tracked gfn.

    Threads: ioctl -- KVM_SET_USER_MEMORY_REGION moving G's slot to NEW_G (slots_lock,
    kvm_set_memslot: invalidate -> flush hook -> prepare -> revert or commit);
    vcpu -- a guest store to G.
    Initial: G tracked (count 1, ptable = {G}, SPTE write-protected, GVT tracked).
    Prepare allocates the moved slot's metadata, which may fail (``may_fail``: the
    search takes both branches); at v6.6 prepare refuses the MOVE outright
    (c70934e0ab2d).  A store to G after a committed MOVE finds no memslot: MMIO.
    Property: the guest-store check (a tracked gfn written without interception); at
    the end, if G's slot is still there (the MOVE failed), GVT tracked => G counted
    and in KVMGT's table; if it moved, KVMGT holds no stale entry for G.
    v6.1: the flush hook drops KVMGT's tracking before the MOVE is guaranteed; the
      allocation fails and the slot comes back untracked: the store lands unseen
      (Sean: "KVM might ultimately keep the existing memslot without notifying
      external page track users").
    yan-v2: the remove hook runs only at commit, which a failed MOVE never reaches: ok.
    v6.6, gfn-lock: no flush hook, MOVE refused in prepare, the tracking untouched: ok.
    Kernel paths: yes for every variant -- userspace can issue a MOVE while a vCPU
    runs (the vCPU retries while the slot is INVALID), and the allocation can fail.
    """
    vm = Vm(variant, SPTE_MMU_PRESENT | MMU_WRITABLE, tracked=True)

    def ioctl() -> None:
        r = kvm_set_memory_region(vm.kvm, SLOT_ID, NEW_G)
        assert r in (0, ENOMEM, EINVAL), f"unexpected KVM_SET_USER_MEMORY_REGION result {r}"

    t0 = spawn(ioctl, name="ioctl")
    t1 = spawn(guest_write, vm, vm.vcpu(0), name="vcpu")
    join(t0, t1)
    moved = all(s.base_gfn != G for s in vm.kvm.memslots.slots)
    if moved:
        assert ptable_gfns(vm.vgpu) == [], f"KVMGT still holds gfn {G:#x}, whose memslot moved away"
    elif vm.pt.tracked:
        assert write_track_count(vm.slot, G) > 0, (
            f"GVT tracks gfn {G:#x} but KVM no longer write-tracks it: its next store is not intercepted"
        )
        assert ptable_gfns(vm.vgpu) == [G], f"GVT tracks gfn {G:#x} but KVMGT's table lost it"


@scenario(
    name="page_track.reentrant_remove",
    source=Source(
        "posted",
        "Re: [Intel-gfx] [PATCH 09/27] drm/i915/gvt: Protect gfn hash table with dedicated mutex —"
        " 2023-01-03 — <Y7STZZkd3EaRXLTC@google.com>",
        "the chain Sean gives there: kvmgt_page_track_write() -> intel_vgpu_page_track_handler() ->"
        " intel_gvt_page_track_remove(), reached in failsafe mode ('Remove write protection to prevent"
        " future traps', gvt/page_track.c, context of v1 08/27)",
    ),
    sources=SOURCES,
    expect={
        "v6.1": "bug",
        "v6.1-lock-in-track-write": "bug",
        "no-make-spte-recheck": "bug",
        "no-mmu-writable-clear": "bug",
        "yan-v2": "bug",
        "v6.6": "ok",
        "gfn-lock": "bug",
    },
    kcsan=False,
)
def reentrant_remove(variant: str) -> None:
    """A track_write whose handler removes the tracking (GVT failsafe), on two vCPUs.

    Threads: vcpu0 and vcpu1 -- an emulated store to G each (kvm_page_track_write
    under kvm->srcu); GVT is in failsafe mode, so intel_vgpu_page_track_handler
    calls intel_gvt_page_track_remove(G) from inside track_write -- the chain Sean
    names when rejecting a separate lock.
    Initial: G tracked (count 1, ptable = {G}).
    Property: no deadlock (lockdep: recursive locking, cycles), KASAN, might_sleep;
    at the end G is neither counted nor in the table.
    v6.1: the re-entrant remove itself is fine (vgpu_lock -> mmu_lock), but the other
      vCPU's lockless table walk meets the kfree: use-after-free (the kvmgt_hash bug).
    v6.6: vgpu_lock is held across track_write and the remove nests kvm->srcu ->
      mmu_lock inside it: ok.
    gfn-lock: track_write holds vgpu_lock then gfn_lock and the handler's remove
      takes gfn_lock again: deadlock (recursive locking) -- the chain Sean gives in
      reply to Yan's report on v1 09/27 (2023-01-03, <Y7STZZkd3EaRXLTC@google.com>).
    Kernel paths: v6.1 and v6.6 can take them (failsafe is set when GVT meets an
    unsupported guest); gfn-lock was posted (v1 08/27 + 09/27, 2022-12-23) and
    replaced by the vgpu_lock design (v4 11/29, merged as 3cca6b262876): never a kernel.
    """
    vm = Vm(variant, SPTE_MMU_PRESENT | MMU_WRITABLE, tracked=True, failsafe=True)
    t1 = spawn(emulated_write, vm.vcpu(0), name="vcpu0")
    t2 = spawn(emulated_write, vm.vcpu(1), name="vcpu1")
    join(t1, t2)
    assert write_track_count(vm.slot, G) == 0, "G is still write-tracked after its removal"
    assert ptable_gfns(vm.vgpu) == [], "G is still in KVMGT's table after its removal"


__all__ = ["ALL", "SOURCES", "fast_path", "kvmgt_hash", "memslot_move", "reentrant_remove"]
