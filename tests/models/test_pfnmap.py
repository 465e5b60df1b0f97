"""Seed 004: non-refcounted pfns -- every scenario x variant, the CVE's story, and a mutant per property."""

from __future__ import annotations

import re
import shlex
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from kvmcheck import Result, check, join, replay, scenario, spawn
from kvmcheck.cli import main as cli_main
from kvmcheck.kernel import write_lock, write_unlock
from kvmcheck.models.arch.x86.kvm.mmu.mmu_variants import X86MmuV613
from kvmcheck.models.arch.x86.kvm.mmu.stage2_fault import RET_PF_FIXED, guest_access, kvm_mmu_page_fault
from kvmcheck.models.build import Build
from kvmcheck.models.mm.page import Page
from kvmcheck.models.virt.kvm.kvm_host import Kvm, KvmVcpu
from kvmcheck.models.virt.kvm.kvm_main import KvmFollowPfn
from kvmcheck.models.virt.kvm.kvm_main_variants import KvmMainStevensV11, KvmMainV613
from kvmcheck.models.virt.kvm.pfncache import Pfncache
from kvmcheck.scenarios import pfnmap as pm

SCENARIOS = [
    pm.ttm_fault,
    pm.ttm_fault_maps,
    pm.vcpu_map,
    pm.vcpu_map_unsafe,
    pm.notifier_race,
    pm.stale_fault_accessed,
    pm.hugepage_release,
]
STEVENS = ("stevens-v9", "stevens-v9-resend", "stevens-v11")


def test_the_issue_table_is_what_the_scenarios_expect():
    assert {v: pm.ttm_fault.expect[v] for v in ("v5.11", "v5.12", "f8be156be163", "stevens-v9", "v6.13")} == {
        "v5.11": "bug",
        "v5.12": "bug",
        "f8be156be163": "ok",
        "stevens-v9": "ok",
        "v6.13": "ok",
    }
    assert pm.vcpu_map.expect["f8be156be163"] == "bug"
    assert all(pm.vcpu_map.expect[v] == "ok" for v in (*STEVENS, "v6.13"))
    assert all(pm.vcpu_map_unsafe.expect[v] == "bug" for v in (*STEVENS, "v6.13"))
    assert pm.notifier_race.expect["v6.13-no-stale-check"] == "bug"
    assert pm.hugepage_release.expect["release-adjusted-pfn"] == "bug"
    # issue 23: v9 as posted leaks, the resent 6/6 is clean, v11 marks a page after a stale fault
    assert {v: pm.stale_fault_accessed.expect[v] for v in STEVENS} == {
        "stevens-v9": "bug",
        "stevens-v9-resend": "ok",
        "stevens-v11": "bug",
    }
    assert {v: pm.notifier_race.expect[v] for v in STEVENS} == {
        v: pm.stale_fault_accessed.expect[v] for v in STEVENS
    }
    assert {v: pm.hugepage_release.expect[v] for v in STEVENS} == dict.fromkeys(STEVENS, "bug")


def test_every_pfnmap_scenario_and_variant_says_where_it_was_read():
    for scn in SCENARIOS:
        assert scn.source is pm.HARNESS, scn.name
        for v in scn.variants:
            src = pm.SOURCES[v]
            assert src.provenance in ("tree", "posted", "reconstructed", "mutant")
            if src.provenance == "posted":
                assert "<" in src.source and "@" in src.source, (v, src.source)  # a message-id
    assert pm.SOURCES["stevens-v9"].provenance == "posted"
    assert "<20230911021637.1941096-7-stevensd@google.com>" in pm.SOURCES["stevens-v9"].source
    assert "<20230919022504.3153043-1-stevensd@chromium.org>" in pm.SOURCES["stevens-v9-resend"].source
    assert "<20240229025759.1187910-9-stevensd@google.com>" in pm.SOURCES["stevens-v11"].source
    assert pm.SOURCES["v6.13-no-stale-check"].provenance == "mutant"


