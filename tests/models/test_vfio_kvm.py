"""Seed 003: the vfio_kvm models, every variant, against the verdicts of issue 9."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kvmcheck import check, replay
from kvmcheck._engine import check as engine_check
from kvmcheck._engine.execution import Execution
from kvmcheck.kernel import kfree
from kvmcheck.models.drivers.vfio import variants
from kvmcheck.models.drivers.vfio.vfio_main import VfioMain2b48
from kvmcheck.models.kernel_module import symbol_get, symbol_put
from kvmcheck.models.virt.kvm import kvm_lifetime
from kvmcheck.models.virt.kvm.vfio import KvmVfioC, kvm_vfio_file_set_kvm
from kvmcheck.scenarios import vfio_kvm as vk

SCENARIOS = [vk.open_vs_release, vk.open_then_release, vk.close_last_ref, vk.group_add_del]
CIRCULAR = "WARNING: possible circular locking dependency detected"
RECURSIVE = "WARNING: possible recursive locking detected"
FIXED = ("2b48f52f2bff", "alex-incremental", "9e0f4f2918c2")

# (scenario, variant) -> (finding kind, a string its headline contains, strings its message contains)
HEADLINES = {
    ("vfio_kvm.open_vs_release", "v6.0"): ("deadlock", RECURSIVE, ["group->group_rwsem"]),
    ("vfio_kvm.open_vs_release", "v6.1"): ("deadlock", RECURSIVE, ["group->group_lock"]),
    ("vfio_kvm.open_vs_release", "51cdc8bc120e"): (
        "deadlock",
        "INFO: task blocked forever (deadlock)",
        ["kvm->lock", "group->group_lock"],
    ),
    ("vfio_kvm.open_vs_release", "spinlock-no-ref"): ("use-after-free", "", ["kvm"]),
    ("vfio_kvm.open_then_release", "51cdc8bc120e"): ("lock-order", CIRCULAR, ["kvm->lock", "group_lock"]),
    ("vfio_kvm.close_last_ref", "v6.0"): ("deadlock", RECURSIVE, ["group->group_rwsem"]),
    ("vfio_kvm.close_last_ref", "v6.1"): ("deadlock", RECURSIVE, ["group->group_lock"]),
    ("vfio_kvm.close_last_ref", "51cdc8bc120e"): (
        "use-after-free",
        "WARNING: held lock freed!",
        ["kvm->lock"],
    ),
    ("vfio_kvm.close_last_ref", "spinlock-no-ref"): (
        "use-after-free",
        "WARNING: held lock freed!",
        ["kvm->lock"],
    ),
    **{
        ("vfio_kvm.group_add_del", v): (
            "use-after-free",
            "BUG: KASAN: use-after-free",
            ["kvm_vfio_group->file"],
        )
        for v in variants.VARIANTS
        if v != "9e0f4f2918c2"
    },
}


BUGS = [(s, v) for s in SCENARIOS for v in s.variants if s.expect[v] == "bug"]


@pytest.mark.parametrize(("scn", "variant"), BUGS, ids=[f"{s.name}[{v}]" for s, v in BUGS])
def test_headline(scn: Any, variant: str) -> None:
    """What each bug reads like (the verdicts themselves: tests/models/test_verdicts.py)."""
    f = check(scn, variant=variant).finding
    assert f is not None
    kind, headline, words = HEADLINES[(scn.name, variant)]
    assert f.kind == kind, str(f)
    assert headline in f.headline
    for w in words:
        assert w in f.message, f.message


def test_every_bug_has_a_headline() -> None:
    assert {(s.name, v) for s, v in BUGS} == set(HEADLINES)


def test_the_issue_table_is_the_expectation() -> None:
    """The verdicts issue 9 fixes, where it fixes them (the rest are what the checker finds)."""
    assert vk.open_vs_release.expect["51cdc8bc120e"] == "bug"
    assert vk.open_vs_release.expect["spinlock-no-ref"] == "bug"
    assert vk.open_then_release.expect["51cdc8bc120e"] == "bug"
    assert vk.close_last_ref.expect["v6.0"] == "bug"
    assert vk.close_last_ref.expect["v6.1"] == "bug"
    assert vk.group_add_del.expect["51cdc8bc120e"] == "bug"
    assert vk.group_add_del.expect["2b48f52f2bff"] == "bug"
    assert vk.group_add_del.expect["9e0f4f2918c2"] == "ok"
    for v in FIXED:
        for s in (vk.open_vs_release, vk.open_then_release, vk.close_last_ref):
            assert s.expect[v] == "ok"


# -- lockdep before the deadlock ------------------------------------------------------------------
@pytest.fixture
def executions() -> Iterator[list[Execution]]:
    """Every execution a check runs (the engine's per-execution setup hook sees each one)."""
    seen: list[Execution] = []
    hook = seen.append
    engine_check.runtime_setup_hooks.append(hook)
    try:
        yield seen
    finally:
        engine_check.runtime_setup_hooks.remove(hook)


def _blocked_forever(ex: Execution) -> bool:
    """The execution ended with a thread that could never run again (not: abandoned by DPOR)."""
    if ex.outcome == "blocked":  # cut short by the search's sleep sets: not an end state
        return False
    return any(f.kind == "deadlock" for f in ex.findings) or any(t.pending is not None for t in ex.threads)


def test_lockdep_finds_the_abba_in_an_exploration_where_nothing_deadlocks(
    executions: list[Execution],
) -> None:
    r = check(vk.open_then_release, variant="51cdc8bc120e")
    f = r.finding
    assert f is not None
    assert f.kind == "lock-order"
    assert f.headline == CIRCULAR
    # A WARN does not stop the search: it ran until DPOR was exhausted, and no execution
    # of it had a thread blocked forever (or any other hard finding).
    # the last one replays the report; "blocked" ones were abandoned by the search, unfinished
    searched = [ex for ex in executions if not ex.tracing and ex.outcome != "blocked"]
    assert len(searched) == r.executions >= 1
    assert [ex for ex in searched if _blocked_forever(ex)] == []
    assert all(ex.finding is None for ex in searched)
    assert not any(w.kind == "deadlock" for w in r.warnings)
    # the report: both lock classes, both acquisition chains, the CPU0/CPU1 table
    d = f.details
    assert d[0] == "release is trying to acquire lock:"
    assert " (group->group_lock), at: vfio_file_set_kvm" in d[1]
    assert d[d.index("but task is already holding lock:") + 1] == " (kvm->lock)"
    assert "which lock already depends on the new lock." in d
    assert "the existing dependency chain (in reverse order) is:" in d
    # the kernel's chain: every lock linking the two, each with the stack that took it
    chain = ["-> #3 (kvm->lock):", "-> #2 (matrix_dev->guests_lock):", "-> #1 (dev_set->lock):"]
    at = [d.index(line) for line in chain]
    zero = d.index("-> #0 (group->group_lock):")
    assert at == sorted(at)
    assert at[-1] < zero
    opener = " ".join(d[at[0] : zero])  # the open path: group_lock -> dev_set -> guests -> kvm->lock
    for fn in (
        "get_update_locks_for_kvm",
        "vfio_ap_mdev_set_kvm",
        "vfio_device_open",
        "vfio_device_group_open",
    ):
        assert fn in opener, opener
    for held in ("matrix_dev->guests_lock", "dev_set->lock", "group->group_lock"):
        assert f"[taken by device while holding {held}]" in opener
    releaser = " ".join(d[zero : d.index("other info that might help us debug this:")])
    for fn in ("vfio_file_set_kvm", "kvm_vfio_release", "kvm_device_release"):
        assert fn in releaser, releaser
    assert "  group->group_lock --> matrix_dev->guests_lock --> kvm->lock" in d  # "Chain exists of:"
    table = d[d.index(" Possible unsafe locking scenario:") :]
    assert "       CPU0                    CPU1" in table
    assert [ln.strip() for ln in table if ln.strip().startswith("lock(")] == [
        "lock(kvm->lock);",
        "lock(matrix_dev->guests_lock);",
        "lock(kvm->lock);",
        "lock(group->group_lock);",
    ]
    assert " *** DEADLOCK ***" in table


def test_the_blocked_execution_counter_sees_a_deadlock(executions: list[Execution]) -> None:
    """The counter above is not vacuous: the racing scenario on the same kernel deadlocks."""
    r = check(vk.open_vs_release, variant="51cdc8bc120e")
    assert r.finding is not None
    assert r.finding.kind == "deadlock"
    assert [ex for ex in executions if _blocked_forever(ex)] != []
    # and lockdep had already warned about the cycle in a run that did not deadlock
    assert any(w.headline == CIRCULAR for w in r.warnings)


@pytest.mark.parametrize(
    ("scn", "variant"), [(vk.open_vs_release, "51cdc8bc120e"), (vk.open_then_release, "51cdc8bc120e")]
)
def test_counterexamples_replay(scn: Any, variant: str) -> None:
    r = check(scn, variant=variant)
    assert r.finding is not None
    again = replay(scn, r.finding.schedule, variant=variant)
    assert again.finding is not None
    assert (again.finding.kind, again.finding.message) == (r.finding.kind, r.finding.message)


# -- the VM's lifetime: destroyed exactly once ---------------------------------------------------
@pytest.fixture
def destroys(monkeypatch: pytest.MonkeyPatch, executions: list[Execution]) -> dict[int, int]:
    """kvm_destroy_vm calls, per execution (by index into ``executions``)."""
    counts: dict[int, int] = {}
    real = kvm_lifetime.kvm_destroy_vm

    def counting(kvm: Any) -> None:
        n = len(executions) - 1
        counts[n] = counts.get(n, 0) + 1
        real(kvm)

    monkeypatch.setattr(kvm_lifetime, "kvm_destroy_vm", counting)
    return counts


ONCE = [(s, v) for s in SCENARIOS for v in s.variants if s.expect[v] == "ok" and v in FIXED]


@pytest.mark.parametrize(("scn", "variant"), ONCE, ids=[f"{s.name}[{v}]" for s, v in ONCE])
def test_fixed_variants_destroy_the_vm_exactly_once(
    scn: Any, variant: str, executions: list[Execution], destroys: dict[int, int]
) -> None:
    r = check(scn, variant=variant)
    assert r.verdict == "ok"
    assert r.complete
    assert r.warnings == []
    finished = [i for i, ex in enumerate(executions) if ex.outcome == "complete"]
    assert finished
    assert all(destroys.get(i) == 1 for i in finished), destroys


class LeakingPut(VfioMain2b48):
    """Mutant: vfio_device_put_kvm forgets kvm_put_kvm (but drops the symbol and the pointer)."""

    version = "mutant-leak"

    def vfio_device_put_kvm(self, device: Any) -> None:
        if device.kvm is not None:
            device.put_kvm = None
            symbol_put("kvm_put_kvm")
            device.kvm = None


class DoublePut(VfioMain2b48):
    """Mutant: vfio_device_put_kvm drops vfio's kvm reference twice."""

    version = "mutant-double-put"

    def vfio_device_put_kvm(self, device: Any) -> None:
        if device.kvm is not None:
            device.put_kvm(device.kvm)
        super().vfio_device_put_kvm(device)


class UnbalancedSymbol(VfioMain2b48):
    """Mutant: the failure path of _vfio_device_get_kvm_safe never symbol_puts kvm_get_kvm_safe."""

    version = "mutant-symbol"

    def kvm_to_get(self, device: Any, kvm: Any) -> Any:
        symbol_get("kvm_get_kvm_safe")  # an extra reference on kvm.ko, never dropped
        return kvm


class NoFput(KvmVfioC):
    """Mutant: kvm_vfio_release forgets to fput each group's file."""

    version = "mutant-no-fput"

    def kvm_vfio_release(self, dev: Any) -> None:
        kv = dev.private
        for kvg in kv.group_list:
            kvm_vfio_file_set_kvm(kvg.file, None)
            kv.group_list = tuple(k for k in kv.group_list if k is not kvg)
            kfree(kvg)
        self.kvm_vfio_update_coherency(dev)
        kfree(kv)
        kfree(dev)


def _with_mutant(monkeypatch: pytest.MonkeyPatch, *parts: Any) -> None:
    monkeypatch.setitem(variants.BUILDS, "2b48f52f2bff", variants.FIX_2B48.patched(*parts))


def test_mutant_that_never_puts_the_vm_is_a_kmemleak_report(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_mutant(monkeypatch, LeakingPut())
    r = check(vk.close_last_ref, variant="2b48f52f2bff")
    assert r.finding is not None
    assert r.finding.kind == "leak"
    assert r.finding.headline == "kmemleak: 1 new suspected memory leak"
    assert "Kvm" in r.finding.message


def test_mutant_that_puts_the_vm_twice_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_mutant(monkeypatch, DoublePut())
    r = check(vk.open_then_release, variant="2b48f52f2bff")
    assert r.verdict == "bug"
    reports = [r.finding, *r.warnings]
    kinds = {f.kind for f in reports if f is not None}
    # the VM dies at vfio's second put, under the VMM's feet: its later puts touch freed memory
    assert kinds & {"use-after-free", "double-free"}, reports


def test_mutant_leaking_a_module_reference_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_mutant(monkeypatch, UnbalancedSymbol())
    r = check(vk.open_then_release, variant="2b48f52f2bff")
    assert r.finding is not None
    assert r.finding.kind == "assertion"
    assert "module kvm: 1 reference(s) taken by symbol_get never put" in r.finding.message


def test_mutant_leaking_a_file_reference_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_mutant(monkeypatch, NoFput())
    r = check(vk.open_then_release, variant="2b48f52f2bff")
    assert r.finding is not None
    assert r.finding.kind == "assertion"
    assert "group file f_count 2, expected 1" in r.finding.message


def test_spinlock_no_ref_hands_the_driver_a_freed_vm() -> None:
    """The open path alone (no device close, so vfio-ap's held-lock-freed cannot come first)."""
    from kvmcheck import join, scenario, spawn

    @scenario
    def open_only_vs_release() -> None:
        vm = vk.setup_vm("spinlock-no-ref")
        join(spawn(vk.open_device, vm, name="device"), spawn(vk.release_kvm_fds, vm, name="release"))

    r = check(open_only_vs_release)
    f = r.finding
    assert f is not None
    assert f.kind == "use-after-free"
    assert f.headline.startswith("BUG: KASAN: use-after-free")
    # vfio-ap's get_update_locks_for_kvm / kvm_get_kvm on the dead VM: KASAN covers the embedded
    # kvm->lock as well as the plain field, so either access is the first report
    assert f.message in (
        "read of kvm->users_count after kfree",
        "mutex_lock on freed object: mutex_lock(kvm->lock)",
    ), f.message
    functions = {fn for s in f.trace for fn in s.stack}
    assert {"vfio_ap_mdev_set_kvm", "kvm_destroy_vm"} <= functions


@pytest.mark.parametrize("variant", ["v6.0", "v6.1"])
def test_v60_v61_driver_can_take_a_reference_on_a_dead_vm(variant: str) -> None:
    """The open path alone: .destroy waits for the group lock (v6.0 rwsem, v6.1 mutex) while the
    driver's open holds it."""
    from kvmcheck import join, scenario, spawn

    @scenario
    def open_only_vs_release() -> None:
        vm = vk.setup_vm(variant)
        join(spawn(vk.open_device, vm, name="device"), spawn(vk.release_kvm_fds, vm, name="release"))

    r = check(open_only_vs_release)
    f = r.finding
    assert f is not None
    assert f.kind == "refcount"
    assert f.message == "refcount_t: addition on 0; use-after-free. (kvm->users_count)"
    assert f.headline == "WARNING: refcount bug in kvm_get_kvm"


def test_close_last_ref_on_51cdc_also_has_the_lockdep_cycle() -> None:
    """The close path takes kvm->lock under group_lock too: lockdep says so before the free."""
    r = check(vk.close_last_ref, variant="51cdc8bc120e")
    assert r.finding is not None
    assert r.finding.headline == "WARNING: held lock freed!"
    assert any(w.headline == CIRCULAR for w in r.warnings)
    assert "release_update_locks_for_kvm" not in r.finding.message  # the free comes first
    functions = {fn for st in r.finding.trace for fn in st.stack}
    assert {"vfio_ap_mdev_unset_kvm", "kvm_put_kvm", "kvm_destroy_vm"} <= functions


def test_symbol_get_of_an_absent_module_is_null() -> None:
    from kvmcheck import scenario

    @scenario
    def no_kvm_module() -> None:
        assert symbol_get("kvm_put_kvm") is None

    assert check(no_kvm_module).verdict == "ok"


def test_list_shows_the_new_system() -> None:
    from kvmcheck._loader import bundled

    names = {s.name for s in bundled()}
    assert {
        "vfio_kvm.open_vs_release",
        "vfio_kvm.open_then_release",
        "vfio_kvm.close_last_ref",
        "vfio_kvm.group_add_del",
    } <= names
    assert set(vk.open_vs_release.variants) == set(variants.VARIANTS)


# -- issue 23: v6.1 is the group_lock mutex of c82e81ab2569; the rwsem is v6.0 -------------------
def test_v61_takes_the_group_lock_mutex_and_v60_the_rwsem() -> None:
    """The lock each version's set_kvm and open take, as their report names it."""
    names = {}
    for v in ("v6.0", "v6.1"):
        f = check(vk.close_last_ref, variant=v).finding
        assert f is not None and f.headline == RECURSIVE
        names[v] = f.message
    assert "group->group_rwsem" in names["v6.0"] and "group->group_lock" not in names["v6.0"]
    assert "group->group_lock" in names["v6.1"] and "group->group_rwsem" not in names["v6.1"]
    assert variants.VfioGroupV61.version == "v6.1"  # the class the v6.1 build uses
    assert type(variants.BUILDS["v6.1"].vfio_group).__name__ == "VfioGroupV61"
    assert type(variants.BUILDS["v6.0"].vfio_main).__name__ == "VfioMainV60"


def test_close_last_ref_says_exit_does_not_reach_it() -> None:
    """Its reachability argument: explicit close() ordering, not process exit."""
    doc = " ".join((vk.close_last_ref.fn.__doc__ or "").split())
    assert "only through explicit close() calls in this order" in doc
    assert "A VMM that merely exits does *not* get here" in doc
    assert "its fds are closed in fd order, the device's last" not in doc


def test_open_vs_release_does_not_claim_process_exit_races_an_open() -> None:
    doc = " ".join((vk.open_vs_release.fn.__doc__ or "").split())
    assert "QEMU exiting" not in doc
    assert "Not by the VMM exiting" in doc
