"""lockdep: lock-order inversions that never deadlock, trylock, nesting
annotations, lock classes, irq-safety, locks held at thread exit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kvmcheck import Result, Scenario, check, join, replay, scenario, spawn
from kvmcheck.kernel import (
    READ_ONCE,
    WRITE_ONCE,
    Mutex,
    RwLock,
    SpinLock,
    Struct,
    local_irq_disable,
    local_irq_enable,
    mutex_lock,
    mutex_lock_nested,
    mutex_unlock,
    read_lock,
    read_lock_irqsave,
    read_unlock,
    read_unlock_irqrestore,
    spawn_irq,
    spin_lock,
    spin_lock_irq,
    spin_lock_irqsave,
    spin_lock_nested,
    spin_trylock,
    spin_unlock,
    spin_unlock_irq,
    spin_unlock_irqrestore,
    write_lock,
    write_lock_irq,
    write_unlock,
    write_unlock_irq,
)
from tests.kernel.helpers import found, ok, run

CIRCULAR = "WARNING: possible circular locking dependency detected"
RECURSIVE = "WARNING: possible recursive locking detected"
INCONSISTENT = "WARNING: inconsistent lock state"


class Flag(Struct):
    x: int = 0


def _ab(a: Any, b: Any) -> None:
    spin_lock(a)
    spin_lock(b)
    spin_unlock(b)
    spin_unlock(a)


# -- inversions that never deadlock ----------------------------------------------------------------
@scenario
def serialised_inversion() -> None:
    """A takes L1 then L2 and exits before B starts; B takes L2 then L1: no deadlock is possible."""
    l1, l2 = SpinLock("L1"), SpinLock("L2")
    join(spawn(_ab, l1, l2, name="A"))
    join(spawn(_ab, l2, l1, name="B"))


def test_inversion_that_never_deadlocks_is_reported() -> None:
    r = check(serialised_inversion)
    found(r, "lock-order", CIRCULAR)
    f = r.finding
    assert f is not None
    assert "L1" in f.message and "L2" in f.message
    text = "\n".join(f.details)
    assert "L1" in text and "L2" in text
    assert "*** DEADLOCK ***" in text
    # print_circular_bug()'s layout: both locks, then the chain in reverse order, each with its stack
    assert f.details[0] == "B is trying to acquire lock:"
    assert "but task is already holding lock:" in f.details
    assert "which lock already depends on the new lock." in f.details
    assert "the existing dependency chain (in reverse order) is:" in f.details
    one, zero = f.details.index("-> #1 (L2):"), f.details.index("-> #0 (L1):")
    assert one < zero
    assert f.details[one + 1].strip().startswith("_ab (")  # A took L2 in _ab, holding L1
    assert "[taken by A while holding L1]" in f.details[one + 2]
    assert f.details[zero + 1].strip().startswith("_ab (")  # B takes L1 in _ab, holding L2
    table = f.details[f.details.index(" Possible unsafe locking scenario:") :]
    assert [ln.strip() for ln in table if ln.strip().startswith("lock(")] == [
        "lock(L2);",
        "lock(L1);",
        "lock(L2);",
        "lock(L1);",
    ]
    # no explored execution deadlocked: the circular dependency is the worst finding, and nothing else
    assert r.warnings == []
    # both orders were recorded in one execution (A then B), so no earlier run is needed
    assert "|" not in f.schedule
    again = replay(serialised_inversion, f.schedule)
    assert again.finding is not None
    assert (again.finding.kind, again.finding.headline, again.finding.message) == (
        f.kind,
        f.headline,
        f.message,
    )


@scenario
def inversion_across_executions() -> None:
    """Which order main takes depends on a race, so each execution records only one order:
    the cycle closes in a later execution, against the dependency an earlier one recorded."""
    flag, a, b = Flag(), Mutex("M1"), Mutex("M2")
    t = spawn(lambda: WRITE_ONCE(flag, "x", 1))
    first, second = (a, b) if READ_ONCE(flag, "x") else (b, a)
    mutex_lock(first)
    mutex_lock(second)
    mutex_unlock(second)
    mutex_unlock(first)
    join(t)


def test_inversion_across_executions_needs_the_earlier_run_to_replay() -> None:
    r = check(inversion_across_executions)
    found(r, "lock-order", CIRCULAR)
    f = r.finding
    assert f is not None
    assert r.executions == 2
    assert "M1" in f.message and "M2" in f.message
    assert "|" in f.schedule  # the earlier run's schedule comes first
    earlier, last = f.schedule.rsplit("|", 1)
    assert earlier and last

    again = replay(inversion_across_executions, f.schedule)
    assert again.verdict == "bug"
    assert again.finding is not None
    assert (again.finding.kind, again.finding.headline, again.finding.message) == (
        f.kind,
        f.headline,
        f.message,
    )
    # the last run alone records only one order: nothing to report
    alone = replay(inversion_across_executions, last)
    assert alone.verdict == "ok"


def test_consistent_order_is_fine() -> None:
    def body() -> None:
        l1, l2 = SpinLock("L1"), SpinLock("L2")
        join(spawn(_ab, l1, l2), spawn(_ab, l1, l2))
        _ab(l1, l2)

    r = run(body)
    ok(r)
    assert r.executions >= 2


def test_three_lock_cycle_is_reported() -> None:
    def body() -> None:
        a, b, c = SpinLock("LA"), SpinLock("LB"), SpinLock("LC")
        _ab(a, b)
        _ab(b, c)
        _ab(c, a)

    r = run(body)
    found(r, "lock-order", CIRCULAR)
    text = "\n".join(r.finding.details)  # type: ignore[union-attr]
    assert all(name in text for name in ("LA", "LB", "LC"))
    # a chain longer than two locks is spelled out before the scenario, as lockdep does
    assert "Chain exists of:" in r.finding.details  # type: ignore[union-attr]
    assert "  LA --> LB --> LC" in r.finding.details  # type: ignore[union-attr]


@pytest.mark.parametrize("reverse", ["trylock", "lock"])
def test_trylock_in_reverse_order_does_not_close_a_cycle(reverse: str) -> None:
    def body() -> None:
        l1, l2 = SpinLock("L1"), SpinLock("L2")

        def fwd() -> None:
            _ab(l1, l2)

        def rev() -> None:
            spin_lock(l2)
            if reverse == "trylock":
                if spin_trylock(l1):
                    spin_unlock(l1)
            else:
                spin_lock(l1)
                spin_unlock(l1)
            spin_unlock(l2)

        join(spawn(fwd), spawn(rev))

    r = run(body, keep_going=True)
    if reverse == "trylock":
        ok(r)
        assert r.executions >= 2
    else:
        found(r, "deadlock", "INFO: task blocked forever (deadlock)")
        assert any(w.headline == CIRCULAR for w in r.warnings)


def test_trylocked_lock_then_lock_still_records_a_dependency() -> None:
    """A lock taken *while holding* a trylocked lock is a normal dependency."""

    def body() -> None:
        l1, l2 = SpinLock("L1"), SpinLock("L2")
        assert spin_trylock(l1)
        spin_lock(l2)
        spin_unlock(l2)
        spin_unlock(l1)
        _ab(l2, l1)

    found(run(body), "lock-order", CIRCULAR)


# -- lock classes and *_nested -----------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["spin", "mutex"])
@pytest.mark.parametrize("nested", [True, False])
def test_same_class_needs_a_nesting_annotation(kind: str, nested: bool) -> None:
    """Two locks of one class (here: one name) taken nested: fine with a subclass, else recursive."""

    def body() -> None:
        if kind == "spin":
            parent, child = SpinLock("kvm->slots_lock"), SpinLock("kvm->slots_lock")
            spin_lock(parent)
            if nested:
                spin_lock_nested(child, 1)
            else:
                spin_lock(child)
            spin_unlock(child)
            spin_unlock(parent)
        else:
            parent, child = Mutex("vcpu->mutex"), Mutex("vcpu->mutex")
            mutex_lock(parent)
            if nested:
                mutex_lock_nested(child, 1)
            else:
                mutex_lock(child)
            mutex_unlock(child)
            mutex_unlock(parent)

    r = run(body)
    if nested:
        ok(r)
    else:
        found(r, "lock-order", RECURSIVE)
        assert "same class" in r.finding.message  # type: ignore[union-attr]
        assert "_nested" in r.finding.message  # type: ignore[union-attr]
        details = r.finding.details  # type: ignore[union-attr]
        assert "but task is already holding lock:" in details
        assert " May be due to missing lock nesting notation" in details
        assert " *** DEADLOCK ***" in details


def test_different_classes_are_not_recursive() -> None:
    def body() -> None:
        _ab(SpinLock("outer"), SpinLock("inner"))

    ok(run(body))


def _make_lock() -> SpinLock:
    return SpinLock()  # one initialisation site: one lock class, as for spin_lock_init()


def test_unnamed_locks_from_different_lines_are_different_classes() -> None:
    """An unnamed lock's class is the model line that constructs it."""

    def body() -> None:
        a = SpinLock()
        b = SpinLock()
        _ab(a, b)

    ok(run(body))


