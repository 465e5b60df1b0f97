"""Dependencies under LKMM exploration: an int read carries the reads it came from.

The LKMM orders a write after a read it depends on (``data``: the value stored is
computed from the read; ``ctrl``: the write is inside an ``if`` on it), and LB's
weak outcome is allowed exactly when no such dependency (or fence) closes the
cycle.  A Python model has no registers, so under ``memory_model="lkmm"`` a read
of an ``int`` returns :class:`Dep`, an ``int`` that remembers the reads (thread,
thread-local event index) it was computed from:

* arithmetic and bit operations return a ``Dep`` carrying both operands' reads;
  a write of such a value has a ``data`` dependency on them (kernel/barrier.py);
* everything else that looks at the value -- truth (``if r:``), a comparison,
  ``hash`` (a dict key), ``int()``/``index``, formatting -- *consumes* it: from
  then on every write of the reading thread depends on those reads (a ``ctrl``
  dependency whose scope is the rest of the thread, not just the ``if``'s
  branches: stronger than the LKMM, never weaker).  Only while an execution is
  current: a traced replay's report formatting a value (kernel/trace_values.py runs
  with none) must not change the graph, or the replay would not be the search's run.

Where a value escapes both (CPython reads an ``int`` subclass's value directly
for list indexing, ``range()`` and ``%d``), the dependency is lost: a write
indexed by an int read is not seen to depend on it.  Reads of anything but a
plain ``int`` (objects, ``None``, ``bool``) keep the conservative rule: every
later write of the thread depends on them.
"""

from __future__ import annotations

from typing import Any

from kvmcheck._engine import runtime

__all__ = ["Dep", "plain", "sources"]

Src = frozenset[tuple[int, int]]  # (thread, thread-local event index) of the reads a value came from


class Dep(int):
    """An int read under LKMM exploration, with the reads it depends on."""

    _kc_src: Src
    _kc_sink: Any  # the graph's per-thread sets of consumed reads (barrier.Graph.used)

    def __new__(cls, value: int, src: Src, sink: Any) -> Dep:
        d = super().__new__(cls, value)
        d._kc_src = src
        d._kc_sink = sink
        return d

    def _kc_use(self) -> None:
        if runtime.current is None:
            return  # not the model: a report formatting the value (trace_values runs with none)
        for tid, k in self._kc_src:
            self._kc_sink.setdefault(tid, set()).add(k)

    # -- consumed: the value decides something ------------------------------------------
    def __bool__(self) -> bool:
        self._kc_use()
        return int.__int__(self) != 0

    def __hash__(self) -> int:
        self._kc_use()
        return int.__hash__(self)

    def __index__(self) -> int:
        self._kc_use()
        return int.__int__(self)

    def __int__(self) -> int:
        self._kc_use()
        return int.__int__(self)

    def __float__(self) -> float:
        self._kc_use()
        return int.__float__(self)

    def __format__(self, spec: str) -> str:
        self._kc_use()
        return int.__format__(int.__int__(self), spec)

    def __repr__(self) -> str:
        self._kc_use()
        return int.__repr__(self)

    __str__ = __repr__

    def __reduce__(self) -> tuple[Any, ...]:
        return (int, (int.__int__(self),))


def _cmp(name: str) -> Any:
    base = getattr(int, name)

    def op(self: Dep, other: Any) -> Any:
        self._kc_use()
        if isinstance(other, Dep):
            other._kc_use()
        return base(self, other)

    op.__name__ = name
    return op


def _arith(name: str) -> Any:
    base = getattr(int, name)

    def op(self: Dep, *other: Any) -> Any:
        r = base(self, *other)
        if r is NotImplemented or type(r) is not int:
            if r is not NotImplemented:
                self._kc_use()
            return r
        src = self._kc_src
        for o in other:
            if isinstance(o, Dep):
                src = src | o._kc_src
        return Dep(r, src, self._kc_sink)

    op.__name__ = name
    return op


for _n in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"):
    setattr(Dep, _n, _cmp(_n))
for _n in (
    "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__floordiv__",
    "__rfloordiv__", "__mod__", "__rmod__", "__and__", "__rand__", "__or__", "__ror__",
    "__xor__", "__rxor__", "__lshift__", "__rlshift__", "__rshift__", "__rrshift__",
    "__neg__", "__pos__", "__abs__", "__invert__", "__pow__", "__rpow__", "__truediv__",
    "__rtruediv__", "__divmod__", "__rdivmod__", "__trunc__", "__floor__", "__ceil__", "__round__",
):  # fmt: skip
    setattr(Dep, _n, _arith(_n))


def plain(value: Any) -> Any:
    """``value`` without its dependencies (what memory holds)."""
    return int.__int__(value) if type(value) is Dep else value


def sources(value: Any, tid: int) -> frozenset[int]:
    """The thread-local indices of ``tid``'s reads that ``value`` was computed from."""
    if type(value) is not Dep:
        return frozenset()
    return frozenset(k for t, k in value._kc_src if t == tid)