def test_v511_counterexample_tells_the_cve():
    """Which page, who took and dropped the reference, who reallocated it, the guest's access."""
    r = check(
        pm.ttm_fault, variant="v5.11", keep_going=True
    )  # a WARN is printed first in that run: ask for the first oops
    f = r.finding
    assert f is not None and f.kind == "use-after-free"
    assert f.headline == "BUG: write of freed pfn 2: guest write through SPTE gfn 1"
    assert "reallocated to an unrelated allocation while still mapped" in f.message
    story = "\n".join(f.details)
    in_order = [
        "allocated to ttm bo: tail page (its count stays 0) of an order-1 block, not compound",
        "get_page: refcount 0 -> 1 by task vcpu in kvm_get_pfn <- hva_to_pfn_remapped",
        "mapped into the guest by SPTE gfn 1 by task vcpu in install_spte",
        "put_page: refcount 1 -> 0 by task vcpu in kvm_release_pfn_clean",
        "freed to the buddy allocator (order 0 block at pfn 2) by task vcpu",
        "allocated to an unrelated allocation: head page of an order-0 block, not compound by task alloc",
    ]
    positions = [story.index(line) for line in in_order]
    assert positions == sorted(positions)
    assert "write of pfn 2 by task guest in _walk_and_access <- guest_access" in story
    # get_page() on the zero count: the VM_BUG_ON_PAGE a CONFIG_DEBUG_VM kernel stops at
    assert any("page_ref_zero_or_close_to_overflow" in w.message for w in r.warnings)
    # ... and TTM's own free of its block, later in the same run: the tail is someone else's
    assert any(w.headline == "BUG: Bad page state in process ttm  pfn:2" for w in r.warnings)
    again = replay(pm.ttm_fault, f.schedule, variant="v5.11")
    assert again.finding is not None  # its first report is the VM_BUG_ON_PAGE; the UAF follows
    assert f.message in [again.finding.message, *(w.message for w in again.warnings)]


def test_f8be156be163_pays_with_efault_on_the_tail_page():
    """The fix's functional cost is a finding of pfnmap.ttm_fault_maps, not silence."""
    r = check(pm.ttm_fault_maps, variant="f8be156be163")
    assert r.finding is not None and r.finding.kind == "assertion"
    assert "KVM_RUN fails with -14 (-EFAULT)" in r.finding.message
    assert "tail page pfn 2, refcount 0" in r.finding.message
    assert check(pm.ttm_fault_maps, variant="v6.13").verdict == "ok"


def test_v511_notifier_race_is_the_unlocked_follow_pfn():
    r = check(
        pm.notifier_race, variant="v5.11", keep_going=True
    )  # a WARN is printed first in that run: ask for the first oops
    assert r.finding is not None
    # the get on the freed head is the first report; the release's second free is a
    # "Bad page state" report (not an oops: the kernel taints and carries on)
    assert "page_ref_zero_or_close_to_overflow" in r.finding.message
    bad = [w for w in r.warnings if w.headline.startswith("BUG: Bad page state in process vcpu")]
    assert bad and "nonzero mapcount" in bad[0].message and "second free" in bad[0].message
    ops = [s.op for s in r.finding.trace]
    free_block = next(i for i, op in enumerate(ops) if op.startswith("put_page_testzero(page[pfn 1]"))
    kvm_get = next(i for i, op in enumerate(ops) if op.startswith("get_page(page[pfn 1]"))
    assert free_block < kvm_get  # the driver freed the block between follow_pfn and kvm_get_pfn


def test_no_stale_check_maps_a_page_the_driver_freed():
    r = check(pm.notifier_race, variant="v6.13-no-stale-check")
    assert r.finding is not None and r.finding.kind == "use-after-free"
    assert "freed while still mapped" in r.finding.message


def test_release_adjusted_pfn_puts_the_wrong_page():
    r = check(pm.hugepage_release, variant="release-adjusted-pfn")
    assert r.finding is not None and r.finding.kind == "use-after-free"
    assert "put_page: refcount 1 -> 0 by task vcpu in kvm_release_faultin_page" in "\n".join(
        r.finding.details
    )


