"""Seed 000: the pfncache model, every variant, against the verdicts of issue 12 and the thread."""

from __future__ import annotations

import re
import shlex
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from kvmcheck import Source, check, join, replay, scenario, spawn
from kvmcheck.cli import main as cli_main
from kvmcheck.kernel import (
    Struct,
    read_lock_irq,
    read_lock_irqsave,
    read_unlock_irq,
    read_unlock_irqrestore,
    spin_lock,
    spin_unlock,
    spin_until_cond,
)
from kvmcheck.models.mm import migrate as migrate_mod
from kvmcheck.models.mm.migrate import EAGAIN, MIGRATEPAGE_SUCCESS, migrate_pages
from kvmcheck.models.mm.mm import MmStruct, get_user_pages
from kvmcheck.models.mm.page import Page, put_page
from kvmcheck.models.virt.kvm import pfncache_variants as pv
from kvmcheck.models.virt.kvm.kvm_main import KvmMain
from kvmcheck.scenarios import pfncache as pc
from tests.kernel.helpers import found, ok, run

# Every bundled (scenario, variant) verdict is asserted once, by tests/models/test_verdicts.py,
# against tests/models/verdicts_pfncache.py.  The tests here look at what the reports say.


def test_issue_table():
    """The rows of issue 12's table that are not "run it and say"."""
    assert pc.seed_race.expect["pre-9f87791d686d"] == "ok"
    assert pc.mmu_notifier.expect["pre-9f87791d686d"] == "ok"
    assert pc.mmu_notifier.expect["seed-final"] == "bug"
    assert pc.mmu_notifier.expect["seed-final-recheck"] == "ok"
    assert pc.shinfo_evtchn.expect["v6.8-no-xen-lock"] == "bug"
    assert {pc.seed_race.expect["v6.9"], pc.shinfo_evtchn.expect["v6.9"], pc.mmu_notifier.expect["v6.9"]} == {
        "ok"
    }


def _functions(f):
    return {s.site.function for s in f.trace} | {fn for s in f.trace for fn in s.stack}


def test_iomem_v68_trace_reads_like_woodhouses_explanation():
    r = check(pc.seed_race_iomem, variant="v6.8")
    f = r.finding
    assert f is not None
    assert f.kind == "use-after-unmap"
    assert "unmapped by memunmap" in f.headline
    assert {"hva_to_pfn_retry", "__kvm_gpc_refresh", "kvm_gpc_deactivate"} <= _functions(f)
    assert f.step is not None
    last = f.trace[f.step]  # the step that faulted (the other threads may run on after it)
    assert last.op == "read khva[pfn 1]->page"  # the dereference of the torn-down khva
    assert last.site.function in ("__kvm_xen_has_interrupt", "kvm_xen_set_evtchn_fast", "deliver_upcall")
    # the refresher decided to reuse the mapping (read gpc->pfn) before deactivate unmapped it
    pfn_read = next(
        s.index
        for s in f.trace
        if s.op == "read vcpu_info_cache->pfn" and s.site.function == "hva_to_pfn_retry"
    )
    unmap = next(s.index for s in f.trace if s.op.startswith("memunmap("))
    assert pfn_read < unmap


def test_struct_page_v68_race_bugs_the_vm_and_faults_nothing():
    """kunmap() of a struct page is a no-op on x86-64: the same race ends in KVM_BUG_ON, not an oops."""
    r = check(pc.seed_race, variant="v6.8")
    f = r.finding
    assert f is not None
    assert f.kind == "warn"
    assert "KVM_BUG_ON" in f.headline
    assert "inactive cache is still valid" in f.message
    assert all(w.kind not in ("use-after-unmap", "use-after-free") for w in r.warnings)


def test_seed_final_misses_an_invalidation_between_retry_check_and_lock():
    """The finding: the stale pfn is installed after an invalidation that found the cache !valid."""
    r = check(pc.mmu_notifier, variant="seed-final")
    f = r.finding
    assert f is not None
    assert f.kind == "use-after-free"
    assert "page[pfn 1]" in f.message
    tr = f.trace

    def first(pred, after=-1):
        return next(s.index for s in tr if s.index > after and pred(s))

    retry_check = first(
        lambda s: (
            s.site.function == "mmu_notifier_retry_cache" and s.op == "READ_ONCE(kvm->mmu_invalidate_seq)"
        )
    )
    inval = first(lambda s: s.op == "write kvm->mn_active_invalidate_count", retry_check)
    relock = first(lambda s: s.op.startswith("write_lock_irq") and s.site.function == "_refresh_body", inval)
    install = first(
        lambda s: (
            s.op == "write vcpu_info_cache->valid" and s.site.function == "_refresh_body" and s.index > relock
        )
    )
    freed = first(lambda s: s.op.startswith("free_page(pfn 1)"))
    assert retry_check < inval < relock < install < freed


