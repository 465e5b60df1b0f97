"""The VM's lifetime, from virt/kvm/kvm_main.c (v6.1 .. v6.6; unchanged there for what is modelled).

Functions: kvm_create_vm (only the reference it starts with), kvm_get_kvm,
kvm_get_kvm_safe, kvm_put_kvm, kvm_destroy_vm, kvm_destroy_devices,
kvm_ioctl_create_device, kvm_device_release, kvm_vm_release.  (A module of
its own so it does not collide with the kvm_main.py model of the mmu
notifier; it is the same kernel file.)

Lifetime contract:
  * ``kvm->users_count`` starts at 1 for the VM fd.  Every kvm device fd holds
    one more (kvm_ioctl_create_device); so does any driver or vfio device that
    took one with kvm_get_kvm / kvm_get_kvm_safe.
  * ``kvm_get_kvm`` is only legal while the caller already holds a reference
    (refcount_inc: "addition on 0; use-after-free" otherwise);
    ``kvm_get_kvm_safe`` is refcount_inc_not_zero and fails on a dying VM.
  * The last ``kvm_put_kvm`` runs ``kvm_destroy_vm`` in the caller's context,
    with whatever locks the caller holds: kvm_destroy_devices calls each
    remaining device's ``.destroy`` (no kvm->lock: nobody else can reach the
    VM), then the VM is freed.  A device with ``.release`` is taken off
    kvm->devices when its fd is closed, under kvm->lock, and its ``.destroy``
    is never called by kvm_destroy_devices.
  * Freeing struct kvm while the task still holds kvm->lock is lockdep's
    "WARNING: held lock freed!": the mutex_unlock that follows writes freed memory.

Lock: kvm->lock (mutex) protects kvm->devices for add/remove; it is taken
outside the device's private locks (kvm-vfio: kv->lock is never taken under it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kvmcheck.kernel import (
    Refcount,
    Struct,
    kfree,
    kmalloc,
    mutex_lock,
    mutex_unlock,
    refcount_dec_and_test,
    refcount_inc,
    refcount_inc_not_zero,
    struct_init,
)
from kvmcheck.kernel.lockdep import debug_check_no_locks_freed
from kvmcheck.models.build import Build
from kvmcheck.models.kernel_module import KernelModule, module_init
from kvmcheck.models.mm.mm import MmStruct
from kvmcheck.models.virt.kvm.kvm_host import Kvm, KvmMemslots


@dataclass(frozen=True)
class KvmDeviceOps:
    """``struct kvm_device_ops`` (include/linux/kvm_host.h): the callbacks a device type provides."""

    name: str
    create: Callable[[KvmDevice], int]
    destroy: Callable[[KvmDevice], None] | None = None
    release: Callable[[KvmDevice], None] | None = None


class KvmDevice(Struct):
    """``struct kvm_device``: allocated by kvm_ioctl_create_device, freed by ``.release``/``.destroy``."""

    private: Any = None  # dev->private (the kvm-vfio device's struct kvm_vfio)

    def __init__(self, kvm: Kvm | None = None, ops: KvmDeviceOps | None = None, **values: Any) -> None:
        super().__init__(**values)
        self.kvm = kvm  # immutable wiring
        self.ops = ops

    def _kc_label(self) -> str:
        return f"kvm_device[{self.ops.name if self.ops else '?'}]"


def kvm_create_vm(build: Build) -> Kvm:
    """kvm_create_vm() (virt/kvm/kvm_main.c): a VM whose only reference is the VM fd's."""
    kvm: Kvm = kmalloc(Kvm, mm=MmStruct(), build=build, memslots=KvmMemslots({}))
    struct_init(kvm, users_count=Refcount(1, "kvm->users_count"))  # refcount_set(&kvm->users_count, 1)
    return kvm


def kvm_get_kvm(kvm: Kvm) -> None:
    """kvm_get_kvm() (virt/kvm/kvm_main.c): refcount_inc(&kvm->users_count); caller holds a reference."""
    refcount_inc(kvm.users_count)


