"""Seed 004: KVM and pfns it cannot tell are refcounted (VM_PFNMAP, TTM), per version.

Every scenario builds a host with a one-zone buddy allocator and a VM whose
memslot covers a userspace VMA, on a kernel build (models/virt/kvm/pfnmap_variants.py)
of ``kvm_main`` + the x86 ``mmu`` (+ the v6.8 pfncache, whose notifier hook runs with no caches):

  v5.11, v5.12, f8be156be163      -- kvm_main at that version, x86 fault of v5.11..v5.15
  stevens-v9                      -- David Stevens' v9 as posted (3/6 + 6/6 of 2023-09-11)
  stevens-v9-resend               -- v9 with the 6/6 resent on 2023-09-19 (the folding fix)
  stevens-v11                     -- v11 (2024-02-29): 1/8, 4/8, 5/8, 8/8
  v6.13                           -- "KVM: Stop grabbing references to PFNMAP'd pages"
  v6.13-no-stale-check            -- mutant: no recheck of mmu_invalidate_seq under mmu_lock
  release-adjusted-pfn            -- mutant: release the huge-page-adjusted pfn (pre-8dd861cc07e2)

The state is tiny on purpose: one 2-page block (or one VRAM page), 2-3 threads.
KCSAN stays on: every access the guest or KVM makes to page memory is marked.
Where each variant and scenario was read: ``SOURCES`` and ``HARNESS`` below
(``kvmcheck list`` shows them); docs/models/seed004-pfnmap.md tells the story.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvmcheck import Source, join, scenario, spawn
from kvmcheck.kernel import READ_ONCE, WRITE_ONCE, Struct, spin_until_cond, struct_init
from kvmcheck.models.arch.x86.kvm.mmu.stage2_fault import (
    RET_PF_FIXED,
    guest_access,
    kvm_mmu_init_vm,
    kvm_mmu_page_fault,
)
from kvmcheck.models.build import build_for
from kvmcheck.models.drivers.gpu.drm.ttm.ttm_bo import (
    TtmBufferObject,
    ttm_bo_create_system,
    ttm_bo_create_vram,
    ttm_bo_mmap,
    ttm_bo_prefault,
    ttm_bo_release_backing,
    ttm_resource_alloc,
)
from kvmcheck.models.mm.memory import mmap_region, unmap_mapping_range
from kvmcheck.models.mm.mm import MmStruct
from kvmcheck.models.mm.page import Page, phys_access, put_page
from kvmcheck.models.mm.page_alloc import Zone, alloc_pages, boot_alloc, check_pages_returned
from kvmcheck.models.virt.kvm.kvm_host import Kvm, KvmMemslots, KvmVcpu
from kvmcheck.models.virt.kvm.kvm_main import kvm_init_mmu_notifier, kvm_vcpu_map, kvm_vcpu_unmap
from kvmcheck.models.virt.kvm.pfnmap_variants import ALL, BUILDS

HVA = 0x7F000  # userspace page number of the VMA (hvas are page numbers here)
BLOCK_PFN = 1  # the TTM block: head pfn 1, tail pfn 2
VRAM_PFN = 100  # a VRAM page: no struct page
HUGE_PFN = 2  # hugepage_release: a 2-page-aligned pair, pfn 2 and 3


_V9_3 = (
    "[PATCH v9 3/6] KVM: mmu: Improve handling of non-refcounted pfns -- 2023-09-11 -- "
    "<20230911021637.1941096-4-stevensd@google.com>"
)
_V11 = (
    "[PATCH v11 1/8] KVM: Assert that a page's refcount is elevated when marking accessed/dirty "
    "<20240229025759.1187910-2-stevensd@google.com>; [PATCH v11 4/8] KVM: mmu: Improve handling of "
    "non-refcounted pfns <20240229025759.1187910-5-stevensd@google.com>; [PATCH v11 5/8] KVM: Migrate "
    "kvm_vcpu_map() to kvm_follow_pfn() <20240229025759.1187910-6-stevensd@google.com>; [PATCH v11 8/8] "
    "KVM: x86/mmu: Handle non-refcounted pages <20240229025759.1187910-9-stevensd@google.com> -- 2024-02-29"
)
_V613 = (
    "v6.13: virt/kvm/kvm_main.c, include/linux/kvm_host.h, arch/x86/kvm/mmu/mmu.c -- "
    "[PATCH v13 00/85] KVM: Stop grabbing references to PFNMAP'd pages -- 2024-10-10 -- "
    "<20241010182427.1434605-1-seanjc@google.com>"
)
SOURCES: dict[str, Source] = {
    "v5.11": Source(
        "reconstructed",
        "v5.11: virt/kvm/kvm_main.c hva_to_pfn_remapped (follow_pfn, kvm_get_pfn after the PTE lock)",
        "rebuilt from the pre-image of bd2fae8da794 'KVM: do not assume PTE is writable after "
        "follow_pfn' (v5.12-rc) as the seed-004 digest read it; no tree at v5.11 could be proven "
        "(shared/kernel/SOURCES.md); the x86 fault is the v5.11..v5.15 direct_page_fault shape",
    ),
    "v5.12": Source(
        "reconstructed",
        "v5.12: virt/kvm/kvm_main.c hva_to_pfn_remapped (follow_pte, kvm_get_pfn under the PTE lock)",
        "rebuilt from the context lines of the 5.12-stable backport of f8be156be163 ([PATCH 5.12 "
        "073/110] KVM: do not allow mapping valid but non-reference-counted pages, 2021-06-28, "
        "<20210628141828.31757-74-sashal@kernel.org>: kvm_get_pfn(pfn) right before out: "
        "pte_unmap_unlock) and bd2fae8da794; no v5.12 tree proven",
    ),
    "f8be156be163": Source(
        "posted",
        "KVM: do not allow mapping valid but non-reference-counted pages (f8be156be163, N. Piggin) -- "
        "as backported: [PATCH 5.12 073/110] -- 2021-06-28 -- <20210628141828.31757-74-sashal@kernel.org>",
        "the patch text read (kvm_try_get_pfn: reserved -> 1, else get_page_unless_zero; failure -> "
        "-EFAULT); the surrounding v6.8 model stands in for v5.13's hva_to_pfn",
    ),
    "stevens-v9": Source(
        "posted",
        f"{_V9_3}; [PATCH v9 6/6] KVM: x86/mmu: Handle non-refcounted pages -- 2023-09-11 -- "
        "<20230911021637.1941096-7-stevensd@google.com>",
        "6/6 read as quoted in full by Maxim Levitsky's review "
        "<ca9dde6a5c8d8ff9eb1945fd6c846ed5184d45ee.camel@redhat.com> (2023-10-03) and Dmitry "
        "Osipenko's (2023-09-18); the mail itself is not in the index. TDP fault only",
    ),
    "stevens-v9-resend": Source(
        "posted",
        f"{_V9_3}; [PATCH v9 6/6] KVM: x86/mmu: Handle non-refcounted pages (resent) -- 2023-09-19 -- "
        "<20230919022504.3153043-1-stevensd@chromium.org>",
        "the corrected 6/6 its author posted after 'a mistake when folding the v8->v9 delta'",
    ),
    "stevens-v11": Source("posted", _V11),
    "v6.13": Source(
        "reconstructed",
        _V613,
        "from the seed-004 digest's reading of the v13 patch mails, the merged shas in kvm.git "
        "(kvm-no-struct-page, 5cb1659f4120) and a post-series kvm_main.c whose version was not proven",
    ),
    "v6.13-no-stale-check": Source(
        "mutant",
        _V613,
        "v6.13 with is_page_fault_stale() always false: no recheck of mmu_invalidate_seq under mmu_lock",
    ),
    "release-adjusted-pfn": Source(
        "mutant",
        _V613,
        "v6.13 releasing pfn_to_page(fault->pfn) after kvm_mmu_hugepage_adjust(), as v5.16..v6.12 did "
        "before 8dd861cc07e2 'KVM: x86/mmu: Put refcounted pages instead of blindly releasing pfns'",
    ),
}
"""Where each variant's code was read (``kvmcheck list`` shows it)."""

