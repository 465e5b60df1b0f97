"""A device that signals readiness through a wait queue (written from README's "Writing a
model": wait queues).

Threads: waiter (wait_event on dev->ready), probe (sets ready, wakes the queue).
Expected: "wake-first" wakes before setting ready, a lost wakeup (bug: the waiter hangs);
"set-then-wake" sets, then wakes (ok, complete).
"""

from __future__ import annotations

from typing import Any

from kvmcheck import join, scenario, spawn
from kvmcheck.kernel import (
    Struct,
    WaitQueueHead,
    smp_load_acquire,
    smp_store_release,
    wait_event,
    wake_up,
)


class Dev(Struct):
    ready: int = 0
    id: int = 0

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.wq = WaitQueueHead()


@scenario(name="readme.ready_wait", expect={"wake-first": "bug", "set-then-wake": "ok"})
def ready_wait(variant: str) -> None:
    dev = Dev()

    def waiter() -> int:
        wait_event(dev.wq, lambda: smp_load_acquire(dev, "ready"))
        return int(dev.id)

    def probe() -> None:
        dev.id = 7
        if variant == "wake-first":
            wake_up(dev.wq)
            smp_store_release(dev, "ready", 1)
        else:
            smp_store_release(dev, "ready", 1)
            wake_up(dev.wq)

    w = spawn(waiter)
    join(spawn(probe))
    assert join(w) == 7
