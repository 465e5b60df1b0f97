"""refcount_t and struct kref, as include/linux/refcount.h and lib/refcount.c define them.

The counter is a C ``int``.  Every operation is one exclusive visible step on
the refcount (``refcount_read`` is shared).  What goes wrong is reported as
the kernel reports it, through ``refcount_warn_saturate()``: the counter is
set to ``REFCOUNT_SATURATED`` (``INT_MIN / 2``; ``refcount_read`` shows it as
0xc0000000) *in a step of its own* (the kernel's ``refcount_set`` after the
failed atomic, racy on purpose), then a WARN -- once per kind per check,
as ``REFCOUNT_WARN`` is a ``WARN_ONCE`` -- of kind ``refcount``:

* ``refcount_inc``/``refcount_add`` on 0: "addition on 0; use-after-free.";
* an increment from or to a negative value: "saturated; leaking memory.";
* ``refcount_dec_and_test``/``refcount_sub_and_test`` from 0 or below, or
  below 0: "underflow; use-after-free." (and it returns false);
* ``refcount_dec`` reaching 0 (or below): "decrement hit 0; leaking memory.".

A saturated counter stays saturated: the next operation warns again and
sets it back.  Ordering for KCSAN: increments are relaxed, decrements
release, and a decrement that reaches 0 also acquires (``dec_and_test``'s
acquire on success), so a release callback happens after every earlier
``put``.

``Refcount(n)`` is ``REFCOUNT_INIT(n)``; with no argument it is 0, as in
zeroed memory.  ``Kref(n)`` likewise (``kref_init`` sets 1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvmcheck._engine import runtime
from kvmcheck.kernel._core import site_here, warn
from kvmcheck.kernel.atomic import Counter, acquire, relaxed, release, s32, step

__all__ = [
    "REFCOUNT_MAX",
    "REFCOUNT_SATURATED",
    "Kref",
    "Refcount",
    "kref_get",
    "kref_get_unless_zero",
    "kref_init",
    "kref_put",
    "kref_read",
    "refcount_add",
    "refcount_add_not_zero",
    "refcount_dec",
    "refcount_dec_and_test",
    "refcount_inc",
    "refcount_inc_not_zero",
    "refcount_read",
    "refcount_set",
    "refcount_sub_and_test",
]

REFCOUNT_MAX = 0x7FFF_FFFF  # INT_MAX
REFCOUNT_SATURATED = 0xC000_0000  # INT_MIN / 2, as refcount_read() (unsigned int) shows it
_SATURATED = s32(REFCOUNT_SATURATED)

ADD_NOT_ZERO_OVF = "saturated; leaking memory"
ADD_OVF = "saturated; leaking memory"
ADD_UAF = "addition on 0; use-after-free"
SUB_UAF = "underflow; use-after-free"
DEC_LEAK = "decrement hit 0; leaking memory"


class Refcount(Counter):
    """``refcount_t``."""

    kind = "refcount_t"
    prefix = "refcount"


class Kref(Refcount):
    """``struct kref`` (a refcount_t inside)."""

    kind = "kref"
    prefix = "kref"


def _saturate(r: Refcount, what: str) -> None:
    """refcount_warn_saturate(): refcount_set(r, REFCOUNT_SATURATED), then WARN_ONCE."""
    step(r, True, f"refcount_warn_saturate({r.name}): refcount_set(REFCOUNT_SATURATED)")
    r.counter = _SATURATED
    r.rel = []
    ex = runtime.current
    once = f"refcount-warn:{what}"
    if ex is not None:
        if once in ex.session:
            return
        ex.session[once] = True
    where = site_here()
    warn(
        "refcount",
        f"refcount_t: {what}. ({r.name})",
        headline=f"WARNING: refcount bug in {where.split(' ')[0]}",
        details=[f"refcount_t: {what}.", "WARNING: at lib/refcount.c refcount_warn_saturate"],
    )


def _add(i: int, r: Refcount, label: str) -> None:
    t = step(r, True, label)
    old = r.counter
    r.counter = s32(old + i)
    relaxed(r, t)
    if old == 0:
        _saturate(r, ADD_UAF)
    elif old < 0 or s32(old + i) < 0:
        _saturate(r, ADD_OVF)


def _add_not_zero(i: int, r: Refcount, label: str) -> bool:
    t = step(r, True, label)
    old = r.counter
    if old == 0:
        return False
    r.counter = s32(old + i)
    relaxed(r, t)
    if old < 0 or s32(old + i) < 0:
        _saturate(r, ADD_NOT_ZERO_OVF)
    return True


def _sub_and_test(i: int, r: Refcount, label: str) -> bool:
    t = step(r, True, label)
    old = r.counter
    r.counter = s32(old - i)
    release(r, t)
    if old > 0 and old == i:
        acquire(r, t)
        return True
    if old <= 0 or s32(old - i) < 0:
        _saturate(r, SUB_UAF)
    return False


def refcount_set(r: Refcount, n: int) -> None:
    """refcount_set(r, n): set the counter."""
    step(r, True, f"refcount_set({r.name}, {n})")
    r.counter = s32(n)
    r.rel = []


def refcount_read(r: Refcount) -> int:
    """The value as the kernel's ``unsigned int`` (a saturated refcount reads 0xc0000000)."""
    step(r, False, f"refcount_read({r.name})")
    return r.counter & 0xFFFF_FFFF