def test_unnamed_locks_from_one_init_site_share_a_class() -> None:
    """Locks built at one line of a helper share a class, whoever calls the helper."""

    def body() -> None:
        a = _make_lock()
        b = _make_lock()
        _ab(a, b)

    found(run(body), "lock-order", RECURSIVE)


# -- irq safety --------------------------------------------------------------------------------------
def _irq_and_process(
    process: Callable[[Any], None], handler_lock: Callable[[Any], None], lock_type: type = SpinLock
) -> Result:
    def body() -> None:
        lk = lock_type("xen->evtchn_lock")
        t = spawn_irq(handler_lock, lk)
        process(lk)
        join(t)

    return run(body)


def _spin(lk: Any) -> None:
    spin_lock(lk)
    spin_unlock(lk)


def _spin_irq(lk: Any) -> None:
    spin_lock_irq(lk)
    spin_unlock_irq(lk)


def _spin_irqsave(lk: Any) -> None:
    flags = spin_lock_irqsave(lk)
    spin_unlock_irqrestore(lk, flags)


def _irqs_off_spin(lk: Any) -> None:
    local_irq_disable()
    spin_lock(lk)
    spin_unlock(lk)
    local_irq_enable()


def test_irq_lock_taken_with_irqs_enabled_is_inconsistent() -> None:
    r = _irq_and_process(_spin, _spin)
    found(r, "lock-order", INCONSISTENT)
    msg = r.finding.message  # type: ignore[union-attr]
    assert "xen->evtchn_lock" in msg
    assert "{IN-HARDIRQ-W}" in msg and "{HARDIRQ-ON-W}" in msg


