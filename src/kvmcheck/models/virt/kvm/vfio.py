"""virt/kvm/vfio.c: the kvm-vfio pseudo device (KVM_DEV_TYPE_VFIO).

Versions: v6.0/v6.1 (``.destroy``: the groups are unlinked when the VM dies, i.e. from
the last kvm_put_kvm, wherever that runs), 51cdc8bc120e "kvm/vfio: Fix potential
deadlock on vfio group_lock" (v6.2: ``.release``, run when the device fd is closed,
under kvm->lock), and 9e0f4f2918c2 "kvm/vfio: ensure kvg instance stays around in
kvm_vfio_group_add()" (v6.6, stable 6.1/6.4: set_kvm before dropping kv->lock).
v6.2 names are kept (kvm_vfio_group_add/del, struct kvm_vfio_group, kv->group_list);
v6.5 renamed them to kvm_vfio_file_* -- same code.

Locking contract:
  kv->lock (mutex)   protects kv->group_list and each entry's lifetime (kfree'd under it
                     by GROUP_DEL).  kvm_vfio_group_add publishes the entry and, before
                     9e0f4f2918c2, calls kvm_vfio_file_set_kvm(kvg->file, ..) after
                     dropping kv->lock: the entry may already be freed by then.
  kvm->lock          held by kvm_device_release around ``.release`` (51cdc8bc120e on):
                     kvm->lock -> whatever vfio_file_set_kvm takes (group_lock in v6.2:
                     the seed's ABBA; kvm_ref_lock from 2b48f52f2bff).
Lifetimes: struct kvm_vfio and the kvm_device are freed by .release/.destroy; each
entry holds a file reference (fget in add, fput in del/release).
"""

from __future__ import annotations

from typing import Any

from kvmcheck.kernel import Mutex, Struct, kfree, kzalloc, mutex_lock, mutex_unlock
from kvmcheck.models.build import Subsystem
from kvmcheck.models.drivers.vfio.vfio import File, fget, fput
from kvmcheck.models.kernel_module import symbol_get, symbol_put
from kvmcheck.models.virt.kvm.kvm_lifetime import KvmDevice, KvmDeviceOps

EINVAL, EEXIST, ENOENT = -22, -17, -2


class KvmVfioGroup(Struct):
    """``struct kvm_vfio_group``: one group fd the VM was told about (kmalloc'ed)."""

    file: Any = None

    def _kc_label(self) -> str:
        return "kvm_vfio_group"


class KvmVfio(Struct):
    """``struct kvm_vfio``: the device's private state."""

    # group_list: kv->lock, except in .release/.destroy, which walk it unlocked (the fd is
    # gone, no ioctl can be in flight) -- so only noncoherent is in the checked table.
    __locking__ = {"noncoherent": "lock"}

    group_list: tuple[Any, ...] = ()
    noncoherent: bool = False

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        self.lock = Mutex("kv->lock")

    def _kc_label(self) -> str:
        return "kvm_vfio"


def kvm_vfio_file_set_kvm(file: File, kvm: Any) -> None:
    """kvm_vfio_file_set_kvm(): vfio_file_set_kvm through symbol_get (vfio.ko may be absent)."""
    fn = symbol_get("vfio_file_set_kvm")
    if fn is None:
        return
    fn(file, kvm)
    symbol_put("vfio_file_set_kvm")


def kvm_vfio_file_is_group(file: File) -> bool:
    """kvm_vfio_file_is_group(): vfio_file_is_group through symbol_get."""
    fn = symbol_get("vfio_file_is_group")
    if fn is None:
        return False
    ret = bool(fn(file))
    symbol_put("vfio_file_is_group")
    return ret


def kvm_vfio_file_enforced_coherent(file: File) -> bool:
    """kvm_vfio_file_enforced_coherent(): vfio_file_enforced_coherent through symbol_get."""
    fn = symbol_get("vfio_file_enforced_coherent")
    if fn is None:
        return False
    ret = bool(fn(file))
    symbol_put("vfio_file_enforced_coherent")
    return ret


