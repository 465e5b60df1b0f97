"""drivers/vfio/vfio_main.c: opening and closing a vfio_device, and (from 2b48f52f2bff)
vfio's own kvm reference.  Versions: v6.0, v6.1, v6.2 (the 51cdc8bc120e tree), 2b48f52f2bff
(v6.3-rc1, read at v6.3.2), and Alex Williamson's incremental diff from the seed thread.

See vfio.py for the locking contract.  Lock order inside this file:
  v6.0:  dev_set->lock -> group->group_rwsem (read) -> ops->open_device/close_device
  v6.1:  dev_set->lock -> group->group_lock (the mutex of c82e81ab2569) -> the same
  v6.2:  dev_set->lock -> ops->open_device/close_device  (group_lock is held outside, group.c)
  2b48f52f2bff: the caller (group.c) holds group_lock and dev_set->lock; vfio_device_open/
         close only assert dev_set->lock.
Lifetime: before 2b48f52f2bff, device->kvm is a bare pointer ("if the device driver will
use it, it must obtain a reference"); from 2b48f52f2bff vfio holds a kvm reference, taken
with kvm_get_kvm_safe through symbol_get, from before open_device until after close_device.
"""

from __future__ import annotations

from typing import Any

from kvmcheck.kernel import (
    WARN_ON,
    WARN_ON_ONCE,
    down_read,
    lockdep_assert_held,
    mutex_lock,
    mutex_unlock,
    up_read,
)
from kvmcheck.models.build import Subsystem
from kvmcheck.models.drivers.vfio.vfio import VfioDevice
from kvmcheck.models.kernel_module import symbol_get, symbol_put

EINVAL = -22


def _group_c(device: VfioDevice) -> Any:
    assert device.group is not None
    return device.group.build.vfio_group


class VfioMain(Subsystem):
    """drivers/vfio/vfio_main.c at v6.2 (51cdc8bc120e is in v6.2; this file is as it left it)."""

    subsystem = "vfio_main"
    version = "v6.2"

    def vfio_device_first_open(self, device: VfioDevice, iommufd: Any, kvm: Any) -> int:
        """vfio_device_first_open() (v6.2): publish the group's kvm pointer, then ops->open_device."""
        lockdep_assert_held(device.dev_set_lock)
        # try_module_get(driver owner), vfio_device_group_use_iommu(): no shared state modelled
        device.kvm = kvm
        ret = device.ops.open_device(device)
        if ret:
            device.kvm = None  # err_unuse_iommu
        return int(ret)

    def vfio_device_last_close(self, device: VfioDevice, iommufd: Any) -> None:
        """vfio_device_last_close() (v6.2): ops->close_device, then forget the kvm pointer."""
        lockdep_assert_held(device.dev_set_lock)
        device.ops.close_device(device)
        device.kvm = None

    def vfio_device_open(self, device: VfioDevice, iommufd: Any, kvm: Any) -> int:
        """vfio_device_open() (v6.2): under dev_set->lock, the first opener calls first_open."""
        ret = 0
        mutex_lock(device.dev_set_lock)
        device.open_count = device.open_count + 1
        if device.open_count == 1:
            ret = self.vfio_device_first_open(device, iommufd, kvm)
            if ret:
                device.open_count = device.open_count - 1
        mutex_unlock(device.dev_set_lock)
        return ret

    def vfio_device_close(self, device: VfioDevice, iommufd: Any) -> None:
        """vfio_device_close() (v6.2): under dev_set->lock, the last closer calls last_close."""
        mutex_lock(device.dev_set_lock)
        WARN_ON_ONCE(not device.open_count)  # vfio_assert_device_open()
        if device.open_count == 1:
            self.vfio_device_last_close(device, iommufd)
        device.open_count = device.open_count - 1
        mutex_unlock(device.dev_set_lock)

    def vfio_device_fops_release(self, device: VfioDevice) -> None:
        """vfio_device_fops_release() (v6.2): the device fd is closed -> vfio_device_group_close()."""
        _group_c(device).vfio_device_group_close(device)


class VfioMainV60(VfioMain):
    """drivers/vfio/vfio_main.c at v6.0: group_rwsem era; the group ioctl lands here directly."""

    version = "v6.0"

    def group_lock_read(self, group: Any) -> None:
        """Take the group's lock around the driver's open/close: down_read(group_rwsem) in v6.0."""
        down_read(group.group_rwsem)

    def group_unlock_read(self, group: Any) -> None:
        up_read(group.group_rwsem)

    def vfio_device_open(self, device: VfioDevice) -> int:  # type: ignore[override]
        """vfio_device_open() (v6.0): dev_set->lock, then group_rwsem for read around open_device.

        "Here we pass the KVM pointer with the group under the read lock.  If the
        device driver will use it, it must obtain a reference and release it during
        close_device."
        """
        group = device.group
        assert group is not None
        mutex_lock(device.dev_set_lock)
        device.open_count = device.open_count + 1
        if device.open_count == 1:
            self.group_lock_read(group)
            device.kvm = group.kvm
            ret = device.ops.open_device(device)
            if ret:  # err_undo_count
                self.group_unlock_read(group)
                device.open_count = device.open_count - 1
                if device.open_count == 0 and device.kvm is not None:
                    device.kvm = None
                mutex_unlock(device.dev_set_lock)
                return int(ret)
            self.group_unlock_read(group)
        mutex_unlock(device.dev_set_lock)
        return 0

    def vfio_device_fops_release(self, device: VfioDevice) -> None:
        """vfio_device_fops_release() (v6.0): dev_set->lock, group_rwsem (read) around close_device."""
        group = device.group
        assert group is not None
        mutex_lock(device.dev_set_lock)
        WARN_ON_ONCE(not device.open_count)  # vfio_assert_device_open()
        self.group_lock_read(group)
        if device.open_count == 1:
            device.ops.close_device(device)
        self.group_unlock_read(group)
        device.open_count = device.open_count - 1
        if device.open_count == 0:
            device.kvm = None
        mutex_unlock(device.dev_set_lock)


