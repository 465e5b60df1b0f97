"""Seed 002: TDP MMU roots -- a reference taken across a yield of mmu_lock, per kernel version.

Every scenario builds a VM whose vCPUs have each loaded a TDP MMU root
through the real load path (vcpu_enter_guest -> kvm_mmu_load), with two
present, writable SPTEs in each root (as the guest's faults would have left
them), runs its threads, and then tears the VM down (kvm_destroy_vm:
unload every vCPU, kvm_mmu_uninit_tdp_mmu's WARN_ON(!list_empty(roots)),
free struct kvm -- after which kmemleak sees any root still alive).

Properties checked in every scenario, by the kernel's own checks:
  P1  no reference is taken on a root whose count is 0 (BUG_ON in
      kvm_mmu_get_root, mmu_internal.h:100; refcount_t's "addition on 0");
  P2  no access to a freed root (KASAN), no poisoned list pointer followed
      (general protection fault at LIST_POISON1/2);
  P3  no root outlives the VM (the WARN_ON at uninit, kmemleak);
  P4  no deadlock, no lock held at exit, lockdep and the locking contract
      (root_count and role.invalid under mmu_lock);
  P5  (v6.9) the last reference of a *valid* root is never put (KVM_BUG_ON).

KCSAN is on: the fields the model reads locklessly say so (data_race in
is_obsolete_root()).  Exhaustive DPOR in every verdict.
"""

from __future__ import annotations

from typing import Any

from kvmcheck import Source, join, scenario, spawn
from kvmcheck.kernel import mutex_lock, mutex_unlock, spin_until_cond, struct_init
from kvmcheck.models.arch.x86.kvm.mmu.mmu import (
    kvm_destroy_vm,
    kvm_mmu_init_tdp_mmu,
    kvm_mmu_reload,
    kvm_mmu_reset_context,
    kvm_mmu_slot_remove_write_access,
    kvm_set_memory_region,
    vcpu_arch,
    vcpu_enter_guest,
)
from kvmcheck.models.arch.x86.kvm.mmu.mmu_internal import N_SPTES, SPTE_PRESENT, SPTE_WRITABLE
from kvmcheck.models.arch.x86.kvm.mmu.tdp_mmu import spte_field
from kvmcheck.models.arch.x86.kvm.mmu.tdp_mmu_variants import BUILDS, SOURCES
from kvmcheck.models.build import Build, build_for
from kvmcheck.models.mm.mm import MmStruct
from kvmcheck.models.virt.kvm.kvm_host import Kvm, KvmMemslots, KvmVcpu

# Where the harness was read: the seed thread and the call paths its report and replies give.
REPORT = Source(
    "posted",
    "Re: [PATCH 2/3] kvm: x86/mmu: Ensure TDP MMU roots are freed after yield — 2021-01-06 — "
    "<CANgfPd-QPUwigK5um8DWQ5Y_M+JGRie_N_vkYtZdNE1WQbn3mA@mail.gmail.com>",
    "Maciej Szmigiero's memslot_move_test (memslot MOVE vs a running vCPU) and his call traces "
    "quoted there (kvm_set_memslot -> kvm_arch_flush_shadow_memslot -> kvm_page_track_flush_slot "
    "-> kvm_mmu_zap_all_fast; kvm_mmu_load <- vcpu_enter_guest); the seed thread 'reproducible "
    "BUG() in kvm_mmu_get_root() in TDP MMU' (2021-01-05) for the get/yield/put diagnosis.",
)
SEED_THREAD = Source(
    "posted",
    "Re: reproducible BUG() in kvm_mmu_get_root() in TDP MMU — 2021-01-05 (Ben Gardon)",
    "Sean's 'next entry is deleted' case and Ben's predicted leak, as quoted in the seed mail; the "
    "walkers (kvm_tdp_mmu_wrprot_slot, kvm_tdp_mmu_zap_gfn_range) and vCPU paths are those the "
    "variants' sources give at each version.",
)

ALL = ("v5.11-rc2", "ben-v1", "list-safe", "a889ea54b3da", "list-add-tail", "v5.13", "v6.9", "v6.9-plain-get")


def setup_vm(build: Build, roles: tuple[int, ...] = (0,), loaded: int = -1) -> tuple[Kvm, list[KvmVcpu]]:
    """A VM on ``build`` with one vCPU per role; the first ``loaded`` (all) load their roots, in order."""
    kvm = Kvm(MmStruct(), build, KvmMemslots({}))
    vcpus = [KvmVcpu(kvm, i) for i in range(len(roles))]
    kvm_mmu_init_tdp_mmu(kvm, vcpus, list(roles))
    for v in vcpus[: len(vcpus) if loaded < 0 else loaded]:
        vcpu_enter_guest(v)
        root = vcpu_arch(v).root_hpa
        struct_init(root, **{spte_field(i): SPTE_PRESENT | SPTE_WRITABLE for i in range(N_SPTES)})
    return kvm, vcpus


