"""Seed 003 (VFIO group lock vs kvm->lock): every bundled verdict and its kernel fact (issue 23).

Reviewed against 51cdc8bc120e, 2b48f52f2bff (v4 as posted), c82e81ab2569 and 9e0f4f2918c2
(docs/models/seed003-vfio-kvm.md says where each was read).  tests/models/test_verdicts.py
asserts this table equals the scenarios' expect=, both ways.
"""

from __future__ import annotations

_RECURSION = (
    "51cdc8bc120e's message: the driver's last kvm_put_kvm -> kvm_destroy_vm -> kvm_vfio_destroy -> "
    "vfio_file_set_kvm takes the group lock the closing task already holds"
)
_V60 = " (v6.0: down_write on group_rwsem against its own down_read)"
_V61 = " (v6.1: mutex_lock(group_lock) twice, c82e81ab2569 made it a mutex)"
_ABBA = (
    "2b48f52f2bff's message (Krowiak's report): vfio-ap open_device takes kvm->lock under group_lock, "
    "kvm_vfio_release takes group_lock under kvm->lock"
)
_NO_REF = (
    "without vfio's own reference (the half of 2b48f52f2bff left out) nothing pins the VM between "
    "reading group->kvm and vfio-ap's kvm_get_kvm"
)
_FIXED = (
    "2b48f52f2bff (v4 <20230203215027.151988-2-mjrosato@linux.ibm.com>): vfio pins the VM with "
    "kvm_get_kvm_safe before open_device and puts it after close_device, set_kvm under a leaf spinlock"
)
_HELD_FREED = (
    "v6.2 vfio_ap_mdev_unset_kvm drops the VM's last reference with kvm->lock held, "
    "then unlocks it: struct kvm freed with its lock held"
)
_ADD_DEL = (
    "kvm_vfio_group_add uses kvg->file after dropping kv->lock while GROUP_DEL may free kvg "
    "(Fixes: 2fc1bec15883; fixed by 9e0f4f2918c2)"
)

VERDICTS: tuple[tuple[str, str, str, str], ...] = (
    ("vfio_kvm.open_vs_release", "v6.0", "bug", _RECURSION + _V60 + ", reached by the race"),
    ("vfio_kvm.open_vs_release", "v6.1", "bug", _RECURSION + _V61 + ", reached by the race"),
    ("vfio_kvm.open_vs_release", "51cdc8bc120e", "bug", _ABBA + ": the deadlock of the seed"),
    ("vfio_kvm.open_vs_release", "spinlock-no-ref", "bug", _NO_REF),
    ("vfio_kvm.open_vs_release", "2b48f52f2bff", "ok", _FIXED),
    (
        "vfio_kvm.open_vs_release",
        "alex-incremental",
        "ok",
        "Alex's incremental (seed mail) takes the same reference on group->kvm under kvm_ref_lock",
    ),
    ("vfio_kvm.open_vs_release", "9e0f4f2918c2", "ok", _FIXED + "; 9e0f4f2918c2 touches only GROUP_ADD"),
    (
        "vfio_kvm.open_then_release",
        "v6.0",
        "ok",
        "before 51cdc8bc120e the kvm-vfio device used .destroy, which runs without kvm->lock: no cycle",
    ),
    (
        "vfio_kvm.open_then_release",
        "v6.1",
        "ok",
        "v6.1 still used .destroy (51cdc8bc120e is v6.2), so set_kvm never runs under kvm->lock: no cycle",
    ),
    (
        "vfio_kvm.open_then_release",
        "51cdc8bc120e",
        "bug",
        _ABBA + ": lockdep sees the cycle without a deadlock",
    ),
    (
        "vfio_kvm.open_then_release",
        "spinlock-no-ref",
        "ok",
        "set_kvm takes only the kvm_ref_lock spinlock under kvm->lock, a leaf: no cycle, VM put once",
    ),
    ("vfio_kvm.open_then_release", "2b48f52f2bff", "ok", _FIXED),
    ("vfio_kvm.open_then_release", "alex-incremental", "ok", _FIXED),
    ("vfio_kvm.open_then_release", "9e0f4f2918c2", "ok", _FIXED),
    ("vfio_kvm.close_last_ref", "v6.0", "bug", _RECURSION + _V60),
    ("vfio_kvm.close_last_ref", "v6.1", "bug", _RECURSION + _V61),
    ("vfio_kvm.close_last_ref", "51cdc8bc120e", "bug", _HELD_FREED),
    ("vfio_kvm.close_last_ref", "spinlock-no-ref", "bug", _HELD_FREED + " (no vfio reference outlives it)"),
    (
        "vfio_kvm.close_last_ref",
        "2b48f52f2bff",
        "ok",
        "vfio's own reference is the VM's last, put by vfio_device_put_kvm after close_device with no kvm lock held",
    ),
    ("vfio_kvm.close_last_ref", "alex-incremental", "ok", _FIXED),
    ("vfio_kvm.close_last_ref", "9e0f4f2918c2", "ok", _FIXED),
    ("vfio_kvm.group_add_del", "v6.0", "bug", _ADD_DEL),
    ("vfio_kvm.group_add_del", "v6.1", "bug", _ADD_DEL),
    ("vfio_kvm.group_add_del", "51cdc8bc120e", "bug", _ADD_DEL),
    ("vfio_kvm.group_add_del", "spinlock-no-ref", "bug", _ADD_DEL),
    (
        "vfio_kvm.group_add_del",
        "2b48f52f2bff",
        "bug",
        _ADD_DEL + "; 2b48f52f2bff leaves virt/kvm/vfio.c alone",
    ),
    ("vfio_kvm.group_add_del", "alex-incremental", "bug", _ADD_DEL),
    (
        "vfio_kvm.group_add_del",
        "9e0f4f2918c2",
        "ok",
        "9e0f4f2918c2 calls kvm_vfio_file_set_kvm before dropping kv->lock, so GROUP_DEL cannot free kvg in between",
    ),
)
