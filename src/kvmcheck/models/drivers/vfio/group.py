"""drivers/vfio/group.c: the group fd's side -- opening a device through GET_DEVICE_FD,
closing it, and vfio_file_set_kvm(), the export KVM calls to publish its VM to the group.

Versions: v6.2 (the tree 51cdc8bc120e is in: group_lock outer to dev_set->lock,
vfio_file_set_kvm under group_lock), v6.0 (no group.c yet: the same functions in
drivers/vfio/vfio_main.c, with the rwsem group_rwsem), v6.1 (still in vfio_main.c, with
group_rwsem made the mutex group_lock by c82e81ab2569 -- but nested inside dev_set->lock,
not outside it as from v6.2), the seed thread's "spinlock-no-ref"
inference (set_kvm under a spinlock, no vfio reference), and 2b48f52f2bff (v6.3-rc1,
read at v6.3.2: kvm_ref_lock and vfio_device_group_get_kvm_safe).

See vfio.py for the locking contract.  The deadlock of the seed: group_lock is held
across ops->open_device (which takes kvm->lock in vfio-ap), while kvm_vfio_release runs
under kvm->lock and calls vfio_file_set_kvm, which takes group_lock.
"""

from __future__ import annotations

from typing import Any

from kvmcheck.kernel import down_write, mutex_lock, mutex_unlock, spin_lock, spin_unlock, up_write
from kvmcheck.models.build import Subsystem
from kvmcheck.models.drivers.vfio.vfio import File, VfioDevice, VfioGroup
from kvmcheck.models.kernel_module import KernelModule, module_init

IOMMUFD = None  # the group uses a container: vfio_device_group_use_iommu(), nothing shared modelled


def _main(device: VfioDevice) -> Any:
    assert device.group is not None
    return device.group.build.vfio_main


class VfioGroupC(Subsystem):
    """drivers/vfio/group.c at v6.2."""

    subsystem = "vfio_group"
    version = "v6.2"

    def vfio_device_group_open(self, device: VfioDevice) -> int:
        """vfio_device_group_open() (v6.2): under group_lock, pass group->kvm to vfio_device_open.

        "Here we pass the KVM pointer with the group under the lock.  If the device
        driver will use it, it must obtain a reference and release it during close_device."
        """
        group = device.group
        assert group is not None
        mutex_lock(group.group_lock)
        # vfio_group_has_iommu(): the container is set
        ret: int = _main(device).vfio_device_open(device, IOMMUFD, group.kvm)
        mutex_unlock(group.group_lock)
        return ret

    def vfio_device_group_close(self, device: VfioDevice) -> None:
        """vfio_device_group_close() (v6.2): vfio_device_close under group_lock."""
        group = device.group
        assert group is not None
        mutex_lock(group.group_lock)
        _main(device).vfio_device_close(device, IOMMUFD)
        mutex_unlock(group.group_lock)

    def vfio_group_ioctl_get_device_fd(self, device: VfioDevice) -> int:
        """VFIO_GROUP_GET_DEVICE_FD -> vfio_device_open_file() -> vfio_device_group_open()."""
        return self.vfio_device_group_open(device)

    def vfio_file_set_kvm(self, file: File, kvm: Any) -> None:
        """vfio_file_set_kvm() (v6.2): group->kvm = kvm under group_lock."""
        group = file.private_data
        if not vfio_file_is_group(file):
            return
        mutex_lock(group.group_lock)
        group.kvm = kvm
        mutex_unlock(group.group_lock)


class VfioGroupV60(VfioGroupC):
    """v6.0: the group's side lives in drivers/vfio/vfio_main.c; group->kvm is under group_rwsem."""

    version = "v6.0"

    def vfio_group_ioctl_get_device_fd(self, device: VfioDevice) -> int:
        """vfio_group_get_device_fd() (v6.0) -> vfio_device_open(): dev_set->lock, then the rwsem."""
        ret: int = _main(device).vfio_device_open(device)
        return ret

    def vfio_file_set_kvm(self, file: File, kvm: Any) -> None:
        """vfio_file_set_kvm() (v6.0, vfio_main.c): group->kvm = kvm under down_write(group_rwsem)."""
        group = file.private_data
        if not vfio_file_is_group(file):
            return
        down_write(group.group_rwsem)
        group.kvm = kvm
        up_write(group.group_rwsem)


class VfioGroupV61(VfioGroupV60):
    """v6.1: c82e81ab2569 "vfio: Change vfio_group->group_rwsem to a mutex" on v6.0.

    Every down_read/down_write of group_rwsem became mutex_lock(group_lock), with the
    nesting unchanged: vfio_device_open still takes dev_set->lock first.
    """

    version = "v6.1"

    def vfio_file_set_kvm(self, file: File, kvm: Any) -> None:
        """vfio_file_set_kvm() (v6.1, vfio_main.c): group->kvm = kvm under the group_lock mutex."""
        group = file.private_data
        if not vfio_file_is_group(file):
            return
        mutex_lock(group.group_lock)
        group.kvm = kvm
        mutex_unlock(group.group_lock)


