"""Timers: struct timer_list (kernel/time/timer.c, include/linux/timer.h).

As the kernel documents them:

* ``timer_setup(timer, callback, flags)`` initialises the timer; the callback gets the
  ``timer_list`` and finds its object with ``from_timer(obj, timer, "field")``
  (container_of).
* ``add_timer(timer)`` starts a timer that is not pending; ``mod_timer(timer, expires)`` "is
  equivalent to: del_timer(timer); timer->expires = expires; add_timer(timer);" and returns
  whether it modified a pending timer.  The timer fires at a moment the search chooses (time is
  not modelled): the callback runs in a thread of its own, ``timer:<name>``, in softirq context
  (it may not sleep).
* ``del_timer(timer)`` deactivates it; "The function returns whether it has deactivated a
  pending timer or not."  The callback may still be running on return.
* ``del_timer_sync(timer)`` (``timer_delete_sync``) also waits for a running callback: "Upon exit
  the timer is not queued and the handler is not running on any CPU."  Its rules: "Callers must
  prevent restarting of the timer", "The caller must not hold locks which would prevent
  completion of the timer's handler" -- lockdep checks that one: del_timer_sync() acquires and
  releases the timer's lockdep map, and call_timer_fn() runs the callback holding (a copy of)
  it, so a lock taken by the callback and held around del_timer_sync() is a circular
  dependency; from the callback itself it is recursive locking.
* call_timer_fn(): "It is permissible to free the timer from inside the function that is called
  from it" -- nothing touches the timer after its callback returned.

Softirq context is modelled as "softirqs disabled" for the callback's thread (it may not sleep);
the IN-SOFTIRQ lockdep usage bits are not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvmcheck._engine import runtime
from kvmcheck._engine.clock import Clock, vc_join, vc_tick
from kvmcheck._engine.finding import UsageError
from kvmcheck._engine.ops import Op
from kvmcheck.kernel import lockdep
from kvmcheck.kernel._core import Held, Primitive, bug, current_thread, kthread, report_embedded, warn
from kvmcheck.kernel.workqueue import _LockdepMap, container_of

__all__ = [
    "Timer",
    "add_timer",
    "del_timer",
    "del_timer_sync",
    "from_timer",
    "mod_timer",
    "timer_container_of",
    "timer_delete",
    "timer_delete_sync",
    "timer_pending",
    "timer_setup",
]


class _Fire:
    __slots__ = ("seq",)

    def __init__(self, seq: int) -> None:
        self.seq = seq


class _Idle:
    """del_timer_sync's wait: until the callback of arming ``seq`` (or earlier) is not running."""

    __slots__ = ()


IDLE = _Idle()


class Timer(Primitive):
    """``struct timer_list`` (``DEFINE_TIMER`` / ``timer_setup``)."""

    kind = "timer_list"
    prefix = "timer"

    def __init__(self, function: Callable[[Any], Any] | None = None, name: str | None = None) -> None:
        super().__init__(name)
        self.function = function
        self.expires = 0
        # Invariant: the fields below change only in steps on this timer's key.
        self.armed = 0  # the arming number of the pending timer (0: not pending)
        self.arms = 0
        self.running = False  # its callback is running
        self.runner = -1
        self.clock: Clock = []  # the end of the last callback
        self.map = _LockdepMap(f"({self.name})")

    def _kc_state(self) -> Any:
        return self.running

    def _kc_enabled(self, op: Op, tid: int, state: Any) -> bool:
        if op.arg is IDLE:
            return not (self.running if state is None else state)
        return True

    def _kc_holders(self) -> list[int]:
        return [self.runner] if self.running else []


def _check(timer: Any, fn: str) -> Timer:
    if not isinstance(timer, Timer):
        raise UsageError(f"{fn}() takes a Timer (struct timer_list), not {timer!r}")
    return timer


def timer_setup(timer: Timer, callback: Callable[[Any], Any], flags: int = 0) -> None:
    """``timer_setup(timer, callback, flags)``: set the callback (not a visible step)."""
    _check(timer, "timer_setup").function = callback


def from_timer(var_type: type, timer: Timer, field: str) -> Any:
    """``from_timer(var, callback_timer, timer_fieldname)``: container_of() of a timer."""
    return container_of(timer, var_type, field)


def timer_container_of(var_type: type, timer: Timer, field: str) -> Any:
    """``timer_container_of(var, timer, field)`` (v6.16's name for from_timer)."""
    return container_of(timer, var_type, field)


def _announce(timer: Timer, label: str, arg: Any, touch: bool) -> Any:
    ex = runtime.current
    assert ex is not None
    ex.visible(timer.op(True, label, arg, touch))
    return ex.current


