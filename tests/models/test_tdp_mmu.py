"""Seed 002: the TDP MMU roots model, every variant, and a mutant per property."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kvmcheck import check, join, scenario, spawn
from kvmcheck._engine.strategies.dpor import Dpor
from kvmcheck.kernel import refcount_inc, refcount_set, write_lock, write_unlock
from kvmcheck.models.arch.x86.kvm.mmu.mmu import kvm_destroy_vm, vcpu_arch, vcpu_enter_guest
from kvmcheck.models.arch.x86.kvm.mmu.mmu_internal import KvmMmuPage, kvm_mmu_put_root
from kvmcheck.models.arch.x86.kvm.mmu.tdp_mmu import TdpMmu
from kvmcheck.models.arch.x86.kvm.mmu.tdp_mmu_variants import (
    V5_13,
    V6_9,
    VARIANTS,
    Fix_a889ea54b3da,
)
from kvmcheck.models.build import Build
from kvmcheck.scenarios import tdp_mmu as tm
from tests.engine.bruteforce import explore

SCENARIOS = [tm.root_reload, tm.next_root_freed, tm.concurrent_put, tm.vm_destroy]


def run(body: Callable[[Build], Any], impl: TdpMmu) -> Any:
    return check(scenario(lambda: body(Build(impl))))


def test_every_variant_is_bundled() -> None:
    assert set(tm.ALL) == set(VARIANTS)
    for s in SCENARIOS:
        assert set(s.variants) == set(VARIANTS)


# -- the counterexamples read like the thread ------------------------------------------------------
def test_v5_11_rc2_reads_like_maciejs_report() -> None:
    f = check(tm.root_reload, variant="v5.11-rc2").finding
    assert f is not None and f.kind == "bug-on"
    assert f.headline == "kernel BUG at arch/x86/kvm/mmu/mmu_internal.h:100!"
    assert f.details[0] == "RIP: 0010:kvm_tdp_mmu_get_vcpu_root_hpa"
    trace = [d.strip() for d in f.details[2:]]
    assert trace[:2] == ["kvm_mmu_load", "vcpu_enter_guest"]
    # the walker's put took the count to 0 after the vCPU had dropped its reference
    ops = [(s.thread, s.op, s.site.function) for s in f.trace]
    puts = [i for i, (_, op, fn) in enumerate(ops) if fn == "kvm_mmu_put_root" and op.startswith("write")]
    assert len(puts) >= 2


def test_ben_v1_walks_through_the_root_it_freed() -> None:
    f = check(tm.root_reload, variant="ben-v1").finding
    assert f is not None and f.kind == "use-after-free"
    assert "root0->link.next" in f.message


def test_list_safe_reads_the_freed_cached_next() -> None:
    f = check(tm.next_root_freed, variant="list-safe").finding
    assert f is not None and f.kind == "use-after-free"
    assert "root2->link.next" in f.message  # R2, freed by vCPU 2 while the walk stood on R1
    assert any(s.op.startswith("kfree(root2)") for s in f.trace)


def test_v5_11_rc2_leaks_the_root_at_destroy() -> None:
    r = check(
        tm.vm_destroy, variant="v5.11-rc2", keep_going=True
    )  # a WARN is printed first in that run: ask for the first oops
    assert r.finding is not None and r.finding.kind == "leak"
    assert any("WARN_ON(!list_empty(&kvm->arch.tdp_mmu_roots))" in w.message for w in r.warnings)


@pytest.mark.slow
def test_plain_get_under_the_read_lock_meets_a_zero_count() -> None:
    """Among the bugs of v6.9-plain-get in concurrent_put: the BUG_ON of a get on 0."""
    ex = explore(tm.concurrent_put, Dpor(), variant="v6.9-plain-get")
    kinds = {k for _, hard in ex.terminal if hard for k, _ in hard}
    assert "bug-on" in kinds  # the put reached 0 between the walk's list read and its get
    assert "use-after-free" in kinds  # or the get resurrected a root already queued for freeing


# -- a mutant of a fixed variant per property ----------------------------------------------------------
class A889PutWithoutFree(Fix_a889ea54b3da):
    """P1/P3: a889ea54b3da with the put's result ignored again."""

    def tdp_mmu_put_root(self, kvm: Any, root: KvmMmuPage) -> None:
        kvm_mmu_put_root(kvm, root)


