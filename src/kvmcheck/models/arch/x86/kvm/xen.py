"""arch/x86/kvm/xen.c -- the users of the gfn_to_pfn caches that matter to seed 000.

Modelled after the v6.6..v6.8 xen.c (read in a mainline copy; see the note on
kvm_xen_set_evtchn_fast): which locks each path really holds around the cache.

  __kvm_xen_has_interrupt    vCPU thread (KVM_RUN holds vcpu->mutex and kvm->srcu --
                             the *caller* takes them, not this function); read_lock_irqsave
                             on the vcpu_info cache; refreshes when the check fails
                             and it may sleep; reads vcpu_info->evtchn_upcall_pending.
  kvm_xen_set_evtchn_fast    any context, atomic (irqfd wakeup; hrtimer from v6.7):
                             read_lock_irqsave on shared_info then vcpu_info (plain
                             read_lock, NOT trylock: the trylock version was the
                             unapplied "[PATCH v2 7/8]"; the digest was wrong here);
                             never refreshes; first tests vcpu_info_cache.active
                             unlocked (v6.8).
  kvm_xen_vcpu_set_attr      vCPU ioctl: vcpu->mutex + kvm->arch.xen.xen_lock + kvm->srcu;
                             deactivate (INVALID gpa) or activate the vcpu_info cache.
  kvm_xen_destroy_vcpu       VM teardown: NO vcpu->mutex, no xen_lock (Sean, in the thread).
  kvm_xen_destroy_vm         VM teardown: no xen_lock.
Lock order: vcpu->mutex -> xen_lock -> kvm->srcu -> (refresh_lock) -> gpc->lock.
"""

from __future__ import annotations

from kvmcheck.kernel import (
    in_atomic,
    mutex_lock,
    mutex_unlock,
    read_lock_irqsave,
    read_unlock_irqrestore,
    srcu_read_lock,
    srcu_read_unlock,
)
from kvmcheck.models.virt.kvm.kvm_host import INVALID_GPA, Kvm, KvmVcpu
from kvmcheck.models.virt.kvm.pfncache import (
    GfnToPfnCache,
    kvm_gpc_activate,
    kvm_gpc_check,
    kvm_gpc_deactivate,
    kvm_gpc_init,
    kvm_gpc_refresh,
)

VCPU_INFO_SIZE = 64
SHARED_INFO_SIZE = 3072
EWOULDBLOCK, EINVAL = -11, -22


class KvmVcpuXen:
    """``struct kvm_vcpu_xen``: the per-vCPU caches (only vcpu_info is modelled)."""

    def __init__(self) -> None:
        self.vcpu_info_cache = GfnToPfnCache("vcpu_info_cache")


class KvmXen:
    """``struct kvm_xen``: the VM-wide shared_info cache."""

    def __init__(self) -> None:
        self.shinfo_cache = GfnToPfnCache("shinfo_cache")


def xen_vcpu(v: KvmVcpu) -> KvmVcpuXen:
    """``vcpu->arch.xen`` (struct kvm_vcpu_xen, arch/x86/include/asm/kvm_host.h), created on first use."""
    x: KvmVcpuXen = v.__dict__.setdefault("xen", KvmVcpuXen())
    return x


def xen_vm(kvm: Kvm) -> KvmXen:
    """``kvm->arch.xen`` (struct kvm_xen), created on first use."""
    x: KvmXen = kvm.__dict__.setdefault("xen", KvmXen())
    return x


def kvm_xen_init_vcpu(v: KvmVcpu) -> None:
    """kvm_xen_init_vcpu(): kvm_gpc_init() of the vCPU's caches (guard: vcpu->mutex)."""
    kvm_gpc_init(xen_vcpu(v).vcpu_info_cache, v.kvm, v.mutex)


def kvm_xen_init_vm(kvm: Kvm) -> None:
    """kvm_xen_init_vm(): kvm_gpc_init() of the shared_info cache (guard: xen_lock)."""
    kvm_gpc_init(xen_vm(kvm).shinfo_cache, kvm, kvm.xen_lock)


# Dereferencing gpc->khva is inline in the C code ("vi = gpc->khva; vi->field"):
# reading ``khva.page`` is the access through the kernel mapping (KASAN checks
# it is still mapped), ``.data`` the access to the page behind it.