def test_irq_lock_taken_with_irqs_enabled_before_any_irq_is_inconsistent() -> None:
    """The order of the two usages does not matter."""

    def body() -> None:
        lk = SpinLock("xen->evtchn_lock")
        _spin(lk)
        join(spawn_irq(_spin, lk))

    found(run(body), "lock-order", INCONSISTENT)


@pytest.mark.parametrize("process", [_spin_irq, _spin_irqsave, _irqs_off_spin])
def test_irq_lock_taken_with_irqs_disabled_is_consistent(process: Callable[[Any], None]) -> None:
    r = _irq_and_process(process, _spin)
    ok(r)


def test_lock_never_taken_in_irq_may_be_taken_with_irqs_on() -> None:
    def body() -> None:
        lk = SpinLock("process-only")
        join(spawn(_spin, lk), spawn(_spin, lk))

    ok(run(body))


def _read(lk: Any) -> None:
    read_lock(lk)
    read_unlock(lk)


def _read_irqsave(lk: Any) -> None:
    flags = read_lock_irqsave(lk)
    read_unlock_irqrestore(lk, flags)


def _write(lk: Any) -> None:
    write_lock(lk)
    write_unlock(lk)


def _write_irq(lk: Any) -> None:
    write_lock_irq(lk)
    write_unlock_irq(lk)