class A889PutBeforeNext(Fix_a889ea54b3da):
    """P2: a889ea54b3da reading the next root after the put that may free the current one."""

    def tdp_mmu_next_root(self, kvm: Any, root: KvmMmuPage) -> Any:
        from kvmcheck.kernel import list_next_entry

        self.tdp_mmu_put_root(kvm, root)
        return list_next_entry(root, "link")


class V6_9FreeWithoutGracePeriod(V6_9):  # noqa: N801 - a version name
    """P2: v6.9 with the root freed at once instead of after an RCU grace period."""

    def kvm_tdp_mmu_put_root(self, kvm: Any, root: KvmMmuPage, shared: bool = False) -> None:
        import kvmcheck.models.arch.x86.kvm.mmu.tdp_mmu_variants as tv

        saved = tv.call_rcu
        tv.call_rcu = lambda obj, fn: fn(obj)  # type: ignore[assignment]
        try:
            super().kvm_tdp_mmu_put_root(kvm, root, shared)
        finally:
            tv.call_rcu = saved


class V6_9GetFromZero(V6_9):  # noqa: N801 - a version name
    """P1: v6.9 with refcount_inc() instead of refcount_inc_not_zero()."""

    def kvm_tdp_mmu_get_root(self, kvm: Any, root: KvmMmuPage) -> bool:
        refcount_inc(root.tdp_mmu_root_count)
        return True


class V5_13GetFromZero(V5_13):  # noqa: N801 - a version name
    """v5.13 with refcount_inc(): no read-lock walker meets a dying root in v5.13."""

    def kvm_tdp_mmu_get_root(self, kvm: Any, root: KvmMmuPage) -> bool:
        if root.role_invalid:
            return False
        refcount_inc(root.tdp_mmu_root_count)
        return True


class V5_13UnloadUnderReadLock(V5_13):  # noqa: N801 - a version name
    """P4: v5.13 dropping the vCPU's root under the read lock (v6.9 does, with v6.9's put)."""

    def kvm_mmu_free_roots(self, vcpu: Any) -> None:
        from kvmcheck.kernel import read_lock, read_unlock

        kvm = vcpu.kvm
        read_lock(kvm.mmu_lock)
        self.mmu_free_root_page(kvm, vcpu)
        read_unlock(kvm.mmu_lock)


class V6_9ZapperKeepsReference(V6_9):  # noqa: N801 - a version name
    """P3: v6.9 whose zapper never puts the TDP MMU's own reference."""

    def kvm_tdp_mmu_put_root(self, kvm: Any, root: KvmMmuPage, shared: bool = False) -> None:
        import sys

        if sys._getframe(1).f_code.co_name == "kvm_tdp_mmu_zap_invalidated_roots":
            return
        super().kvm_tdp_mmu_put_root(kvm, root, shared)


class V6_9RefcountOne(V6_9):  # noqa: N801 - a version name
    """P5: v6.9 with roots made with one reference (as before edbdb43fc96b, without its resurrection)."""

    def kvm_tdp_mmu_alloc_root(self, vcpu: Any) -> int:
        r = super().kvm_tdp_mmu_alloc_root(vcpu)
        root = vcpu_arch(vcpu).root_hpa
        write_lock(vcpu.kvm.mmu_lock)
        refcount_set(root.tdp_mmu_root_count, 1)  # undo the TDP MMU's own reference
        write_unlock(vcpu.kvm.mmu_lock)
        return r


MUTANTS = [
    (tm.root_reload_body, A889PutWithoutFree(), "bug-on", "mmu_internal.h:100"),
    (tm.vm_destroy_body, A889PutWithoutFree(), "leak", "kmemleak"),
    (tm.next_root_freed_body, A889PutBeforeNext(), "use-after-free", "KASAN"),
    (tm.concurrent_put_body, V6_9FreeWithoutGracePeriod(), "use-after-free", "KASAN"),
    (tm.root_reload_body, V5_13UnloadUnderReadLock(), "assert-held", "lockdep_assert_held"),
    (tm.vm_destroy_body, V6_9ZapperKeepsReference(), "leak", "kmemleak"),
    (tm.next_root_freed_body, V6_9RefcountOne(), "warn", "KVM_BUG_ON"),
]


