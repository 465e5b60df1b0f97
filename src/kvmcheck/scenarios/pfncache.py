"""Seed 000: the gfn->pfn cache -- refresh vs (de)activation and vs the mmu notifier, per kernel version.

Every scenario builds a VM with one vCPU whose Xen shared_info and vcpu_info
pages are cached, then lets an mmu-notifier event hit one of them without
moving it, so that cache is active but not valid -- the state in which the
next user refreshes it (digest 01, section 3).

The guest pages are ordinary memory with a struct page (``backing="page"``:
kmap is the direct map, kunmap does nothing) unless a scenario says
``iomem`` (memory without struct page, mapped by memremap/memunmap): what goes
wrong differs -- a stale khva of a struct page still reaches the page, so the
damage is a use-after-free once the page is freed (or the VM is bugged by a
KVM_BUG_ON); a stale memremap'ed khva faults (use-after-unmap).

Each scenario says whether its threads follow paths the kernel can take at
the versions checked ("reachable"), or only exercise the cache's API contract.

KCSAN is off here: v6.2..v6.8 reads gpc->active, ->gpa and
->mn_active_invalidate_count without locks by design, and these scenarios
ask about memory safety and the cache's invariants.  ``--kcsan`` shows the races.
"""

from __future__ import annotations

from typing import Any

from kvmcheck import join, scenario, spawn
from kvmcheck.kernel import (
    Refcount,
    mutex_lock,
    mutex_unlock,
    read_lock_irqsave,
    read_unlock_irqrestore,
    refcount_dec_and_test,
    srcu_read_lock,
    srcu_read_unlock,
)
from kvmcheck.models.arch.x86.kvm.xen import (
    SHARED_INFO_SIZE,
    VCPU_INFO_SIZE,
    __kvm_xen_has_interrupt,
    khva_of,
    kvm_xen_destroy_vcpu,
    kvm_xen_hvm_set_attr_shared_info,
    kvm_xen_init_vcpu,
    kvm_xen_init_vm,
    kvm_xen_set_evtchn,
    kvm_xen_set_evtchn_fast,
    kvm_xen_vcpu_set_attr_vcpu_info,
    xen_vcpu,
    xen_vm,
)
from kvmcheck.models.mm.migrate import migrate_pages
from kvmcheck.models.mm.mm import (
    MmStruct,
    Pte,
    mmu_notifier_invalidate_range_end,
    mmu_notifier_invalidate_range_start,
)
from kvmcheck.models.mm.page import Page
from kvmcheck.models.virt.kvm.kvm_host import (
    INVALID_GPA,
    KVM_PFN_ERR_FAULT,
    PAGE_SIZE,
    Kvm,
    KvmMemslots,
    KvmVcpu,
)
from kvmcheck.models.virt.kvm.kvm_main import kvm_init_mmu_notifier
from kvmcheck.models.virt.kvm.pfncache import GfnToPfnCache, kvm_gpc_check
from kvmcheck.models.virt.kvm.pfncache_variants import VARIANTS, PhysMem, build_for

VCPU_INFO_GPA = 0x1000
SHINFO_GPA = 0x2000
VCPU_INFO_HVA = 0x7F00_0000
SHINFO_HVA = 0x7F00_1000
VCPU_INFO_PFN, SHINFO_PFN = 1, 2

ALL = tuple(VARIANTS)


