"""The kernel's vocabulary over the engine: locks, RCU, refcounts, memory, checks.

Names are the kernel's own, so a model reads beside the C source:
``spin_lock(gpc.lock)`` for ``spin_lock(&gpc->lock)``.
"""

from kvmcheck._engine.check import runtime_setup_hooks as _hooks
from kvmcheck.kernel._setup import setup as _setup
from kvmcheck.kernel.bug import BUG, BUG_ON, KVM_BUG_ON, WARN_ON, WARN_ON_ONCE
from kvmcheck.kernel.context import (
    cond_resched,
    in_atomic,
    local_irq_disable,
    local_irq_enable,
    might_sleep,
    schedule,
    spawn_irq,
)
from kvmcheck.kernel.locking import (
    Mutex,
    RwLock,
    RwSem,
    SpinLock,
    cond_resched_lock,
    cond_resched_rwlock_read,
    cond_resched_rwlock_write,
    down_read,
    down_read_trylock,
    down_write,
    down_write_trylock,
    guard,
    irqs_disabled,
    lockdep_assert_held,
    lockdep_assert_held_read,
    lockdep_assert_held_write,
    lockdep_assert_not_held,
    mutex_is_locked,
    mutex_lock,
    mutex_lock_nested,
    mutex_trylock,
    mutex_unlock,
    read_lock,
    read_lock_irq,
    read_lock_irqsave,
    read_trylock,
    read_unlock,
    read_unlock_irq,
    read_unlock_irqrestore,
    spin_lock,
    spin_lock_bh,
    spin_lock_irq,
    spin_lock_irqsave,
    spin_lock_nested,
    spin_trylock,
    spin_unlock,
    spin_unlock_bh,
    spin_unlock_irq,
    spin_unlock_irqrestore,
    up_read,
    up_write,
    write_lock,
    write_lock_irq,
    write_lock_irqsave,
    write_trylock,
    write_unlock,
    write_unlock_irq,
    write_unlock_irqrestore,
)
from kvmcheck.kernel.memory import (
    KernelMapping,
    kfree,
    kmalloc,
    kmap,
    kmemleak_not_leak,
    kunmap,
    kzalloc,
    memremap,
    memunmap,
)
from kvmcheck.kernel.struct import READ_ONCE, WRITE_ONCE, Struct, data_race

if _setup not in _hooks:
    _hooks.append(_setup)

__all__ = [
    "BUG", "BUG_ON", "KVM_BUG_ON", "WARN_ON", "WARN_ON_ONCE",
    "READ_ONCE", "WRITE_ONCE", "data_race",
    "KernelMapping", "Mutex", "RwLock", "RwSem", "SpinLock", "Struct",
    "cond_resched", "cond_resched_lock", "cond_resched_rwlock_read", "cond_resched_rwlock_write",
    "down_read", "down_read_trylock", "down_write", "down_write_trylock",
    "guard", "in_atomic", "irqs_disabled",
    "kfree", "kmalloc", "kmap", "kmemleak_not_leak", "kunmap", "kzalloc",
    "local_irq_disable", "local_irq_enable",
    "lockdep_assert_held", "lockdep_assert_held_read", "lockdep_assert_held_write",
    "lockdep_assert_not_held",
    "memremap", "memunmap", "might_sleep",
    "mutex_is_locked", "mutex_lock", "mutex_lock_nested", "mutex_trylock", "mutex_unlock",
    "read_lock", "read_lock_irq", "read_lock_irqsave", "read_trylock", "read_unlock",
    "read_unlock_irq", "read_unlock_irqrestore",
    "schedule", "spawn_irq",
    "spin_lock", "spin_lock_bh", "spin_lock_irq", "spin_lock_irqsave", "spin_lock_nested",
    "spin_trylock", "spin_unlock", "spin_unlock_bh", "spin_unlock_irq", "spin_unlock_irqrestore",
    "up_read", "up_write",
    "write_lock", "write_lock_irq", "write_lock_irqsave", "write_trylock", "write_unlock",
    "write_unlock_irq", "write_unlock_irqrestore",
]