_SEED = (
    "seed 004: Re: [PATCH v9 3/6] KVM: mmu: Improve handling of non-refcounted pfns -- Sean "
    "Christopherson -- 2024-02-05 -- <ZcGfVRhp2WmCsyhi@google.com>"
)
HARNESS = Source(
    "reconstructed",
    f"{_SEED}; call paths of the x86 TDP fault, mm/memory.c and drivers/gpu/drm/ttm",
    "the threads follow the seed thread's TTM story (ttm_pool.c's 'Don't set the __GFP_COMP flag' "
    "as quoted in patches, vmf_insert_pfn_prot, unmap_mapping_range before the free) and the "
    "kernel call paths the variants' own sources show; no tree at a proven tag was read for them",
)
"""Where the scenarios' harness (threads, setup, properties) was read."""


@dataclass
class Host:
    """What a scenario set up: the VM, its vCPU, the zone and the TTM buffer object."""

    kvm: Kvm
    vcpu: KvmVcpu
    zone: Zone
    bo: TtmBufferObject | None = None


def setup_vm(variant: str, mm: MmStruct, zone: Zone, npages: int, unsafe: bool = False) -> Host:
    """A VM on ``variant`` whose memslot maps gfn i to HVA + i; its mmu notifier and stage-2 table."""
    for page in zone.mem_map.values():
        mm.add_page(page)
    build = build_for(BUILDS, variant)
    if unsafe:
        build = build.configured("kvm_main", allow_unsafe_mappings=True)
    kvm = Kvm(mm, build, KvmMemslots({i: HVA + i for i in range(npages)}))
    kvm_init_mmu_notifier(kvm)
    kvm_mmu_init_vm(kvm)
    return Host(kvm, KvmVcpu(kvm, 0), zone)


