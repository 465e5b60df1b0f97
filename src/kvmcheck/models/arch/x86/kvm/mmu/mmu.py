"""arch/x86/kvm/mmu/mmu.c: the one ``mmu`` subsystem, and the C entry points of the TDP MMU roots.

``Mmu`` is mmu.c in a kernel build (the ``mmu`` slot).  The seeds read two
different parts of it, each in its own file and each a mixin of ``Mmu``:
mmu_fault.py -- the write-fault path with page tracking (seed 001, v6.1:
direct_page_fault, fast_page_fault, mmu_try_to_unsync_pages, write-protection),
and stage2_fault.py -- the stage-2 fault's pfn refcounting and the notifier's
SPTE zap (seed 004, v5.11 .. v6.12: kvm_mmu_page_fault, kvm_unmap_gfn_range).
They share no function; each keeps its own reduction of the SPTE table
(``kvm->arch.sptes`` of spte.py, ``kvm->arch_mmu`` of stage2_fault.py) as its
scenarios set it up.  Every version of mmu.c is a subclass of ``Mmu`` that
overrides just what its patch changed (mmu_variants.py), so a build of either
seed holds one mmu.c, and builds of the two seeds compose.

The rest of this file: the C-style entry points of the TDP MMU root code (x86.c,
mmu.c, page_track.c, kvm_main.c).

Each is a thin function named after its kernel function that dispatches to
the build's ``tdp_mmu`` implementation (tdp_mmu.py / tdp_mmu_variants.py)
where the code changed across versions, so that an oops's call trace names
the kernel's functions: ``vcpu_enter_guest -> kvm_mmu_reload -> kvm_mmu_load
-> mmu_alloc_roots -> mmu_alloc_direct_roots -> kvm_tdp_mmu_get_vcpu_root_hpa``
(v5.11-rc2; mmu_alloc_roots, mmu_alloc_direct_roots and kvm_mmu_reload are
inlined, as in Maciej's report).  Also the VM set-up and teardown the
scenarios need (kvm_mmu_init_tdp_mmu, kvm_arch_destroy_vm).

Locking: see tdp_mmu.py.  ``vcpu->requests`` is set with atomic bit
operations by any thread (kvm_make_request) and tested-and-cleared by the
vCPU (kvm_check_request).
"""

from __future__ import annotations

from typing import Any

from kvmcheck.kernel import kfree, kmalloc, mutex_lock, mutex_unlock, smp_mb__after_atomic, smp_wmb
from kvmcheck.kernel.struct import READ_ONCE, rmw
from kvmcheck.models.arch.x86.kvm.mmu.mmu_fault import WriteFault
from kvmcheck.models.arch.x86.kvm.mmu.stage2_fault import Stage2Fault
from kvmcheck.models.arch.x86.kvm.mmu.tdp_mmu import KvmArch, TdpMmu, VcpuArch
from kvmcheck.models.build import Subsystem


class Mmu(WriteFault, Stage2Fault, Subsystem):
    """arch/x86/kvm/mmu/mmu.c at v6.1: the write-fault path and the stage-2 fault (see above)."""

    subsystem = "mmu"
    version = "v6.1"


def _tdp(kvm: Any) -> TdpMmu:
    impl: TdpMmu = kvm.build.tdp_mmu
    return impl


# -- requests (include/linux/kvm_host.h, kvm_main.c) ------------------------------------------------
def kvm_make_request(req: int, vcpu: Any) -> None:
    """kvm_make_request() (include/linux/kvm_host.h): smp_wmb(), then set_bit(req, &vcpu->requests).

    The smp_wmb() publishes "the rest of the request" (here: a root's role.invalid) to
    kvm_check_request()'s caller, pairing with its smp_mb__after_atomic().  Under the
    LKMM the model's set_bit is a fully ordered RMW (kernel/barrier.py: atomics are
    never relaxed there), so the barrier adds no ordering the RMW lacks.
    """
    smp_wmb()
    rmw(vcpu.arch, "requests", lambda r: r | req, "set_bit(vcpu->requests)")


