"""Execution context (might_sleep, irqs, cond_resched fairness, step limit),
BUG/WARN and their report classes, exceptions and asserts in model code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kvmcheck import join, spawn
from kvmcheck.kernel import (
    BUG,
    BUG_ON,
    KVM_BUG_ON,
    READ_ONCE,
    WARN_ON,
    WARN_ON_ONCE,
    WRITE_ONCE,
    Mutex,
    RwLock,
    RwSem,
    SpinLock,
    Struct,
    cond_resched,
    cpu_relax,
    down_read,
    in_atomic,
    irqs_disabled,
    local_irq_disable,
    local_irq_enable,
    might_sleep,
    mutex_lock,
    mutex_trylock,
    mutex_unlock,
    read_lock,
    read_unlock,
    schedule,
    spawn_irq,
    spin_lock,
    spin_lock_bh,
    spin_lock_irqsave,
    spin_unlock,
    spin_unlock_bh,
    spin_unlock_irqrestore,
    up_read,
)
from tests.kernel.helpers import found, ok, run

SLEEP = "BUG: sleeping function called from invalid context"


class Flag(Struct):
    value: int = 0
    n: int = 0


class Kvm(Struct):
    vm_bugged: bool = False


# -- might_sleep ------------------------------------------------------------------------------------
def _mutex_sleeper() -> None:
    m = Mutex("sleepy")
    mutex_lock(m)
    mutex_unlock(m)


def _rwsem_sleeper() -> None:
    s = RwSem("sleepy_sem")
    down_read(s)
    up_read(s)


SLEEPERS: dict[str, Callable[[], None]] = {
    "might_sleep": might_sleep,
    "mutex_lock": _mutex_sleeper,
    "down_read": _rwsem_sleeper,
    "cond_resched": cond_resched,
}

Enter = Callable[[], Any]
Leave = Callable[[Any], None]


def _spin() -> tuple[Enter, Leave]:
    lk = SpinLock("kvm->mmu_lock_spin")
    return (lambda: spin_lock(lk)), (lambda _: spin_unlock(lk))


def _read_lock() -> tuple[Enter, Leave]:
    lk = RwLock("gpc->lock")
    return (lambda: read_lock(lk)), (lambda _: read_unlock(lk))


def _irqs_off() -> tuple[Enter, Leave]:
    return local_irq_disable, (lambda _: local_irq_enable())


def _irqsave() -> tuple[Enter, Leave]:
    lk = SpinLock("irqsave_lock")
    return (lambda: spin_lock_irqsave(lk)), (lambda f: spin_unlock_irqrestore(lk, f))


def _bh() -> tuple[Enter, Leave]:
    lk = SpinLock("bh_lock")
    return (lambda: spin_lock_bh(lk)), (lambda _: spin_unlock_bh(lk))


# atomic context -> (how to enter and leave it, the reason might_sleep names)
ATOMIC: dict[str, tuple[Callable[[], tuple[Enter, Leave]], str]] = {
    "spin_lock": (_spin, "kvm->mmu_lock_spin (spinlock_t) held"),
    "read_lock": (_read_lock, "gpc->lock (rwlock_t) held"),
    "local_irq_disable": (_irqs_off, "irqs disabled"),
    "spin_lock_irqsave": (_irqsave, "irqsave_lock (spinlock_t) held"),
    "spin_lock_bh": (_bh, "bh_lock (spinlock_t) held"),
}


@pytest.mark.parametrize("context", sorted(ATOMIC))
@pytest.mark.parametrize("sleeper", sorted(SLEEPERS))
def test_sleeping_in_atomic_context(context: str, sleeper: str) -> None:
    make, why = ATOMIC[context]

    def body() -> None:
        enter, leave = make()
        token = enter()
        assert in_atomic()
        SLEEPERS[sleeper]()
        leave(token)
        assert not in_atomic()

    r = run(body)
    found(r, "sleep-in-atomic", SLEEP)
    assert r.finding.headline == SLEEP  # type: ignore[union-attr]
    msg = r.finding.message  # type: ignore[union-attr]
    assert "may sleep, but" in msg
    assert msg.endswith(why), msg


@pytest.mark.parametrize("sleeper", sorted(SLEEPERS))
def test_sleeping_in_hardirq_handler(sleeper: str) -> None:
    def body() -> None:
        def handler() -> None:
            assert in_atomic()
            SLEEPERS[sleeper]()

        join(spawn_irq(handler))

    r = run(body)
    found(r, "sleep-in-atomic", SLEEP)
    assert "in hard-irq context" in r.finding.message  # type: ignore[union-attr]


@pytest.mark.parametrize("sleeper", sorted(SLEEPERS))
def test_sleeping_in_process_context_is_fine(sleeper: str) -> None:
    def body() -> None:
        assert not in_atomic() and not irqs_disabled()
        SLEEPERS[sleeper]()
        schedule()

    ok(run(body))


@pytest.mark.parametrize("sleeper", sorted(SLEEPERS))
def test_sleeping_under_a_mutex_is_fine(sleeper: str) -> None:
    def body() -> None:
        outer = Mutex("outer")
        mutex_lock(outer)
        assert not in_atomic()
        SLEEPERS[sleeper]()
        mutex_unlock(outer)

    ok(run(body))


def test_mutex_trylock_under_a_spinlock_does_not_sleep() -> None:
    def body() -> None:
        lk, m = SpinLock("outer"), Mutex("inner")
        spin_lock(lk)
        if mutex_trylock(m):
            mutex_unlock(m)
        spin_unlock(lk)

    ok(run(body))


def test_sleep_in_atomic_is_a_warning_the_thread_continues() -> None:
    def body() -> None:
        local_irq_disable()
        might_sleep()
        local_irq_enable()
        BUG_ON(True, "later")

    r = run(body)
    # the first report of the execution is the headline (issue 22); the BUG after it is listed
    found(r, "sleep-in-atomic", "BUG: sleeping function called from invalid context")
    assert [w.kind for w in r.warnings] == ["bug-on"]


def test_local_irq_disable_nests() -> None:
    def body() -> None:
        local_irq_disable()
        local_irq_disable()
        local_irq_enable()
        assert irqs_disabled()
        local_irq_enable()
        assert not irqs_disabled()
        might_sleep()

    ok(run(body))


# -- spin waits (cpu_relax), cond_resched and the step limit ---------------------------------------
def _waiter_and_setter(yielding: bool, relax: Callable[[], None] = cpu_relax) -> Callable[[], None]:
    def body() -> None:
        flag = Flag()

        def waiter() -> None:
            while not READ_ONCE(flag, "value"):
                if yielding:
                    relax()

        def setter() -> None:
            WRITE_ONCE(flag, "value", 1)

        join(spawn(waiter), spawn(setter))

    return body


def test_cpu_relax_spin_loop_terminates() -> None:
    r = run(_waiter_and_setter(yielding=True))
    ok(r)
    assert r.executions >= 2


def test_cond_resched_is_not_a_wait_so_an_endless_spin_hits_the_step_limit() -> None:
    # cond_resched() restricts no schedule (it is no promise to wait), so the
    # schedule that never runs the setter is explored and spins forever.
    r = run(_waiter_and_setter(yielding=True, relax=cond_resched), max_steps=300)
    found(r, "step-limit", "step limit reached")


def test_spin_without_yield_hits_the_step_limit() -> None:
    r = run(_waiter_and_setter(yielding=False), max_steps=200)
    found(r, "step-limit", "step limit reached")
    assert "exceeded 200 steps" in r.finding.message  # type: ignore[union-attr]


def test_step_limit_is_not_hit_by_a_bounded_loop() -> None:
    def body() -> None:
        f = Flag()
        for _ in range(50):
            f.n = f.n + 1

    ok(run(body, max_steps=200))


# -- BUG_ON / BUG -----------------------------------------------------------------------------------
def test_bug_on_is_an_oops_naming_the_model_line() -> None:
    def calls_bug_on() -> None:
        BUG_ON(1 + 1 == 2, "arithmetic works")

    def body() -> None:
        calls_bug_on()

    r = run(body)
    found(r, "bug-on", "kernel BUG at calls_bug_on (test_context.py:")
    assert r.finding.headline.endswith("!")  # type: ignore[union-attr]
    assert r.finding.message == "arithmetic works"  # type: ignore[union-attr]


def test_bug_on_false_is_silent() -> None:
    def body() -> None:
        BUG_ON(False)
        BUG_ON(0, "never")

    ok(run(body))


def test_bug_stops_the_thread() -> None:
    def body() -> None:
        f = Flag()
        BUG("unreachable state")
        f.n = 1  # never runs

    r = run(body)
    found(r, "bug-on", "kernel BUG at body (test_context.py:")
    assert r.finding.message == "unreachable state"  # type: ignore[union-attr]
    assert [s.op for s in r.finding.trace if "write" in s.op] == []  # type: ignore[union-attr]


# -- WARN_ON / WARN_ON_ONCE / KVM_BUG_ON ------------------------------------------------------------
def test_warn_on_reports_and_continues() -> None:
    def body() -> None:
        f = Flag()
        assert WARN_ON(True, "first") is True
        f.n = 1  # the thread went on
        assert f.n == 1

    r = run(body)
    found(r, "warn", "WARNING: at body (test_context.py:")
    assert r.finding.message == "first"  # type: ignore[union-attr]
    assert r.warnings == []


def test_warn_on_false_is_silent_and_returns_false() -> None:
    def body() -> None:
        assert WARN_ON(False) is False
        assert WARN_ON(0, "never") is False
        assert WARN_ON_ONCE(None) is False

    ok(run(body))


def test_an_earlier_warn_is_the_report_and_the_later_bug_is_listed() -> None:
    """The kernel's log shows the WARN first: it is the headline (issue 22), the BUG is listed."""

    def body() -> None:
        WARN_ON(True, "just a warning")
        BUG_ON(True, "the oops")

    r = run(body)
    found(r, "warn")
    assert r.finding.message == "just a warning"  # type: ignore[union-attr]
    assert [(w.kind, w.message) for w in r.warnings] == [("bug-on", "the oops")]