def kvm_arch_vcpu_ioctl_run(v: KvmVcpu) -> int:
    """KVM_RUN: vcpu->mutex, then one vcpu_enter_guest() once the kick (a request) arrives."""
    mutex_lock(v.mutex)
    spin_until_cond(vcpu_arch(v), "requests", lambda r: r != 0)  # the IPI of kvm_make_all_cpus_request
    r = vcpu_enter_guest(v)
    mutex_unlock(v.mutex)
    return r


def kvm_run_now(v: KvmVcpu) -> int:
    """KVM_RUN of a vCPU whose request is already pending: one vcpu_enter_guest()."""
    mutex_lock(v.mutex)
    r = vcpu_enter_guest(v)
    mutex_unlock(v.mutex)
    return r


def kvm_first_run(v: KvmVcpu) -> int:
    """The first KVM_RUN of a vCPU, from kvm_mmu_reload() on: it has serviced its requests
    (there were none), so a request posted now waits for its next entry."""
    mutex_lock(v.mutex)
    r = kvm_mmu_reload(v)
    mutex_unlock(v.mutex)
    return r


def kvm_set_sregs(v: KvmVcpu) -> None:
    """KVM_SET_SREGS on a vCPU (vcpu->mutex): kvm_mmu_reset_context() drops its root."""
    mutex_lock(v.mutex)
    kvm_mmu_reset_context(v)
    mutex_unlock(v.mutex)


def enable_dirty_logging(kvm: Kvm) -> None:
    """KVM_SET_USER_MEMORY_REGION with KVM_MEM_LOG_DIRTY_PAGES: write-protect the slot."""
    mutex_lock(kvm.slots_lock)
    kvm_mmu_slot_remove_write_access(kvm)  # kvm_mmu_slot_apply_flags()
    mutex_unlock(kvm.slots_lock)


# -- the scenario bodies, on any build (the tests run mutants through them) ---------------------------
def root_reload_body(build: Build) -> None:
    """Maciej's reproducer: memslot MOVE (the yielding zap of all roots) vs the vCPU's reload."""
    kvm, (v,) = setup_vm(build)
    t1 = spawn(kvm_set_memory_region, kvm, name="memslot_move")
    t2 = spawn(kvm_arch_vcpu_ioctl_run, v, name="vcpu")
    join(t1, t2)
    kvm_destroy_vm(kvm)


def next_root_freed_body(build: Build) -> None:
    """Two roots [R1, R2]; a dirty-log walk yields on R1 while vCPU 2 drops R2."""
    kvm, (v2, _v1) = setup_vm(build, roles=(2, 1))  # vCPU 1 (role 1) loads last: list is [R1, R2]
    t1 = spawn(enable_dirty_logging, kvm, name="dirty_log")
    t2 = spawn(kvm_set_sregs, v2, name="vcpu2_sregs")
    join(t1, t2)
    kvm_destroy_vm(kvm)


def concurrent_put_body(build: Build) -> None:
    """A root already invalidated by a memslot update: the zapper of a second update, a new
    vCPU's root load and the old vCPU's put meet on it."""
    kvm, (v, v2) = setup_vm(build, roles=(0, 0), loaded=1)
    kvm_set_memory_region(kvm)  # the first update: R invalidated (v5.13+) and zapped; vCPU kicked
    vcpu_arch(v).shutdown_pending = True  # the vCPU drops its root and returns to userspace
    t1 = spawn(kvm_set_memory_region, kvm, name="memslot_move")
    t2 = spawn(kvm_first_run, v2, name="vcpu2_load")
    t3 = spawn(kvm_run_now, v, name="vcpu")
    join(t1, t2, t3)
    kvm_destroy_vm(kvm)


def vm_destroy_body(build: Build) -> None:
    """A memslot DELETE races with the vCPU's last KVM_RUN (it drops its root and exits); then
    the VM is destroyed: is every root freed?"""
    kvm, (v,) = setup_vm(build)
    vcpu_arch(v).shutdown_pending = True
    t1 = spawn(kvm_set_memory_region, kvm, name="memslot_delete")
    t2 = spawn(kvm_arch_vcpu_ioctl_run, v, name="vcpu")
    join(t1, t2)
    kvm_destroy_vm(kvm)