def setup_ttm_system(variant: str, prefault: tuple[int, ...]) -> Host:
    """TTM's order-1 non-compound block {H: pfn 1, count 1; T: pfn 2, count 0}, mmapped VM_PFNMAP."""
    mm, zone = MmStruct(), Zone([BLOCK_PFN, BLOCK_PFN + 1])
    bo = ttm_bo_create_system(zone, BLOCK_PFN, 1)
    vma = ttm_bo_mmap(mm, bo, HVA)
    for i in prefault:
        ttm_bo_prefault(vma, HVA + i)
    host = setup_vm(variant, mm, zone, 2)
    host.bo = bo
    return host


def vcpu_fault(host: Host, gfn: int) -> int:
    """KVM_RUN: the guest touches ``gfn``, which has no SPTE yet: the stage-2 fault."""
    return kvm_mmu_page_fault(host.vcpu, gfn)


class VcpuRun(Struct):
    """Where KVM_RUN is: 0 handling the fault, 1 back in the guest, 2 returned an error."""

    state: int = 0


def kvm_run(host: Host, run: VcpuRun, gfn: int) -> None:
    """The vCPU thread's KVM half: handle the fault, then let the guest run (or fail KVM_RUN)."""
    r = vcpu_fault(host, gfn)
    WRITE_ONCE(run, "state", 1 if r == RET_PF_FIXED else 2)


def guest(host: Host, run: VcpuRun, gfn: int) -> None:
    """The vCPU thread's guest half: once KVM_RUN re-enters the guest, the guest writes ``gfn``."""
    spin_until_cond(run, "state", lambda s: s != 0)
    if READ_ONCE(run, "state") == 1:
        guest_access(host.vcpu, gfn)


