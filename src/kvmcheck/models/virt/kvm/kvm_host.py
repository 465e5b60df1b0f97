"""struct kvm, struct kvm_vcpu and memslots (include/linux/kvm_host.h), as far as the seeds need.

Modelled after Linux v6.8 (the structure is the same from v6.2 to v6.9 for
these fields).

Locking contract (Documentation/virt/kvm/locking.rst, for the fields here):
  kvm->lock (mutex)                 is taken outside vcpu->mutex and kvm->srcu.
  vcpu->mutex (mutex)               serialises vCPU ioctls, KVM_RUN included.
  kvm->mn_invalidate_lock (spin)    protects mn_active_invalidate_count (writers);
                                    mmu_notifier_retry_cache reads it without the lock.
  kvm->mmu_lock (rwlock_t on x86)   protects mmu_invalidate_seq / _in_progress (writers);
                                    readers sample mmu_invalidate_seq locklessly + smp_rmb.
  kvm->gpc_lock (spin)              protects kvm->gpc_list.
  kvm->srcu                         protects kvm->memslots (readers); updates bump generation.
  kvm->arch.xen.xen_lock (mutex)    serialises Xen attribute changes (shared_info activate).
  kvm->users_count (refcount_t)     the VM's lifetime: kvm_get_kvm/kvm_put_kvm (kvm_lifetime.py).
  kvm->devices                      written under kvm->lock; kvm_destroy_devices walks it unlocked
                                    (no one else holds a reference by then).
"""

from __future__ import annotations

from typing import Any

from kvmcheck.kernel import Mutex, RwLock, SpinLock, Srcu, Struct
from kvmcheck.models.build import Build
from kvmcheck.models.mm.mm import MmStruct

PAGE_SIZE = 4096
KVM_PFN_ERR_FAULT = -1  # error pfn: "no pfn"
KVM_HVA_ERR_BAD = -1  # error hva
INVALID_GPA = -1


class KvmMemslots(Struct):
    """``struct kvm_memslots``: one address space's slots and their generation."""

    generation: int = 0

    def __init__(self, gfn_to_hva: dict[int, int], generation: int = 0, slots: tuple[Any, ...] = ()) -> None:
        super().__init__(generation=generation)
        self.gfn_to_hva = dict(gfn_to_hva)  # the slots' translation, immutable once published
        self.slots = tuple(slots)  # struct kvm_memory_slot objects, where a model needs them (page track)


class Kvm(Struct):
    """``struct kvm`` (fields used by the mmu notifier, the pfn caches and Xen)."""

    __locking__ = {
        # mmu_notifier_retry_cache() reads the count locklessly, by design
        "mn_active_invalidate_count": {"write": "mn_invalidate_lock", "read": ()},
        "mmu_invalidate_in_progress": "mmu_lock",
        "gpc_list": "gpc_lock",
    }

    mn_active_invalidate_count: int = 0
    mmu_invalidate_seq: int = 0
    mmu_invalidate_in_progress: int = 0
    gpc_list: tuple[Any, ...] = ()
    memslots: Any = None
    vm_bugged: bool = False
    # The VM's lifetime (virt/kvm/kvm_lifetime.py; kvm_create_vm sets it).  A field, so
    # that reaching the embedded refcount_t through a freed struct kvm is the UAF it is.
    users_count: Any = None
    devices: tuple[Any, ...] = ()  # struct kvm_device on kvm->devices (list_head vm_node)

    def __init__(self, mm: MmStruct, build: Build, memslots: KvmMemslots) -> None:
        super().__init__(memslots=memslots)
        self.mm = mm
        self.build = build  # the kernel this VM runs on: one implementation per subsystem
        self.lock = Mutex("kvm->lock")
        self.mmu_lock = RwLock("kvm->mmu_lock")
        self.mn_invalidate_lock = SpinLock("kvm->mn_invalidate_lock")
        self.gpc_lock = SpinLock("kvm->gpc_lock")
        self.srcu = Srcu("kvm->srcu")  # readers of kvm->memslots
        self.slots_lock = Mutex("kvm->slots_lock")  # memslot updaters (and lockless readers' excuse)
        self.xen_lock = Mutex("kvm->arch.xen.xen_lock")
        self.slots_arch_lock = Mutex("kvm->slots_arch_lock")  # memslot updates vs arch metadata
        self.arch: Any = None  # struct kvm_arch, as far as a model attaches one (mmu/page_track.py)


class KvmVcpu(Struct):
    """``struct kvm_vcpu``."""

    def __init__(self, kvm: Kvm, vcpu_id: int) -> None:
        super().__init__()
        self.kvm = kvm
        self.vcpu_id = vcpu_id
        self.mutex = Mutex("vcpu->mutex")
