"""drivers/s390/crypto/vfio_ap_ops.c: the vfio-ap mediated device's open/close (read at v6.2/v6.3).

The driver of the seed's report: its open_device takes kvm->lock (to plug the
guest's AP configuration in) and a kvm reference; its close_device drops both.

Functions: vfio_ap_mdev_open_device, vfio_ap_mdev_close_device,
vfio_ap_mdev_set_kvm, vfio_ap_mdev_unset_kvm, get_update_locks_for_kvm,
release_update_locks_for_kvm.

Locking contract (the driver's own comment): the locks are taken in the order
  1. matrix_dev->guests_lock   (to use a KVM pointer to update a guest's APCB)
  2. kvm->lock                 (to update the guest's APCB)
  3. matrix_dev->mdevs_lock    (the matrix_mdev data)
and kvm->arch.crypto.pqap_hook_rwsem (written around pqap_hook) is taken on its own
before them.  matrix_mdev->kvm is written with all three held; open/close read it
under vfio's dev_set->lock (vfio serialises a device's open and close).
Lifetime: set_kvm takes a kvm reference with kvm_get_kvm (so the caller must already
hold one: vfio's, or -- before 2b48f52f2bff -- the kvm-vfio fd's, kept by group_lock);
unset_kvm drops it with kvm_put_kvm *while holding kvm->lock*: if that is the VM's last
reference, the VM (and its lock) is freed under the driver's feet.

Model: the guest's APCB and the AP queues are not modelled; struct kvm_s390_crypto
(kvm->arch.crypto) is kept beside the VM, in ``matrix_dev.crypto``.
"""

from __future__ import annotations

from typing import Any

from kvmcheck.kernel import Mutex, RwSem, Struct, down_write, mutex_lock, mutex_unlock, up_write
from kvmcheck.models.build import Subsystem
from kvmcheck.models.drivers.vfio.vfio import VfioDevice
from kvmcheck.models.virt.kvm.kvm_host import Kvm
from kvmcheck.models.virt.kvm.kvm_lifetime import kvm_get_kvm, kvm_put_kvm

EINVAL, EPERM = -22, -1


class KvmS390Crypto(Struct):
    """``struct kvm_s390_crypto`` (kvm->arch.crypto): the hook PQAP instructions are routed to."""

    __locking__ = {"pqap_hook": "pqap_hook_rwsem"}

    crycbd: int = 0  # the guest's crypto control block designation (0: no AP for this guest)
    pqap_hook: Any = None

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        self.pqap_hook_rwsem = RwSem("kvm->arch.crypto.pqap_hook_rwsem")

    def _kc_label(self) -> str:
        return "kvm->arch.crypto"


class ApMatrixDev:
    """``struct ap_matrix_dev`` (matrix_dev): the driver-wide locks and the mdev list."""

    def __init__(self) -> None:
        self.guests_lock = Mutex("matrix_dev->guests_lock")
        self.mdevs_lock = Mutex("matrix_dev->mdevs_lock")
        self.mdev_list: list[ApMatrixMdev] = []  # fixed after probe in the scenarios
        self.crypto: dict[int, KvmS390Crypto] = {}  # kvm->arch.crypto, by VM


class ApMatrixMdev(Struct):
    """``struct ap_matrix_mdev``: one mediated matrix device and the guest it is attached to."""

    __locking__ = {"kvm": {"write": "mdevs_lock", "read": ()}}

    kvm: Any = None

    def __init__(self, matrix_dev: ApMatrixDev | None = None, **values: Any) -> None:
        super().__init__(**values)
        self.matrix_dev = matrix_dev
        self.mdevs_lock = matrix_dev.mdevs_lock if matrix_dev is not None else None

    def _kc_label(self) -> str:
        return "matrix_mdev"


def kvm_s390_crypto_init(matrix_dev: ApMatrixDev, kvm: Kvm) -> KvmS390Crypto:
    """kvm_s390_crypto_init() (arch/s390/kvm/kvm-s390.c): the VM has AP crypto (crycbd set)."""
    crypto = KvmS390Crypto(crycbd=1)
    matrix_dev.crypto[kvm._kc_num] = crypto
    return crypto