def test_allow_unsafe_mappings_is_the_only_difference_between_the_vcpu_map_scenarios():
    for variant in ("stevens-v9", "v6.13"):
        assert check(pm.vcpu_map, variant=variant).verdict == "ok"
        r = check(pm.vcpu_map_unsafe, variant=variant)
        assert r.finding is not None
        assert "KVM writes through its kvm_vcpu_map() mapping" in r.finding.message


# -- mutants of the model's own mechanisms -------------------------------------------------
class ReleaseOutsideMmuLock(X86MmuV613):
    """Mutant: kvm_release_faultin_page after write_unlock (the pre-6.13 placement)."""

    version = "test-release-unlocked"

    def kvm_mmu_page_fault(self, vcpu: KvmVcpu, gfn: int, write: bool) -> int:
        kvm = vcpu.kvm
        kfp: KvmFollowPfn = self.faultin_pfn(kvm, gfn, write)
        write_lock(kvm.mmu_lock)
        r = self.install_spte(kvm, gfn, kfp.pfn, 1, kfp, kfp.pfn)
        write_unlock(kvm.mmu_lock)
        self.kvm_mmu_finish_page_fault(kvm, kfp, r)
        return r


class NoTlbFlush(X86MmuV613):
    """Mutant: zapping SPTEs without kvm_flush_remote_tlbs (a guest access in flight survives)."""

    version = "test-no-tlb-flush"

    def kvm_unmap_gfn_range(self, kvm: Kvm, gfns: list[int]) -> None:
        from kvmcheck.kernel import WRITE_ONCE
        from kvmcheck.models.arch.x86.kvm.mmu.stage2_fault import arch_mmu

        for gfn in gfns:
            spte = arch_mmu(kvm).sptes[gfn]
            if spte.pfn:
                WRITE_ONCE(spte, "pfn", 0)


def _anon_vm(mmu: X86MmuV613) -> pm.Host:
    """Two anonymous 4K pages (GUP'd, refcounted) in a VM on v6.13 kvm_main + ``mmu``."""
    from kvmcheck.kernel import struct_init
    from kvmcheck.models.arch.x86.kvm.mmu.stage2_fault import kvm_mmu_init_vm
    from kvmcheck.models.mm.memory import mmap_region
    from kvmcheck.models.mm.mm import MmStruct
    from kvmcheck.models.mm.page_alloc import Zone, boot_alloc
    from kvmcheck.models.virt.kvm.kvm_host import KvmMemslots
    from kvmcheck.models.virt.kvm.kvm_main import kvm_init_mmu_notifier

    mm, zone = MmStruct(), Zone([2, 3])
    pages = [boot_alloc(zone, 2 + i, 0, "anon") for i in range(2)]
    mmap_region(mm, pm.HVA, 2, 0)
    for i, page in enumerate(pages):
        struct_init(mm.ptes[pm.HVA + i], pfn=page.pfn)
        mm.ptes[pm.HVA + i].gen = page.gen
        mm.add_page(page)
    kvm = Kvm(mm, Build(KvmMainV613(), mmu, Pfncache()), KvmMemslots({0: pm.HVA}))
    kvm_init_mmu_notifier(kvm)
    kvm_mmu_init_vm(kvm)
    return pm.Host(kvm, KvmVcpu(kvm, 0), zone)


def test_release_faultin_page_asserts_mmu_lock():
    @scenario
    def body() -> None:
        host = _anon_vm(ReleaseOutsideMmuLock())
        assert kvm_mmu_page_fault(host.vcpu, 0) == RET_PF_FIXED

    r: Result = check(body)
    assert r.finding is not None and r.finding.kind == "assert-held"
    assert "kvm->mmu_lock is not held" in r.finding.message

    @scenario
    def clean() -> None:
        host = _anon_vm(X86MmuV613())
        assert kvm_mmu_page_fault(host.vcpu, 0) == RET_PF_FIXED

    assert check(clean).verdict == "ok"