def _arm(timer: Timer) -> None:
    """Inside a step on ``timer``: make it pending; a timer thread fires it later."""
    timer.arms += 1
    timer.armed = seq = timer.arms
    ex = runtime.current
    assert ex is not None

    def fire() -> None:
        label = f"call_timer_fn({timer.name})"
        t = _announce(timer, label, _Fire(seq), touch=timer.armed == seq)
        if timer.armed != seq:  # deleted or re-armed: this expiry never happens
            return
        home = timer._kc_home
        if home is not None and home._kc_freed is not None:
            report_embedded(home, timer, label)
        timer.armed = 0  # detach_timer(): not pending while the callback runs
        timer.running, timer.runner = True, t.tid
        t.vc = vc_join(t.vc, timer.clock)
        _call(timer, t)
        t2 = _announce(timer, f"call_timer_fn({timer.name}) done", None, touch=False)
        timer.running, timer.runner = False, -1
        timer.clock = vc_join(timer.clock, t2.vc)
        vc_tick(t2.vc, t2.tid)

    fire.__name__ = f"timer:{timer.name}"
    ex.spawn(fire, (), f"timer:{timer.name}")


def _call(timer: Timer, t: Any) -> None:
    """call_timer_fn(): the callback in softirq context, holding a copy of the timer's map."""
    kt = kthread(t)
    held = Held(timer.map.copy(), False, False)
    lockdep.on_acquire(kt, held)
    kt.held.append(held)
    kt.bh_off += 1  # softirq context: may not sleep
    try:
        assert timer.function is not None
        timer.function(timer)
    finally:
        kt.bh_off -= 1
        if held in kt.held:
            kt.held.remove(held)


def add_timer(timer: Timer) -> None:
    """``add_timer(timer)``: start a timer that is not pending (a pending one is a BUG)."""
    _check(timer, "add_timer")
    if timer.function is None:
        raise UsageError(f"add_timer({timer.name}): no callback; timer_setup() it first")
    timer.step(True, f"add_timer({timer.name})")
    if timer.armed:
        bug(
            "bug-on",
            f"add_timer({timer.name}) of a pending timer",
            "kernel BUG at kernel/time/timer.c (add_timer)",
        )
    _arm(timer)


def mod_timer(timer: Timer, expires: int) -> bool:
    """``mod_timer(timer, expires)``: (re)start it; True if it was pending."""
    _check(timer, "mod_timer")
    if timer.function is None:
        raise UsageError(f"mod_timer({timer.name}): no callback; timer_setup() it first")
    timer.step(True, f"mod_timer({timer.name})")
    was = bool(timer.armed)
    timer.expires = expires
    _arm(timer)
    return was


def timer_pending(timer: Timer) -> bool:
    """``timer_pending(timer)``: is it armed (a lockless test)."""
    _check(timer, "timer_pending")
    timer.step(False, f"timer_pending({timer.name})")
    return bool(timer.armed)


def del_timer(timer: Timer) -> bool:
    """``del_timer(timer)``: deactivate it; True if it was pending.  The callback may still run."""
    _check(timer, "del_timer")
    timer.step(True, f"del_timer({timer.name})")
    was = bool(timer.armed)
    timer.armed = 0
    return was


def del_timer_sync(timer: Timer) -> bool:
    """``del_timer_sync(timer)``: deactivate it and wait for a running callback; True if it was pending."""
    _check(timer, "del_timer_sync")
    kt = kthread()
    if kt.hardirq:
        warn("warn", f"del_timer_sync({timer.name}) in hard-irq context", "WARNING: at del_timer_sync")
    new = Held(timer.map, False, False)
    mine = [h for h in kt.held if h.lock.cls == timer.map.cls]
    if mine:  # from the callback itself: it would wait for itself
        warn(
            "lock-order",
            f"del_timer_sync({timer.name}) from its own callback",
            headline="WARNING: possible recursive locking detected",
            details=lockdep.recursive_details(kt, new, mine[0]),
        )
    else:
        lockdep.on_acquire(kt, new)
    timer.step(True, f"del_timer_sync({timer.name})")
    was = bool(timer.armed)
    timer.armed = 0
    t = _announce(timer, f"del_timer_sync({timer.name}) waits", IDLE, touch=False)
    if t is None:
        t = current_thread()
    t.vc = vc_join(t.vc, timer.clock)
    return was


def timer_delete(timer: Timer) -> bool:
    """``timer_delete(timer)``: del_timer() under its v6.2 name."""
    return del_timer(timer)


def timer_delete_sync(timer: Timer) -> bool:
    """``timer_delete_sync(timer)``: del_timer_sync() under its v6.2 name."""
    return del_timer_sync(timer)
