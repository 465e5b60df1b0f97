"""Every kernel seed 004 weighs, as a build of kvm_main.c + the x86 mmu.c (+ pfncache.c).

Each variant is the version (or posted patch) of virt/kvm/kvm_main.c
(kvm_main_variants.py) with the x86 mmu.c of its time (arch/x86/kvm/mmu: mmu.py,
mmu_variants.py; the stage-2 fault of stage2_fault.py) and the v6.8 pfncache,
whose notifier hook runs with no caches:

  v5.11, v5.12, f8be156be163  -- kvm_main at that version, the x86 fault of v5.11..v5.15
  stevens-v9                  -- David Stevens' v9 as posted (3/6 + 6/6 of 2023-09-11)
  stevens-v9-resend           -- v9 with the 6/6 resent on 2023-09-19 (x86 only; kvm_main as v9)
  stevens-v11                 -- v11 (2024-02-29): 1/8, 4/8, 5/8, 8/8
  v6.13                       -- "KVM: Stop grabbing references to PFNMAP'd pages"
  v6.13-no-stale-check        -- mutant of the v6.13 mmu.c: no recheck of mmu_invalidate_seq
  release-adjusted-pfn        -- mutant of the v6.13 mmu.c: release the huge-page-adjusted pfn

Where each was read: ``SOURCES`` in scenarios/pfnmap.py.  A scenario that needs
the ``allow_unsafe_mappings`` module parameter asks for
``build.configured("kvm_main", allow_unsafe_mappings=True)``.
"""

from __future__ import annotations

from kvmcheck.models.arch.x86.kvm.mmu.mmu_variants import (
    MmuV511,
    X86MmuNoStaleCheck,
    X86MmuReleaseAdjustedPfn,
    X86MmuStevensV9,
    X86MmuStevensV9Resend,
    X86MmuStevensV11,
    X86MmuV613,
)
from kvmcheck.models.build import Build
from kvmcheck.models.virt.kvm.kvm_main_variants import (
    KvmMainF8be156be163,
    KvmMainStevensV9,
    KvmMainStevensV11,
    KvmMainV511,
    KvmMainV512,
    KvmMainV613,
)
from kvmcheck.models.virt.kvm.pfncache import Pfncache

V5_11 = Build(KvmMainV511(), MmuV511(), Pfncache())
V6_13 = Build(KvmMainV613(), X86MmuV613(), Pfncache())
STEVENS_V9 = Build(KvmMainStevensV9(), X86MmuStevensV9(), Pfncache())

BUILDS: dict[str, Build] = {
    "v5.11": V5_11,
    "v5.12": V5_11.patched(KvmMainV512()),
    "f8be156be163": V5_11.patched(KvmMainF8be156be163()),
    "stevens-v9": STEVENS_V9,
    "stevens-v9-resend": STEVENS_V9.patched(X86MmuStevensV9Resend()),
    "stevens-v11": Build(KvmMainStevensV11(), X86MmuStevensV11(), Pfncache()),
    "v6.13": V6_13,
    "v6.13-no-stale-check": V6_13.patched(X86MmuNoStaleCheck()),
    "release-adjusted-pfn": V6_13.patched(X86MmuReleaseAdjustedPfn()),
}
ALL = tuple(BUILDS)