def refcount_add(i: int, r: Refcount) -> None:
    """refcount_add(i, r): add (WARN on 0 or overflow; the counter saturates)."""
    _add(i, r, f"refcount_add({i}, {r.name})")


def refcount_inc(r: Refcount) -> None:
    """refcount_inc(r): increment (WARN on 0: 'addition on 0; use-after-free')."""
    _add(1, r, f"refcount_inc({r.name})")


def refcount_add_not_zero(i: int, r: Refcount) -> bool:
    """refcount_add_not_zero(i, r): add unless 0; True if it did."""
    return _add_not_zero(i, r, f"refcount_add_not_zero({i}, {r.name})")


def refcount_inc_not_zero(r: Refcount) -> bool:
    """refcount_inc_not_zero(r): increment unless 0; True if it did."""
    return _add_not_zero(1, r, f"refcount_inc_not_zero({r.name})")


def refcount_sub_and_test(i: int, r: Refcount) -> bool:
    """refcount_sub_and_test(i, r): subtract; True if it reached 0."""
    return _sub_and_test(i, r, f"refcount_sub_and_test({i}, {r.name})")


def refcount_dec_and_test(r: Refcount) -> bool:
    """refcount_dec_and_test(r): decrement; True if it reached 0 (release, acquire on 0)."""
    return _sub_and_test(1, r, f"refcount_dec_and_test({r.name})")


def refcount_dec(r: Refcount) -> None:
    """refcount_dec(r): decrement (WARN if it hits 0: 'decrement hit 0; leaking memory')."""
    t = step(r, True, f"refcount_dec({r.name})")
    old = r.counter
    r.counter = s32(old - 1)
    release(r, t)
    if old <= 1:
        _saturate(r, DEC_LEAK)


# -- struct kref ---------------------------------------------------------------------------
def kref_init(kref: Kref) -> None:
    """kref_init(kref): set the count to 1."""
    refcount_set(kref, 1)


def kref_read(kref: Kref) -> int:
    """kref_read(kref): the current count."""
    return refcount_read(kref)


def kref_get(kref: Kref) -> None:
    """kref_get(kref): take a reference (WARN on 0: 'addition on 0; use-after-free')."""
    _add(1, kref, f"kref_get({kref.name})")


def kref_get_unless_zero(kref: Kref) -> int:
    """1 if a reference was taken, 0 if the count was already 0 (the object is going away)."""
    return int(_add_not_zero(1, kref, f"kref_get_unless_zero({kref.name})"))


def kref_put(kref: Kref, release_fn: Callable[[Kref], Any]) -> int:
    """Drop a reference; on the last one call ``release_fn(kref)`` and return 1."""
    if _sub_and_test(1, kref, f"kref_put({kref.name})"):
        release_fn(kref)
        return 1
    return 0
