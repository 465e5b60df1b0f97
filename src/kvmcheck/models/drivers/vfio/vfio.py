"""struct vfio_group (drivers/vfio/vfio.h), struct vfio_device and vfio_device_set
(include/linux/vfio.h), and the struct file of a vfio group fd, v6.0 .. v6.3.

Locking contract (which lock protects which field):
  group->kvm          v6.0: group->group_rwsem (written with down_write, read
                      with down_read in vfio_device_open); v6.1 (c82e81ab2569), v6.2:
                      group->group_lock (mutex); from 2b48f52f2bff: group->kvm_ref_lock
                      (spinlock).
                      The contract accepts any of the three: each version uses one.
  device->open_count  device->dev_set->lock
  device->kvm         device->dev_set->lock (drivers read it in open_device/close_device,
  device->put_kvm     which vfio calls with dev_set->lock held)
Lock order: v6.0: dev_set->lock -> group_rwsem (read) -> driver locks.
            v6.1: dev_set->lock -> group_lock -> driver locks.
            v6.2 on: group_lock -> dev_set->lock -> driver locks; kvm_ref_lock is a leaf.
Lifetimes: the group, the device and the group fd live for the whole scenario (the
user holds the group fd); a device's kvm pointer is only valid while someone holds a
kvm reference -- the driver's own (v6.0 .. v6.2), or vfio's (from 2b48f52f2bff).
"""

from __future__ import annotations

from typing import Any, ClassVar

from kvmcheck.kernel import Mutex, RwSem, SpinLock, Struct
from kvmcheck.models.build import Build


class VfioGroup(Struct):
    """``struct vfio_group`` (drivers/vfio/vfio.h): the kvm pointer KVM published, and its locks."""

    __locking__: ClassVar[dict[str, Any]] = {"kvm": ("group_rwsem", "group_lock", "kvm_ref_lock")}

    kvm: Any = None

    def __init__(self, build: Build, **values: Any) -> None:
        super().__init__(**values)
        self.build = build  # the kernel this group runs on
        self.group_rwsem = RwSem("group->group_rwsem")  # v6.0
        self.group_lock = Mutex("group->group_lock")  # v6.1 (c82e81ab2569) ..
        self.kvm_ref_lock = SpinLock("group->kvm_ref_lock")  # 2b48f52f2bff ..

    def _kc_label(self) -> str:
        return "vfio_group"


class VfioDeviceSet:
    """``struct vfio_device_set``: devices reset together share its ``lock``."""

    def __init__(self) -> None:
        self.lock = Mutex("dev_set->lock")


class VfioDevice(Struct):
    """``struct vfio_device`` (include/linux/vfio.h)."""

    __locking__: ClassVar[dict[str, Any]] = {
        "open_count": "dev_set_lock",
        "kvm": "dev_set_lock",
        "put_kvm": "dev_set_lock",
    }

    open_count: int = 0
    kvm: Any = None  # for the driver: valid from open_device to close_device
    put_kvm: Any = None  # 2b48f52f2bff: kvm_put_kvm, obtained with symbol_get

    def __init__(self, group: VfioGroup, dev_set: VfioDeviceSet, ops: Any, **values: Any) -> None:
        super().__init__(**values)
        self.group = group
        self.dev_set = dev_set
        self.dev_set_lock = dev_set.lock
        self.ops = ops  # struct vfio_device_ops: open_device / close_device of the driver
        self.drvdata: Any = None  # the driver's private state (container_of in C)

    def _kc_label(self) -> str:
        return "vfio_device"


class File(Struct):
    """``struct file`` of a vfio group fd: ``private_data`` is the group.

    ``f_count`` is kept invisible to the search (fget/fput commute; only its
    final value is checked: back to 1, the user's own fd, once KVM let go).
    """

    def __init__(self, private_data: Any = None, f_op: str = "", **values: Any) -> None:
        super().__init__(**values)
        self.private_data = private_data
        self.f_op = f_op
        self.f_count = 1  # the fd userspace holds

    def _kc_label(self) -> str:
        return f"file[{self.f_op}]"


def fget(file: File) -> File:
    """fget(): take a reference on the file behind an fd."""
    file.f_count += 1
    return file


def fput(file: File) -> None:
    """fput(): drop a reference taken by fget()."""
    file.f_count -= 1