def test_shinfo_race_without_xen_lock_is_woodhouses_second_oops():
    r = check(pc.shinfo_evtchn, variant="v6.8-no-xen-lock")
    f = r.finding
    assert f is not None
    assert f.kind == "use-after-unmap"
    assert "khva[pfn 2]" in f.message  # shared_info
    assert "kvm_xen_set_evtchn" in _functions(f)


def test_sean_contract_flags_the_unguarded_destroy_path():
    r = check(pc.teardown_contract, variant="sean-contract")
    assert r.verdict == "bug"
    reports = [r.finding, *r.warnings]
    held = [f for f in reports if f is not None and f.kind == "assert-held"]
    assert held, reports
    assert "vcpu->mutex is not held" in held[0].message


@pytest.mark.parametrize(
    ("scn", "variant"),
    [(pc.seed_race_iomem, "v6.8"), (pc.mmu_notifier, "seed-final"), (pc.shinfo_evtchn, "v6.8-no-xen-lock")],
)
def test_counterexamples_replay(scn, variant):
    r = check(scn, variant=variant)
    assert r.finding is not None
    again = replay(scn, r.finding.schedule, variant=variant)
    assert again.finding is not None
    assert (again.finding.kind, again.finding.message) == (r.finding.kind, r.finding.message)
    assert [(s.thread, s.op, s.site) for s in again.finding.trace] == [
        (s.thread, s.op, s.site) for s in r.finding.trace
    ]


def test_unknown_variant_is_a_usage_error():
    from kvmcheck import UsageError

    with pytest.raises(UsageError, match="known variants"):
        check(pc.seed_race, variant="v9.99")


# -- migrate_pages ------------------------------------------------------------------------------------
HVA = 0x1000


def _pte(mm: MmStruct) -> int:
    spin_lock(mm.page_table_lock)
    pfn = mm.ptes[HVA].pfn
    spin_unlock(mm.page_table_lock)
    return int(pfn)


def _mm() -> tuple[MmStruct, Page, Page]:
    mm = MmStruct()
    old, new = Page(pfn=1), Page(pfn=2)
    mm.map_page(HVA, old)
    return mm, old, new


def test_migration_moves_an_unpinned_page_and_frees_the_old_one():
    def body():
        mm, old, new = _mm()
        old.data = 7
        assert migrate_pages(mm, HVA, new) == MIGRATEPAGE_SUCCESS
        assert _pte(mm) == 2
        assert new.data == 7 and new.refcount == 1
        _ = old.data  # freed: KASAN

    found(run(body), "use-after-free")


def test_migration_leaves_a_pinned_page_where_it_is():
    def body():
        mm, old, new = _mm()
        pfn = get_user_pages(mm, HVA)  # an extra reference: the expected-refcount check fails
        assert migrate_pages(mm, HVA, new) == EAGAIN
        assert _pte(mm) == pfn == 1
        assert old.refcount == 2  # the mapping's and the GUP pin
        put_page(old)

    ok(run(body))


def test_gup_waits_out_the_migration_entry():
    """Every interleaving: GUP returns the old pfn (before, or pinning it first) or the new one, never an entry."""

    def body():
        mm, _old, new = _mm()
        got: list[int] = []

        def gup():
            pfn = get_user_pages(mm, HVA)
            got.append(pfn)
            put_page(mm.pages[pfn])

        join(spawn(gup), spawn(migrate_pages, mm, HVA, new))
        assert got[0] in (1, 2)

    ok(run(body))


