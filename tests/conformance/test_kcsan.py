"""KCSAN's data-race rule, one case per pair of accesses and ordering.

Sources: tools/memory-model/Documentation/explanation.txt, "PLAIN ACCESSES AND DATA RACES" (a data
race is two accesses to the same location, at least one a store, at least one plain, from
different threads, that are not ordered -- not separated by happens-before: a lock's
release/acquire, a release store read by an acquire load, thread creation and join), and
Documentation/dev-tools/kcsan.rst ("Data Races": marked accesses -- READ_ONCE, WRITE_ONCE,
atomic_*, smp_load_acquire/smp_store_release -- never race with each other).  kvmcheck reports what
the LKMM defines, which is what KCSAN reports with CONFIG_KCSAN_STRICT=y (without it, KCSAN by
default assumes aligned plain writes of a word atomic and reports only value changes: a
configuration of the sampler, not of the rule).

The table: every unordered pair of the six field accesses (plain read, plain write, READ_ONCE,
WRITE_ONCE, smp_load_acquire, smp_store_release), and the atomic_t accesses (atomic_read,
atomic_set) with each other, each with the two accesses in two threads under each ordering:
none, both under one spinlock, a release store / acquire load of a flag, and join-then-spawn.
An atomic_t has no plain access in kvmcheck (as in C, where only atomic_*() touch it), so the
atomic-vs-field pairs are listed as not applicable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kvmcheck import join, spawn
from kvmcheck.kernel import (
    READ_ONCE,
    WRITE_ONCE,
    Atomic,
    SpinLock,
    Struct,
    atomic_read,
    atomic_set,
    smp_load_acquire,
    smp_store_release,
    spin_lock,
    spin_unlock,
)
from tests.conformance.case import KernelCase
from tests.conformance.conformance_table import assert_agrees

SUITE = "tools/memory-model (LKMM data race) + kcsan.rst"


class Shared(Struct):
    """The racing location ``x`` and a release/acquire ``flag``."""

    x: int = 0
    flag: int = 0


def _plain_read(s: Shared, a: Atomic) -> None:
    _ = s.x


def _plain_write(s: Shared, a: Atomic) -> None:
    s.x = 1


def _read_once(s: Shared, a: Atomic) -> None:
    READ_ONCE(s, "x")


def _write_once(s: Shared, a: Atomic) -> None:
    WRITE_ONCE(s, "x", 1)


def _load_acquire(s: Shared, a: Atomic) -> None:
    smp_load_acquire(s, "x")


def _store_release(s: Shared, a: Atomic) -> None:
    smp_store_release(s, "x", 1)


def _atomic_read(s: Shared, a: Atomic) -> None:
    atomic_read(a)


def _atomic_set(s: Shared, a: Atomic) -> None:
    atomic_set(a, 1)


# name -> (access, writes, marked)
FIELD = {
    "plain-read": (_plain_read, False, False),
    "plain-write": (_plain_write, True, False),
    "READ_ONCE": (_read_once, False, True),
    "WRITE_ONCE": (_write_once, True, True),
    "smp_load_acquire": (_load_acquire, False, True),
    "smp_store_release": (_store_release, True, True),
}
ATOMIC = {"atomic_read": (_atomic_read, False, True), "atomic_set": (_atomic_set, True, True)}
Access = Callable[[Shared, Atomic], None]


def _unordered(a: Access, b: Access) -> None:
    s, v = Shared(), Atomic(0)
    join(spawn(a, s, v, name="T0"), spawn(b, s, v, name="T1"))


def _locked(a: Access, b: Access) -> None:
    s, v, lock = Shared(), Atomic(0), SpinLock("lock")

    def under(f: Access) -> None:
        spin_lock(lock)
        f(s, v)
        spin_unlock(lock)

    join(spawn(under, a, name="T0"), spawn(under, b, name="T1"))


def _release_acquire(a: Access, b: Access) -> None:
    s, v = Shared(), Atomic(0)

    def first() -> None:
        a(s, v)
        smp_store_release(s, "flag", 1)

    def second() -> None:
        if smp_load_acquire(s, "flag"):
            b(s, v)

    join(spawn(first, name="T0"), spawn(second, name="T1"))


def _join_spawn(a: Access, b: Access) -> None:
    s, v = Shared(), Atomic(0)
    join(spawn(a, s, v, name="T0"))
    join(spawn(b, s, v, name="T1"))


ORDERINGS: dict[str, Callable[[Access, Access], None]] = {
    "unordered": _unordered,
    "spinlock": _locked,
    "release-acquire": _release_acquire,
    "join-spawn": _join_spawn,
}


def _model(name: str, order: Callable[[Access, Access], None], a: Access, b: Access, doc: str) -> Any:
    def body() -> None:
        order(a, b)

    body.__name__ = body.__qualname__ = name.replace("/", "_").replace("-", "_")
    body.__doc__ = doc
    return body


def _pairs(table: dict[str, tuple[Access, bool, bool]]) -> list[tuple[str, str]]:
    names = list(table)
    return [(names[i], names[j]) for i in range(len(names)) for j in range(i, len(names))]


_cases: list[KernelCase] = []
for table in (FIELD, ATOMIC):
    for n1, n2 in _pairs(table):
        (f1, w1, m1), (f2, w2, m2) = table[n1], table[n2]
        for order, run in ORDERINGS.items():
            racy = order == "unordered" and (w1 or w2) and not (m1 and m2)
            name = f"{n1} vs {n2} / {order}"
            doc = f"{SUITE}: {n1} in one thread, {n2} in another, {order}: " + (
                "a data race (a store, a plain access, no ordering)" if racy else "no data race"
            )
            _cases.append(
                KernelCase(
                    SUITE,
                    name,
                    "bug" if racy else "ok",
                    _model(name, run, f1, f2, doc),
                    "data-race" if racy else "",
                    doc,
                )
            )
for n1 in ATOMIC:
    for n2 in FIELD:
        _cases.append(
            KernelCase(
                SUITE,
                f"{n1} vs {n2}",
                "bug" if FIELD[n2][1] or ATOMIC[n1][1] else "ok",
                None,
                why="an atomic_t is only accessed through atomic_*(): kvmcheck's Atomic has no plain, "
                "READ_ONCE or acquire/release field access to pair it with",
            )
        )

CASES: tuple[KernelCase, ...] = tuple(_cases)


@pytest.mark.parametrize("case", [c for c in CASES if c.applicable], ids=lambda c: c.case)
def test_data_race_rule(case: KernelCase) -> None:
    assert_agrees(case)
