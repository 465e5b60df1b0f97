"""irqfd shutdown with a work item (written from README's "Writing a model": workqueues).

Threads: main (deassign: takes irqfds.lock, queues the shutdown work, flushes it) and the
kworker the queueing starts (the work takes irqfds.lock).  Expected: "flush-locked"
flushes while holding the lock the work takes (bug: lockdep, and a hang); "flush-unlocked"
drops it first (ok, complete).
"""

from __future__ import annotations

from typing import Any

from kvmcheck import scenario
from kvmcheck.kernel import (
    INIT_WORK,
    SpinLock,
    Struct,
    Work,
    alloc_workqueue,
    flush_work,
    queue_work,
    spin_lock,
    spin_unlock,
)


class Irqfds(Struct):
    count: int = 1

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.lock = SpinLock()
        self.shutdown = Work()


def irqfd_shutdown(work: Work) -> None:
    irqfds = work.irqfds  # type: ignore[attr-defined]  # container_of
    spin_lock(irqfds.lock)
    irqfds.count = irqfds.count - 1
    spin_unlock(irqfds.lock)


@scenario(name="readme.irqfd_deassign", expect={"flush-locked": "bug", "flush-unlocked": "ok"})
def irqfd_deassign(variant: str) -> None:
    irqfds = Irqfds()
    INIT_WORK(irqfds.shutdown, irqfd_shutdown)
    irqfds.shutdown.irqfds = irqfds  # type: ignore[attr-defined]
    wq = alloc_workqueue("irqfd_cleanup")
    spin_lock(irqfds.lock)
    queue_work(wq, irqfds.shutdown)
    if variant == "flush-locked":
        flush_work(irqfds.shutdown)
        spin_unlock(irqfds.lock)
    else:
        spin_unlock(irqfds.lock)
        flush_work(irqfds.shutdown)
        assert irqfds.count == 0