def unrelated_allocation(zone: Zone) -> None:
    """Some other kernel user allocates a page and writes its secret into it."""
    page = alloc_pages(zone, 0, "an unrelated allocation")
    if page is not None:
        phys_access(page, page.gen, "the new owner writes its data")


@scenario(
    name="pfnmap.ttm_fault",
    expect={
        "v5.11": "bug",
        "v5.12": "bug",
        "f8be156be163": "ok",
        "stevens-v9": "ok",
        "stevens-v9-resend": "ok",
        "stevens-v11": "ok",
        "v6.13": "ok",
        "v6.13-no-stale-check": "bug",
        "release-adjusted-pfn": "ok",
    },
    source=HARNESS,
    sources=SOURCES,
)
def ttm_fault(variant: str) -> None:
    """A vCPU faults on a TTM tail page; an unrelated allocator; the guest writes; TTM tears down.

    Initial state: TTM's order-1 block without __GFP_COMP (H pfn 1 count 1, T pfn 2
    count 0), mmapped VM_PFNMAP|VM_IO with T's PTE not present yet; gfn 1 -> T.
    Threads: vcpu (KVM_RUN's stage-2 fault on gfn 1: GUP fails on the PFNMAP VMA ->
    hva_to_pfn_remapped -> fixup_user_fault -> ttm_bo_vm_fault -> vmf_insert_pfn_prot;
    then it lets the guest run, or KVM_RUN fails); guest (the same vCPU once back in
    guest mode: it writes gfn 1 through whatever SPTE is there -- a thread of its own
    so that the allocator can run between KVM's release and the guest's write);
    alloc (alloc_pages(order 0) -- gets a page only if one was freed -- and writes
    it); ttm (teardown: unmap_mapping_range fires the notifier, then __free_pages(H, 1)).
    Properties: no page freed except by its owner, no access through a mapping to a
    page freed or reallocated since (phys_access), no double free / Bad page state,
    no get_page on a zero count.
    v5.11, v5.12: get_page(T) 0 -> 1 (VM_BUG_ON_PAGE with CONFIG_DEBUG_VM), the
      release's put_page 1 -> 0 frees T to the buddy allocator while TTM owns it and
      the SPTE maps it; alloc gets T; the guest writes into alloc's page; TTM's free of
      the block then hits "Bad page state" -- CVE-2021-22543.
    f8be156be163: ok -- get_page_unless_zero(T) fails, the fault fails with -EFAULT
      (KVM_RUN returns -EFAULT: TTM-backed guest memory cannot be mapped at all; that
      cost is the finding of pfnmap.ttm_fault_maps).
    stevens-v9, stevens-v9-resend, stevens-v11, v6.13: ok, complete -- T is mapped
      without a reference (get_page_unless_zero fails: not refcounted, no SPTE
      refcounted bit, nothing marked or put), under the notifier's protection.
    v6.13-no-stale-check: bug -- an SPTE installed after the teardown's notifier maps
      a page the driver freed.  release-adjusted-pfn: ok (no huge page here).
    Paths: every thread's path exists in the kernel of each version (x86 TDP fault on a
    PFNMAP VMA, TTM's fault handler and eviction); TTM repopulating on a fault after
    teardown is replaced by SIGBUS (ttm_bo.py).
    """
    host = setup_ttm_system(variant, prefault=(0,))
    bo = host.bo
    assert bo is not None
    run = VcpuRun()
    v = spawn(kvm_run, host, run, 1, name="vcpu")
    a = spawn(unrelated_allocation, host.zone, name="alloc")
    g = spawn(guest, host, run, 1, name="guest")
    t = spawn(ttm_bo_release_backing, bo, name="ttm")
    join(v, a, g, t)