def kvm_get_kvm_safe(kvm: Kvm) -> bool:
    """kvm_get_kvm_safe() (virt/kvm/kvm_main.c): refcount_inc_not_zero -- fails once the VM is dying."""
    return refcount_inc_not_zero(kvm.users_count)


def kvm_put_kvm(kvm: Kvm) -> None:
    """kvm_put_kvm() (virt/kvm/kvm_main.c): the last reference destroys the VM, in this context."""
    if refcount_dec_and_test(kvm.users_count):
        kvm_destroy_vm(kvm)


def kvm_destroy_devices(kvm: Kvm) -> None:
    """kvm_destroy_devices() (virt/kvm/kvm_main.c): ``.destroy`` every device still on the list.

    No kvm->lock: the kernel's comment says nobody else has a reference any more.
    """
    devices = kvm.devices
    for dev in devices:
        kvm.devices = tuple(d for d in kvm.devices if d is not dev)  # list_del(&dev->vm_node)
        assert dev.ops is not None
        assert dev.ops.destroy is not None
        dev.ops.destroy(dev)


def kvm_destroy_vm(kvm: Kvm) -> None:
    """kvm_destroy_vm() (virt/kvm/kvm_main.c): devices first, then kvm_arch_free_vm().

    Left out (nothing the seed touches): the uevent, the mmu notifier unregister,
    kvm_arch_destroy_vm, freeing memslots and SRCU, mmdrop.
    """
    kvm_destroy_devices(kvm)
    kvm_arch_free_vm(kvm)


def kvm_arch_free_vm(kvm: Kvm) -> None:
    """kvm_arch_free_vm() (include/linux/kvm_host.h): kvfree(kvm) -- lockdep checks no held lock dies."""
    debug_check_no_locks_freed(kvm)
    kfree(kvm)


def kvm_ioctl_create_device(kvm: Kvm, ops: KvmDeviceOps) -> KvmDevice:
    """kvm_ioctl_create_device() (virt/kvm/kvm_main.c): ops->create under kvm->lock; the fd's reference."""
    dev: KvmDevice = kmalloc(KvmDevice, kvm=kvm, ops=ops)
    mutex_lock(kvm.lock)
    ret = ops.create(dev)
    assert ret == 0, "the modelled device types cannot fail to create"
    kvm.devices = (*kvm.devices, dev)  # list_add(&dev->vm_node, &kvm->devices)
    mutex_unlock(kvm.lock)
    kvm_get_kvm(kvm)  # the device fd's reference, dropped by kvm_device_release
    return dev


def kvm_device_release(dev: KvmDevice) -> None:
    """kvm_device_release() (virt/kvm/kvm_main.c): the device fd is closed.

    With a ``.release`` op: under kvm->lock, take the device off kvm->devices
    and call ``.release`` (which frees it).  Then drop the fd's kvm reference.
    """
    kvm = dev.kvm
    assert kvm is not None
    assert dev.ops is not None
    release = dev.ops.release
    if release is not None:
        mutex_lock(kvm.lock)
        kvm.devices = tuple(d for d in kvm.devices if d is not dev)  # list_del(&dev->vm_node)
        release(dev)
        mutex_unlock(kvm.lock)
    kvm_put_kvm(kvm)


def kvm_vm_release(kvm: Kvm) -> None:
    """kvm_vm_release() (virt/kvm/kvm_main.c): the VM fd is closed -- drop its reference."""
    kvm_put_kvm(kvm)


def kvm_module_init() -> KernelModule:
    """Load kvm.ko: it exports kvm_get_kvm_safe and kvm_put_kvm (EXPORT_SYMBOL_GPL)."""
    return module_init("kvm", {"kvm_get_kvm_safe": kvm_get_kvm_safe, "kvm_put_kvm": kvm_put_kvm})