def __kvm_xen_has_interrupt(v: KvmVcpu) -> int:
    """__kvm_xen_has_interrupt(): is an upcall pending in vcpu_info? (vCPU thread)."""
    gpc = xen_vcpu(v).vcpu_info_cache
    assert gpc.lock is not None
    flags = read_lock_irqsave(gpc.lock)
    while not kvm_gpc_check(gpc, VCPU_INFO_SIZE):
        read_unlock_irqrestore(gpc.lock, flags)
        if in_atomic():
            return 1  # cannot refresh here; assume an event is pending
        if kvm_gpc_refresh(gpc, VCPU_INFO_SIZE):
            return 0  # the gpa is no longer valid: nothing to report
        flags = read_lock_irqsave(gpc.lock)
    khva = gpc.khva
    assert khva is not None
    rc = int(khva.page.data)  # ((struct vcpu_info *)gpc->khva)->evtchn_upcall_pending
    read_unlock_irqrestore(gpc.lock, flags)
    return rc


def kvm_xen_set_evtchn_fast(kvm: Kvm, v: KvmVcpu) -> int:
    """kvm_xen_set_evtchn_fast(): mark an event pending in shared_info, then kick vcpu_info."""
    vgpc = xen_vcpu(v).vcpu_info_cache
    if not vgpc.active:  # v6.8 tests this unlocked
        return EINVAL
    gpc = xen_vm(kvm).shinfo_cache
    assert gpc.lock is not None
    assert vgpc.lock is not None
    idx = srcu_read_lock(kvm.srcu)
    locked = gpc.lock  # the cache lock to drop at out_rcu
    flags = read_lock_irqsave(locked)
    if not kvm_gpc_check(gpc, SHARED_INFO_SIZE):
        r = EWOULDBLOCK  # goto out_rcu
    else:
        shinfo = gpc.khva
        assert shinfo is not None
        shinfo.page.data = 1  # set the port's bit in shared_info->evtchn_pending
        read_unlock_irqrestore(locked, flags)
        locked = vgpc.lock
        flags = read_lock_irqsave(locked)
        if kvm_gpc_check(vgpc, VCPU_INFO_SIZE):
            vi = vgpc.khva
            assert vi is not None
            vi.page.data = 1  # vcpu_info->evtchn_upcall_pending = 1
            r = 1
        else:
            r = 0  # the in-kernel evtchn_pending_sel is set instead (not modelled)
    read_unlock_irqrestore(locked, flags)  # out_rcu:
    srcu_read_unlock(kvm.srcu, idx)
    return r


def kvm_xen_vcpu_set_attr_vcpu_info(v: KvmVcpu, gpa: int) -> int:
    """kvm_xen_vcpu_set_attr(KVM_XEN_VCPU_ATTR_TYPE_VCPU_INFO): under vcpu->mutex, xen_lock, kvm->srcu."""
    kvm = v.kvm
    gpc = xen_vcpu(v).vcpu_info_cache
    mutex_lock(v.mutex)  # the vcpu ioctl
    mutex_lock(kvm.xen_lock)
    idx = srcu_read_lock(kvm.srcu)
    if gpa == INVALID_GPA:
        kvm_gpc_deactivate(gpc)
        r = 0
    else:
        r = kvm_gpc_activate(gpc, gpa, VCPU_INFO_SIZE)
    srcu_read_unlock(kvm.srcu, idx)
    mutex_unlock(kvm.xen_lock)
    mutex_unlock(v.mutex)
    return int(r)


def kvm_xen_hvm_set_attr_shared_info(kvm: Kvm, gpa: int) -> int:
    """kvm_xen_hvm_set_attr(KVM_XEN_ATTR_TYPE_SHARED_INFO): under xen_lock and kvm->srcu."""
    gpc = xen_vm(kvm).shinfo_cache
    mutex_lock(kvm.xen_lock)
    idx = srcu_read_lock(kvm.srcu)
    if gpa == INVALID_GPA:
        kvm_gpc_deactivate(gpc)
        r = 0
    else:
        r = kvm_gpc_activate(gpc, gpa, SHARED_INFO_SIZE)
    srcu_read_unlock(kvm.srcu, idx)
    mutex_unlock(kvm.xen_lock)
    return int(r)


def kvm_xen_destroy_vcpu(v: KvmVcpu) -> None:
    """kvm_xen_destroy_vcpu(): deactivate the vCPU's caches -- holding neither vcpu->mutex nor xen_lock."""
    kvm_gpc_deactivate(xen_vcpu(v).vcpu_info_cache)


def kvm_xen_destroy_vm(kvm: Kvm) -> None:
    """kvm_xen_destroy_vm(): deactivate shared_info -- without xen_lock."""
    kvm_gpc_deactivate(xen_vm(kvm).shinfo_cache)