@scenario(
    name="pfnmap.ttm_fault_maps",
    expect={
        "v5.11": "bug",
        "v5.12": "bug",
        "f8be156be163": "bug",
        "stevens-v9": "ok",
        "stevens-v9-resend": "ok",
        "stevens-v11": "ok",
        "v6.13": "ok",
        "v6.13-no-stale-check": "ok",
        "release-adjusted-pfn": "ok",
    },
    source=HARNESS,
    sources=SOURCES,
)
def ttm_fault_maps(variant: str) -> None:
    """The functional property: a vCPU's fault on TTM-backed guest memory maps it (one thread).

    Initial state as in pfnmap.ttm_fault; one thread, the vCPU faulting on gfn 1 (T).
    Property: the fault returns RET_PF_FIXED and the guest can write the page.
    v5.11, v5.12: the fault maps T, but get_page() on its zero count is the
      VM_BUG_ON_PAGE report (and the release frees T: the CVE of pfnmap.ttm_fault).
    f8be156be163: bug, by design -- "KVM_RUN fails with -EFAULT": the price of the
      CVE fix, which is what motivated Stevens' series (virtio-gpu blobs).
    stevens-v9, stevens-v9-resend, stevens-v11, v6.13 (and the v6.13 mutants): ok --
      allow_non_refcounted_struct_page on x86-64 TDP (v9 6/6, v11 8/8).
    Paths: the same fault path as pfnmap.ttm_fault.
    """
    host = setup_ttm_system(variant, prefault=(0,))
    r = kvm_mmu_page_fault(host.vcpu, 1)
    assert r == RET_PF_FIXED, (
        f"KVM_RUN fails with {r} (-EFAULT): gfn 1 is TTM memory (tail page pfn 2, refcount 0) "
        "that this kernel refuses to map"
    )
    assert guest_access(host.vcpu, 1)


def vcpu_map_user(host: Host, gfn: int) -> None:
    """A direct KVM user of guest memory (nested VMX's vmcs12 page): map, write, unmap."""
    _r, m = kvm_vcpu_map(host.kvm, gfn)
    if m is None:
        return  # the map failed (-EINVAL/-EFAULT): the nested VM-entry fails, nothing is touched
    phys_access(m.mem, m.gen, "KVM writes through its kvm_vcpu_map() mapping")
    kvm_vcpu_unmap(host.kvm, m, dirty=True)


def ttm_move_vram(bo: TtmBufferObject) -> None:
    """TTM evicts the object out of VRAM, and the VRAM goes to another buffer object."""
    ttm_bo_release_backing(bo)
    ttm_resource_alloc(bo.mem[0], "another buffer object")


def _vcpu_map(variant: str, unsafe: bool) -> None:
    mm, zone = MmStruct(), Zone([])
    bo = ttm_bo_create_vram(mm, VRAM_PFN)
    vma = ttm_bo_mmap(mm, bo, HVA)
    ttm_bo_prefault(vma, HVA)
    host = setup_vm(variant, mm, zone, 1, unsafe)
    m = spawn(vcpu_map_user, host, 0, name="vcpu_map")
    t = spawn(ttm_move_vram, bo, name="ttm")
    join(m, t)


