"""Every kernel the seed-003 thread weighs, as a build of four files.

Subsystems (one per kernel file): ``vfio_group`` (drivers/vfio/group.c), ``vfio_main``
(drivers/vfio/vfio_main.c), ``kvm_vfio`` (virt/kvm/vfio.c), ``vfio_ap``
(drivers/s390/crypto/vfio_ap_ops.c, the driver whose open_device takes kvm->lock).

v6.0             -- group_rwsem era (after 421cfe6596f6, v6.0): the kvm-vfio device uses
                    ``.destroy``; the driver's last kvm_put_kvm can recurse into
                    vfio_file_set_kvm under group_rwsem.  (Bundled as "v6.1" until
                    issue 23: v6.1 no longer has the rwsem.)
v6.1             -- v6.0 with c82e81ab2569 "vfio: Change vfio_group->group_rwsem to a
                    mutex" (v6.1-rc1): the same nesting, group_lock a mutex.  The same
                    self-deadlock, now a mutex taken twice.
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

from kvmcheck import Source
from kvmcheck.models.build import Build
from kvmcheck.models.drivers.s390.crypto.vfio_ap_ops import VfioAp
from kvmcheck.models.drivers.vfio.group import (
    VfioGroup2b48,
    VfioGroupC,
    VfioGroupSpinlockNoRef,
    VfioGroupV60,
    VfioGroupV61,
)
from kvmcheck.models.drivers.vfio.vfio_main import (
    VfioMain,
    VfioMain2b48,
    VfioMainAlex,
    VfioMainV60,
    VfioMainV61,
)
from kvmcheck.models.virt.kvm.vfio import KvmVfio9e0f, KvmVfioC, KvmVfioV60

V6_0 = Build(VfioGroupV60(), VfioMainV60(), KvmVfioV60(), VfioAp())
V6_1 = V6_0.patched(VfioGroupV61(), VfioMainV61())  # c82e81ab2569
V6_2 = Build(VfioGroupC(), VfioMain(), KvmVfioC(), VfioAp())  # 51cdc8bc120e
SPINLOCK_NO_REF = V6_2.patched(VfioGroupSpinlockNoRef())
FIX_2B48 = V6_2.patched(VfioGroup2b48(), VfioMain2b48())
ALEX = FIX_2B48.patched(VfioMainAlex())
FIX_9E0F = FIX_2B48.patched(KvmVfio9e0f())

BUILDS: dict[str, Build] = {
    "v6.0": V6_0,
    "v6.1": V6_1,
    "51cdc8bc120e": V6_2,
    "spinlock-no-ref": SPINLOCK_NO_REF,
    "2b48f52f2bff": FIX_2B48,
    "alex-incremental": ALEX,
    "9e0f4f2918c2": FIX_9E0F,
}
VARIANTS = tuple(BUILDS)


# Where each variant's code was read (issue 23): a posted mail, or what it was rebuilt from.
_V4 = (
    "[PATCH v4 1/2] vfio: fix deadlock between group lock and kvm lock — 2023-02-03 — "
    "<20230203215027.151988-2-mjrosato@linux.ibm.com>"
)
_C82E = (
    "[PATCH 2/2] vfio: Change vfio_group->group_rwsem to a mutex — 2022-09-29 — "
    "<2-v1-917e3647f123+b1a-vfio_group_users_jgg@nvidia.com>"
)
SOURCES: dict[str, Source] = {
    "v6.0": Source(
        "reconstructed",
        "v6.0: drivers/vfio/vfio_main.c, virt/kvm/vfio.c",
        "No v6.0 tree could be pinned here (SOURCES.md). vfio_main.c is the '-' side of "
        + _C82E
        + " (vfio_device_open, vfio_device_fops_release, vfio_file_set_kvm under group_rwsem; "
        "pre-image blob 57a7576a96a6); virt/kvm/vfio.c's .destroy is the '-' side of "
        "51cdc8bc120e (<20230120150528.471752-1-yi.l.liu@intel.com>).",
    ),
    "v6.1": Source(
        "posted",
        _C82E,
        "c82e81ab2569, applied for v6.1 (Alex Williamson's reply; in the vfio-v6.1-rc1 pull), "
        "applied to the v6.0 variant: every group_rwsem down/up becomes mutex_lock/unlock(group_lock). "
        "The v6.1 nesting (dev_set->lock outside group_lock) is also the '-' side of "
        "[PATCH 01/10] vfio: Move vfio_device driver open/close code to a function — 2022-10-25 — "
        "<1-v1-4991695894d8+211-vfio_iommufd_jgg@nvidia.com>.",
    ),
    "51cdc8bc120e": Source(
        "posted",
        "[PATCH] kvm/vfio: Fix potential deadlock on vfio group_lock — 2023-01-20 — "
        "<20230120150528.471752-1-yi.l.liu@intel.com>",
        "virt/kvm/vfio.c from the mail (.destroy -> .release under kvm->lock); group.c and "
        "vfio_main.c at v6.2 from the context and '-' lines of " + _V4 + ".",
    ),
    "spinlock-no-ref": Source(
        "mutant",
        "51cdc8bc120e + group->kvm under a spinlock, no vfio reference (digest 04, V-B')",
        "Never posted: the first half of " + _V4 + " (kvm_ref_lock in vfio_file_set_kvm) "
        "without the kvm_get_kvm_safe half, on the 51cdc8bc120e variant.",
    ),
    "2b48f52f2bff": Source(
        "posted",
        _V4,
        "Read as quoted in full by Tony Krowiak's Tested-by reply (2023-02-06, "
        "<c5e32a7c-707c-d646-db1e-c1f0124c05a3@linux.ibm.com>); merged as 2b48f52f2bff (v6.3-rc1).",
    ),
    "alex-incremental": Source(
        "posted",
        "Re: [PATCH v3] vfio: fix deadlock between group lock and kvm lock — 2023-02-03 — "
        "<20230203133503.4d8fb3e8.alex.williamson@redhat.com>",
        "Alex Williamson's incremental diff on v3 (<20230202162442.78216-1-mjrosato@linux.ibm.com>), "
        "the seed mail; applied to the 2b48f52f2bff variant's vfio_main.c.",
    ),
    "9e0f4f2918c2": Source(
        "posted",
        "[PATCH 6.1 346/600] kvm/vfio: ensure kvg instance stays around in kvm_vfio_group_add() — "
        "2023-09-11 — <20230911134643.899568279@linuxfoundation.org>",
        "The stable backport of upstream 9e0f4f2918c2 (original: "
        "<20230714224538.404793-1-dmitry.torokhov@gmail.com>), applied to the 2b48f52f2bff variant.",
    ),
}
