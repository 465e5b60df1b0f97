"""The public surface: ``kvmcheck`` and ``kvmcheck.kernel`` export what models use."""

from __future__ import annotations

import importlib

import pytest

import kvmcheck
import kvmcheck.kernel

EXPECTED_TOP = {
    "PROVENANCES",
    "STRATEGIES",
    "BackendSpec",  # the registries of strategies and backends (issue 24 item 3)
    "StrategySpec",
    "register_backend",
    "register_strategy",
    "Finding",
    "Progress",
    "Result",
    "Scenario",
    "Settings",
    "Site",
    "Source",
    "Step",
    "Thread",
    "UsageError",
    "check",
    "join",
    "nondet",
    "replay",
    "scenario",
    "spawn",
}

# The kernel vocabulary models are written in (locks, checks, memory, context).
REQUIRED_KERNEL = [
    "Struct",
    "Mutex",
    "mutex_lock",
    "mutex_unlock",
    "mutex_trylock",
    "SpinLock",
    "spin_lock",
    "spin_unlock",
    "BUG_ON",
    "WARN_ON",
    "WARN_ON_ONCE",
    "KVM_BUG_ON",
    "RwLock",
    "read_lock",
    "read_unlock",
    "write_lock",
    "write_unlock",
    "read_trylock",
    "write_trylock",
    "RwSem",
    "down_read",
    "up_read",
    "down_write",
    "up_write",
    "guard",
    "cond_resched_lock",
    "cond_resched_rwlock_read",
    "cond_resched_rwlock_write",
    "READ_ONCE",
    "WRITE_ONCE",
    "kmalloc",
    "kzalloc",
    "kfree",
    "kmap",
    "kunmap",
    "memremap",
    "memunmap",
    "might_sleep",
    "cond_resched",
    "lockdep_assert_held",
    "lockdep_assert_held_write",
    "lockdep_assert_held_read",
    "lockdep_assert_not_held",
    "spawn_irq",
    "data_race",
]

# Provided by other parts of the kernel layer (RCU, SRCU, atomics, refcounts,
# completions): checked only when present, but then they must be exported.
OPTIONAL_KERNEL = [
    "rcu_read_lock",
    "rcu_read_unlock",
    "rcu_dereference",
    "rcu_assign_pointer",
    "synchronize_rcu",
    "call_rcu",
    "kfree_rcu",
    "Srcu",
    "srcu_read_lock",
    "srcu_read_unlock",
    "synchronize_srcu",
    "Atomic",
    "atomic_read",
    "atomic_set",
    "atomic_inc",
    "atomic_dec_and_test",
    "Refcount",
    "refcount_inc",
    "refcount_dec_and_test",
    "Kref",
    "kref_get",
    "kref_put",
    "Completion",
    "complete",
    "wait_for_completion",
]


def test_top_level_all_is_exactly_the_public_api() -> None:
    assert set(kvmcheck.__all__) == EXPECTED_TOP
    assert len(kvmcheck.__all__) == len(set(kvmcheck.__all__))


@pytest.mark.parametrize("name", sorted(EXPECTED_TOP))
def test_top_level_names_resolve(name: str) -> None:
    assert getattr(kvmcheck, name) is not None


def test_kernel_all_has_no_duplicates() -> None:
    assert len(kvmcheck.kernel.__all__) == len(set(kvmcheck.kernel.__all__))


def test_every_kernel_export_is_importable() -> None:
    module = importlib.import_module("kvmcheck.kernel")
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []
    namespace: dict[str, object] = {}
    exec("from kvmcheck.kernel import *", namespace)
    assert set(module.__all__) <= set(namespace)


@pytest.mark.parametrize("name", REQUIRED_KERNEL)
def test_required_kernel_name(name: str) -> None:
    assert hasattr(kvmcheck.kernel, name), f"kvmcheck.kernel has no {name}"
    assert name in kvmcheck.kernel.__all__, f"{name} is not in kvmcheck.kernel.__all__"
    assert callable(getattr(kvmcheck.kernel, name))


@pytest.mark.parametrize("name", OPTIONAL_KERNEL)
def test_optional_kernel_name_is_exported_when_present(name: str) -> None:
    if not hasattr(kvmcheck.kernel, name):
        pytest.skip(f"{name} not provided (yet)")
    assert name in kvmcheck.kernel.__all__