@scenario(
    name="pfnmap.vcpu_map",
    expect={
        "v5.11": "bug",
        "v5.12": "bug",
        "f8be156be163": "bug",
        "stevens-v9": "ok",
        "stevens-v9-resend": "ok",
        "stevens-v11": "ok",
        "v6.13": "ok",
        "v6.13-no-stale-check": "ok",
        "release-adjusted-pfn": "ok",
    },
    source=HARNESS,
    sources=SOURCES,
)
def vcpu_map(variant: str) -> None:
    """A kvm_vcpu_map() user of a VRAM page while TTM moves the object (allow_unsafe_mappings=0).

    Initial state: a TTM buffer object in VRAM (pfn 100, no struct page), mmapped
    VM_PFNMAP|VM_IO and present; gfn 0 maps it.
    Threads: vcpu_map (kvm_vcpu_map(gfn 0), write through the mapping, kvm_vcpu_unmap);
    ttm (eviction: unmap_mapping_range -- the notifier fires, but direct maps do not
    listen -- then the VRAM goes back to the manager and to another buffer object).
    Property: no write through a kernel mapping to memory freed or reallocated since.
    allow_unsafe_mappings is a module parameter (an admin's choice, not a kernel
    version), so it is a scenario parameter: this scenario runs every variant with it
    at 0, pfnmap.vcpu_map_unsafe at 1, and `kvmcheck check --all` shows both.
    v5.11, v5.12, f8be156be163: bug -- the parameter does not exist; the pfn has no
      struct page, so kvm_get_pfn/kvm_try_get_pfn succeed without a reference and
      memremap() maps it with no protection at all (digest correction 2).
    stevens-v9, stevens-v9-resend, stevens-v11: ok -- no struct page, so no reference,
      and kvm_vcpu_map is not guarded by the notifier: hva_to_pfn_remapped returns
      -EFAULT unless allow_unsafe_mappings (v9 3/6; v11 4/8 + 5/8).
    v6.13 (and its two mutants, whose kvm_main is v6.13's): ok -- a remapped pfn
      cannot be pinned: -EINVAL.
    Paths: kvm_vcpu_map on PFNMAP memory is a real path (nested state in VRAM or a BAR,
    what Sean calls "already wildly broken"); TTM's move is modelled by its effect.
    """
    _vcpu_map(variant, unsafe=False)


@scenario(name="pfnmap.vcpu_map_unsafe", expect=dict.fromkeys(ALL, "bug"), source=HARNESS, sources=SOURCES)
def vcpu_map_unsafe(variant: str) -> None:
    """pfnmap.vcpu_map with the module parameter allow_unsafe_mappings=1 (the admin's opt-in).

    Threads, initial state and property as in pfnmap.vcpu_map.
    Every variant: bug.  v5.11 .. f8be156be163 ignore the parameter (they map
    unprotected anyway); the three Stevens variants and v6.13 map the VRAM page with
    memremap() and no protection, as the opt-in documents: the write lands in another
    buffer object.
    Paths: real at every version (the parameter exists from v6.13; Stevens' series had it).
    """
    _vcpu_map(variant, unsafe=True)


def owned_pages(bo: TtmBufferObject) -> list[tuple[Page, int]]:
    """The buffer object's pages with their generation now: what must come back after teardown."""
    return [(page, page.gen) for page in bo.mem]


@scenario(
    name="pfnmap.notifier_race",
    expect={
        "v5.11": "bug",
        "v5.12": "ok",
        "f8be156be163": "ok",
        "stevens-v9": "bug",
        "stevens-v9-resend": "ok",
        "stevens-v11": "bug",
        "v6.13": "ok",
        "v6.13-no-stale-check": "bug",
        "release-adjusted-pfn": "ok",
    },
    source=HARNESS,
    sources=SOURCES,
)
def notifier_race(variant: str) -> None:
    """The stage-2 fault on TTM's head page races with the teardown's unmap_mapping_range.

    Initial state: TTM's order-1 block (H count 1, T count 0), both PTEs present; gfn 0 -> H.
    Threads: vcpu (fault on gfn 0, then the guest writes gfn 0); ttm (teardown:
    unmap_mapping_range, __free_pages(H, 1)).
    Properties: no SPTE (or access through one) to a page the driver freed; no
    get_page on a zero count, no Bad page state, no WARN; at the end, both pages of
    the block are back in the buddy allocator (a reference KVM took and never put
    keeps H allocated for ever: the page leak CONFIG_PAGE_OWNER would list).
    v6.13: ok, complete -- KVM holds no reference, so the recheck of
      mmu_invalidate_seq under mmu_lock is what keeps the SPTE out.
    v6.13-no-stale-check: bug -- the pfn resolved before the unmap is installed after
      the free: the guest writes a page the driver freed.
    f8be156be163, v5.12, stevens-v9-resend: ok -- the recheck works, and the reference
      on H (taken under the PTE lock) keeps H alive until the release puts it.
    stevens-v9 (as posted): bug -- 3/6 keeps the reference get_page_unless_zero took
      and 6/6 dropped the release: H never goes back to the buddy allocator.
    stevens-v11: bug -- when the fault is stale, out_unlock marks fault->accessed_page
      (no reference held) after the driver freed it: v11 1/8's WARN_ON_ONCE fires.
    v5.11: bug -- follow_pfn() drops the PTE lock before kvm_get_pfn(): the teardown
      frees the block in between, get_page(H) hits a zero count, and the release frees
      H a second time (Bad page state).
    Paths: all real at each version.
    """
    host = setup_ttm_system(variant, prefault=(0, 1))
    bo = host.bo
    assert bo is not None
    owned = owned_pages(bo)

    def vcpu() -> None:
        if vcpu_fault(host, 0) == RET_PF_FIXED:
            guest_access(host.vcpu, 0)

    v = spawn(vcpu, name="vcpu")
    t = spawn(ttm_bo_release_backing, bo, name="ttm")
    join(v, t)
    check_pages_returned(owned, bo.name)