@scenario(
    name="tdp_mmu.root_reload",
    source=REPORT,
    sources=SOURCES,
    expect={
        "v5.11-rc2": "bug",
        "ben-v1": "bug",
        "list-safe": "ok",
        "a889ea54b3da": "ok",
        "list-add-tail": "ok",
        "v5.13": "ok",
        "v6.9": "ok",
        "v6.9-plain-get": "bug",
    },
)
def root_reload(variant: str) -> Any:
    """Maciej's memslot_move_test: a memslot MOVE against the vCPU that reloads its root.

    Threads: memslot_move (KVM_SET_USER_MEMORY_REGION: kvm->slots_lock, then
    kvm_set_memslot -> kvm_arch_flush_shadow_memslot -> [page-track hop up to
    v6.5] -> kvm_mmu_zap_all_fast, whose TDP walk yields mmu_lock between
    SPTEs); vcpu (KVM_RUN: waits for the reload/free-obsolete request that
    kvm_mmu_zap_all_fast posts, then vcpu_enter_guest: drop the root,
    kvm_mmu_reload -> kvm_mmu_load).  Initial state: one vCPU, one root R
    (count 1; v6.9: 2), two present SPTEs.  Then the VM is destroyed.

    v5.11-rc2: the walker holds R across the yield, the vCPU drops its
      reference meanwhile, the walker's put takes R to 0 without freeing it,
      and the vCPU's reload finds R on the list: "kernel BUG at
      arch/x86/kvm/mmu/mmu_internal.h:100!", RIP kvm_tdp_mmu_get_vcpu_root_hpa,
      call trace kvm_mmu_load <- vcpu_enter_guest (Maciej's report).
    ben-v1: the walker's put frees R inside list_for_each_entry, which then
      reads R->link.next from freed memory.  This kernel has KASAN, so the
      report is KASAN's use-after-free in the root loop of
      kvm_tdp_mmu_zap_gfn_range; its details say what Maciej's kernel
      (no KASAN) read there: LIST_POISON1, whose dereference at the BUG_ON
      of kvm_mmu_get_root is his "general protection fault, probably for
      non-canonical address 0xdead000000000100".
    list-safe: ok -- with one root the cached next is the list head.
    a889ea54b3da, list-add-tail, v5.13, v6.9: ok.
    v6.9-plain-get: bug -- the zapper's plain get reads the count (2), the
      vCPU's put (read lock too) takes it to 1, the get stores 3: a lost
      decrement, so R never reaches 0 and outlives the VM (kmemleak, after
      the WARN_ON at uninit).
    Paths: every thread follows a path the kernel at that version takes.
    """
    root_reload_body(build_for(BUILDS, variant))


@scenario(
    name="tdp_mmu.next_root_freed",
    source=SEED_THREAD,
    sources=SOURCES,
    expect={
        "v5.11-rc2": "bug",
        "ben-v1": "bug",
        "list-safe": "bug",
        "a889ea54b3da": "ok",
        "list-add-tail": "ok",
        "v5.13": "ok",
        "v6.9": "ok",
        "v6.9-plain-get": "bug",
    },
)
def next_root_freed(variant: str) -> Any:
    """Sean's "next entry is deleted" case: the walk yields while another vCPU drops a root.

    Threads: dirty_log (enabling dirty logging: kvm_mmu_slot_remove_write_access
    -> kvm_tdp_mmu_wrprot_slot, yielding between SPTEs; spinlock in v5.11,
    read lock since v5.13); vcpu2_sregs (KVM_SET_SREGS on vCPU 2:
    kvm_mmu_reset_context -> kvm_mmu_unload drops its root R2).  Initial:
    roots [R1, R2] on the list (R1 first, list_add at the head), each held by
    its vCPU.  Then the VM is destroyed.

    v5.11-rc2: if the walk holds R2 when vCPU 2 drops it, the walk's put
      leaves R2 at count 0 on the list: leaked (WARN_ON at uninit, kmemleak).
    ben-v1: same race, but the put frees R2 inside list_for_each_entry and
      the walk reads R2->link.next: KASAN use-after-free.
    list-safe: the walk standing on R1 has cached next = R2; vCPU 2 frees R2
      while the lock is dropped; the walk steps to R2 and reads
      R2->link.next: KASAN use-after-free of the cached next.
    a889ea54b3da, list-add-tail: ok (next is read under the lock, after the
      yield).  v5.13: ok (R2 unlinked with list_del_rcu, freed after a grace
      period; the walker re-reads next under rcu_read_lock).  v6.9: ok --
      dropping a valid root only drops the vCPU's reference (the TDP MMU keeps
      its own until the root is invalidated), so nothing is freed.
    v6.9-plain-get: bug -- the walk's plain get on R2 reads 2, vCPU 2's put
      (read lock too) makes 1, the get stores 3: a lost decrement, R2 leaks.
    Paths: real at every version.
    """
    next_root_freed_body(build_for(BUILDS, variant))


