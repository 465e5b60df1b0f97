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

from kvmcheck import Source, join, scenario, spawn
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
    kvm_xen_start_timer,
    kvm_xen_vcpu_get_attr_timer,
    kvm_xen_vcpu_set_attr_vcpu_info,
    xen_timer_fire,
    xen_vcpu,
    xen_vm,
)
from kvmcheck.models.build import build_for
from kvmcheck.models.mm.migrate import migrate_pages
from kvmcheck.models.mm.mm import (
    MmStruct,
    Pte,
    mmu_notifier_invalidate_range_end,
    mmu_notifier_invalidate_range_start,
    zap_page_range_single,
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
from kvmcheck.models.virt.kvm.pfncache_variants import BUILDS, SOURCES, VARIANTS, KvmMainPfnmap, PhysMem

VCPU_INFO_GPA = 0x1000
SHINFO_GPA = 0x2000
VCPU_INFO_HVA = 0x7F00_0000
SHINFO_HVA = 0x7F00_1000
VCPU_INFO_PFN, SHINFO_PFN = 1, 2

OTHER_HVA = 0x7F00_2000  # host memory of the VMM that no memslot covers (OTHER_PFN)
OTHER_PFN = 4

# The wait variant differs from v6.9 only in hva_to_pfn_retry(): it runs where a retry can happen.
ALL = tuple(v for v in VARIANTS if v != "v6.9-wait-v3")

XEN_C = "v6.8: arch/x86/kvm/xen.c"
XEN_NOTE = "xen.c read at ultrarisc/linux-6.8@e2f1f355 (Makefile 6.8.12)"
SEED_V1 = (
    "[PATCH] KVM: pfncache: rework __kvm_gpc_refresh() to fix locking issues — 2024-01-12 — "
    "<9a82db197449bdb97ee889d2f3cdd7998abd9692.camel@amazon.co.uk>"
)
SEED_RACE_SRC = Source(
    "tree",
    XEN_C + " (__kvm_xen_has_interrupt, KVM_XEN_VCPU_SET_ATTR(VCPU_INFO), kvm_xen_set_evtchn_fast)",
    "The race the seed thread describes (" + SEED_V1 + ") driven through v6.8's callers, the "
    "refresher WITHOUT vcpu->mutex (an API-contract harness: no v6.8 path does that). " + XEN_NOTE,
)
XEN_CALLERS_SRC = Source(
    "tree",
    XEN_C + " (KVM_RUN, KVM_XEN_VCPU_SET_ATTR, KVM_XEN_HVM_SET_ATTR, kvm_xen_set_evtchn[_fast])",
    XEN_NOTE,
)
TEARDOWN_SRC = Source(
    "tree",
    "v6.8: virt/kvm/kvm_main.c (kvm_vcpu_release, kvm_put_kvm -> kvm_destroy_vm), "
    + XEN_C
    + " (kvm_xen_destroy_vcpu)",
    XEN_NOTE,
)
TEARDOWN_CONTRACT_SRC = Source(
    "posted",
    "Re: [PATCH] KVM: pfncache: rework __kvm_gpc_refresh() to fix locking issues (Sean "
    "Christopherson) — 2024-01-17 — <Zaf7yCYt8XFuMhAd@google.com>",
    "Sean's remark 'neither kvm_xen_destroy_vcpu() nor kvm_xen_destroy_vm() holds the appropriate "
    "mutex', checked as an API contract: destroy concurrent with KVM_RUN, which v6.8's refcounting "
    "forbids. " + XEN_NOTE,
)
MIGRATE_SRC = Source(
    "tree",
    "v6.8: mm/migrate.c (migrate_pages), mm/rmap.c (try_to_migrate), " + XEN_C + " (KVM_RUN)",
    "Migration simplified (models/mm/migrate.py): one attempt, no folio lock, no pinned-page "
    "check beyond the expected refcount. " + XEN_NOTE,
)


def setup_vm(
    variant: str,
    invalidate: int = VCPU_INFO_HVA,
    backing: str = "page",
    shared_info: bool = True,
    invalidate_end: int | None = None,
) -> tuple[Kvm, KvmVcpu]:
    """A VM on kernel ``variant``, shared_info and vcpu_info cached, [invalidate, invalidate_end) hit.

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
    build = build_for(BUILDS, variant)
    if iomem is not None:  # hva_to_pfn() resolves these pfns through hva_to_pfn_remapped()
        build = build.patched(KvmMainPfnmap(iomem))
    kvm = Kvm(mm, build, slots)
    kvm_init_mmu_notifier(kvm)
    v = KvmVcpu(kvm, 0)
    kvm_xen_init_vm(kvm)
    kvm_xen_init_vcpu(v)
    if shared_info:
        kvm_xen_hvm_set_attr_shared_info(kvm, SHINFO_GPA)
    kvm_xen_vcpu_set_attr_vcpu_info(v, VCPU_INFO_GPA)
    # An mmu-notifier event on the page that does not move it: active, !valid, pfn and khva kept.
    end = invalidate + 1 if invalidate_end is None else invalidate_end
    mmu_notifier_invalidate_range_start(mm, invalidate, end)
    mmu_notifier_invalidate_range_end(mm, invalidate, end)
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


def vcpu_run(v: KvmVcpu, vcpu_mutex: bool = True) -> int:
    """KVM_RUN: kvm_vcpu_ioctl() holds vcpu->mutex around vcpu_run().

    ``vcpu_mutex=False`` is a harness mutant (no kernel path does it): the test
    that xen_callers depends on the callers' mutexes.
    """
    if vcpu_mutex:
        mutex_lock(v.mutex)
    r = vcpu_context(v)
    if vcpu_mutex:
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


@scenario(name="pfncache.seed_race", expect=SEED_RACE, kcsan=False, source=SEED_RACE_SRC, sources=SOURCES)
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
    v6.8, v6.8-no-xen-lock (counterfactual): the refresh reuses the mapping deactivate dropped and
      installs valid=true into the inactive cache; the reactivation then hits
      KVM_BUG_ON(gpc->valid) -- the VM is bugged.  (No fault: the direct-map
      address stays good; seed_race_iomem shows Woodhouse's oops.)
    seed-v1: installs a fresh mapping into the deactivated cache (only uhva is
      re-checked), so the reactivation hits KVM_BUG_ON(gpc->valid).
    pre-9f87791d686d: deactivate's kvm_gpc_unmap waits for the refresh on refresh_lock.
    seed-v2, seed-final: discarding the new mapping when ->active changed closes it.
    6addfcf27139, v6.9, seed-final-recheck (our fix): activate/deactivate take refresh_lock.
    sean-contract: lockdep_assert_held(vcpu->mutex) fires in the refresher.
    """
    return _seed_race(variant, "page")


@scenario(
    name="pfncache.seed_race_iomem",
    expect={**SEED_RACE, "v6.8": "bug", "v6.8-no-xen-lock": "bug"},
    kcsan=False,
    source=SEED_RACE_SRC,
    sources=SOURCES,
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


@scenario(
    name="pfncache.seed_race_vcpu_mutex",
    expect=dict.fromkeys(ALL, "ok"),
    kcsan=False,
    source=XEN_CALLERS_SRC,
    sources=SOURCES,
)
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


# seed-final and seed-final-recheck are left out: on v6.9's locking they take 25,030 executions
# each like v6.9, and their rework is checked by seed_race, teardown_contract and mmu_notifier.
XEN_CALLERS = {
    **dict.fromkeys((v for v in ALL if v not in ("seed-final", "seed-final-recheck")), "ok"),
    "v6.8-no-xen-lock": "bug",
}


def _xen_callers(variant: str, vcpu_mutex: bool = True) -> int:
    """Each cache between its real refresher and its real (de)activator (harness of xen_callers)."""
    kvm, v = setup_vm(variant, invalidate=VCPU_INFO_HVA, invalidate_end=SHINFO_HVA + 1, backing="iomem")
    t1 = spawn(vcpu_run, v, vcpu_mutex, name="vcpu")
    t2 = spawn(reattach_vcpu_info, v, name="vcpu-ioctl")
    t3 = spawn(kvm_xen_set_evtchn, kvm, v, name="irqfd-work")
    t4 = spawn(reattach_shared_info, kvm, name="vm-ioctl")
    join(t1, t2, t3, t4)
    deliver_upcall(kvm, xen_vm(kvm).shinfo_cache, SHARED_INFO_SIZE)
    return deliver_upcall(kvm, xen_vcpu(v).vcpu_info_cache)


@scenario(
    name="pfncache.xen_callers",
    expect=XEN_CALLERS,
    kcsan=False,
    source=XEN_CALLERS_SRC,
    sources=SOURCES,
)
def xen_callers(variant: str) -> int:
    """Both Xen caches, each facing the refresher and the (de)activator v6.8 really has, no struct page.

    Threads: vcpu_info -- "vcpu": KVM_RUN (vcpu->mutex) refreshes it in
    __kvm_xen_has_interrupt; "vcpu-ioctl": KVM_XEN_VCPU_SET_ATTR(VCPU_INFO)
    deactivates and reactivates it (vcpu->mutex, xen_lock).  shared_info --
    "irqfd-work": kvm_xen_set_evtchn, whose slow path refreshes it (under
    xen_lock until 7a36d680658b); "vm-ioctl": KVM_XEN_HVM_SET_ATTR(SHARED_INFO)
    deactivates and reactivates it (xen_lock).  The fast path inside
    kvm_xen_set_evtchn also reads vcpu_info.  Initial: both caches active, !valid.
    Then main delivers through both caches.
    Reachable: yes, at every version (v6.8-no-xen-lock is a counterfactual build).
    Property: no access through a stale khva (use-after-unmap), no KVM_BUG_ON,
    no WARN, no leak.
    Found: ok wherever each refresher shares a mutex with its (de)activator
    (vcpu_info: vcpu->mutex; shared_info: xen_lock) or refresh_lock covers
    (de)activation (6addfcf27139 and later) -- so the v6.8 race is not reachable
    through these paths, as Woodhouse argued.  v6.8-no-xen-lock: the slow-path
    refresh of shared_info meets its deactivate/reactivate unserialised: bug.
    The harness is sensitive to the mutexes: tests/models/test_pfncache.py runs
    it with KVM_RUN not taking vcpu->mutex and v6.8 fails.  Not run on seed-final
    and seed-final-recheck (v6.9's locking, 25,030 executions each, as v6.9).
    """
    return _xen_callers(variant)


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


@scenario(name="pfncache.shinfo_evtchn", expect=SHINFO, kcsan=False, source=XEN_CALLERS_SRC, sources=SOURCES)
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
    v6.8-no-xen-lock (a counterfactual mutant, never a commit): 7a36d680658b
      without 6addfcf27139 -- the slow-path refresh
      races with deactivate/reactivate: the seed race, reachable in that build
      (which never shipped): bug.
    v6.9: refresh_lock now covers (de)activation, so dropping xen_lock is safe: ok.
    seed-final, seed-final-recheck (our fix): ok (refresh_lock, and the active re-check).
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


@scenario(
    name="pfncache.teardown",
    expect={**dict.fromkeys(ALL, "ok"), "sean-contract": "bug"},
    kcsan=False,
    source=TEARDOWN_SRC,
    sources=SOURCES,
)
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


@scenario(
    name="pfncache.teardown_contract",
    expect=TEARDOWN_CONTRACT,
    kcsan=False,
    source=TEARDOWN_CONTRACT_SRC,
    sources=SOURCES,
)
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
    "v6.9-wait-v3": "ok",
}


@scenario(name="pfncache.mmu_notifier", expect=MMU_NOTIFIER, kcsan=False, source=MIGRATE_SRC, sources=SOURCES)
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
    seed-final-recheck (our proposed fix, a mutant -- not a posted patch):
      re-checking under gpc->lock discards the stale pfn: ok.
    """
    kvm, v = setup_vm(variant, shared_info=False)
    t1 = spawn(vcpu_run, v, name="vcpu")
    t2 = spawn(migrate_pages, kvm.mm, VCPU_INFO_HVA, Page(pfn=3), name="host")
    join(t1, t2)
    return deliver_upcall(kvm, xen_vcpu(v).vcpu_info_cache)


TIMER_DEADLOCK = {
    v: ("ok" if BUILDS[v].xen.version == "7a36d680658b" else "bug") for v in ALL if v != "pre-9f87791d686d"
}


@scenario(
    name="pfncache.xen_timer_get_attr",
    expect=TIMER_DEADLOCK,
    kcsan=False,
    source=Source(
        "posted",
        "Re: [PATCH v3] KVM: x86: Use fast path for Xen timer delivery (Sean Christopherson) — "
        "2024-02-06 — <ZcJ9bXxU_Pthq_eh@google.com>",
        "The lockdep splat and path (kvm_xen_vcpu_get_attr -> kvm_xen_inject_timer_irqs -> "
        "kvm_xen_set_evtchn) Sean reported on the posted 77c9b9dea4fb, fixed by 7a36d680658b "
        "([PATCH v2 5/8], 2024-02-27, <20240227115648.3104-6-dwmw2@infradead.org>).",
    ),
    sources=SOURCES,
)
def xen_timer_get_attr(variant: str) -> int:
    """The recursive xen_lock deadlock 7a36d680658b fixed: KVM_XEN_VCPU_GET_ATTR(TIMER) vs the Xen timer.

    Threads: "hrtimer": the vCPU's Xen timer expires (__run_hrtimer ->
    xen_timer_callback: the fast path finds shared_info invalid, so the event is
    left in timer_pending); "vcpu-ioctl": KVM_XEN_VCPU_GET_ATTR(TIMER) under
    vcpu->mutex and xen_lock cancels the timer and injects what is pending
    through kvm_xen_set_evtchn(), whose slow path takes xen_lock (v6.8).
    Initial: shared_info active but !valid (hit by an mmu-notifier event); the
    timer armed (kvm_xen_start_timer).  Reachable: yes (Sean hit it running
    xen_shinfo_test on 6.8, 2024-02-06).
    Every build with v6.8's xen.c: "WARNING: possible recursive locking detected"
    on kvm->arch.xen.xen_lock, in kvm_xen_set_evtchn under kvm_xen_vcpu_get_attr.
    7a36d680658b builds (v6.8-no-xen-lock, v6.9, seed-final, seed-final-recheck):
    the slow path refreshes shared_info and delivers: ok.
    pre-9f87791d686d is not run: its build keeps v6.8's xen.c, and 6.1.y has no
    fast-path timer delivery (77c9b9dea4fb is later).
    """
    kvm, v = setup_vm(variant, invalidate=SHINFO_HVA, backing="iomem")
    kvm_xen_start_timer(v, 1)  # KVM_XEN_VCPU_ATTR_TYPE_TIMER set earlier, deadline ahead
    t1 = spawn(xen_timer_fire, v, name="hrtimer")
    t2 = spawn(kvm_xen_vcpu_get_attr_timer, v, name="vcpu-ioctl")
    join(t1, t2)
    return deliver_upcall(kvm, xen_vm(kvm).shinfo_cache, SHARED_INFO_SIZE)


@scenario(
    name="pfncache.retry_unrelated_invalidation",
    expect={"v6.9": "ok", "v6.9-wait-v3": "ok"},
    kcsan=False,
    source=Source(
        "tree",
        "v6.8: virt/kvm/kvm_main.c (kvm_mmu_notifier_invalidate_range_start/_end), "
        "virt/kvm/pfncache.c (mmu_notifier_retry_cache), mm/memory.c (zap_page_range_single)",
        "The spinning as described in 'KVM: pfncache: Implement range-based invalidation check for "
        "hva_to_pfn_retry()' (dwmw2 tree, [PATCH v3 2/5] 2024-08-21): 'If there are any concurrent "
        "invalidations running, it's effectively just a complex busy wait loop'.",
    ),
    sources=SOURCES,
)
def retry_unrelated_invalidation(variant: str) -> int:
    """KVM_RUN refreshes vcpu_info while the VMM drops two pages of its own: where the retry loop spins.

    Threads: "vcpu": KVM_RUN (vcpu->mutex) -> __kvm_xen_has_interrupt refreshes
    vcpu_info; "vmm-a", "vmm-b": MADV_DONTNEED of a VMM page outside every memslot
    (zap_page_range_single: invalidate_range_start/_end around the PTE clear).
    Initial: vcpu_info active, !valid.  Memory: struct pages.  Reachable: yes.
    mmu_notifier_retry_cache() retries while mn_active_invalidate_count != 0,
    whatever the range, so mainline (v6.8, v6.9, and the posted reworks) goes
    round the loop -- GUP, kmap, retake gpc->lock -- once per change of that count
    while the unrelated invalidations overlap; v6.9-wait-v3 (the unmerged
    [PATCH v3 3/5]) sleeps instead.  Run on v6.9 and v6.9-wait-v3 only (they
    differ in nothing else; v6.8 spins the same way, at 25,988 executions).
    Property: memory safety, no
    leak -- ok everywhere: spinning costs CPU and transient page references, not
    correctness.  The extra iterations are asserted in tests/models/test_pfncache.py
    (counting GUPs), and show as more executions (v6.9 vs v6.9-wait-v3).
    """
    kvm, v = setup_vm(variant)
    kvm.mm.map_page(OTHER_HVA, Page(pfn=OTHER_PFN))
    kvm.mm.map_page(OTHER_HVA + PAGE_SIZE, Page(pfn=OTHER_PFN + 1))
    t1 = spawn(vcpu_run, v, name="vcpu")
    t2 = spawn(zap_page_range_single, kvm.mm, OTHER_HVA, name="vmm-a")
    t3 = spawn(zap_page_range_single, kvm.mm, OTHER_HVA + PAGE_SIZE, name="vmm-b")
    join(t1, t2, t3)
    return deliver_upcall(kvm, xen_vcpu(v).vcpu_info_cache)