@scenario(
    name="pfnmap.stale_fault_accessed",
    expect={
        "v5.11": "bug",
        "v5.12": "ok",
        "f8be156be163": "ok",
        "stevens-v9": "bug",
        "stevens-v9-resend": "ok",
        "stevens-v11": "bug",
        "v6.13": "ok",
        "v6.13-no-stale-check": "ok",
        "release-adjusted-pfn": "ok",
    },
    source=HARNESS,
    sources=SOURCES,
)
def stale_fault_accessed(variant: str) -> None:
    """A fault that turns out stale must not touch a page it holds no reference to.

    Initial state as in pfnmap.notifier_race (TTM's head page H, count 1, is
    refcounted; both PTEs present; gfn 0 -> H).
    Threads: vcpu (fault on gfn 0); ttm (teardown: unmap_mapping_range, free the
    block).  After both: the block's pages must all be back in the buddy allocator
    (check_pages_returned), then an unrelated allocation takes the freed memory:
    check_new_page() reports any flag KVM set on a free page ("Bad page state:
    PAGE_FLAGS_CHECK_AT_PREP flag(s) set", a CONFIG_DEBUG_VM check).
    stevens-v11: bug -- 8/8's out_unlock does kvm_set_page_accessed(fault->accessed_page),
      a page that "Does NOT have an elevated refcount" (4/8 put the lookup's
      reference at once), also when the fault was found stale; by then the teardown
      may have freed H, and 1/8's WARN_ON_ONCE(!page_count(page)) in
      kvm_is_ad_tracked_page fires ("KVM marks pfn 1 accessed/dirty, but nobody
      holds a reference to it").
    stevens-v9 (as posted): bug -- not the v11 shape: 3/6 keeps the lookup's
      reference and the posted 6/6 marks H accessed under mmu_lock while holding it,
      but never puts it: H is never freed (page leak).
    stevens-v9-resend: ok, complete -- kvm_release_page_clean() after the unlock marks
      and puts the page it still holds.  v6.13 holds the GUP reference until
      kvm_release_faultin_page, which does not mark an unused page (8eaa98004b23),
      and remapped pfns are never touched.
    v5.12, f8be156be163: ok -- the reference taken under the PTE lock is held until
      the release.  v5.11: bug -- the unlocked follow_pfn race of pfnmap.notifier_race.
    v6.13-no-stale-check, release-adjusted-pfn: ok here -- the stale SPTE the first one
      installs is caught only when the guest uses it (pfnmap.notifier_race); no guest
      runs in this scenario.
    Paths: real for each version's TDP fault; the stale path is the one every
    invalidation racing with a fault takes.
    """
    host = setup_ttm_system(variant, prefault=(0, 1))
    bo = host.bo
    assert bo is not None
    owned = owned_pages(bo)
    v = spawn(vcpu_fault, host, 0, name="vcpu")
    t = spawn(ttm_bo_release_backing, bo, name="ttm")
    join(v, t)
    check_pages_returned(owned, bo.name)
    unrelated_allocation(host.zone)