@pytest.mark.parametrize(
    ("body", "impl", "kind", "headline"),
    MUTANTS,
    ids=[f"{type(m[1]).__name__}-{m[0].__name__}" for m in MUTANTS],
)
def test_a_mutant_of_a_fixed_variant_breaks_the_property(
    body: Callable[[Build], Any], impl: TdpMmu, kind: str, headline: str
) -> None:
    # the fixed variant each mutant patches is ok on the same body (tests/models/test_verdicts.py)
    assert type(impl).__mro__[1] in (Fix_a889ea54b3da, V5_13, V6_9)
    r = run(body, impl)
    assert r.verdict == "bug"
    found = [r.finding, *r.warnings]
    assert any(f is not None and f.kind == kind and headline in f.headline for f in found), [
        (f.kind, f.headline) for f in found if f
    ]


def test_get_from_zero_warns_as_refcount_t_does() -> None:
    """refcount_inc() on 0 where refcount_inc_not_zero() is needed: the RCU walk meets a dying root."""
    r = run(tm.concurrent_put_body, V6_9GetFromZero())
    found = [r.finding, *r.warnings]
    assert any(f is not None and f.kind == "refcount" for f in found), [
        (f.kind, f.headline) for f in found if f
    ]


def test_v5_13_never_gets_a_dying_root() -> None:
    """In v5.13 every put to zero is under the write lock or serialised by slots_lock with the
    other read-lock walkers, so inc_not_zero never fails here: the same mutation stays ok."""
    r = run(tm.concurrent_put_body, V5_13GetFromZero())
    assert r.verdict == "ok" and r.complete


# -- list_add vs list_add_tail (Sean: "would cause iteration to visit a root that was added after
#    the iteration started") -------------------------------------------------------------------------------
def walk_meets_new_root(impl: TdpMmu) -> Any:
    """The dirty-log walk yields on R1 while vCPU 2 loads a root of a new role: is it visited?"""
    visited: list[int] = []

    class Recording(type(impl)):  # type: ignore[misc]
        def for_each_tdp_mmu_root_yield_safe(self, kvm: Any, **kw: Any) -> Iterator[KvmMmuPage]:
            for root in super().for_each_tdp_mmu_root_yield_safe(kvm, **kw):
                visited.append(root.role_word)
                yield root

    def body() -> tuple[int, ...]:
        visited.clear()
        kvm, (_v1, v2) = tm.setup_vm(Build(Recording()), roles=(1, 2))
        kvm_mmu_reset_context_noload(v2)
        t1 = spawn(tm.enable_dirty_logging, kvm, name="dirty_log")
        t2 = spawn(vcpu_enter_guest, v2, name="vcpu2")
        join(t1, t2)
        kvm_destroy_vm(kvm)
        return tuple(visited)

    return scenario(body)


def kvm_mmu_reset_context_noload(v: Any) -> None:
    from kvmcheck.models.arch.x86.kvm.mmu.mmu import kvm_mmu_reset_context

    kvm_mmu_reset_context(v)  # vCPU 2 starts without a root: its next KVM_RUN adds one


def test_list_add_tail_lets_the_walk_visit_a_root_added_during_it() -> None:
    """Roles of the roots the dirty-log walk visited, over every interleaving."""

    def outcomes(variant: str) -> set[Any]:
        ex = explore(walk_meets_new_root(VARIANTS[variant]()), Dpor())
        assert all(hard is None for _, hard in ex.terminal)
        return {res for res, _ in ex.terminal}

    # list_add: the new root (role 2) goes in front of R1; a walk that began never sees it
    assert outcomes("a889ea54b3da") == {(1,), (2, 1)}
    # list_add_tail: a walk standing on R1 when the root is added goes on to visit it
    assert outcomes("list-add-tail") == {(1,), (1, 2)}


# -- issue 23: a leak report tells the race that leaked the root --------------------------------------
def leak_report(scn: Any, variant: str) -> tuple[Any, str]:
    """The finding and its text report as `kvmcheck check` prints it (with the values read)."""
    from kvmcheck.report.text import render_finding

    r = check(scn, variant=variant, keep_going=True)  # the roots WARN_ON is printed first: ask for the leak
    f = r.finding
    assert f is not None and f.kind == "leak"
    return f, render_finding(f, width=200)  # the traced replay's steps carry their values