class VfioMainV61(VfioMainV60):
    """drivers/vfio/vfio_main.c at v6.1: c82e81ab2569 made group_rwsem the mutex group_lock.

    The same nesting as v6.0 (dev_set->lock outside), each down_read/up_read of the
    rwsem a mutex_lock/mutex_unlock of group_lock ("[PATCH 2/2] vfio: Change
    vfio_group->group_rwsem to a mutex", 2022-09-29).
    """

    version = "v6.1"

    def group_lock_read(self, group: Any) -> None:
        """mutex_lock(&device->group->group_lock) (v6.1)."""
        mutex_lock(group.group_lock)

    def group_unlock_read(self, group: Any) -> None:
        mutex_unlock(group.group_lock)


class VfioMain2b48(VfioMain):
    """2b48f52f2bff "vfio: fix deadlock between group lock and kvm lock" (v6.3-rc1), as merged.

    vfio takes its own kvm reference (_vfio_device_get_kvm_safe) and drops it after
    close_device (vfio_device_put_kvm); open/close now run with dev_set->lock taken by
    the caller.  (With the companion b0d2d5697e4c the kvm argument of open is gone.)
    """

    version = "2b48f52f2bff"

    def _vfio_device_get_kvm_safe(self, device: VfioDevice, kvm: Any) -> None:
        """_vfio_device_get_kvm_safe(): symbol_get both helpers, kvm_get_kvm_safe, keep kvm_put_kvm."""
        lockdep_assert_held(device.dev_set_lock)
        pfn = symbol_get("kvm_put_kvm")
        if WARN_ON(pfn is None):
            return
        fn = symbol_get("kvm_get_kvm_safe")
        if WARN_ON(fn is None):
            symbol_put("kvm_put_kvm")
            return
        assert fn is not None
        ret = fn(self.kvm_to_get(device, kvm))
        symbol_put("kvm_get_kvm_safe")
        if not ret:
            symbol_put("kvm_put_kvm")
            return
        device.put_kvm = pfn
        device.kvm = kvm

    def kvm_to_get(self, device: VfioDevice, kvm: Any) -> Any:
        """The VM whose reference is taken: as merged, the ``kvm`` argument."""
        return kvm

    def vfio_device_put_kvm(self, device: VfioDevice) -> None:
        """vfio_device_put_kvm(): drop vfio's reference (possibly the VM's last), symbol_put, clear."""
        lockdep_assert_held(device.dev_set_lock)
        kvm = device.kvm
        if kvm is None:
            return
        put_kvm = device.put_kvm
        if not WARN_ON(put_kvm is None):
            put_kvm(kvm)
            device.put_kvm = None
            symbol_put("kvm_put_kvm")
        device.kvm = None  # clear:

    def vfio_device_first_open(self, device: VfioDevice, iommufd: Any, kvm: Any = None) -> int:
        """vfio_device_first_open() (2b48f52f2bff): device->kvm is already set by the caller."""
        lockdep_assert_held(device.dev_set_lock)
        return int(device.ops.open_device(device))

    def vfio_device_last_close(self, device: VfioDevice, iommufd: Any) -> None:
        """vfio_device_last_close() (2b48f52f2bff): device->kvm is cleared by vfio_device_put_kvm."""
        lockdep_assert_held(device.dev_set_lock)
        device.ops.close_device(device)

    def vfio_device_open(self, device: VfioDevice, iommufd: Any, kvm: Any = None) -> int:
        """vfio_device_open() (2b48f52f2bff): the caller holds dev_set->lock."""
        ret = 0
        lockdep_assert_held(device.dev_set_lock)
        device.open_count = device.open_count + 1
        if device.open_count == 1:
            ret = self.vfio_device_first_open(device, iommufd)
            if ret:
                device.open_count = device.open_count - 1
        return ret

    def vfio_device_close(self, device: VfioDevice, iommufd: Any) -> None:
        """vfio_device_close() (2b48f52f2bff): the caller holds dev_set->lock."""
        lockdep_assert_held(device.dev_set_lock)
        WARN_ON_ONCE(not device.open_count)
        if device.open_count == 1:
            self.vfio_device_last_close(device, iommufd)
        device.open_count = device.open_count - 1


class VfioMainAlex(VfioMain2b48):
    """Alex Williamson's incremental diff on v3 (seed thread, 2023-02-03).

    ``_vfio_device_get_kvm_safe(device, kvm)`` in vfio_main.c with the group-specific
    wrapper in group.c holding kvm_ref_lock -- the shape 2b48f52f2bff took.  As
    posted, the diff leaves the line ``ret = fn(device->group->kvm)`` unchanged: the
    reference is taken on the group's pointer (the same VM: the caller holds
    kvm_ref_lock, so group->kvm cannot change in between), while ``device->kvm``
    is set from the argument.
    """

    version = "alex-incremental"

    def kvm_to_get(self, device: VfioDevice, kvm: Any) -> Any:
        """As posted: ``fn(device->group->kvm)`` -- read under the caller's kvm_ref_lock."""
        assert device.group is not None
        return device.group.kvm


# C-style entry point: dispatch to the device's kernel build.
def vfio_device_fops_release(device: VfioDevice) -> None:
    """vfio_device_fops_release(): the user closes the device fd."""
    assert device.group is not None
    device.group.build.vfio_main.vfio_device_fops_release(device)