@pytest.mark.parametrize(
    ("handler", "process", "inconsistent"),
    [
        (_read, _read, False),  # IN-HARDIRQ-R + HARDIRQ-ON-R: a recursive reader in irq never waits
        (_read_irqsave, _read, False),
        (_read, _write, True),  # IN-HARDIRQ-R + HARDIRQ-ON-W: the irq reader spins on the writer
        (_write, _read, True),  # IN-HARDIRQ-W + HARDIRQ-ON-R
        (_read, _write_irq, False),  # the pfncache pattern: readers in irq, writers with irqs off
    ],
)
def test_rwlock_irq_usage(
    handler: Callable[[Any], None], process: Callable[[Any], None], inconsistent: bool
) -> None:
    r = _irq_and_process(process, handler, RwLock)
    if inconsistent:
        found(r, "lock-order", INCONSISTENT)
    else:
        ok(r)


# -- locks held at thread exit ----------------------------------------------------------------------
@pytest.mark.parametrize("where", ["thread", "main"])
@pytest.mark.parametrize("releases", [True, False])
def test_exit_holding_a_lock(where: str, releases: bool) -> None:
    def body() -> None:
        lk = Mutex("kvm->slots_lock")

        def worker() -> None:
            mutex_lock(lk)
            if releases:
                mutex_unlock(lk)

        if where == "thread":
            join(spawn(worker, name="worker"))
        else:
            worker()

    r = run(body)
    if releases:
        ok(r)
    else:
        found(r, "lock-order", "WARNING: lock held when returning to user space!")
        msg = r.finding.message  # type: ignore[union-attr]
        assert "kvm->slots_lock" in msg
        assert ("worker" if where == "thread" else "main") in msg


# -- irq-safe -> irq-unsafe inversion --------------------------------------------------------------
def _irq_inversion(other_irqsave: bool) -> Scenario:
    from kvmcheck.kernel import (
        SpinLock,
        spawn_irq,
        spin_lock,
        spin_lock_irqsave,
        spin_unlock,
        spin_unlock_irqrestore,
    )

    @scenario
    def body() -> None:
        a, b = SpinLock("A"), SpinLock("B")

        def irq() -> None:  # A is taken in hard-irq context: irq-safe
            spin_lock(a)
            spin_unlock(a)

        def proc() -> None:  # A -> B
            f = spin_lock_irqsave(a)
            spin_lock(b)
            spin_unlock(b)
            spin_unlock_irqrestore(a, f)

        def other() -> None:  # B with irqs on makes it irq-unsafe
            if other_irqsave:
                f = spin_lock_irqsave(b)
                spin_unlock_irqrestore(b, f)
            else:
                spin_lock(b)
                spin_unlock(b)

        join(spawn_irq(irq), spawn(proc), spawn(other))

    return body


def test_irq_safe_to_irq_unsafe_order_is_reported() -> None:
    r = check(_irq_inversion(other_irqsave=False))
    assert r.finding is not None
    assert r.finding.kind == "lock-order"
    assert r.finding.headline == "WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected"
    assert "A" in r.finding.message and "B" in r.finding.message


def test_irq_safe_to_irq_safe_order_is_fine() -> None:
    r = check(_irq_inversion(other_irqsave=True))
    assert r.verdict == "ok"
    assert r.complete


# -- held lock freed -------------------------------------------------------------------------------
@pytest.mark.parametrize("holding", [True, False])
def test_freeing_memory_with_a_held_lock_in_it(holding: bool) -> None:
    """debug_check_no_locks_freed(): the task frees an object whose embedded lock it holds."""
    from kvmcheck.kernel import kfree, kmalloc
    from kvmcheck.kernel.lockdep import debug_check_no_locks_freed

    class Obj(Struct):
        x: int = 0

        def __init__(self, **values: Any) -> None:
            super().__init__(**values)
            self.lock = Mutex("obj->lock")

    def body() -> None:
        o = kmalloc(Obj)
        mutex_lock(o.lock)
        if not holding:
            mutex_unlock(o.lock)
        debug_check_no_locks_freed(o)
        kfree(o)

    r = run(body)
    if holding:
        found(r, "use-after-free", "WARNING: held lock freed!")
        assert "obj->lock" in r.finding.message  # type: ignore[union-attr]
    else:
        ok(r)


