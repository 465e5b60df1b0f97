"""Per-execution kernel state and the hooks the kernel layer installs on every execution."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kvmcheck.kernel._core import kthread, warn
from kvmcheck.kernel.memory import kmemleak_scan

if TYPE_CHECKING:
    from kvmcheck._engine.execution import Execution, Thread

__all__ = ["setup"]


class KState:
    """Kernel state of one execution."""

    __slots__ = ("allocs", "kcsan", "kcsan_on", "mb", "objects", "rcu", "rel", "system_wq", "weak")

    def __init__(self) -> None:
        self.kcsan_on = True
        self.kcsan: dict[int, list[Any]] = {}
        self.allocs: list[Any] = []  # kmalloc'ed objects and kernel mappings
        self.objects: list[Any] = []  # every Struct created
        self.rcu: Any = None  # the RCU domain (kernel/rcu.py), made at the first use
        self.rel: dict[int, Any] = {}  # field key -> (clock, tid, epoch) of its last release store
        self.mb: dict[tuple[str, int], Any] = {}  # smp_mb__{before,after}_atomic bookkeeping
        self.system_wq: Any = None  # system_wq (kernel/workqueue.py), made at the first schedule_work
        self.weak: Any = None  # the execution graph under memory_model="lkmm" (kernel/barrier.py)


def _thread_exit(ex: Execution, t: Thread) -> None:
    kt = kthread(t)
    if kt.held:
        warn(
            "lock-order",
            f"{t.name} exited holding {', '.join(kt.held_names())}",
            headline="WARNING: lock held when returning to user space!",
        )
    if kt.rcu_depth:
        warn("warn", f"{t.name} exited inside rcu_read_lock()", headline="WARNING: rcu_read_lock() leaked")
    if any(kt.srcu.values()):
        warn("warn", f"{t.name} exited inside srcu_read_lock()", headline="WARNING: srcu_read_lock() leaked")


def setup(ex: Execution) -> None:
    ex.k = KState()
    ex.k.kcsan_on = bool(ex.session.get("kcsan", True))
    ex.exit_hooks.append(_thread_exit)
    ex.end_hooks.append(kmemleak_scan)
