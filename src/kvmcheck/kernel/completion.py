"""struct completion, as kernel/sched/completion.c implements it.

``done`` counts ``complete()`` calls not yet consumed; ``complete_all()``
sets it to UINT_MAX, which waiters never consume.  ``wait_for_completion``
is a blocking operation, enabled while ``done`` is non-zero, and a
might-sleep point.  Each operation is one exclusive visible step on the
completion (``completion_done`` is shared).

Happens-before: the kernel does every operation under the completion's
wait-queue spinlock, so each one acquires what the earlier ones released
and releases the thread's clock: ``complete()`` happens before the wait it
satisfies.  ``try_wait_for_completion``'s lockless fast path (done == 0)
orders nothing, and ``completion_done`` only acquires.
"""

from __future__ import annotations

from typing import Any

from kvmcheck._engine.clock import Clock, vc_join, vc_tick
from kvmcheck._engine.execution import Thread
from kvmcheck._engine.ops import Op
from kvmcheck.kernel._core import Primitive
from kvmcheck.kernel.context import might_sleep_check

__all__ = [
    "Completion",
    "complete",
    "complete_all",
    "completion_done",
    "init_completion",
    "reinit_completion",
    "try_wait_for_completion",
    "wait_for_completion",
    "wait_for_completion_timeout",
]

UINT_MAX = 0xFFFF_FFFF


class Completion(Primitive):
    """``struct completion`` (``DECLARE_COMPLETION`` / ``init_completion``)."""

    kind = "completion"
    prefix = "completion"

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name)
        self.done = 0
        self.clock: Clock = []  # what the wait-queue lock's last holder released

    # -- the engine's Blocker protocol ---------------------------------------------
    def _kc_state(self) -> int:
        return self.done

    def _kc_enabled(self, op: Op, tid: int, state: Any) -> bool:
        if op.arg != "wait":
            return True
        return bool(self.done if state is None else state)

    def __repr__(self) -> str:
        return f"<completion {self.name} done={self.done}>"


def _step(x: Completion, excl: bool, label: str, arg: str | None = None) -> Thread | None:
    # Every operation names the completion, even those that cannot block, so that the
    # search records the state before it (what a later wait's reversibility is judged on).
    return x.step(excl, label, arg)


def _locked(x: Completion, t: Thread | None) -> None:
    """Take and drop x->wait.lock: acquire the last holder's clock, release ours."""
    if t is not None:
        t.vc = vc_join(t.vc, x.clock)
        x.clock = t.vc[:]
        vc_tick(t.vc, t.tid)


def init_completion(x: Completion) -> None:
    """init_completion(x): reset the completion to not done."""
    _step(x, True, f"init_completion({x.name})")
    x.done = 0


def reinit_completion(x: Completion) -> None:
    """reinit_completion(x): reset ``done`` to 0 for reuse."""
    _step(x, True, f"reinit_completion({x.name})")
    x.done = 0


def complete(x: Completion) -> None:
    """complete(x): wake one waiter of the completion (or let the next wait through)."""
    t = _step(x, True, f"complete({x.name})")
    _locked(x, t)
    if x.done != UINT_MAX:
        x.done += 1


def complete_all(x: Completion) -> None:
    """complete_all(x): let every present and future wait through."""
    t = _step(x, True, f"complete_all({x.name})")
    _locked(x, t)
    x.done = UINT_MAX


def wait_for_completion(x: Completion) -> None:
    """Sleep until ``x`` is completed, then consume one completion."""
    might_sleep_check(f"wait_for_completion({x.name})")
    t = _step(x, True, f"wait_for_completion({x.name})", "wait")
    _locked(x, t)
    if x.done != UINT_MAX:
        x.done -= 1


def wait_for_completion_timeout(x: Completion, timeout: int) -> int:
    """Wait for ``x`` or until ``timeout`` jiffies pass: 0 if timed out, else at least 1.

    The timeout may expire at any moment the search chooses (time is not
    modelled), so the step never blocks: a completion there when it is granted
    is consumed ("positive (at least 1, or number of jiffies left till timeout)
    if completed"), else it timed out (0).
    """
    might_sleep_check(f"wait_for_completion_timeout({x.name})")
    t = _step(x, True, f"wait_for_completion_timeout({x.name})")
    if not x.done:
        return 0
    _locked(x, t)
    if x.done != UINT_MAX:
        x.done -= 1
    return max(1, timeout)


def try_wait_for_completion(x: Completion) -> bool:
    """Consume a completion if one is there (never sleeps); True if it did."""
    t = _step(x, True, f"try_wait_for_completion({x.name})")
    if not x.done:
        return False
    _locked(x, t)
    if x.done != UINT_MAX:
        x.done -= 1
    return True


def completion_done(x: Completion) -> bool:
    """True if a wait would not block now."""
    t = _step(x, False, f"completion_done({x.name})")
    if not x.done:
        return False
    if t is not None:
        t.vc = vc_join(t.vc, x.clock)
    return True