def test_dependency_is_recorded_from_the_most_recent_held_lock() -> None:
    """check_prevs_add(): holding A then B, taking C records B -> C (A -> C only through B),
    so the chain a report prints goes through every linking lock, as the kernel's does."""

    def body() -> None:
        a, b, c = SpinLock("LA"), SpinLock("LB"), SpinLock("LC")
        spin_lock(a)
        spin_lock(b)
        spin_lock(c)
        spin_unlock(c)
        spin_unlock(b)
        spin_unlock(a)
        _ab(c, a)

    r = run(body)
    found(r, "lock-order", CIRCULAR)
    d = r.finding.details  # type: ignore[union-attr]
    assert "-> #2 (LC):" in d  # taken holding LB
    assert "-> #1 (LB):" in d  # taken holding LA
    assert "  LA --> LB --> LC" in d


def test_dependency_from_below_a_trylocked_lock() -> None:
    """Past a trylocked lock on top, the first lock that was not trylocked is a prev too."""

    def body() -> None:
        a, t, b = SpinLock("LA"), SpinLock("LT"), SpinLock("LB")
        spin_lock(a)
        assert spin_trylock(t)
        spin_lock(b)  # LT -> LB and LA -> LB
        spin_unlock(b)
        spin_unlock(t)
        spin_unlock(a)
        _ab(b, a)

    r = run(body)
    found(r, "lock-order", CIRCULAR)
    assert "-> #1 (LB):" in r.finding.details  # type: ignore[union-attr]


def test_read_acquisitions_show_as_rlock_in_the_scenario() -> None:
    """print_circular_lock_scenario(): a read-held target or a read source is an rlock()."""
    from kvmcheck.kernel import RwSem, down_read, up_read

    def body() -> None:
        sem, m = RwSem("S"), Mutex("M")
        down_read(sem)
        mutex_lock(m)
        mutex_unlock(m)
        up_read(sem)
        mutex_lock(m)
        down_read(sem)  # M held, S wanted for read: S -> M was recorded
        up_read(sem)
        mutex_unlock(m)

    r = run(body)
    found(r, "lock-order", CIRCULAR)
    table = [ln.strip() for ln in r.finding.details if "lock(" in ln]  # type: ignore[union-attr]
    assert table == ["lock(M);", "lock(S);", "lock(M);", "rlock(S);"]


# -- reader types, softirq usage, irqs enabled with locks held (kernel/locking/lockdep.c) ---------
def _er_re() -> None:
    """queued_read_lock_hardirq_ER_rE: B -> A(recursive read, in irq), then A(read) -> B: the
    cycle is not strong (-(ER)-> then -(SN)->), so lockdep says nothing."""
    from kvmcheck.kernel import spawn_irq

    a, b = RwLock("rwlock_A"), RwLock("rwlock_B")

    def irq() -> None:
        write_lock(b)
        read_lock(a)
        read_unlock(a)
        write_unlock(b)

    join(spawn_irq(irq))
    local_irq_disable()
    read_lock(a)
    write_lock(b)
    write_unlock(b)
    read_unlock(a)
    local_irq_enable()


def test_cycle_through_a_recursive_reader_is_not_strong() -> None:
    ok(run(_er_re))  # was: "possible circular locking dependency" (dependency types ignored)


def test_cycle_through_a_non_recursive_reader_is_reported() -> None:
    """queued_read_lock_hardirq_RE_Er: A(read, irq) -> B, then B -> A(process read, not recursive)."""

    def body() -> None:
        a, b = RwLock("rwlock_A"), RwLock("rwlock_B")

        def irq() -> None:
            read_lock(a)
            write_lock(b)
            write_unlock(b)
            read_unlock(a)

        join(spawn_irq(irq))
        local_irq_disable()
        write_lock(b)
        read_lock(a)
        read_unlock(a)
        write_unlock(b)
        local_irq_enable()

    found(run(body), "lock-order", CIRCULAR)


