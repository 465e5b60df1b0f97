"""The XArray: struct xarray, xa_store/xa_load/xa_erase/xa_for_each (lib/xarray.c,
include/linux/xarray.h, v6.x).

Locking as the kernel has it (Documentation/core-api/xarray.rst, "Locking"):

* ``xa_store``/``xa_erase`` take ``xa_lock`` (a spinlock, ``xa.xa_lock``)
  internally: three steps -- the lock, the store, the unlock -- so lockdep
  sees the xa_lock, and a store made while another task holds ``xa_lock``
  (``xa_lock(xa)`` ... ``xa_unlock(xa)``) waits for it;
* ``__xa_store``/``__xa_erase`` are the same with ``xa_lock`` already held
  by the caller (``lockdep_assert_held``);
* ``xa_load`` and ``xa_for_each`` take no lock: they run under
  ``rcu_read_lock()`` internally, so they may run concurrently with a store
  without a data race.  Each stored entry is published (``rcu_assign_pointer``
  in ``xas_store``), and a load that finds it acquires that -- what the
  storer wrote to the entry before storing it happens before the reader's
  use of it.  ``xa_for_each`` loads one entry per step (``xa_find_after``),
  in index order, seeing each entry as it is at that step.
* ``xa_store(xa, i, entry, gfp)`` with ``GFP_KERNEL`` may sleep to allocate
  (``might_alloc``): storing under a spinlock needs ``GFP_ATOMIC``.

Storing NULL is erasing.  Entries are any Python objects but None.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kvmcheck._engine.clock import Clock, vc_join, vc_tick
from kvmcheck._engine.finding import UsageError
from kvmcheck.kernel._core import Primitive
from kvmcheck.kernel.context import might_sleep_check
from kvmcheck.kernel.locking import SpinLock, lockdep_assert_held, spin_lock, spin_unlock

__all__ = [
    "GFP_ATOMIC",
    "GFP_KERNEL",
    "GFP_NOWAIT",
    "XArray",
    "xa_empty",
    "xa_erase",
    "xa_for_each",
    "xa_init",
    "xa_load",
    "xa_lock",
    "xa_store",
    "xa_unlock",
]

GFP_KERNEL = "GFP_KERNEL"
GFP_ATOMIC = "GFP_ATOMIC"
GFP_NOWAIT = "GFP_NOWAIT"


class XArray(Primitive):
    """``struct xarray`` (``DEFINE_XARRAY`` / ``xa_init``); ``xa.xa_lock`` is its spinlock."""

    kind = "xarray"
    prefix = "xa"

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name)
        self.entries: dict[int, Any] = {}
        self.published: dict[int, Clock] = {}  # index -> the storer's clock when it stored
        self.xa_lock = SpinLock(f"{self.name}.xa_lock")


def _check(xa: Any, fn: str, index: int | None = None) -> None:
    if not isinstance(xa, XArray):
        raise UsageError(f"{fn}() takes an XArray (struct xarray), not {xa!r}")
    if index is not None and (not isinstance(index, int) or index < 0):
        raise UsageError(f"{fn}({xa.name}, {index!r}): the index must be an unsigned long (an int >= 0)")


def xa_init(xa: XArray) -> None:
    """Initialise an empty XArray (not a visible step: it is not shared yet)."""
    _check(xa, "xa_init")
    xa.entries, xa.published = {}, {}


def xa_lock(xa: XArray) -> None:
    """xa_lock(xa): take the XArray's spinlock (for __xa_store/__xa_erase)."""
    _check(xa, "xa_lock")
    spin_lock(xa.xa_lock)


def xa_unlock(xa: XArray) -> None:
    """xa_unlock(xa): release the XArray's spinlock."""
    _check(xa, "xa_unlock")
    spin_unlock(xa.xa_lock)


def __xa_store(xa: XArray, index: int, entry: Any, gfp: str = GFP_KERNEL) -> Any:
    """Store with ``xa_lock`` held by the caller; returns the old entry (None if none)."""
    _check(xa, "__xa_store", index)
    lockdep_assert_held(xa.xa_lock)
    return _store(xa, index, entry, "__xa_store")


def _store(xa: XArray, index: int, entry: Any, fn: str) -> Any:
    t = xa.step(True, f"{fn}({xa.name}, {index})")
    old = xa.entries.get(index)
    if entry is None:
        xa.entries.pop(index, None)
        xa.published.pop(index, None)
    else:
        xa.entries = {**xa.entries, index: entry}
        if t is not None:  # rcu_assign_pointer(): what came before is published with the entry
            xa.published[index] = t.vc[:]
            vc_tick(t.vc, t.tid)
    return old


def xa_store(xa: XArray, index: int, entry: Any, gfp: str = GFP_KERNEL) -> Any:
    """Store ``entry`` at ``index`` under ``xa_lock``; returns the old entry (None if none)."""
    _check(xa, "xa_store", index)
    if gfp == GFP_KERNEL:
        might_sleep_check(f"xa_store({xa.name}, GFP_KERNEL)")
    spin_lock(xa.xa_lock)
    old = _store(xa, index, entry, "xa_store")
    spin_unlock(xa.xa_lock)
    return old


def __xa_erase(xa: XArray, index: int) -> Any:
    """Erase with ``xa_lock`` held by the caller; returns the old entry."""
    _check(xa, "__xa_erase", index)
    lockdep_assert_held(xa.xa_lock)
    return _store(xa, index, None, "__xa_erase")


def xa_erase(xa: XArray, index: int) -> Any:
    """Erase the entry at ``index`` under ``xa_lock``; returns it (None if there was none)."""
    _check(xa, "xa_erase", index)
    spin_lock(xa.xa_lock)
    old = _store(xa, index, None, "xa_erase")
    spin_unlock(xa.xa_lock)
    return old


def _load(xa: XArray, index: int, label: str) -> Any:
    t = xa.step(False, label)
    entry = xa.entries.get(index)
    if t is not None and entry is not None:
        c = xa.published.get(index)
        if c is not None:
            t.vc = vc_join(t.vc, c)
    return entry


def xa_load(xa: XArray, index: int) -> Any:
    """The entry at ``index`` (None if none): RCU-safe, no lock needed."""
    _check(xa, "xa_load", index)
    return _load(xa, index, f"xa_load({xa.name}, {index})")


def xa_empty(xa: XArray) -> bool:
    """xa_empty(xa): True if the XArray holds no entry (a lockless, RCU-safe check)."""
    _check(xa, "xa_empty")
    xa.step(False, f"xa_empty({xa.name})")
    return not xa.entries


def xa_for_each(xa: XArray) -> Iterator[tuple[int, Any]]:
    """``xa_for_each(xa, index, entry)``: ``for index, entry in xa_for_each(xa)``.

    One RCU-protected load per entry (``xa_find_after``), in index order: an
    entry stored or erased behind the walk is missed or seen as it was.
    """
    _check(xa, "xa_for_each")
    index = -1
    while True:
        t = xa.step(False, f"xa_find_after({xa.name}, {index})")
        later = [i for i in xa.entries if i > index]
        if not later:
            return
        index = min(later)
        entry = xa.entries[index]
        c = xa.published.get(index)
        if t is not None and c is not None:
            t.vc = vc_join(t.vc, c)
        yield index, entry
