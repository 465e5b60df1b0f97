"""Every kernel the seed-003 thread weighs, as a build of four files.

Subsystems (one per kernel file): ``vfio_group`` (drivers/vfio/group.c), ``vfio_main``
(drivers/vfio/vfio_main.c), ``kvm_vfio`` (virt/kvm/vfio.c), ``vfio_ap``
(drivers/s390/crypto/vfio_ap_ops.c, the driver whose open_device takes kvm->lock).

v6.1             -- group_rwsem era (after 421cfe6596f6, v6.0): the kvm-vfio device uses
                    ``.destroy``; the driver's last kvm_put_kvm can recurse into
                    vfio_file_set_kvm under group_rwsem.
51cdc8bc120e     -- v6.2: kvm-vfio uses ``.release`` (under kvm->lock); group_lock (a mutex)
                    is held around vfio_device_open.  The ABBA of the seed.
spinlock-no-ref  -- v6.2 with group->kvm under a spinlock and no vfio reference (digest V-B').
2b48f52f2bff     -- v6.3-rc1 "vfio: fix deadlock between group lock and kvm lock", as merged
                    (the v4 shape: group wrapper + _vfio_device_get_kvm_safe(device, kvm)).
                    Patches group.c and vfio_main.c.
alex-incremental -- the seed's incremental diff on v3 (patches vfio_main.c of 2b48f52f2bff
                    back to the line it left as posted: kvm_get_kvm_safe(device->group->kvm)).
9e0f4f2918c2     -- 2b48f52f2bff plus "kvm/vfio: ensure kvg instance stays around in
                    kvm_vfio_group_add()" (patches virt/kvm/vfio.c).
"""

from __future__ import annotations

from kvmcheck.models.build import Build
from kvmcheck.models.drivers.s390.crypto.vfio_ap_ops import VfioAp
from kvmcheck.models.drivers.vfio.group import VfioGroup2b48, VfioGroupC, VfioGroupSpinlockNoRef, VfioGroupV61
from kvmcheck.models.drivers.vfio.vfio_main import VfioMain, VfioMain2b48, VfioMainAlex, VfioMainV61
from kvmcheck.models.virt.kvm.vfio import KvmVfio9e0f, KvmVfioC, KvmVfioV61

V6_1 = Build(VfioGroupV61(), VfioMainV61(), KvmVfioV61(), VfioAp())
V6_2 = Build(VfioGroupC(), VfioMain(), KvmVfioC(), VfioAp())  # 51cdc8bc120e
SPINLOCK_NO_REF = V6_2.patched(VfioGroupSpinlockNoRef())
FIX_2B48 = V6_2.patched(VfioGroup2b48(), VfioMain2b48())
ALEX = FIX_2B48.patched(VfioMainAlex())
FIX_9E0F = FIX_2B48.patched(KvmVfio9e0f())

BUILDS: dict[str, Build] = {
    "v6.1": V6_1,
    "51cdc8bc120e": V6_2,
    "spinlock-no-ref": SPINLOCK_NO_REF,
    "2b48f52f2bff": FIX_2B48,
    "alex-incremental": ALEX,
    "9e0f4f2918c2": FIX_9E0F,
}
VARIANTS = tuple(BUILDS)


def build_for(variant: str) -> Build:
    """The kernel build named ``variant``."""
    return BUILDS[variant]