# -- the seed patch's bad-address path ---------------------------------------------------------------
class SeedV1NoUnmap(pv.SeedV1):
    """Mutant: the error path as the previous model had it (forgets the old mapping)."""

    version = "seed-v1-mutant"

    def _refresh_body(self, gpc, kvm, gpa):
        ret, old_pfn, old_khva = super()._refresh_body(gpc, kvm, gpa)
        if ret == pv.EFAULT:
            return ret, pc.KVM_PFN_ERR_FAULT, None
        return ret, old_pfn, old_khva


def _move_vcpu_info_to_a_hole(variant: str, patch=None) -> None:
    kvm, v = pc.setup_vm(variant, backing="iomem")
    if patch is not None:
        kvm.build = kvm.build.patched(patch)
    # KVM_XEN_VCPU_ATTR_TYPE_VCPU_INFO at a gpa no memslot covers: activate -> refresh -> -EFAULT
    assert pc.kvm_xen_vcpu_set_attr_vcpu_info(v, 0x9000) == pv.EFAULT
    gpc = pc.xen_vcpu(v).vcpu_info_cache
    assert gpc.lock is not None
    flags = read_lock_irqsave(gpc.lock)
    assert gpc.khva is None
    read_unlock_irqrestore(gpc.lock, flags)


@pytest.mark.parametrize("variant", ["seed-v1", "seed-v2", "seed-final", "v6.8"])
def test_bad_address_refresh_unmaps_the_old_mapping(variant):
    ok(run(lambda: _move_vcpu_info_to_a_hole(variant)))


def test_bad_address_mutant_leaks_the_mapping():
    r = run(lambda: _move_vcpu_info_to_a_hole("seed-v1", SeedV1NoUnmap()))
    found(r, "leak", "kmemleak")
    assert "KernelMapping" in r.finding.message


# -- the finding, written up: every command the page quotes, and its figures ------------------------
FINDING = Path(__file__).resolve().parents[2] / "docs" / "findings" / "pfncache-retry-check-outside-lock.md"


def _quoted_runs() -> list[tuple[str, list[str]]]:
    """(command, the output lines the page quotes for it) from the page's console blocks."""
    runs: list[tuple[str, list[str]]] = []
    in_console = False
    for line in FINDING.read_text().splitlines():
        if line.startswith("```"):
            in_console = line.strip() == "```console"
            continue
        if not in_console:
            continue
        if line.startswith("$ "):
            runs.append((line[2:], []))
        elif line.strip():
            runs[-1][1].append(line)
    return runs


def _untimed(line: str) -> str:
    return re.sub(r"\d+\.\d+s, (dpor|replay)", r"<t>, \1", line.strip())


def _kvmcheck(cmd: str) -> str:
    args = shlex.split(cmd)
    assert args[0] == "kvmcheck"
    # a fresh failure database: the page quotes what the search prints, not a saved replay
    res = CliRunner(env={"KVMCHECK_DB": tempfile.mkdtemp(prefix="kvmcheck-db-")}).invoke(cli_main, args[1:])
    return res.output


@pytest.mark.parametrize(("cmd", "quoted"), _quoted_runs(), ids=[c for c, _ in _quoted_runs()])
def test_finding_page_commands_print_what_the_page_quotes(cmd, quoted):
    out = [_untimed(x) for x in _kvmcheck(cmd).splitlines()]
    for line in quoted:
        assert _untimed(line) in out, (line, out[:3])


def test_finding_page_quotes_every_figure_it_gives():
    text = FINDING.read_text()
    assert len(_quoted_runs()) >= 6
    # "(`--variant seed-v1`: N executions, `seed-v2`: M executions)"; docs/findings/regenerate.py refreshes them
    for variant in ("seed-v1", "seed-v2"):
        m = re.search(rf"`(?:--variant )?{variant}`: (\d+) executions", text)
        assert m, f"the page no longer says how many executions {variant} takes"
        r = check(pc.mmu_notifier, variant=variant)
        assert (r.verdict, r.executions) == ("bug", int(m.group(1)))
    # the inline command of the Limits paragraph
    inline = re.findall(r"`(kvmcheck check [^`]+)`", text)
    assert inline
    for cmd in inline:
        assert ": bug " in _kvmcheck(cmd).splitlines()[0]
    # the fix quoted on the page is the one the seed-final-recheck variant makes
    assert "mmu_notifier_retry_cache(gpc->kvm, mmu_seq)" in text
    assert "self.mmu_notifier_retry_cache(gpc.kvm, mmu_seq)" in Path(pv.__file__).read_text()