def kvm_check_request(req: int, vcpu: Any) -> bool:
    """kvm_check_request(): test_bit, then clear_bit, then smp_mb__after_atomic() (pairs with the above)."""
    if READ_ONCE(vcpu.arch, "requests") & req:
        rmw(vcpu.arch, "requests", lambda r: r & ~req, "clear_bit(vcpu->requests)")
        smp_mb__after_atomic()
        return True
    return False


def kvm_make_all_cpus_request(kvm: Any, req: int) -> None:
    """kvm_make_all_cpus_request() (kvm_main.c): the request on every vCPU (and a kick)."""
    for vcpu in kvm.vcpus:
        kvm_make_request(req, vcpu)


def kvm_reload_remote_mmus(kvm: Any) -> None:
    """kvm_reload_remote_mmus() (kvm_main.c, v5.11..v5.17): KVM_REQ_MMU_RELOAD on every vCPU."""
    kvm_make_all_cpus_request(kvm, _tdp(kvm).reload_request)


# -- vCPU side (x86.c, mmu.h, mmu.c) --------------------------------------------------------------------
def vcpu_enter_guest(vcpu: Any) -> int:
    """vcpu_enter_guest() (x86.c): service the MMU requests, then make sure a root is loaded.

    A pending KVM_REQ_TRIPLE_FAULT (``shutdown_pending``) makes it return to
    userspace after the MMU requests, before kvm_mmu_reload(), as x86.c does.
    """
    _tdp(vcpu.kvm).service_mmu_requests(vcpu)
    if vcpu.arch.shutdown_pending:
        return 0
    return kvm_mmu_reload(vcpu)


def kvm_mmu_reload(vcpu: Any) -> int:
    """kvm_mmu_reload() (mmu.h, static inline): load a root if none is loaded."""
    if vcpu.arch.root_hpa is not None:
        return 0
    return kvm_mmu_load(vcpu)


def kvm_mmu_load(vcpu: Any) -> int:
    """kvm_mmu_load() (mmu.c): mmu_alloc_roots(), then load the pgd (not modelled)."""
    return mmu_alloc_roots(vcpu)


def mmu_alloc_roots(vcpu: Any) -> int:
    """mmu_alloc_roots() (mmu.c, static): a TDP vCPU uses direct roots."""
    return mmu_alloc_direct_roots(vcpu)


def mmu_alloc_direct_roots(vcpu: Any) -> int:
    """mmu_alloc_direct_roots() (mmu.c): the version's root allocation (see tdp_mmu.py)."""
    return _tdp(vcpu.kvm).mmu_alloc_direct_roots(vcpu)


def kvm_mmu_unload(vcpu: Any) -> None:
    """kvm_mmu_unload() (mmu.c): kvm_mmu_free_roots(vcpu, &vcpu->arch.root_mmu, ALL)."""
    kvm_mmu_free_roots(vcpu)


def kvm_mmu_free_roots(vcpu: Any) -> None:
    """kvm_mmu_free_roots() (mmu.c): the version's lock mode around mmu_free_root_page()."""
    _tdp(vcpu.kvm).kvm_mmu_free_roots(vcpu)


# -- memslot update (kvm_main.c -> x86.c -> page_track.c -> mmu.c) ------------------------------------
def kvm_set_memslot(kvm: Any) -> None:
    """kvm_set_memslot() (kvm_main.c) for KVM_MR_DELETE/MOVE: flush the old slot's mappings.

    Called with kvm->slots_lock held (kvm_set_memory_region).  The
    invalid-slot install and synchronize_srcu() before the flush are not
    modelled (no vCPU faults in these scenarios).
    """
    kvm_arch_flush_shadow_memslot(kvm)


def kvm_set_memory_region(kvm: Any) -> None:
    """kvm_set_memory_region() (kvm_main.c): KVM_SET_USER_MEMORY_REGION under kvm->slots_lock."""
    mutex_lock(kvm.slots_lock)
    kvm_set_memslot(kvm)
    mutex_unlock(kvm.slots_lock)