@scenario(
    name="tdp_mmu.concurrent_put",
    source=SEED_THREAD,
    sources=SOURCES,
    expect={
        "v5.11-rc2": "bug",
        "ben-v1": "bug",
        "list-safe": "ok",
        "a889ea54b3da": "ok",
        "list-add-tail": "ok",
        "v5.13": "ok",
        "v6.9": "ok",
        "v6.9-plain-get": "bug",
    },
)
def concurrent_put(variant: str) -> Any:
    """Two root walkers and a vCPU's put meet on one root (all under the read lock in v6.9).

    Initial: vCPU 0 with root R; a first memslot update has run to
    completion (R's SPTEs zapped; since v5.13 R is invalid and only vCPU 0
    still holds it) and vCPU 0 has not yet serviced its request; vCPU 1 has
    never run.  Threads: memslot_move (a second update's kvm_mmu_zap_all_fast:
    v5.11, the zap of all roots under the spinlock; v5.13/v6.9, the zap of
    invalidated roots under the read lock, whose v6.9 walk gets and puts
    every root, invalid ones included); vcpu2_load (vCPU 1's first KVM_RUN
    loads a root of the same role, from kvm_mmu_reload() on: v5.11 spinlock,
    v5.13 write lock, v6.9 a yield-safe walk with get/put under the read
    lock); vcpu (vCPU 0's
    KVM_RUN with a shutdown pending: it services the request -- drops R under
    the spin/write/read lock per version -- and returns to userspace).  Then
    the VM is destroyed.

    v5.11-rc2: the zapper's ignored put leaves R at 0 on the list; vCPU 1
      finds it: BUG at mmu_internal.h:100 (or, if vCPU 1 ran first, the leak).
    ben-v1: the zapper frees R in list_for_each_entry and reads
      R->link.next: use-after-free.  list-safe: ok (one root: the cached next
      is the head; vCPU 1 reuses R or adds its root before the walk).
    a889ea54b3da, list-add-tail, v5.13, v6.9: ok.
    v6.9-plain-get: the zapper's walk reads R under rcu_read_lock, vCPU 0's
      put (read lock) takes R to 0, and the plain get finds 0 (BUG_ON) -- or
      reads 1 and stores 2 after the put, resurrecting a root already queued
      for freeing (use-after-free after the grace period).  The search meets
      the second first; the test suite shows both are reachable.
    Paths: real at every version (a second memslot update before vCPU 0 runs
    again is what a VMM moving two slots does; vCPU 1 may start meanwhile).
    """
    concurrent_put_body(build_for(BUILDS, variant))


@scenario(
    name="tdp_mmu.vm_destroy",
    source=SEED_THREAD,
    sources=SOURCES,
    expect={
        "v5.11-rc2": "bug",
        "ben-v1": "bug",
        "list-safe": "ok",
        "a889ea54b3da": "ok",
        "list-add-tail": "ok",
        "v5.13": "ok",
        "v6.9": "ok",
        "v6.9-plain-get": "bug",
    },
)
def vm_destroy(variant: str) -> Any:
    """The root leak Ben predicted: a memslot DELETE vs the vCPU's last KVM_RUN, then VM teardown.

    Threads: memslot_delete (as root_reload's memslot_move); vcpu (KVM_RUN
    with a triple fault pending: services the MMU request -- drops its root --
    and returns to userspace without reloading).  Initial: one vCPU, root R.
    Then the last reference to the VM goes: kvm_destroy_vm.

    v5.11-rc2: the walker's put takes R to 0 and leaves it on the list:
      "WARN_ON(!list_empty(&kvm->arch.tdp_mmu_roots))" at uninit, and once
      struct kvm is freed, kmemleak reports R.
    ben-v1: bug -- the walker's put that reaches 0 frees R inside
      list_for_each_entry, which then reads R->link.next: KASAN
      use-after-free (as in root_reload).
    list-safe: ok -- the put that reaches 0 frees R, and with one root the
      cached next is the list head.
    a889ea54b3da, list-add-tail, v5.13, v6.9: ok.
    v6.9-plain-get: bug -- the lost decrement of root_reload (the zapper's
      plain get reads 2, the vCPU's put makes 1, the get stores 3): R leaks.
    Paths: real at every version.
    """
    vm_destroy_body(build_for(BUILDS, variant))