# -- issue 23: the reviewer's caveats -----------------------------------------------------------------
@scenario(name="test.xen_callers_without_vcpu_mutex", kcsan=False)
def xen_callers_without_vcpu_mutex(variant: str = "v6.8") -> int:
    """pfncache.xen_callers with KVM_RUN not taking vcpu->mutex (a harness mutant)."""
    return pc._xen_callers(variant, vcpu_mutex=False)


def test_xen_callers_depends_on_the_callers_mutexes():
    """Each cache meets its refresher and its (de)activator: drop either mutex and v6.8 fails.

    Dropping vcpu->mutex from KVM_RUN exposes vcpu_info; dropping xen_lock from
    kvm_xen_set_evtchn (the v6.8-no-xen-lock build) exposes shared_info.
    """
    assert check(pc.xen_callers, variant="v6.8").verdict == "ok"
    r = check(xen_callers_without_vcpu_mutex, variant="v6.8")
    assert r.verdict == "bug", r
    assert r.finding.kind == "use-after-unmap", r.finding
    assert "khva[pfn 1]" in r.finding.message  # vcpu_info: Woodhouse's oops in __kvm_xen_has_interrupt
    r = check(pc.xen_callers, variant="v6.8-no-xen-lock")
    assert r.verdict == "bug"
    assert "khva[pfn 2]" in r.finding.message  # shared_info
    assert "kvm_xen_set_evtchn" in _functions(r.finding)


def test_v68_recursive_xen_lock_in_timer_get_attr():
    """Sean's 2024-02-06 splat: xen_lock taken again in kvm_xen_set_evtchn under kvm_xen_vcpu_get_attr."""
    r = check(pc.xen_timer_get_attr, variant="v6.8")
    found(r, "deadlock", "possible recursive locking detected")
    assert "kvm->arch.xen.xen_lock is already held" in r.finding.message
    fns = _functions(r.finding)
    assert {"kvm_xen_vcpu_get_attr", "kvm_xen_inject_timer_irqs", "kvm_xen_set_evtchn"} <= fns, fns
    ok(check(pc.xen_timer_get_attr, variant="v6.9"))


class Flag(Struct):
    """A test's own flag (not kernel state)."""

    data: int = 0


def _reader_blocks_invalidation(variant: str) -> None:
    """A user holds vcpu_info's gpc->lock for read until an unrelated invalidation has finished."""
    kvm, v = pc.setup_vm(variant)
    gpc = pc.xen_vcpu(v).vcpu_info_cache
    done = Flag()  # the reader waits for data == 1: the invalidation returned

    def reader() -> None:
        read_lock_irq(gpc.lock)
        spin_until_cond(done, "data", lambda d: d == 1)
        read_unlock_irq(gpc.lock)

    def invalidate() -> None:
        # an unrelated range: vcpu_info is !valid, so 21dadfcd665e never needs the write lock
        pc.mmu_notifier_invalidate_range_start(kvm.mm, pc.VCPU_INFO_HVA, pc.VCPU_INFO_HVA + 1)
        pc.mmu_notifier_invalidate_range_end(kvm.mm, pc.VCPU_INFO_HVA, pc.VCPU_INFO_HVA + 1)
        done.data = 1

    join(spawn(reader), spawn(invalidate))


def _bound(fn, variant):
    def body() -> None:
        fn(variant)

    return body


def test_21dadfcd665e_invalidation_no_longer_waits_for_readers():
    """v13 19/21: a cache that needs no invalidation is checked under the read lock only."""
    r = run(_bound(_reader_blocks_invalidation, "v6.8"), kcsan=False)
    assert r.verdict == "bug" and r.finding.kind == "deadlock", (
        r.finding
    )  # write_lock_irq waits on the reader
    for variant in ("6addfcf27139", "v6.9", "seed-v2", "seed-final"):
        ok(run(_bound(_reader_blocks_invalidation, variant), kcsan=False))
    assert type(pv.BUILDS["sean-contract"].pfncache).gfn_to_pfn_cache_invalidate_start is (
        pv.Pfncache.gfn_to_pfn_cache_invalidate_start
    )


