"""Seed 000: the gfn->pfn cache, refresh vs deactivate (and the mmu notifier), per variant.

Every scenario builds a VM with one vCPU whose Xen vcpu_info page is cached
(kvm_xen_vcpu_set_attr -> kvm_gpc_activate), then lets an mmu-notifier event
hit the page without moving it, so the cache is active but not valid -- the
state in which the next user refreshes it (digest 01, section 3).

KCSAN is off here: v6.2..v6.8 reads gpc->active, ->gpa and
->mn_active_invalidate_count without locks by design, and these scenarios
ask about use-after-unmap and the cache's invariants.  The locking contract
of struct gfn_to_pfn_cache is still enforced.  ``--kcsan`` shows the races.
"""

from __future__ import annotations

from kvmcheck import join, scenario, spawn
from kvmcheck.kernel import (
    mutex_lock,
    mutex_unlock,
    read_lock_irqsave,
    read_unlock_irqrestore,
    srcu_read_lock,
    srcu_read_unlock,
)
from kvmcheck.models.arch.x86.kvm.xen import (
    VCPU_INFO_SIZE,
    __kvm_xen_has_interrupt,
    kvm_xen_destroy_vcpu,
    kvm_xen_hvm_set_attr_shared_info,
    kvm_xen_init_vcpu,
    kvm_xen_init_vm,
    kvm_xen_set_evtchn_fast,
    kvm_xen_vcpu_set_attr_vcpu_info,
    xen_vcpu,
)
from kvmcheck.models.mm.mm import (
    MmStruct,
    migrate_page,
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
from kvmcheck.models.virt.kvm.pfncache_variants import build_for

VCPU_INFO_GPA = 0x1000
SHINFO_GPA = 0x2000
VCPU_INFO_HVA = 0x7F00_0000
SHINFO_HVA = 0x7F00_1000


def setup_vm(variant: str) -> tuple[Kvm, KvmVcpu, GfnToPfnCache]:
    """A VM on kernel ``variant`` with shared_info and vcpu_info cached, vcpu_info invalidated."""
    mm = MmStruct()
    mm.map_page(VCPU_INFO_HVA, Page(pfn=1))
    mm.map_page(SHINFO_HVA, Page(pfn=2))
    slots = KvmMemslots({VCPU_INFO_GPA // PAGE_SIZE: VCPU_INFO_HVA, SHINFO_GPA // PAGE_SIZE: SHINFO_HVA})
    kvm = Kvm(mm, build_for(variant), slots)
    kvm_init_mmu_notifier(kvm)
    v = KvmVcpu(kvm, 0)
    kvm_xen_init_vm(kvm)
    kvm_xen_init_vcpu(v)
    kvm_xen_hvm_set_attr_shared_info(kvm, SHINFO_GPA)
    kvm_xen_vcpu_set_attr_vcpu_info(v, VCPU_INFO_GPA)
    # An mmu-notifier event on the page that does not move it: active, !valid, pfn and khva kept.
    mmu_notifier_invalidate_range_start(mm, VCPU_INFO_HVA, VCPU_INFO_HVA + 1)
    mmu_notifier_invalidate_range_end(mm, VCPU_INFO_HVA, VCPU_INFO_HVA + 1)
    return kvm, v, xen_vcpu(v).vcpu_info_cache


def deliver_upcall(kvm: Kvm, gpc: GfnToPfnCache) -> int:
    """A later user of the cache (as kvm_xen_set_evtchn_fast): kvm->srcu, read_lock, check, deref."""
    assert gpc.lock is not None
    idx = srcu_read_lock(kvm.srcu)
    flags = read_lock_irqsave(gpc.lock)
    pending = -1
    if kvm_gpc_check(gpc, VCPU_INFO_SIZE):
        khva = gpc.khva
        assert khva is not None
        pending = int(khva.page.data)  # vcpu_info->evtchn_upcall_pending
    read_unlock_irqrestore(gpc.lock, flags)
    srcu_read_unlock(kvm.srcu, idx)
    return pending


def vcpu_run(v: KvmVcpu) -> int:
    """KVM_RUN: the vCPU thread holds vcpu->mutex, and kvm->srcu, around __kvm_xen_has_interrupt."""
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


ALL = ("v6.8", "seed-v1", "seed-v2", "6addfcf27139", "sean-contract")


@scenario(
    name="pfncache.seed_race",
    expect={"v6.8": "bug", "seed-v1": "bug", "seed-v2": "ok", "6addfcf27139": "ok", "sean-contract": "bug"},
    kcsan=False,
)
def seed_race(variant: str) -> int:
    """Refresh races with deactivate + reactivate; an event is delivered meanwhile and after.

    The refresher calls __kvm_xen_has_interrupt without vcpu->mutex, so only the
    cache's own locking stands between it and the ioctl thread.
    v6.8: the refresh reuses the mapping deactivate just unmapped and the reactivation
      keeps it: the next dereference of khva is a use-after-unmap (Woodhouse's oops).
    seed-v1: installs a fresh mapping into the deactivated cache (only uhva is
      re-checked), so the reactivation hits KVM_BUG_ON(gpc->valid).
    seed-v2: discarding the new mapping when ->active changed closes the race.
    6addfcf27139: activate/deactivate wait for the whole refresh on refresh_lock.
    sean-contract: lockdep_assert_held(vcpu->mutex) fires in the refresher that does
      not hold it, in the very first execution -- the contract turns the rare race into
      a deterministic report; let past the WARN, the unserialised refresh leaks a mapping.
    """
    kvm, v, gpc = setup_vm(variant)
    t1 = spawn(vcpu_context, v, name="vcpu")
    t2 = spawn(reattach_vcpu_info, v, name="ioctl")
    t3 = spawn(kvm_xen_set_evtchn_fast, kvm, v, name="irqfd")
    join(t1, t2, t3)
    return deliver_upcall(kvm, gpc)


@scenario(
    name="pfncache.seed_race_vcpu_mutex",
    expect=dict.fromkeys(ALL, "ok"),
    kcsan=False,
)
def seed_race_vcpu_mutex(variant: str) -> int:
    """The seed race as Xen really calls it: KVM_RUN and the ioctl both hold vcpu->mutex.

    Every variant is ok: vcpu->mutex serialises the refresh with deactivate/activate,
    which is why Woodhouse could not see how production hit the race.
    """
    kvm, v, gpc = setup_vm(variant)
    t1 = spawn(vcpu_run, v, name="vcpu")
    t2 = spawn(reattach_vcpu_info, v, name="ioctl")
    t3 = spawn(kvm_xen_set_evtchn_fast, kvm, v, name="irqfd")
    join(t1, t2, t3)
    return deliver_upcall(kvm, gpc)


@scenario(
    name="pfncache.teardown",
    expect={"v6.8": "bug", "seed-v1": "bug", "seed-v2": "ok", "6addfcf27139": "ok", "sean-contract": "bug"},
    kcsan=False,
)
def teardown(variant: str) -> None:
    """kvm_xen_destroy_vcpu (no vcpu->mutex, as Sean pointed out) races with KVM_RUN's refresh.

    The property is the deactivate post-condition: an inactive cache is invalid,
    has no mapping and no pfn (digest invariant I2).
    v6.8 and seed-v1: the refresh installs a valid mapping into the destroyed cache
      (latent: no reactivation follows, so no oops -- Woodhouse's reply).
    seed-v2, 6addfcf27139: the post-condition holds.
    sean-contract: the destroy path does not hold vcpu->mutex, so the contract's
      lockdep_assert_held fires -- step 2 of the proposal ("fix the cases where that
      doesn't hold true") is exactly this caller.
    """
    _kvm, v, gpc = setup_vm(variant)
    t1 = spawn(vcpu_run, v, name="vcpu")
    t2 = spawn(kvm_xen_destroy_vcpu, v, name="destroy")
    join(t1, t2)
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
    name="pfncache.mmu_notifier",
    expect={"v6.8": "ok", "seed-v1": "bug", "seed-v2": "bug", "6addfcf27139": "ok", "sean-contract": "ok"},
    kcsan=False,
)
def mmu_notifier(variant: str) -> int:
    """Refresh races with the host migrating the vcpu_info page (the old page is freed).

    The property: once the notifier has run and the old page is freed, no cache
    may be valid on it (digest S2).
    v6.8, 6addfcf27139, sean-contract: mmu_notifier_retry_cache is checked with
      gpc->lock held, so an invalidation either forces a retry or waits for the install.
    seed-v1, seed-v2: the retry check moved out from under gpc->lock; an invalidation
      that runs between it and write_lock_irq finds the cache already !valid, the stale
      pfn is then installed, its GUP reference dropped, and the page freed under the
      cache: use-after-free.  (Not discussed in the thread.)
    """
    kvm, v, gpc = setup_vm(variant)
    t1 = spawn(vcpu_run, v, name="vcpu")
    t2 = spawn(migrate_page, kvm.mm, VCPU_INFO_HVA, Page(pfn=3), name="host")
    join(t1, t2)
    return deliver_upcall(kvm, gpc)
