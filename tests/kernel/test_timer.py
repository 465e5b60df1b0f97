"""struct timer_list (kernel/timer.py): from_timer, del_timer vs del_timer_sync, lockdep's view."""

from __future__ import annotations

from typing import Any

from kvmcheck.kernel import (
    Mutex,
    SpinLock,
    Struct,
    Timer,
    add_timer,
    del_timer,
    del_timer_sync,
    from_timer,
    kfree,
    kmalloc,
    mod_timer,
    mutex_lock,
    mutex_unlock,
    spin_lock,
    spin_unlock,
    timer_pending,
)
from tests.kernel.helpers import found, ok, run


class Dev(Struct):
    """``struct dev { int fired; spinlock_t lock; struct timer_list timer; }``."""

    fired: int = 0

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.lock = SpinLock()
        self.timer = Timer(_fire)


def _fire(t: Timer) -> None:
    d = from_timer(Dev, t, "timer")
    spin_lock(d.lock)
    d.fired = d.fired + 1
    spin_unlock(d.lock)


def test_del_timer_sync_then_kfree_is_safe() -> None:
    outcomes: set[tuple[bool, int]] = set()

    def body() -> None:
        d = kmalloc(Dev)
        mod_timer(d.timer, 10)
        was = del_timer_sync(d.timer)
        outcomes.add((was, d.fired))
        kfree(d)

    ok(run(body))
    assert outcomes == {(True, 0), (False, 1)}


def test_del_timer_then_kfree_races_the_callback() -> None:
    """del_timer(): the callback may still be running on return."""

    def body() -> None:
        d = kmalloc(Dev)
        mod_timer(d.timer, 10)
        del_timer(d.timer)
        kfree(d)

    found(run(body), "use-after-free")


def test_del_timer_sync_holding_a_lock_the_callback_takes_is_lockdep() -> None:
    def body() -> None:
        d = Dev()
        add_timer(d.timer)
        spin_lock(d.lock)
        del_timer_sync(d.timer)
        spin_unlock(d.lock)

    r = run(body, keep_going=True)
    kinds = {w.kind for w in r.warnings} | ({r.finding.kind} if r.finding else set())
    assert "lock-order" in kinds, kinds


def test_a_callback_may_free_its_timer() -> None:
    def free_self(t: Timer) -> None:
        kfree(from_timer(Dev, t, "timer"))

    def body() -> None:
        d = kmalloc(Dev)
        d.timer.function = free_self
        add_timer(d.timer)

    ok(run(body))


def test_mod_timer_says_whether_it_was_pending_and_pending_tracks_it() -> None:
    seen: set[tuple[bool, bool]] = set()

    def body() -> None:
        d = Dev()
        first = mod_timer(d.timer, 5)
        again = mod_timer(d.timer, 7)
        del_timer_sync(d.timer)
        assert not timer_pending(d.timer)
        seen.add((first, again))

    ok(run(body))
    assert seen == {(False, True), (False, False)}


def test_a_callback_may_not_sleep() -> None:
    class M(Struct):
        def __init__(self, **kw: Any) -> None:
            super().__init__(**kw)
            self.m = Mutex()
            self.timer = Timer(lambda t: (mutex_lock(self.m), mutex_unlock(self.m)))

    def body() -> None:
        x = M()
        add_timer(x.timer)
        del_timer_sync(x.timer)

    found(run(body, keep_going=True), "sleep-in-atomic")