def test_a_pair_seen_again_with_a_new_type_is_checked_again() -> None:
    """rlock_chaincache_ABBA1: B -> A(recursive read) is fine, B -> A(write) then closes the cycle."""
    from kvmcheck.kernel.lockdep import force_read_lock_recursive

    def body() -> None:
        force_read_lock_recursive()
        x, y = RwLock("X"), SpinLock("Y")
        read_lock(x)
        _ab_unlock(y, x)
        read_unlock(x)
        spin_lock(y)
        read_lock(x)
        read_unlock(x)
        write_lock(x)
        write_unlock(x)
        spin_unlock(y)

    found(run(body), "lock-order", CIRCULAR)


def _ab_unlock(y: SpinLock, x: RwLock) -> None:
    spin_lock(y)
    spin_unlock(y)


def test_enabling_irqs_with_an_irq_safe_lock_held_is_inconsistent() -> None:
    """irqsafe2B: lockdep_hardirqs_on() marks the held lock HARDIRQ-ON (was: missed)."""

    def body() -> None:
        a = SpinLock("lock_A")

        def irq() -> None:
            spin_lock(a)
            spin_unlock(a)

        join(spawn_irq(irq))
        local_irq_disable()
        spin_lock(a)
        local_irq_enable()
        spin_unlock(a)

    r = run(body)
    found(r, "lock-order", INCONSISTENT)
    assert r.finding is not None
    assert "inconsistent {IN-HARDIRQ-W} -> {HARDIRQ-ON-W} usage." in r.finding.details


def test_softirq_lock_taken_with_softirqs_enabled_is_inconsistent() -> None:
    from kvmcheck.kernel import spawn_softirq

    def body() -> None:
        a = SpinLock("lock_A")

        def tasklet() -> None:
            spin_lock(a)
            spin_unlock(a)

        join(spawn_softirq(tasklet))
        spin_lock(a)
        spin_unlock(a)

    r = run(body)
    found(r, "lock-order", INCONSISTENT)
    assert r.finding is not None
    assert "inconsistent {IN-SOFTIRQ-W} -> {SOFTIRQ-ON-W} usage." in r.finding.details


def test_softirq_lock_taken_with_spin_lock_bh_is_consistent() -> None:
    """spin_lock_bh() disables softirqs *before* lockdep sees the acquisition."""
    from kvmcheck.kernel import spawn_softirq, spin_lock_bh, spin_unlock_bh

    def body() -> None:
        a = SpinLock("lock_A")

        def tasklet() -> None:
            spin_lock(a)
            spin_unlock(a)

        join(spawn_softirq(tasklet))
        spin_lock_bh(a)
        spin_unlock_bh(a)

    ok(run(body))


def test_softirq_safe_to_softirq_unsafe_order() -> None:
    """A softirq-safe lock held while a softirq-unsafe one is taken."""
    from kvmcheck.kernel import local_bh_disable, local_bh_enable, spawn_softirq

    def body() -> None:
        a, b = SpinLock("lock_A"), SpinLock("lock_B")

        def tasklet() -> None:
            spin_lock(a)
            spin_unlock(a)

        join(spawn_softirq(tasklet))
        spin_lock(b)  # softirq-unsafe
        spin_unlock(b)
        local_bh_disable()
        spin_lock(a)
        spin_lock(b)
        spin_unlock(b)
        spin_unlock(a)
        local_bh_enable()

    found(run(body), "lock-order", "WARNING: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected")


def test_initialising_a_held_lock_is_held_lock_freed() -> None:
    from kvmcheck.kernel import spin_lock_init

    def body() -> None:
        a = SpinLock("lock_A")
        spin_lock(a)
        spin_lock_init(a)

    found(run(body), "use-after-free", "WARNING: held lock freed!")