def vfio_ap_mdev_probe(matrix_dev: ApMatrixDev, device: VfioDevice) -> ApMatrixMdev:
    """vfio_ap_mdev_probe(): bind an ap_matrix_mdev to its vfio_device (setup)."""
    mdev = ApMatrixMdev(matrix_dev=matrix_dev)
    matrix_dev.mdev_list.append(mdev)
    device.drvdata = mdev
    return mdev


def _crypto(matrix_dev: ApMatrixDev, kvm: Kvm) -> KvmS390Crypto:
    return matrix_dev.crypto[kvm._kc_num]


def get_update_locks_for_kvm(matrix_dev: ApMatrixDev, kvm: Kvm | None) -> None:
    """get_update_locks_for_kvm(): guests_lock, kvm->lock (if a VM), mdevs_lock -- in that order."""
    mutex_lock(matrix_dev.guests_lock)
    if kvm is not None:
        mutex_lock(kvm.lock)
    mutex_lock(matrix_dev.mdevs_lock)


def release_update_locks_for_kvm(matrix_dev: ApMatrixDev, kvm: Kvm | None) -> None:
    """release_update_locks_for_kvm(): mdevs_lock, kvm->lock, guests_lock."""
    mutex_unlock(matrix_dev.mdevs_lock)
    if kvm is not None:
        mutex_unlock(kvm.lock)
    mutex_unlock(matrix_dev.guests_lock)


class VfioAp(Subsystem):
    """drivers/s390/crypto/vfio_ap_ops.c (v6.2; the functions modelled are the same in v6.1-v6.3).

    The v6.0 build uses it too: the lock set it models (guests_lock -> kvm->lock ->
    mdevs_lock) dates from 21195eb038bc (2022), before v6.0 -- assumed, not read at v6.0.
    """

    subsystem = "vfio_ap"
    version = "v6.2"

    def open_device(self, vdev: VfioDevice) -> int:
        """vfio_ap_mdev_open_device(): no VM, no device; else vfio_ap_mdev_set_kvm(vdev->kvm)."""
        kvm = vdev.kvm
        if kvm is None:
            return EINVAL
        return self.vfio_ap_mdev_set_kvm(vdev.drvdata, kvm)

    def close_device(self, vdev: VfioDevice) -> None:
        """vfio_ap_mdev_close_device(): vfio_ap_mdev_unset_kvm()."""
        self.vfio_ap_mdev_unset_kvm(vdev.drvdata)

    def vfio_ap_mdev_set_kvm(self, matrix_mdev: ApMatrixMdev, kvm: Kvm) -> int:
        """vfio_ap_mdev_set_kvm(): hook PQAP, then under the update locks take a kvm reference."""
        matrix_dev = matrix_mdev.matrix_dev
        assert matrix_dev is not None
        crypto = _crypto(matrix_dev, kvm)
        if crypto.crycbd:
            down_write(crypto.pqap_hook_rwsem)
            crypto.pqap_hook = matrix_mdev
            up_write(crypto.pqap_hook_rwsem)

            get_update_locks_for_kvm(matrix_dev, kvm)
            for m in matrix_dev.mdev_list:
                if m is not matrix_mdev and m.kvm is kvm:
                    release_update_locks_for_kvm(matrix_dev, kvm)
                    return EPERM
            kvm_get_kvm(kvm)
            matrix_mdev.kvm = kvm
            # vfio_ap_mdev_update_guest_apcb(matrix_mdev)
            release_update_locks_for_kvm(matrix_dev, kvm)
        return 0

    def vfio_ap_mdev_unset_kvm(self, matrix_mdev: ApMatrixMdev) -> None:
        """vfio_ap_mdev_unset_kvm(): unhook PQAP; under the update locks clear the APCB, kvm_put_kvm."""
        matrix_dev = matrix_mdev.matrix_dev
        assert matrix_dev is not None
        kvm = matrix_mdev.kvm
        if kvm is not None and _crypto(matrix_dev, kvm).crycbd:
            crypto = _crypto(matrix_dev, kvm)
            down_write(crypto.pqap_hook_rwsem)
            crypto.pqap_hook = None
            up_write(crypto.pqap_hook_rwsem)

            get_update_locks_for_kvm(matrix_dev, kvm)
            # kvm_arch_crypto_clear_masks(kvm); vfio_ap_mdev_reset_queues(&matrix_mdev->qtable)
            kvm_put_kvm(kvm)
            matrix_mdev.kvm = None
            release_update_locks_for_kvm(matrix_dev, kvm)