def test_warn_on_fires_every_time() -> None:
    def body() -> None:
        for i in range(3):
            WARN_ON(True, f"hit {i}")

    r = run(body)
    found(r, "warn", "WARNING: at")
    assert r.finding.message == "hit 0"  # type: ignore[union-attr]
    assert [w.message for w in r.warnings] == ["hit 1", "hit 2"]


def test_warn_on_once_fires_once_per_site() -> None:
    def body() -> None:
        for i in range(3):
            assert WARN_ON_ONCE(True, f"loop {i}")  # returns the condition every time
        WARN_ON_ONCE(True, "second site")  # a different site has its own once flag

    r = run(body)
    found(r, "warn", "WARNING: at body (test_context.py:")
    assert r.finding.message == "loop 0"  # type: ignore[union-attr]
    assert [w.message for w in r.warnings] == ["second site"]
    assert r.warnings[0].headline != r.finding.headline  # type: ignore[union-attr]


def test_kvm_bug_on_marks_the_vm_bugged() -> None:
    def body() -> None:
        kvm = Kvm()
        assert KVM_BUG_ON(False, kvm) is False
        assert kvm.vm_bugged is False
        assert KVM_BUG_ON(True, kvm, "gpc still valid") is True
        assert kvm.vm_bugged is True

    r = run(body)
    found(r, "warn", "WARNING: KVM_BUG_ON at body (test_context.py:")
    assert r.finding.message == "gpc still valid"  # type: ignore[union-attr]