def test_tlb_flush_is_what_keeps_an_in_flight_guest_access_safe():
    def teardown(host: pm.Host) -> None:
        from kvmcheck.models.mm.memory import unmap_mapping_range
        from kvmcheck.models.mm.page import put_page

        unmap_mapping_range(host.kvm.mm.vmas)
        put_page(host.zone.pfn_to_page(2))

    def make(mmu: X86MmuV613) -> object:
        @scenario
        def body() -> None:
            host = _anon_vm(mmu)
            assert kvm_mmu_page_fault(host.vcpu, 0) == RET_PF_FIXED
            g = spawn(guest_access, host.vcpu, 0, name="guest")
            t = spawn(teardown, host, name="host")
            join(g, t)

        return body

    assert check(make(X86MmuV613())).verdict == "ok"
    r = check(make(NoTlbFlush()))
    assert r.finding is not None and r.finding.kind == "use-after-free"


def test_reserved_pages_are_not_refcounted_but_the_zero_page_is():
    """kvm_is_reserved_pfn() (v5.12) and kvm_pfn_to_refcounted_page() (v6.8) agree on both."""
    from kvmcheck.models.mm.memory import zero_page
    from kvmcheck.models.mm.mm import MmStruct
    from kvmcheck.models.mm.page import Page
    from kvmcheck.models.virt.kvm.kvm_host import KvmMemslots
    from kvmcheck.models.virt.kvm.kvm_main import KvmMain
    from kvmcheck.models.virt.kvm.kvm_main_variants import KvmMainV512

    mm = MmStruct()
    reserved, zp = Page(7, reserved=True), zero_page()
    mm.add_page(reserved)
    mm.add_page(zp)
    kvm = Kvm(mm, Build(KvmMain(), Pfncache()), KvmMemslots({}))
    old, new = KvmMainV512(), KvmMain()
    assert old.kvm_is_reserved_pfn(kvm, 7) and new.kvm_pfn_to_refcounted_page(kvm, 7) is None
    assert not old.kvm_is_reserved_pfn(kvm, zp.pfn) and new.kvm_pfn_to_refcounted_page(kvm, zp.pfn) is zp
    assert old.kvm_is_reserved_pfn(kvm, 100)  # no struct page at all

    @scenario
    def body() -> None:
        kvm2 = Kvm(mm, Build(KvmMain(), Pfncache()), KvmMemslots({}))
        assert new.kvm_try_get_pfn(kvm2, 7)  # reserved: "success" without a reference
        old.kvm_release_pfn_clean(kvm2, 7)
        new.kvm_release_pfn_clean(kvm2, 7)  # nothing to put, in either version
        assert reserved.__dict__["refcount"] == 1
        assert new.kvm_try_get_pfn(kvm2, zp.pfn)  # the zero page is refcounted: 1 -> 2
        new.kvm_release_pfn_clean(kvm2, zp.pfn)  # 2 -> 1
        assert zp.__dict__["refcount"] == 1

    assert check(body).verdict == "ok"


def test_stevens_v9_as_posted_leaks_the_reference_its_lookup_took():
    """v9 3/6 keeps the GUP/get_page_unless_zero reference; the posted 6/6 never puts it."""
    r = check(pm.stale_fault_accessed, variant="stevens-v9")
    f = r.finding
    assert f is not None and f.kind == "leak"
    assert f.headline == "BUG: page leak: pfn 1 never returned to the buddy allocator (page_owner)"
    assert "pfn 1 is still allocated (refcount 1) after ttm bo freed it" in f.message
    story = "\n".join(f.details)
    assert "get_page_unless_zero: refcount 1 -> 2 by task vcpu in hva_to_pfn_remapped" in story
    assert "put_page_testzero: refcount 2 -> 1 by task ttm in __free_pages" in story
    assert "put_page: refcount" not in story  # nobody else ever drops it
    r = check(pm.notifier_race, variant="stevens-v9")
    assert r.finding is not None and r.finding.kind == "leak"


def test_stevens_v9_resend_releases_what_it_took():
    for scn in (pm.stale_fault_accessed, pm.notifier_race):
        r = check(scn, variant="stevens-v9-resend")
        assert r.verdict == "ok" and r.complete, r.finding and str(r.finding)


