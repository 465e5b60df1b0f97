"""Run one lib/locking-selftest.c case as a kvmcheck model.

A selftest case is one task doing a sequence of lock operations; lockdep judges the dependencies
and irq usages it creates (no second CPU is ever involved).  The model is the same sequence in one
kvmcheck thread.  An ``IRQ_ENTER() ... IRQ_EXIT()`` block of the case (the selftest fakes an
interrupt on its own task with ``__irq_enter()`` / ``lockdep_softirq_enter()``) runs as a handler
thread -- ``spawn_irq`` for a hard irq, ``spawn_softirq`` for a softirq -- that the task joins at
once, so the order of the operations is the selftest's.  ``SOFTIRQ_ENTER()`` also disables hard
irqs, and so does the softirq handler here.  At the end, the locks still held are released in
reverse order: the selftest's ``dotest()`` drops them with ``reset_locks()`` instead.

The operations are the selftest's shortcuts: ``L``/``U`` (spin_lock), ``RL``/``RU``/``WL``/``WU``
(rwlock_t), ``ML``/``MU`` (mutex), ``RSL``/``RSU``/``WSL``/``WSU`` (rw_semaphore), each with a lock
name (``A``..``D`` are classes of their own; ``X1``/``X2``, ``Y1``/``Y2``, ``Z1``/``Z2`` share the
classes X, Y, Z as init_shared_classes() makes them), and the init functions ``SI``, ``RWI``,
``MI``, ``RWSI``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvmcheck import join
from kvmcheck.kernel import (
    Mutex,
    RwLock,
    RwSem,
    SpinLock,
    down_read,
    down_write,
    init_rwsem,
    local_bh_disable,
    local_bh_enable,
    local_irq_disable,
    local_irq_enable,
    mutex_init,
    mutex_lock,
    mutex_unlock,
    read_lock,
    read_unlock,
    rwlock_init,
    spawn_irq,
    spawn_softirq,
    spin_lock,
    spin_lock_init,
    spin_unlock,
    up_read,
    up_write,
    write_lock,
    write_unlock,
)
from kvmcheck.kernel.lockdep import force_read_lock_recursive

# op -> (lock family, function, is an unlock)
_OPS: dict[str, tuple[str, Callable[[Any], None], bool]] = {
    "L": ("lock", spin_lock, False),
    "U": ("lock", spin_unlock, True),
    "RL": ("rwlock", read_lock, False),
    "RU": ("rwlock", read_unlock, True),
    "WL": ("rwlock", write_lock, False),
    "WU": ("rwlock", write_unlock, True),
    "ML": ("mutex", mutex_lock, False),
    "MU": ("mutex", mutex_unlock, True),
    "RSL": ("rwsem", down_read, False),
    "RSU": ("rwsem", up_read, True),
    "WSL": ("rwsem", down_write, False),
    "WSU": ("rwsem", up_write, True),
}
_INIT: dict[str, tuple[str, Callable[[Any], None]]] = {
    "SI": ("lock", spin_lock_init),
    "RWI": ("rwlock", rwlock_init),
    "MI": ("mutex", mutex_init),
    "RWSI": ("rwsem", init_rwsem),
}
_TYPES: dict[str, type] = {"lock": SpinLock, "rwlock": RwLock, "mutex": Mutex, "rwsem": RwSem}
_UNLOCK_OF = {"L": "U", "RL": "RU", "WL": "WU", "ML": "MU", "RSL": "RSU", "WSL": "WSU"}


class _Task:
    """The selftest's locks (made on first use) and what the task holds."""

    def __init__(self) -> None:
        self.locks: dict[str, Any] = {}
        self.held: list[tuple[str, str]] = []  # (lock op, lock name), innermost last

    def lock(self, family: str, name: str) -> Any:
        key = f"{family}_{name}"
        lk = self.locks.get(key)
        if lk is None:
            cls = f"{family}_{name[0]}" if len(name) == 2 else key  # X1, X2 share class X
            lk = self.locks[key] = _TYPES[family](cls)
            lk.name = key
        return lk

    def do(self, op: str, name: str) -> None:
        if op in _INIT:
            family, init = _INIT[op]
            init(self.lock(family, name))
            return
        family, fn, unlock = _OPS[op]
        fn(self.lock(family, name))
        if unlock:
            lock_op = next(k for k, v in _UNLOCK_OF.items() if v == op)
            if (lock_op, name) in self.held:
                self.held.reverse()
                self.held.remove((lock_op, name))
                self.held.reverse()
        else:
            self.held.append((op, name))

    def reset(self) -> None:
        """dotest()'s reset_locks(): what is still held is dropped (here: released, innermost first)."""
        while self.held:
            op, name = self.held.pop()
            _OPS[_UNLOCK_OF[op]][1](self.lock(_OPS[op][0], name))


def run_events(task: _Task, events: list[str]) -> None:
    """Run ``events`` ("WL A", "HARDIRQ_ENTER", ...) in this thread; irq blocks in a handler."""
    i = 0
    while i < len(events):
        ev = events[i]
        if ev in ("HARDIRQ_ENTER", "SOFTIRQ_ENTER"):
            end = events.index(ev.replace("ENTER", "EXIT"), i)
            body = events[i + 1 : end]
            if ev == "HARDIRQ_ENTER":
                join(spawn_irq(_handler, task, body, False, name="hardirq"))
            else:
                join(spawn_softirq(_handler, task, body, True, name="softirq"))
            i = end + 1
            continue
        if ev == "HARDIRQ_DISABLE":
            local_irq_disable()
        elif ev == "HARDIRQ_ENABLE":
            local_irq_enable()
        elif ev == "SOFTIRQ_DISABLE":
            local_bh_disable()
        elif ev == "SOFTIRQ_ENABLE":
            local_bh_enable()
        else:
            op, name = ev.split()
            task.do(op, name)
        i += 1


def _handler(task: _Task, body: list[str], soft: bool) -> None:
    if soft:
        local_irq_disable()  # SOFTIRQ_ENTER(): local_bh_disable(); local_irq_disable(); ...
    run_events(task, body)
    if soft:
        local_irq_enable()


def selftest_model(name: str, events: list[str], recursive_read: bool, doc: str) -> Callable[[], None]:
    """A scenario running the selftest case ``name`` (its events, and whether it runs with
    ``force_read_lock_recursive`` set, as every case before the queued-read-lock tests does)."""

    def body() -> None:
        force_read_lock_recursive(recursive_read)
        task = _Task()
        run_events(task, events)
        task.reset()

    body.__name__ = name
    body.__qualname__ = name
    body.__doc__ = doc
    return body