class VfioGroupSpinlockNoRef(VfioGroupC):
    """spinlock-no-ref: the fix the thread rejects -- set_kvm no longer waits for group_lock.

    group->kvm is published and read under a spinlock, so kvm_vfio_release cannot
    deadlock against an open any more; but the open passes the bare pointer on without
    a reference of vfio's own, so nothing stops the VM from being destroyed between
    reading group->kvm and the driver's kvm_get_kvm (digest 04, V-B').
    """

    version = "spinlock-no-ref"

    def vfio_device_group_open(self, device: VfioDevice) -> int:
        """vfio_device_group_open() with group->kvm sampled under kvm_ref_lock, no reference taken."""
        group = device.group
        assert group is not None
        mutex_lock(group.group_lock)
        spin_lock(group.kvm_ref_lock)
        kvm = group.kvm
        spin_unlock(group.kvm_ref_lock)
        ret: int = _main(device).vfio_device_open(device, IOMMUFD, kvm)
        mutex_unlock(group.group_lock)
        return ret

    def vfio_file_set_kvm(self, file: File, kvm: Any) -> None:
        """vfio_file_set_kvm(): group->kvm = kvm under kvm_ref_lock (a spinlock)."""
        group = file.private_data
        if not vfio_file_is_group(file):
            return
        spin_lock(group.kvm_ref_lock)
        group.kvm = kvm
        spin_unlock(group.kvm_ref_lock)


class VfioGroup2b48(VfioGroupSpinlockNoRef):
    """2b48f52f2bff (v6.3-rc1): dev_set->lock taken here; vfio's own kvm reference at first open."""

    version = "2b48f52f2bff"

    def vfio_device_group_get_kvm_safe(self, device: VfioDevice) -> None:
        """vfio_device_group_get_kvm_safe(): under kvm_ref_lock, a reference on group->kvm if any."""
        group = device.group
        assert group is not None
        spin_lock(group.kvm_ref_lock)
        if group.kvm is not None:
            _main(device)._vfio_device_get_kvm_safe(device, group.kvm)
        spin_unlock(group.kvm_ref_lock)

    def vfio_device_group_open(self, device: VfioDevice) -> int:
        """vfio_device_group_open() (2b48f52f2bff): group_lock -> dev_set->lock -> get kvm -> open."""
        group = device.group
        assert group is not None
        main = _main(device)
        mutex_lock(group.group_lock)
        mutex_lock(device.dev_set_lock)
        # "Before the first device open, get the KVM pointer currently associated with
        # the group (if there is one) and obtain a reference now that will be held
        # until the open_count reaches 0 again."
        if device.open_count == 0:
            self.vfio_device_group_get_kvm_safe(device)
        ret: int = main.vfio_device_open(device, IOMMUFD)
        if device.open_count == 0:
            main.vfio_device_put_kvm(device)
        mutex_unlock(device.dev_set_lock)
        mutex_unlock(group.group_lock)
        return ret

    def vfio_device_group_close(self, device: VfioDevice) -> None:
        """vfio_device_group_close() (2b48f52f2bff): close, then drop vfio's kvm reference."""
        group = device.group
        assert group is not None
        main = _main(device)
        mutex_lock(group.group_lock)
        mutex_lock(device.dev_set_lock)
        main.vfio_device_close(device, IOMMUFD)
        if device.open_count == 0:
            main.vfio_device_put_kvm(device)
        mutex_unlock(device.dev_set_lock)
        mutex_unlock(group.group_lock)


def vfio_file_is_group(file: File) -> bool:
    """vfio_file_is_group(): the file's f_op is vfio_group_fops."""
    return file.f_op == "vfio_group_fops"


def vfio_file_enforced_coherent(file: File) -> bool:
    """vfio_file_enforced_coherent(): every modelled device has IOMMU_CAP_ENFORCE_CACHE_COHERENCY."""
    return True


def vfio_group_fops_open(group: VfioGroup) -> File:
    """vfio_group_fops_open(): the user opens /dev/vfio/$GROUP (setup: single-threaded)."""
    return File(private_data=group, f_op="vfio_group_fops")


# C-style entry points: dispatch to the group's kernel build.
def vfio_group_ioctl_get_device_fd(device: VfioDevice) -> int:
    """VFIO_GROUP_GET_DEVICE_FD on the device's group fd: 0 if the device was opened."""
    assert device.group is not None
    ret: int = device.group.build.vfio_group.vfio_group_ioctl_get_device_fd(device)
    return ret


def vfio_file_set_kvm(file: File, kvm: Any) -> None:
    """vfio_file_set_kvm() (EXPORT_SYMBOL_GPL): link a kvm with the group (NULL: unlink)."""
    file.private_data.build.vfio_group.vfio_file_set_kvm(file, kvm)


def vfio_module_init() -> KernelModule:
    """Load vfio.ko: the exports the kvm-vfio device reaches through symbol_get."""
    return module_init(
        "vfio",
        {
            "vfio_file_set_kvm": vfio_file_set_kvm,
            "vfio_file_is_group": vfio_file_is_group,
            "vfio_file_enforced_coherent": vfio_file_enforced_coherent,
        },
    )