def test_stevens_v11_marks_a_page_it_holds_no_reference_to_after_a_stale_fault():
    """v11 8/8: out_unlock marks fault->accessed_page; 1/8's WARN_ON_ONCE(!page_count) fires."""
    r = check(pm.stale_fault_accessed, variant="stevens-v11")
    f = r.finding
    assert f is not None and f.kind == "warn"
    assert (
        f.headline
        == "WARNING: at virt/kvm/kvm_main.c kvm_is_ad_tracked_page (WARN_ON_ONCE(!page_count(page)))"
    )
    assert "KVM marks pfn 1 accessed/dirty, but nobody holds a reference to it" in f.message
    story = "\n".join(f.details)
    in_order = [
        "get_page_unless_zero: refcount 1 -> 2 by task vcpu in hva_to_pfn_remapped",
        "put_page: refcount 2 -> 1 by task vcpu in kvm_follow_refcounted_pfn",
        "put_page_testzero: refcount 1 -> 0 by task ttm in __free_pages",
        "freed to the buddy allocator (order 1 block at pfn 1) by task ttm",
    ]
    positions = [story.index(line) for line in in_order]
    assert positions == sorted(positions)
    assert check(pm.stale_fault_accessed, variant="v6.13").verdict == "ok"


class V11WithoutRefcountAssert(KvmMainStevensV11):
    """Mutant: v11 without 1/8 (no WARN_ON_ONCE(!page_count) in kvm_is_ad_tracked_page)."""

    version = "test-v11-no-1/8"

    def kvm_is_ad_tracked_page(self, page: Page) -> bool:
        return not page.reserved


def test_bad_page_state_names_who_set_the_flag():
    """Without 1/8's assertion, v11's stale mark lands on a free page; check_new_page says who set it."""

    @scenario
    def body() -> None:
        host = pm.setup_ttm_system("stevens-v11", prefault=(0, 1))
        host.kvm.build = host.kvm.build.patched(V11WithoutRefcountAssert())
        bo = host.bo
        assert bo is not None
        v = spawn(pm.vcpu_fault, host, 0, name="vcpu")
        t = spawn(pm.ttm_bo_release_backing, bo, name="ttm")
        join(v, t)
        pm.unrelated_allocation(host.zone)

    r = check(body)
    reports = [f for f in [r.finding, *r.warnings] if f is not None]
    bad = [f for f in reports if "PAGE_FLAGS_CHECK_AT_PREP" in f.message]
    assert bad, reports
    story = "\n".join(bad[0].details)
    assert "flags:0x2" in story  # PG_referenced on a page handed out by the buddy allocator
    assert (
        "mark_page_accessed: PG_referenced set on a FREE page (in the buddy allocator) "
        "by task vcpu in kvm_set_page_accessed <- out_unlock <- kvm_mmu_page_fault"
    ) in story


# -- the v11 finding, written up: every command the page quotes prints what it quotes ----------------
FINDING = (
    Path(__file__).resolve().parents[2] / "docs" / "findings" / "stevens-v11-accessed-after-stale-fault.md"
)


def _quoted_runs() -> list[tuple[str, list[str]]]:
    runs: list[tuple[str, list[str]]] = []
    in_console = False
    for line in FINDING.read_text().splitlines():
        if line.startswith("```"):
            in_console = line.strip() == "```console"
        elif in_console and line.startswith("$ "):
            runs.append((line[2:], []))
        elif in_console and line.strip():
            runs[-1][1].append(line)
    return runs


def _untimed(line: str) -> str:
    return re.sub(r"\d+\.\d+s, (dpor|replay)", r"<t>, \1", line.strip())


@pytest.mark.parametrize(("cmd", "quoted"), _quoted_runs(), ids=[c for c, _ in _quoted_runs()])
def test_v11_finding_page_commands_print_what_the_page_quotes(cmd, quoted):
    args = shlex.split(cmd)
    assert args[0] == "kvmcheck"
    db = tempfile.mkdtemp(prefix="kvmcheck-db-")  # what the search prints, not a saved replay
    out = [
        _untimed(x) for x in CliRunner(env={"KVMCHECK_DB": db}).invoke(cli_main, args[1:]).output.splitlines()
    ]
    for line in quoted:
        assert _untimed(line) in out, (line, out[:3])
    assert len(_quoted_runs()) == 6