def truncate(host: Host, pages: list[Page]) -> None:
    """The file is truncated: unmap its mapping (notifiers), then drop the page cache's references."""
    unmap_mapping_range(host.kvm.mm.vmas)
    for page in pages:
        put_page(page)


@scenario(
    name="pfnmap.hugepage_release",
    expect={
        "f8be156be163": "ok",
        "stevens-v9": "bug",
        "stevens-v9-resend": "bug",
        "stevens-v11": "bug",
        "v6.13": "ok",
        "release-adjusted-pfn": "bug",
    },
    source=HARNESS,
    sources=SOURCES,
)
def hugepage_release(variant: str) -> None:
    """A 2M stage-2 mapping of two separately refcounted pages: get and put must hit the same page.

    Initial state: two order-0 pages (pfn 2, 3; count 1 each: the page cache's) of a
    file mapped at PMD level by the host (fsdax-like: not one compound page), a
    normal VMA; gfn 0, 1 -> pfn 2, 3.
    Threads: vcpu (fault on gfn 1: GUP takes a reference on pfn 3, the huge-page
    adjustment maps gfn 0-1 -> pfn 2-3 at 2M; then the guest writes gfn 0);
    host (truncate: unmap_mapping_range, then put_page on both pages).
    Final check: both pages are back in the buddy allocator (check_pages_returned:
    nobody leaked a reference).
    v6.13: ok -- kvm_release_faultin_page puts fault->refcounted_page (pfn 3).
    release-adjusted-pfn: bug -- the release puts pfn 2 (fault->pfn after the adjustment):
      pfn 2 is freed while mapped and pfn 3 keeps KVM's reference for ever.
    stevens-v9-resend: bug, the same defect -- its kvm_release_page_clean(pfn_to_page(
      fault->pfn)) runs after kvm_mmu_hugepage_adjust() aligned fault->pfn (the kvm/next
      base of 2023-09; mainline kept this until 8dd861cc07e2).
    stevens-v9 (as posted): bug -- nothing puts pfn 3's GUP reference: a page leak.
    stevens-v11: bug -- a fault made stale by the truncate marks fault->accessed_page
      (pfn 3, no reference held) after the truncate freed it: 1/8's WARN_ON_ONCE.
    f8be156be163 (v5.13): ok -- before the kvm_page_fault refactor (v5.16) the
      adjusted pfn was a local of __direct_map and the release used the original.
    Paths: real for fsdax pages before they were folios (v5.16 .. v6.12); the
    8dd861cc07e2 fix and the stable backport (snapshot the original pfn) exist.
    """
    mm, zone = MmStruct(), Zone([HUGE_PFN, HUGE_PFN + 1])
    pages = [boot_alloc(zone, HUGE_PFN + i, 0, "the file") for i in range(2)]
    mmap_region(mm, HVA, 2, 0, huge=True)
    for i, page in enumerate(pages):
        struct_init(mm.ptes[HVA + i], pfn=page.pfn)
        mm.ptes[HVA + i].gen = page.gen
    host = setup_vm(variant, mm, zone, 2)

    def vcpu() -> None:
        if vcpu_fault(host, 1) == RET_PF_FIXED:
            guest_access(host.vcpu, 0)

    owned = [(page, page.gen) for page in pages]
    v = spawn(vcpu, name="vcpu")
    t = spawn(truncate, host, pages, name="truncate")
    join(v, t)
    check_pages_returned(owned, "the truncate")
