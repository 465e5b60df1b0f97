"""Seed 003: the VFIO group lock vs kvm->lock, and every fix the thread weighs (``vfio_kvm.*``).

The system (models/drivers/vfio, models/virt/kvm/vfio.py, kvm_lifetime.py and the
vfio-ap driver of models/drivers/s390): one VM with AP crypto, one vfio-ap mediated
device in one vfio group, and the kvm-vfio pseudo device the VMM created and told about
the group (KVM_DEV_VFIO_GROUP_ADD), so that ``group->kvm`` is the VM.  The VM holds two
references to start with: its VM fd's and the kvm-vfio device fd's.

Every scenario ends, after joining its threads, with every fd closed; what must hold
then (beside deadlock freedom, lockdep, KASAN, refcount_t and the locking contracts,
checked all along):
  * struct kvm was destroyed exactly once -- a second destroy is a KASAN double-free or
    a use of the freed VM, no destroy at all leaves it unreferenced: kmemleak;
  * every symbol_get was paired with a symbol_put (kvm.ko and vfio.ko can be unloaded);
  * KVM dropped every reference it took on the group file (f_count back to the user's 1).

Variants: see models/drivers/vfio/variants.py (SOURCES there says where each was read).
The v6.0 group_rwsem is modelled with the rwsem of kernel/locking.py on main, which has
no writer fairness yet (a reader never waits for a *waiting* writer); nothing here
depends on it: no scenario has a second reader that could queue behind the writer.
v6.1 has the mutex group_lock instead (c82e81ab2569), still inside dev_set->lock.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvmcheck import Source, join, scenario, spawn
from kvmcheck.kernel import READ_ONCE, WARN_ON
from kvmcheck.models.build import build_for
from kvmcheck.models.drivers.s390.crypto.vfio_ap_ops import (
    ApMatrixDev,
    kvm_s390_crypto_init,
    vfio_ap_mdev_probe,
)
from kvmcheck.models.drivers.vfio.group import (
    vfio_group_fops_open,
    vfio_group_ioctl_get_device_fd,
    vfio_module_init,
)
from kvmcheck.models.drivers.vfio.variants import BUILDS, SOURCES, VARIANTS
from kvmcheck.models.drivers.vfio.vfio import File, VfioDevice, VfioDeviceSet, VfioGroup
from kvmcheck.models.drivers.vfio.vfio_main import vfio_device_fops_release
from kvmcheck.models.kernel_module import KernelModule, module_refcount
from kvmcheck.models.virt.kvm.kvm_host import Kvm
from kvmcheck.models.virt.kvm.kvm_lifetime import (
    KvmDevice,
    kvm_create_vm,
    kvm_device_release,
    kvm_ioctl_create_device,
    kvm_module_init,
    kvm_vm_release,
)
from kvmcheck.models.virt.kvm.vfio import kvm_vfio_set_attr_group_add, kvm_vfio_set_attr_group_del

SEED_THREAD = (
    "Re: [PATCH v3] vfio: fix deadlock between group lock and kvm lock — 2023-02-03 — "
    "<20230203133503.4d8fb3e8.alex.williamson@redhat.com>"
)
HARNESS = Source(
    "posted",
    SEED_THREAD,
    "The threads follow the call chains the commit messages give: 2b48f52f2bff's (vfio-ap "
    "open_device under group_lock vs kvm_vfio_release under kvm->lock) and 51cdc8bc120e's "
    "(<20230120150528.471752-1-yi.l.liu@intel.com>: the driver's last kvm_put_kvm -> "
    "kvm_destroy_vm -> kvm_vfio_destroy -> vfio_file_set_kvm under the group lock).",
)


@dataclass
class Vm:
    """What the VMM (QEMU) holds: the VM fd, the kvm-vfio device fd, the group fd, the device."""

    kvm: Kvm
    kvm_vfio: KvmDevice
    group: VfioGroup
    group_file: File
    device: VfioDevice
    modules: tuple[KernelModule, ...]


def setup_vm(variant: str, add_group: bool = True) -> Vm:
    """Single-threaded setup: load kvm.ko and vfio.ko, create the VM, the kvm-vfio device, the mdev."""
    build = build_for(BUILDS, variant)
    modules = (kvm_module_init(), vfio_module_init())
    kvm = kvm_create_vm(build)
    matrix_dev = ApMatrixDev()
    kvm_s390_crypto_init(matrix_dev, kvm)
    group = VfioGroup(build=build)
    device = VfioDevice(group=group, dev_set=VfioDeviceSet(), ops=build.vfio_ap)
    vfio_ap_mdev_probe(matrix_dev, device)
    group_file = vfio_group_fops_open(group)
    kvm_vfio = kvm_ioctl_create_device(kvm, build.kvm_vfio.ops())
    if add_group:
        assert kvm_vfio_set_attr_group_add(kvm_vfio, group_file) == 0
    return Vm(kvm, kvm_vfio, group, group_file, device, modules)


def open_device(vm: Vm) -> bool:
    """The VMM opens the mdev: VFIO_GROUP_GET_DEVICE_FD.  True if it got a device fd."""
    return vfio_group_ioctl_get_device_fd(vm.device) == 0


def close_device(vm: Vm) -> None:
    """The VMM closes the device fd."""
    vfio_device_fops_release(vm.device)


def device_cycle(vm: Vm) -> None:
    """Open the mdev and, if that worked, close it again (a device hot-plugged and unplugged)."""
    if open_device(vm):
        close_device(vm)


def release_kvm_fds(vm: Vm) -> None:
    """The VMM exits: the kvm-vfio device fd, then the VM fd, are closed."""
    kvm_device_release(vm.kvm_vfio)
    kvm_vm_release(vm.kvm)


def check_everything_released(vm: Vm) -> None:
    """After every fd is closed (run by main, once every thread is joined).

    struct kvm itself is left to kmemleak (end of execution) and KASAN (double free).
    """
    for mod in vm.modules:
        n = module_refcount(mod)
        assert n == 0, f"module {mod.name}: {n} reference(s) taken by symbol_get never put"
    assert vm.group_file.f_count == 1, f"group file f_count {vm.group_file.f_count}, expected 1"
    # READ_ONCE: the harness reads after joining every thread, outside the kernel's locking.
    # A WARN, not an oops: the search goes on to the use-after-free this pointer leads to.
    WARN_ON(READ_ONCE(vm.group, "kvm") is not None, "group->kvm still points at the destroyed VM")


@scenario(
    name="vfio_kvm.open_vs_release",
    keep_going=True,  # past lockdep and leak WARNs, to the hang or the KASAN report they precede
    source=HARNESS,
    sources=SOURCES,
    expect={
        "v6.0": "bug",
        "v6.1": "bug",
        "51cdc8bc120e": "bug",
        "spinlock-no-ref": "bug",
        "2b48f52f2bff": "ok",
        "alex-incremental": "ok",
        "9e0f4f2918c2": "ok",
    },
)
def open_vs_release(variant: str) -> None:
    """The mdev is opened and closed while the VMM closes the kvm-vfio fd and the VM fd.

    Threads: ``device`` (GET_DEVICE_FD, then close the device fd if it opened) and
    ``release`` (close the kvm-vfio device fd, then the VM fd).  Initial state: the
    VM (2 references), the kvm-vfio device with the group added, the device closed.
    Property: no deadlock, no use of a freed VM, the VM destroyed exactly once,
    lockdep clean.  Paths the kernel can take: yes -- at every version, nothing
    orders a device open against the VMM closing its kvm fds with close() from
    another thread (a hot-plug racing the VM's teardown).  Not by the VMM
    exiting: a process's files are closed only when its last thread exits, so
    none of its own ioctls can be in flight then.
    v6.0: two bugs.  Reported first: ``release`` drops its references between the
      open and the close, so the driver's put in close_device is the VM's last and
      kvm_vfio_destroy's down_write(group_rwsem) meets the read hold close_device
      runs under: the task deadlocks on itself (close_last_ref's bug, reached by a
      race).  Also there: when the last put comes while ``device`` is inside
      open_device, vfio-ap's kvm_get_kvm increments a dead VM's users_count
      ("refcount_t: addition on 0; use-after-free", see the tests).
    v6.1: the same two bugs; the task now takes the group_lock mutex it holds.
    51cdc8bc120e: group_lock -> kvm->lock (open_device) against kvm->lock ->
      group_lock (kvm_vfio_release): the ABBA deadlock Krowiak reported.
    spinlock-no-ref: no deadlock any more.  Reported first: vfio-ap's close drops
      the VM's last reference under kvm->lock ("WARNING: held lock freed!", as in
      close_last_ref); also there (the tests show it with the open alone): the bare
      group->kvm pointer reaches the driver after ``release`` freed the VM, and
      kvm_get_kvm reads the freed kvm->users_count (KASAN use-after-free).
    2b48f52f2bff, alex-incremental, 9e0f4f2918c2: vfio pins the VM with
      kvm_get_kvm_safe before open_device; ok, every interleaving explored.
    """
    vm = setup_vm(variant)
    join(spawn(device_cycle, vm, name="device"), spawn(release_kvm_fds, vm, name="release"))
    check_everything_released(vm)


@scenario(
    name="vfio_kvm.open_then_release",
    source=HARNESS,
    sources=SOURCES,
    expect={
        "v6.0": "ok",
        "v6.1": "ok",
        "51cdc8bc120e": "bug",
        "spinlock-no-ref": "ok",
        "2b48f52f2bff": "ok",
        "alex-incremental": "ok",
        "9e0f4f2918c2": "ok",
    },
)
def open_then_release(variant: str) -> None:
    """The same operations strictly one after the other: no run can deadlock.

    Threads: ``device`` (open the mdev, close it), joined; then ``release`` (close the
    kvm-vfio fd, then the VM fd).  Initial state as in open_vs_release.  Property: as
    there, and lockdep's: a lock order that *could* deadlock is reported even though
    this run does not.  Paths the kernel can take: yes, at every version (a VMM that
    hot-unplugs the device, then exits).
    51cdc8bc120e: the open records group_lock -> ... -> kvm->lock (vfio-ap's
      open_device under group_lock), the release then takes group_lock under
      kvm->lock: "possible circular locking dependency detected" with both chains --
      the seed's deadlock, found by lockdep in a run that cannot deadlock.
    every other variant: no cycle (v6.0's and v6.1's set_kvm runs from .destroy with no
      kvm->lock held; spinlock-no-ref and the fixes take only the kvm_ref_lock spinlock under
      kvm->lock); the VM is destroyed once by the VM fd's put.
    """
    vm = setup_vm(variant)
    join(spawn(device_cycle, vm, name="device"))
    join(spawn(release_kvm_fds, vm, name="release"))
    check_everything_released(vm)


@scenario(
    name="vfio_kvm.close_last_ref",
    keep_going=True,  # past lockdep and leak WARNs, to the hang or the KASAN report they precede
    source=HARNESS,
    sources=SOURCES,
    expect={
        "v6.0": "bug",
        "v6.1": "bug",
        "51cdc8bc120e": "bug",
        "spinlock-no-ref": "bug",
        "2b48f52f2bff": "ok",
        "alex-incremental": "ok",
        "9e0f4f2918c2": "ok",
    },
)
def close_last_ref(variant: str) -> None:
    """The VMM closes its kvm fds while the mdev is open, then closes the device last.

    Threads, one after the other: ``open`` (GET_DEVICE_FD), ``exit`` (close the kvm-vfio
    fd and the VM fd), ``close`` (close the device fd).  The driver's kvm reference is
    then the VM's last one unless vfio holds its own.  Paths the kernel can take: yes,
    but only through explicit close() calls in this order -- a VMM that tears the VM
    down (close(kvm-vfio fd), close(VM fd)) while it keeps the device fd open.  A VMM
    that merely exits does *not* get here: exit_files() drops the fds in ascending
    order, but each final fput runs as task_work, newest first, so the device fd
    (normally the highest: opened after the VM and kvm-vfio fds) is released before
    them, and the VM's last reference is then the VM fd's, dropped with no vfio lock
    held.
    v6.0: close_device runs under dev_set->lock and group_rwsem (read); vfio-ap's
      kvm_put_kvm destroys the VM, kvm_vfio_destroy calls vfio_file_set_kvm, which
      takes group_rwsem for write: the task deadlocks on itself (the report that led
      to 51cdc8bc120e, whose message names "group->group_lock/group_rwsem").
    v6.1: the same recursion on the group_lock mutex.
    51cdc8bc120e, spinlock-no-ref: the recursion is gone (``.release`` already ran),
      but vfio-ap drops that last reference with kvm->lock held
      (vfio_ap_mdev_unset_kvm), so struct kvm is freed with its lock held and
      release_update_locks_for_kvm then unlocks freed memory: "WARNING: held lock freed!".
      (The issue expected ok for 51cdc8bc120e; the kernel source at v6.2 says
      otherwise -- and lockdep also reports the group_lock/kvm->lock cycle here, as
      the close path takes kvm->lock under group_lock too.)
    2b48f52f2bff, alex-incremental, 9e0f4f2918c2: vfio's own reference is the last
      one, dropped after close_device returned, with no kvm lock held: ok.
    """
    vm = setup_vm(variant)
    opened = join(spawn(open_device, vm, name="open"))
    join(spawn(release_kvm_fds, vm, name="exit"))
    if opened:
        join(spawn(close_device, vm, name="close"))
    check_everything_released(vm)


@scenario(
    name="vfio_kvm.group_add_del",
    keep_going=True,  # past lockdep and leak WARNs, to the hang or the KASAN report they precede
    source=Source(
        "posted",
        "kvm/vfio: ensure kvg instance stays around in kvm_vfio_group_add() — 2023-07-14 — "
        "<20230714224538.404793-1-dmitry.torokhov@gmail.com>",
        "The race its commit message describes (add drops kv->lock, then uses kvg->file; del "
        "frees kvg), read in the 6.1 stable backport <20230911134643.899568279@linuxfoundation.org>.",
    ),
    sources=SOURCES,
    expect=dict.fromkeys(VARIANTS, "bug") | {"9e0f4f2918c2": "ok"},
)
def group_add_del(variant: str) -> None:
    """KVM_DEV_VFIO_GROUP_ADD races KVM_DEV_VFIO_GROUP_DEL on the same group fd.

    Threads: ``add`` and ``del`` (the two ioctls on the kvm-vfio device); then main
    closes the kvm-vfio fd and the VM fd.  Initial state: the kvm-vfio device exists,
    no group added yet.  Property: no use of a freed kvm_vfio_group, the group's kvm
    pointer cleared once the device is gone, references balanced.  Paths the kernel
    can take: yes (two threads of the VMM, or a buggy VMM, issuing the ioctls) -- the
    race syzbot-style fuzzing found, fixed by 9e0f4f2918c2.
    v6.0 .. alex-incremental: kvm_vfio_group_add drops kv->lock and then reads
      kvg->file for vfio_file_set_kvm; ``del`` can free kvg in between:
      use-after-free of the kvm_vfio_group.  (When ``del`` runs entirely between that
      read and the set_kvm, the group is left pointing at the VM after the device is
      gone -- a WARN here, the next device open's use-after-free in the kernel.)
    9e0f4f2918c2: set_kvm is called under kv->lock: ok, every interleaving explored.
    """
    vm = setup_vm(variant, add_group=False)
    join(
        spawn(kvm_vfio_set_attr_group_add, vm.kvm_vfio, vm.group_file, name="add"),
        spawn(kvm_vfio_set_attr_group_del, vm.kvm_vfio, vm.group_file, name="del"),
    )
    release_kvm_fds(vm)
    check_everything_released(vm)