def setup_vm(
    variant: str, invalidate: int = VCPU_INFO_HVA, backing: str = "page", shared_info: bool = True
) -> tuple[Kvm, KvmVcpu]:
    """A VM on kernel ``variant``, shared_info and vcpu_info cached, the page at ``invalidate`` hit.

    ``backing``: "page" -- ordinary memory with struct pages; "iomem" -- memory
    without struct page in a VM_IO|VM_PFNMAP vma (hva_to_pfn_remapped, memremap).
    ``shared_info=False`` leaves shared_info unset (KVM_XEN_ATTR_TYPE_SHARED_INFO never set).
    """
    mm = MmStruct()
    iomem: dict[int, Any] | None = None
    if backing == "page":
        mm.map_page(VCPU_INFO_HVA, Page(pfn=VCPU_INFO_PFN))
        mm.map_page(SHINFO_HVA, Page(pfn=SHINFO_PFN))
    else:
        iomem = {pfn: PhysMem(pfn) for pfn in (VCPU_INFO_PFN, SHINFO_PFN)}
        mm.ptes[VCPU_INFO_HVA] = Pte(mm.page_table_lock, VCPU_INFO_PFN)  # remap_pfn_range()
        mm.ptes[SHINFO_HVA] = Pte(mm.page_table_lock, SHINFO_PFN)
    slots = KvmMemslots({VCPU_INFO_GPA // PAGE_SIZE: VCPU_INFO_HVA, SHINFO_GPA // PAGE_SIZE: SHINFO_HVA})
    kvm = Kvm(mm, build_for(variant, iomem), slots)
    kvm_init_mmu_notifier(kvm)
    v = KvmVcpu(kvm, 0)
    kvm_xen_init_vm(kvm)
    kvm_xen_init_vcpu(v)
    if shared_info:
        kvm_xen_hvm_set_attr_shared_info(kvm, SHINFO_GPA)
    kvm_xen_vcpu_set_attr_vcpu_info(v, VCPU_INFO_GPA)
    # An mmu-notifier event on the page that does not move it: active, !valid, pfn and khva kept.
    mmu_notifier_invalidate_range_start(mm, invalidate, invalidate + 1)
    mmu_notifier_invalidate_range_end(mm, invalidate, invalidate + 1)
    return kvm, v


def deliver_upcall(kvm: Kvm, gpc: GfnToPfnCache, size: int = VCPU_INFO_SIZE) -> int:
    """A later user of the cache (as kvm_xen_set_evtchn_fast): kvm->srcu, read_lock, check, deref."""
    assert gpc.lock is not None
    idx = srcu_read_lock(kvm.srcu)
    flags = read_lock_irqsave(gpc.lock)
    pending = -1
    if kvm_gpc_check(gpc, size):
        pending = int(khva_of(gpc).page.data)  # e.g. vcpu_info->evtchn_upcall_pending
    read_unlock_irqrestore(gpc.lock, flags)
    srcu_read_unlock(kvm.srcu, idx)
    return pending


def vcpu_run(v: KvmVcpu) -> int:
    """KVM_RUN: kvm_vcpu_ioctl() holds vcpu->mutex around vcpu_run()."""
    mutex_lock(v.mutex)
    r = vcpu_context(v)
    mutex_unlock(v.mutex)
    return r


def vcpu_context(v: KvmVcpu) -> int:
    """vcpu_run()'s loop: __kvm_xen_has_interrupt under kvm->srcu (kvm_vcpu_srcu_read_lock)."""
    idx = srcu_read_lock(v.kvm.srcu)
    r = __kvm_xen_has_interrupt(v)
    srcu_read_unlock(v.kvm.srcu, idx)
    return r


def reattach_vcpu_info(v: KvmVcpu) -> None:
    """Userspace moves vcpu_info away and back: two KVM_XEN_VCPU_SET_ATTR ioctls."""
    kvm_xen_vcpu_set_attr_vcpu_info(v, INVALID_GPA)
    kvm_xen_vcpu_set_attr_vcpu_info(v, VCPU_INFO_GPA)


def reattach_shared_info(kvm: Kvm) -> None:
    """Userspace moves shared_info away and back: two KVM_XEN_HVM_SET_ATTR ioctls (xen_lock)."""
    kvm_xen_hvm_set_attr_shared_info(kvm, INVALID_GPA)
    kvm_xen_hvm_set_attr_shared_info(kvm, SHINFO_GPA)


def _seed_race(variant: str, backing: str) -> int:
    kvm, v = setup_vm(variant, backing=backing)
    t1 = spawn(vcpu_context, v, name="vcpu")
    t2 = spawn(reattach_vcpu_info, v, name="ioctl")
    t3 = spawn(kvm_xen_set_evtchn_fast, kvm, v, name="irqfd")
    join(t1, t2, t3)
    return deliver_upcall(kvm, xen_vcpu(v).vcpu_info_cache)


SEED_RACE = {
    "pre-9f87791d686d": "ok",
    "v6.8": "bug",
    "v6.8-no-xen-lock": "bug",
    "seed-v1": "bug",
    "seed-v2": "ok",
    "6addfcf27139": "ok",
    "v6.9": "ok",
    "seed-final": "ok",
    "seed-final-recheck": "ok",
    "sean-contract": "bug",
}


@scenario(name="pfncache.seed_race", expect=SEED_RACE, kcsan=False)
def seed_race(variant: str) -> int:
    """Refresh of vcpu_info races with its deactivate + reactivate; an event is delivered meanwhile and after.

    Threads: "vcpu" refreshes vcpu_info through __kvm_xen_has_interrupt WITHOUT
    vcpu->mutex; "ioctl" detaches and reattaches vcpu_info (vcpu ioctl: vcpu->mutex,
    xen_lock); "irqfd" delivers an event through kvm_xen_set_evtchn_fast.
    Initial state: vcpu_info active, !valid (hit by a notifier event), pfn/khva kept.
    Reachable: NO at any version -- every v6.8 refresher of vcpu_info runs in the
    vCPU thread under vcpu->mutex; this checks the cache's own API contract
    (refresh may run concurrently with (de)activation), the claim the thread argued
    about.  Memory: struct pages (kmap = direct map, kunmap a no-op).
    v6.8, v6.8-no-xen-lock: the refresh reuses the mapping deactivate dropped and
      installs valid=true into the inactive cache; the reactivation then hits
      KVM_BUG_ON(gpc->valid) -- the VM is bugged.  (No fault: the direct-map
      address stays good; seed_race_iomem shows Woodhouse's oops.)
    seed-v1: installs a fresh mapping into the deactivated cache (only uhva is
      re-checked), so the reactivation hits KVM_BUG_ON(gpc->valid).
    pre-9f87791d686d: deactivate's kvm_gpc_unmap waits for the refresh on refresh_lock.
    seed-v2, seed-final: discarding the new mapping when ->active changed closes it.
    6addfcf27139, v6.9, seed-final-recheck: activate/deactivate take refresh_lock.
    sean-contract: lockdep_assert_held(vcpu->mutex) fires in the refresher.
    """
    return _seed_race(variant, "page")


@scenario(
    name="pfncache.seed_race_iomem",
    expect={**SEED_RACE, "v6.8": "bug", "v6.8-no-xen-lock": "bug"},
    kcsan=False,
)
def seed_race_iomem(variant: str) -> int:
    """pfncache.seed_race with guest memory that has no struct page (memremap/memunmap).

    Same threads, initial state and reachability (NO: the refresher lacks
    vcpu->mutex).  v6.8: the refresh reuses the khva deactivate just memunmap'ed,
    the reactivation keeps it, and the next dereference faults: use-after-unmap,
    Woodhouse's "BUG: unable to handle page fault ... __kvm_xen_has_interrupt".
    Only memory without struct page gives that oops on x86-64.  Other variants as
    in pfncache.seed_race.
    """
    return _seed_race(variant, "iomem")


@scenario(name="pfncache.seed_race_vcpu_mutex", expect=dict.fromkeys(ALL, "ok"), kcsan=False)
def seed_race_vcpu_mutex(variant: str) -> int:
    """The seed race as v6.8 Xen really calls it: KVM_RUN and the vcpu ioctl both hold vcpu->mutex.

    Threads: KVM_RUN (vcpu->mutex) -> __kvm_xen_has_interrupt; the vcpu ioctl
    detaching/reattaching vcpu_info (vcpu->mutex, xen_lock); irqfd fast path.
    Reachable: yes, at every version.  Every variant is ok: vcpu->mutex serialises
    the refresh with (de)activation -- why Woodhouse could not see how production
    hit the race.
    """
    kvm, v = setup_vm(variant, backing="iomem")
    t1 = spawn(vcpu_run, v, name="vcpu")
    t2 = spawn(reattach_vcpu_info, v, name="ioctl")
    t3 = spawn(kvm_xen_set_evtchn_fast, kvm, v, name="irqfd")
    join(t1, t2, t3)
    return deliver_upcall(kvm, xen_vcpu(v).vcpu_info_cache)


@scenario(name="pfncache.xen_callers", expect=dict.fromkeys(ALL, "ok"), kcsan=False)
def xen_callers(variant: str) -> int:
    """The Xen callers only as v6.8 can run them, both caches in play, memory without struct page.

    Threads: "vcpu": KVM_RUN under vcpu->mutex refreshes vcpu_info
    (__kvm_xen_has_interrupt); "irqfd": an event through the fast path
    (kvm_xen_set_evtchn_fast, as from the irqfd wakeup); "vm-ioctl": shared_info
    deactivated and reactivated (KVM_XEN_HVM_SET_ATTR, under xen_lock).
    Initial: vcpu_info active but !valid.  Reachable: yes, at every version.
    Property: no access through a stale khva (use-after-unmap), no KVM_BUG_ON, no
    WARN, no leak.  Found: ok for every variant -- the only refresher (vcpu thread)
    and the only (de)activator of each cache are serialised by the caller's mutex
    (vcpu_info: vcpu->mutex; shared_info: xen_lock), and the fast path never
    refreshes.  So the v6.8 race is not reachable through these paths.
    """
    kvm, v = setup_vm(variant, backing="iomem")
    t1 = spawn(vcpu_run, v, name="vcpu")
    t2 = spawn(kvm_xen_set_evtchn_fast, kvm, v, name="irqfd")
    t3 = spawn(reattach_shared_info, kvm, name="vm-ioctl")
    join(t1, t2, t3)
    return deliver_upcall(kvm, xen_vm(kvm).shinfo_cache, SHARED_INFO_SIZE)


SHINFO = {
    "pre-9f87791d686d": "ok",
    "v6.8": "ok",
    "v6.8-no-xen-lock": "bug",
    "seed-v1": "ok",
    "seed-v2": "ok",
    "6addfcf27139": "ok",
    "v6.9": "ok",
    "seed-final": "ok",
    "seed-final-recheck": "ok",
    "sean-contract": "ok",
}


@scenario(name="pfncache.shinfo_evtchn", expect=SHINFO, kcsan=False)
def shinfo_evtchn(variant: str) -> int:
    """The shared_info slow path, where Sean and Woodhouse disagreed: kvm_xen_set_evtchn vs the VM ioctl.

    Threads: "irqfd-work": kvm_xen_set_evtchn (the irqfd_inject work / EVTCHN_SEND
    path: fast path, then -- under xen_lock until 7a36d680658b -- loop {fast path;
    kvm_gpc_refresh(shinfo)}); "vm-ioctl": shared_info deactivated and reactivated
    (KVM_XEN_HVM_SET_ATTR under xen_lock; the reactivation writes the wall clock
    through khva); "irqfd": another event through the fast path.
    Initial: shared_info active but !valid.  Memory without struct page (memremap).
    Reachable: yes, at every version.
    v6.8 (and every variant on the v6.8 xen.c): xen_lock serialises the slow-path
      refresh with the ioctl: ok.
    v6.8-no-xen-lock: 7a36d680658b without 6addfcf27139 -- the slow-path refresh
      races with deactivate/reactivate: the seed race, reachable (bug).
    v6.9: refresh_lock now covers (de)activation, so dropping xen_lock is safe: ok.
    seed-final, seed-final-recheck: ok (refresh_lock, and the active re-check).
    """
    kvm, v = setup_vm(variant, invalidate=SHINFO_HVA, backing="iomem")
    t1 = spawn(kvm_xen_set_evtchn, kvm, v, name="irqfd-work")
    t2 = spawn(reattach_shared_info, kvm, name="vm-ioctl")
    t3 = spawn(kvm_xen_set_evtchn_fast, kvm, v, name="irqfd")
    join(t1, t2, t3)
    return deliver_upcall(kvm, xen_vm(kvm).shinfo_cache, SHARED_INFO_SIZE)


def vcpu_fd_release(v: KvmVcpu, users: Refcount) -> None:
    """KVM_RUN, then close the vcpu fd: kvm_vcpu_release() -> kvm_put_kvm()."""
    vcpu_run(v)
    put_kvm(v, users)


def put_kvm(v: KvmVcpu, users: Refcount) -> None:
    """kvm_put_kvm(): the last reference runs kvm_destroy_vm() -> ... -> kvm_xen_destroy_vcpu()."""
    if refcount_dec_and_test(users):
        kvm_xen_destroy_vcpu(v)


def _assert_deactivated(gpc: GfnToPfnCache) -> None:
    assert gpc.lock is not None
    flags = read_lock_irqsave(gpc.lock)
    state = (gpc.active, gpc.valid, gpc.pfn, gpc.khva)
    read_unlock_irqrestore(gpc.lock, flags)
    active, valid, pfn, khva = state
    inactive_and_empty = not valid and khva is None and pfn == KVM_PFN_ERR_FAULT
    assert active or inactive_and_empty, (
        f"I2 violated: deactivated cache left valid={valid} pfn={pfn} khva={khva}"
    )


@scenario(name="pfncache.teardown", expect={**dict.fromkeys(ALL, "ok"), "sean-contract": "bug"}, kcsan=False)
def teardown(variant: str) -> None:
    """VM teardown as the kernel orders it: kvm_xen_destroy_vcpu runs on the last reference.

    Threads: "vcpu": KVM_RUN (refreshes vcpu_info), then closes its fd
    (kvm_put_kvm); "main-fd": userspace closes the VM fd (kvm_put_kvm).  Whoever
    drops kvm->users_count to zero runs kvm_destroy_vm -> kvm_xen_destroy_vcpu.
    Reachable: yes.  Property: the deactivate post-condition (digest I2: an
    inactive cache is invalid, with no mapping and no pfn) and no leaked mapping.
    Every upstream version and proposal is ok: the refcount orders destroy after
    KVM_RUN, so destroy never runs without vcpu->mutex *concurrently* with a
    refresh (the point Sean raised is an API-contract one: see
    pfncache.teardown_contract).  sean-contract: lockdep_assert_held(vcpu->mutex)
    fires in kvm_xen_destroy_vcpu even here -- the contract needs its step 2 (make
    the destroy paths take the mutex, or exempt them) before it can be applied.
    """
    _kvm, v = setup_vm(variant, backing="iomem")
    users = Refcount(2, name="kvm->users_count")
    t1 = spawn(vcpu_fd_release, v, users, name="vcpu")
    t2 = spawn(put_kvm, v, users, name="main-fd")
    join(t1, t2)
    _assert_deactivated(xen_vcpu(v).vcpu_info_cache)


TEARDOWN_CONTRACT = {
    "pre-9f87791d686d": "ok",
    "v6.8": "bug",
    "v6.8-no-xen-lock": "bug",
    "seed-v1": "bug",
    "seed-v2": "ok",
    "6addfcf27139": "ok",
    "v6.9": "ok",
    "seed-final": "ok",
    "seed-final-recheck": "ok",
    "sean-contract": "bug",
}


@scenario(name="pfncache.teardown_contract", expect=TEARDOWN_CONTRACT, kcsan=False)
def teardown_contract(variant: str) -> None:
    """kvm_xen_destroy_vcpu (no vcpu->mutex) concurrently with KVM_RUN's refresh.

    Reachable: NO -- KVM_RUN holds a reference to the VM (the vcpu fd), and
    kvm_destroy_vm runs only when the last one is dropped (pfncache.teardown is
    the reachable form).  This checks the cache's API contract for Sean's remark
    that the destroy paths hold neither vcpu->mutex nor xen_lock.
    Property: the deactivate post-condition (digest I2).
    v6.8 and seed-v1: the refresh installs a valid mapping into the destroyed cache.
    pre-9f87791d686d, seed-v2, seed-final, 6addfcf27139, v6.9: the post-condition holds.
    sean-contract: the destroy path does not hold vcpu->mutex, so the contract's
      lockdep_assert_held fires -- step 2 of the proposal ("fix the cases where that
      doesn't hold true") is exactly this caller.
    """
    _kvm, v = setup_vm(variant, backing="iomem")
    t1 = spawn(vcpu_run, v, name="vcpu")
    t2 = spawn(kvm_xen_destroy_vcpu, v, name="destroy")
    join(t1, t2)
    _assert_deactivated(xen_vcpu(v).vcpu_info_cache)


MMU_NOTIFIER = {
    "pre-9f87791d686d": "ok",
    "v6.8": "ok",
    "v6.8-no-xen-lock": "ok",
    "seed-v1": "bug",
    "seed-v2": "bug",
    "6addfcf27139": "ok",
    "v6.9": "ok",
    "seed-final": "bug",
    "seed-final-recheck": "ok",
    "sean-contract": "ok",
}


@scenario(name="pfncache.mmu_notifier", expect=MMU_NOTIFIER, kcsan=False)
def mmu_notifier(variant: str) -> int:
    """KVM_RUN's refresh of vcpu_info races with the host migrating the vcpu_info page.

    Threads: "vcpu": KVM_RUN (vcpu->mutex) -> __kvm_xen_has_interrupt, which
    refreshes; "host": migrate_pages() of the vcpu_info page (isolate, migration
    entry under the notifier, expected-refcount check, copy, free the old page).
    Then the main thread delivers an event through the cache.
    Initial: vcpu_info active, !valid; shared_info not set up (it plays no part).
    Memory: struct pages.  Reachable: yes.
    Property: once the old page is freed, no valid cache may point at it.
    v6.8, 6addfcf27139, v6.9, pre-9f87791d686d, sean-contract: the retry check
      (mmu_notifier_retry_cache) runs with gpc->lock held, so an invalidation
      either forces a retry or finds the installed pfn and clears ``valid``.
    seed-v1, seed-v2, seed-final: the check moved out from under gpc->lock; an
      invalidation that runs between it and write_lock_irq finds the cache already
      !valid, the stale pfn is then installed, its GUP reference dropped (so the
      migration's refcount check passes), and the old page is freed under a valid
      cache: use-after-free.  Not discussed in the thread.
    seed-final-recheck: re-checking under gpc->lock discards the stale pfn: ok.
    """
    kvm, v = setup_vm(variant, shared_info=False)
    t1 = spawn(vcpu_run, v, name="vcpu")
    t2 = spawn(migrate_pages, kvm.mm, VCPU_INFO_HVA, Page(pfn=3), name="host")
    join(t1, t2)
    return deliver_upcall(kvm, xen_vcpu(v).vcpu_info_cache)