def test_kvm_bug_on_a_bugged_vm_does_not_warn_again() -> None:
    def body() -> None:
        kvm = Kvm()
        KVM_BUG_ON(True, kvm, "first")
        assert KVM_BUG_ON(True, kvm, "second") is True

    r = run(body)
    found(r, "warn", "KVM_BUG_ON")
    assert r.finding.message == "first"  # type: ignore[union-attr]
    assert r.warnings == []


def test_kvm_bug_on_false_is_silent() -> None:
    def body() -> None:
        kvm = Kvm()
        KVM_BUG_ON(0, kvm)
        assert not kvm.vm_bugged

    ok(run(body))


def test_kvm_bug_on_without_a_vm_still_warns() -> None:
    def body() -> None:
        assert KVM_BUG_ON(True)

    found(run(body), "warn", "KVM_BUG_ON")


# -- exceptions and asserts in model code -----------------------------------------------------------
def test_exception_in_one_interleaving_only() -> None:
    def body() -> None:
        f = Flag()

        def setter() -> None:
            WRITE_ONCE(f, "value", 1)

        t = spawn(setter)
        if READ_ONCE(f, "value"):
            raise ValueError("saw the flag early")
        join(t)

    r = run(body)
    found(r, "exception", "Oops: exception in model code")
    msg = r.finding.message  # type: ignore[union-attr]
    assert msg.startswith("ValueError: saw the flag early at body (test_context.py:")
    assert r.executions == 2  # the first interleaving explored was fine


def test_no_exception_when_ordered() -> None:
    def body() -> None:
        f = Flag()

        def setter() -> None:
            WRITE_ONCE(f, "value", 1)

        join(spawn(setter))
        if not READ_ONCE(f, "value"):
            raise ValueError("flag lost")

    ok(run(body))


def test_exception_in_a_spawned_thread() -> None:
    def body() -> None:
        def worker() -> None:
            {}["missing"]

        join(spawn(worker))

    r = run(body)
    found(r, "exception", "Oops: exception in model code")
    assert "KeyError" in r.finding.message  # type: ignore[union-attr]
    assert "worker" in r.finding.message  # type: ignore[union-attr]


def test_python_assert_is_an_assertion_finding() -> None:
    def body() -> None:
        f = Flag()
        f.n = 1
        assert f.n == 2, "n should be 2"

    r = run(body)
    found(r, "assertion", "assertion failed")
    msg = r.finding.message  # type: ignore[union-attr]
    assert msg.startswith("n should be 2")  # (pytest's assert rewriting adds its explanation after it)
    assert "at body (test_context.py:" in msg


def test_assert_in_a_spawned_thread_names_its_site() -> None:
    def body() -> None:
        def checker() -> None:
            assert Flag().n == 1

        join(spawn(checker))

    r = run(body)
    found(r, "assertion", "assertion failed")
    assert "at checker (test_context.py:" in r.finding.message  # type: ignore[union-attr]
    assert r.finding.thread == 1  # type: ignore[union-attr]