def kvm_arch_flush_shadow_memslot(kvm: Any) -> None:
    """kvm_arch_flush_shadow_memslot() (x86.c): via page-track until v6.6, then direct."""
    if _tdp(kvm).page_track_flush_hop:
        kvm_page_track_flush_slot(kvm)
    else:
        kvm_mmu_zap_all_fast(kvm)


def kvm_page_track_flush_slot(kvm: Any) -> None:
    """kvm_page_track_flush_slot() (page_track.c, up to v6.5): KVM's own node is the TDP user."""
    kvm_mmu_invalidate_zap_pages_in_memslot(kvm)


def kvm_mmu_invalidate_zap_pages_in_memslot(kvm: Any) -> None:
    """kvm_mmu_invalidate_zap_pages_in_memslot() (mmu.c, up to v6.5): kvm_mmu_zap_all_fast()."""
    kvm_mmu_zap_all_fast(kvm)


def kvm_mmu_zap_all_fast(kvm: Any) -> None:
    """kvm_mmu_zap_all_fast() (mmu.c): the version's fast zap (see tdp_mmu.py)."""
    _tdp(kvm).kvm_mmu_zap_all_fast(kvm)


# -- dirty logging (x86.c -> mmu.c) ---------------------------------------------------------------------
def kvm_mmu_slot_remove_write_access(kvm: Any) -> None:
    """kvm_mmu_slot_remove_write_access() (mmu.c): enabling dirty logging write-protects the slot."""
    _tdp(kvm).kvm_mmu_slot_remove_write_access(kvm)


# -- VM creation and teardown ---------------------------------------------------------------------------
def kvm_mmu_init_tdp_mmu(kvm: Any, vcpus: list[Any], role_words: list[int]) -> None:
    """kvm_mmu_init_tdp_mmu() (tdp_mmu.c): INIT_LIST_HEAD(&kvm->arch.tdp_mmu_roots), ...

    Also wires ``kvm->arch`` (part of struct kvm, freed with it) and each
    vCPU's ``arch``, and gives ``kvm->mmu_lock`` the version's type.
    """
    kvm.mmu_lock = _tdp(kvm).mmu_lock_type("kvm->mmu_lock")
    kvm.destroying = False  # refcount_read(&kvm->users_count) == 0: kvm_destroy_vm() is running
    arch = kmalloc(KvmArch)
    arch.kvm = kvm
    kvm.arch = arch
    kvm.vcpus = vcpus
    for vcpu, role in zip(vcpus, role_words, strict=True):
        vcpu.arch = VcpuArch(role)


def kvm_arch_destroy_vm(kvm: Any) -> None:
    """kvm_arch_destroy_vm() (x86.c): unload every vCPU's MMU, then kvm_mmu_uninit_vm().

    Runs when the last reference to the VM is gone: no ioctl, no vCPU runs.
    """
    for vcpu in kvm.vcpus:
        kvm_mmu_unload(vcpu)  # kvm_free_vcpus() -> kvm_unload_vcpu_mmu()
    _tdp(kvm).kvm_mmu_uninit_tdp_mmu(kvm)  # kvm_mmu_uninit_vm()


def kvm_destroy_vm(kvm: Any) -> None:
    """kvm_destroy_vm() (kvm_main.c): arch teardown, then struct kvm is freed (kvm_arch_free_vm).

    Freeing struct kvm frees the list head of the roots: a root still on it
    is unreachable from then on -- kmemleak reports it.
    """
    kvm.destroying = True
    kvm_arch_destroy_vm(kvm)
    kfree(kvm.arch)


def kvm_mmu_reset_context(vcpu: Any) -> None:
    """kvm_mmu_reset_context() (mmu.c): e.g. KVM_SET_SREGS or a CR0/CR4 change -- drop the roots.

    kvm_mmu_unload(); kvm_init_mmu() recomputes the role (unchanged here).  The
    next vcpu_enter_guest() loads a root again.
    """
    kvm_mmu_unload(vcpu)


def vcpu_arch(vcpu: Any) -> VcpuArch:
    """``&vcpu->arch`` (wired by kvm_mmu_init_tdp_mmu)."""
    arch: VcpuArch = vcpu.arch
    return arch