class CountingKvmMain(KvmMain):
    """kvm_main v6.8 counting hva_to_pfn() calls (model bookkeeping, not a kernel access)."""

    def __init__(self) -> None:
        self.gups: list[int] = []

    def hva_to_pfn(self, kvm, hva):
        self.gups.append(hva)
        return super().hva_to_pfn(kvm, hva)


@scenario(name="test.retry_gups", kcsan=False)
def retry_gups(variant: str = "v6.9") -> None:
    """pfncache.retry_unrelated_invalidation, asserting the refresh GUPs vcpu_info at most 3 times."""
    kvm, v = pc.setup_vm(variant)
    counter = CountingKvmMain()
    kvm.build = kvm.build.patched(counter)
    kvm.mm.map_page(pc.OTHER_HVA, Page(pfn=pc.OTHER_PFN))
    kvm.mm.map_page(pc.OTHER_HVA + pc.PAGE_SIZE, Page(pfn=pc.OTHER_PFN + 1))
    join(
        spawn(pc.vcpu_run, v),
        spawn(pc.zap_page_range_single, kvm.mm, pc.OTHER_HVA),
        spawn(pc.zap_page_range_single, kvm.mm, pc.OTHER_HVA + pc.PAGE_SIZE),
    )
    assert len(counter.gups) <= 3, f"the refresh went round {len(counter.gups)} times"


def test_mainline_retry_spins_and_the_v3_wait_does_not():
    """Two overlapping unrelated invalidations: mainline GUPs once per change of the count (4), the wait 3."""
    r = check(retry_gups, variant="v6.9")
    found(r, "assertion")
    assert "went round 4 times" in r.finding.message
    ok(check(retry_gups, variant="v6.9-wait-v3"))
    spin = check(pc.retry_unrelated_invalidation, variant="v6.9")
    wait = check(pc.retry_unrelated_invalidation, variant="v6.9-wait-v3")
    assert spin.verdict == wait.verdict == "ok"
    assert spin.executions > wait.executions
    assert pv.Pfncache.retry_wait is False and type(pv.BUILDS["v6.9-wait-v3"].pfncache).retry_wait is True


def test_pre_9f87791d686d_uses_the_611_names():
    pre = pv.Pre9f87791d686d
    assert pre.kvm_gpc_deactivate.__code__.co_name == "kvm_gfn_to_pfn_cache_destroy"
    assert hasattr(pre, "kvm_gfn_to_pfn_cache_unmap") and not hasattr(pre, "kvm_gpc_unmap")
    assert "kvm_gfn_to_pfn_cache_unmap" in pv.SOURCES["pre-9f87791d686d"].source


def test_every_pfncache_variant_and_scenario_says_where_it_was_read():
    scns = [
        pc.seed_race,
        pc.seed_race_iomem,
        pc.seed_race_vcpu_mutex,
        pc.xen_callers,
        pc.shinfo_evtchn,
        pc.teardown,
        pc.teardown_contract,
        pc.mmu_notifier,
        pc.xen_timer_get_attr,
        pc.retry_unrelated_invalidation,
    ]
    assert set(pv.SOURCES) == set(pv.VARIANTS)
    for s in scns:
        assert isinstance(s.source, Source), s.name
        for v in s.variants:
            assert isinstance(s.source_of(v), Source), (s.name, v)
    src = pv.SOURCES
    assert src["v6.8-no-xen-lock"].provenance == "mutant" and "Never a commit" in src["v6.8-no-xen-lock"].note
    assert (
        src["seed-final-recheck"].provenance == "mutant" and "never posted" in src["seed-final-recheck"].note
    )
    assert src["v6.9-wait-v3"].provenance == "mutant" and "<20240821202814.711673-3-dwmw2@infradead.org>" in (
        src["v6.9-wait-v3"].source
    )
    for v in ("seed-v1", "seed-v2", "6addfcf27139", "seed-final"):
        assert src[v].provenance == "posted" and "<" in src[v].source, v
    assert "21dadfcd665e" in src["v6.9"].note
    for doc in (pv.SeedFinalRecheck.__doc__, pv.__doc__):
        assert "our proposed fix" in doc.lower() or "our fix" in doc.lower(), doc


def test_migrate_says_what_it_leaves_out():
    doc = migrate_mod.__doc__
    for simplification in ("one attempt", "folio lock", "pinned"):
        assert simplification in doc, simplification