class KvmVfioC(Subsystem):
    """virt/kvm/vfio.c at v6.2 (51cdc8bc120e: the device is torn down by ``.release``)."""

    subsystem = "kvm_vfio"
    version = "51cdc8bc120e"

    def ops(self) -> KvmDeviceOps:
        """kvm_vfio_ops (51cdc8bc120e): .create, .release (no .destroy)."""
        return KvmDeviceOps("kvm-vfio", create=self.kvm_vfio_create, release=self.kvm_vfio_release)

    def kvm_vfio_create(self, dev: KvmDevice) -> int:
        """kvm_vfio_create(): allocate struct kvm_vfio (one kvm-vfio device per VM)."""
        dev.private = kzalloc(KvmVfio)
        return 0

    def kvm_vfio_update_coherency(self, dev: KvmDevice) -> None:
        """kvm_vfio_update_coherency(): under kv->lock, recompute noncoherent DMA from every group."""
        kv = dev.private
        mutex_lock(kv.lock)
        noncoherent = any(not kvm_vfio_file_enforced_coherent(kvg.file) for kvg in kv.group_list)
        if noncoherent != kv.noncoherent:
            kv.noncoherent = noncoherent  # kvm_arch_(un)register_noncoherent_dma
        mutex_unlock(kv.lock)

    def kvm_vfio_group_add(self, dev: KvmDevice, fd: File) -> int:
        """kvm_vfio_group_add() (v6.2): list the group under kv->lock, set_kvm after unlocking."""
        kv = dev.private
        filp = fget(fd)
        if not kvm_vfio_file_is_group(filp):  # "Ensure the FD is a vfio group FD."
            fput(filp)
            return EINVAL
        mutex_lock(kv.lock)
        if any(kvg.file is filp for kvg in kv.group_list):
            mutex_unlock(kv.lock)
            fput(filp)
            return EEXIST
        kvg = kzalloc(KvmVfioGroup)
        kvg.file = filp
        kv.group_list = (*kv.group_list, kvg)  # list_add_tail
        # kvm_arch_start_assignment(dev->kvm)
        mutex_unlock(kv.lock)
        kvm_vfio_file_set_kvm(kvg.file, dev.kvm)  # kvg may be gone: GROUP_DEL frees it under kv->lock
        self.kvm_vfio_update_coherency(dev)
        return 0

    def kvm_vfio_group_del(self, dev: KvmDevice, fd: File) -> int:
        """kvm_vfio_group_del() (v6.2): under kv->lock, unlink the group, set_kvm(NULL), fput, kfree."""
        kv = dev.private
        ret = ENOENT
        mutex_lock(kv.lock)
        for kvg in kv.group_list:
            if kvg.file is not fd:
                continue
            kv.group_list = tuple(k for k in kv.group_list if k is not kvg)  # list_del
            # kvm_arch_end_assignment(dev->kvm)
            kvm_vfio_file_set_kvm(kvg.file, None)
            fput(kvg.file)
            kfree(kvg)
            ret = 0
            break
        mutex_unlock(kv.lock)
        self.kvm_vfio_update_coherency(dev)
        return ret

    def kvm_vfio_release(self, dev: KvmDevice) -> None:
        """kvm_vfio_release() (51cdc8bc120e): with kvm->lock held, unlink every group and free."""
        kv = dev.private
        for kvg in kv.group_list:  # list_for_each_entry_safe
            kvm_vfio_file_set_kvm(kvg.file, None)
            fput(kvg.file)
            kv.group_list = tuple(k for k in kv.group_list if k is not kvg)  # list_del
            kfree(kvg)
            # kvm_arch_end_assignment(dev->kvm)
        self.kvm_vfio_update_coherency(dev)
        kfree(kv)
        kfree(dev)  # "alloc by kvm_ioctl_create_device, free by .release"


class KvmVfioV60(KvmVfioC):
    """virt/kvm/vfio.c at v6.0 and v6.1 (the same on this path): ``.destroy`` -- run by
    kvm_destroy_devices at the VM's last put."""

    version = "v6.0"

    def ops(self) -> KvmDeviceOps:
        """kvm_vfio_ops (v6.0, v6.1): .create, .destroy."""
        return KvmDeviceOps("kvm-vfio", create=self.kvm_vfio_create, destroy=self.kvm_vfio_destroy)

    def kvm_vfio_destroy(self, dev: KvmDevice) -> None:
        """kvm_vfio_destroy() (v6.0, v6.1): from kvm_destroy_vm, in whatever context dropped the last ref.

        The body 51cdc8bc120e renamed to kvm_vfio_release, unchanged.
        """
        kv = dev.private
        for kvg in kv.group_list:  # list_for_each_entry_safe
            kvm_vfio_file_set_kvm(kvg.file, None)
            fput(kvg.file)
            kv.group_list = tuple(k for k in kv.group_list if k is not kvg)  # list_del
            kfree(kvg)
            # kvm_arch_end_assignment(dev->kvm)
        self.kvm_vfio_update_coherency(dev)
        kfree(kv)
        kfree(dev)  # "alloc by kvm_ioctl_create_device, free by .destroy"


class KvmVfio9e0f(KvmVfioC):
    """9e0f4f2918c2: kvm_vfio_group_add calls set_kvm before dropping kv->lock."""

    version = "9e0f4f2918c2"

    def kvm_vfio_group_add(self, dev: KvmDevice, fd: File) -> int:
        """kvm_vfio_group_add() (9e0f4f2918c2): set_kvm while kv->lock keeps the entry alive."""
        kv = dev.private
        filp = fget(fd)
        if not kvm_vfio_file_is_group(filp):
            fput(filp)
            return EINVAL
        mutex_lock(kv.lock)
        if any(kvg.file is filp for kvg in kv.group_list):
            mutex_unlock(kv.lock)
            fput(filp)
            return EEXIST
        kvg = kzalloc(KvmVfioGroup)
        kvg.file = filp
        kv.group_list = (*kv.group_list, kvg)  # list_add_tail
        # kvm_arch_start_assignment(dev->kvm)
        kvm_vfio_file_set_kvm(kvg.file, dev.kvm)
        mutex_unlock(kv.lock)
        self.kvm_vfio_update_coherency(dev)
        return 0


# C-style entry points (the device's attribute ioctls), dispatched to the VM's build.
def kvm_vfio_set_attr_group_add(dev: KvmDevice, fd: File) -> int:
    """KVM_SET_DEVICE_ATTR KVM_DEV_VFIO_GROUP / KVM_DEV_VFIO_GROUP_ADD."""
    assert dev.kvm is not None
    ret: int = dev.kvm.build.kvm_vfio.kvm_vfio_group_add(dev, fd)
    return ret


def kvm_vfio_set_attr_group_del(dev: KvmDevice, fd: File) -> int:
    """KVM_SET_DEVICE_ATTR KVM_DEV_VFIO_GROUP / KVM_DEV_VFIO_GROUP_DEL."""
    assert dev.kvm is not None
    ret: int = dev.kvm.build.kvm_vfio.kvm_vfio_group_del(dev, fd)
    return ret
