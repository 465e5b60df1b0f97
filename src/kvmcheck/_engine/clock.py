"""Vector clocks as plain lists indexed by thread id (short lists are padded with 0)."""

from __future__ import annotations

Clock = list[int]


def vc_join(a: Clock, b: Clock) -> Clock:
    """Pointwise maximum, as a new list."""
    if len(a) < len(b):
        a, b = b, a
    out = a[:]
    for i, x in enumerate(b):
        if x > out[i]:
            out[i] = x
    return out


def vc_get(c: Clock, tid: int) -> int:
    return c[tid] if tid < len(c) else 0


def vc_tick(c: Clock, tid: int) -> None:
    """Increment ``tid``'s component in place."""
    if tid >= len(c):
        c.extend([0] * (tid + 1 - len(c)))
    c[tid] += 1