def test_a_leak_report_shows_the_threads_racing_steps() -> None:
    """kmemleak names an allocation site, no step: the story is the threads' writes to the
    state they share (root_count), not "main sets up and starts the threads" up to the exit."""
    f, text = leak_report(tm.vm_destroy, "v5.11-rc2")
    lines = [" ".join(x.split()) for x in text.split("Scenario:", 1)[1].splitlines()]
    rows = [x for x in lines if x[:1].isdigit() or x.startswith(">")]
    assert any("memslot_delete write root0->root_count = 2" in x for x in rows)  # the walker's get
    assert any("vcpu write root0->root_count = 1" in x for x in rows)  # the vCPU's put meanwhile
    assert any("memslot_delete write root0->root_count = 0" in x for x in rows)  # the ignored put
    assert any("spin_unlock(kvm->mmu_lock)" in x for x in rows)  # the yield between them
    # main's line covers main's own setup only; the threads' steps are never folded into it
    setup = next(x for x in lines if "main sets up and starts the threads" in x)
    last_setup = int(setup.split()[0].split("-")[-1])
    first_thread = next(s.index for s in f.trace if s.thread != 0)
    assert last_setup < first_thread


def test_the_plain_get_leak_shows_the_lost_decrement() -> None:
    """v6.9-plain-get in vm_destroy: the walker reads 2, the vCPU puts 2 -> 1, the walker stores 3."""
    _, text = leak_report(tm.vm_destroy, "v6.9-plain-get")
    rows = [" ".join(x.split()) for x in text.splitlines()]
    steps = [x for x in rows if "tdp_mmu_root_count" in x]
    read = next(i for i, x in enumerate(steps) if "refcount_read" in x and "= 2" in x)
    put = next(i for i, x in enumerate(steps) if " vcpu refcount_dec_and_test" in x and "2→1" in x)
    store = next(i for i, x in enumerate(steps) if "refcount_set" in x and "1→3" in x)
    assert read < put < store, steps


# -- issue 23: the scenario docstrings say what expect= says -------------------------------------------
def test_root_reload_and_vm_destroy_docstrings_name_their_bugs() -> None:
    """They called v6.9-plain-get (both) and ben-v1 (vm_destroy) ok; expect= says bug, and so does the search."""
    from tests.models.test_verdicts import docstring_claims

    claims = {s.name: dict(docstring_claims(s)) for s in SCENARIOS}
    assert claims["tdp_mmu.root_reload"]["v6.9-plain-get"] == "bug"
    assert claims["tdp_mmu.vm_destroy"]["v6.9-plain-get"] == "bug"
    assert claims["tdp_mmu.vm_destroy"]["ben-v1"] == "bug"
    assert claims["tdp_mmu.next_root_freed"]["v6.9-plain-get"] == "bug"
    doc = " ".join((tm.root_reload.fn.__doc__ or "").split())
    assert "plain get never meets a zero count here" not in doc
    assert "a lost decrement" in doc


def test_the_list_add_claim_is_no_longer_made() -> None:
    """No property tells list_add from list_add_tail, so the page must not say one was checked."""
    import pathlib

    page = (pathlib.Path(__file__).parents[2] / "docs/models/seed002-tdp-mmu.md").read_text()
    text = " ".join(page.split())
    assert 'no property fails either way ("never problematic")' not in text
    assert 'Sean\'s "never problematic" is *not* checked' in text


@pytest.mark.parametrize(
    ("name", "variant", "function"),
    [
        ("root_reload", "ben-v1", "kvm_tdp_mmu_zap_gfn_range"),
        ("concurrent_put", "ben-v1", "kvm_tdp_mmu_zap_gfn_range"),
        ("vm_destroy", "ben-v1", "kvm_tdp_mmu_zap_gfn_range"),
        ("next_root_freed", "ben-v1", "kvm_tdp_mmu_wrprot_slot"),
        ("next_root_freed", "list-safe", "kvm_tdp_mmu_wrprot_slot"),
    ],
)
def test_kasan_headline_names_the_c_function_not_the_iterator_macro(name, variant, function):
    """for_each_tdp_mmu_root_yield_safe is a macro (and did not exist before a889ea54b3da): the
    kernel's KASAN report names the function the loop is inlined into (issue 23)."""
    r = check(getattr(tm, name), variant=variant)
    assert r.finding is not None
    assert r.finding.headline == f"BUG: KASAN: use-after-free in {function}"
