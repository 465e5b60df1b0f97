"""Seed 001's release/acquire pair under the LKMM: shadow_root_allocated publishes the gfn_track arrays.

``kvmcheck check tests/models/lkmm_page_track.py::first_shadow_root --variant V`` (under the
LKMM, the scenario's own model; ``--memory-model sc`` for SC).

The model is models/arch/x86/kvm/mmu/shadow_root.py (v6.1, a TDP VM with no external
write tracker -- the configuration where the pair runs; the bundled page_track
scenarios run with CONFIG_KVM_EXTERNAL_WRITE_TRACKING=y, where it does not).

  vcpu0:  mmu_alloc_shadow_roots() -> mmu_first_shadow_root_alloc():
          [slots_arch_lock] gfn_track = array; smp_store_release(allocated, true) [/]
  vcpu1:  a write fault, page_fault_handle_page_track() -> kvm_slot_page_track_is_active():
          smp_load_acquire(allocated)? then READ_ONCE(gfn_track[index])

What must hold: a vCPU that sees the flag set sees the array (no NULL dereference).
"""

from __future__ import annotations

from kvmcheck import join, scenario, spawn
from kvmcheck.models.arch.x86.kvm.mmu.shadow_root import (
    SOURCES,
    KvmArch,
    KvmMemorySlot,
    kvm_slot_page_track_is_active,
    mmu_first_shadow_root_alloc,
)

# Under the LKMM; under SC every variant is ok (tests/models/test_lkmm_mutants.py runs both).
EXPECT_LKMM = {"v6.1": "ok", "store-release-weakened": "bug", "load-acquire-weakened": "bug"}


@scenario(expect=EXPECT_LKMM, memory_model="lkmm", sources=SOURCES)
def first_shadow_root(variant: str) -> bool:
    """The first shadow root's metadata allocation races with a TDP write fault's tracking check."""
    slot = KvmMemorySlot(base_gfn=0x100, npages=1)
    kvm = KvmArch((slot,), variant)
    t0 = spawn(mmu_first_shadow_root_alloc, kvm, name="vcpu0")
    t1 = spawn(kvm_slot_page_track_is_active, kvm, slot, 0x100, name="vcpu1")
    join(t0, t1)
    return kvm_slot_page_track_is_active(kvm, slot, 0x100)
