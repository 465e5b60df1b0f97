"""KCSAN: data races as the kernel memory model defines them.

Two accesses to one field race when at least one writes, at least one is
plain (not READ_ONCE/WRITE_ONCE/atomic), and neither happens before the
other by synchronisation: lock release -> acquire, spawn, join, RCU grace
periods, completions, release/acquire accesses.  (That clock is each
thread's ``vc``; it is *not* the dependency order DPOR uses.)  Each racing
field is reported once per check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kvmcheck._engine.clock import vc_get
from kvmcheck.kernel._core import warn

if TYPE_CHECKING:
    from kvmcheck._engine.execution import Execution, Thread

__all__ = ["on_access"]

# per execution: key -> [last write (tid, epoch, marked) or None, reads [(tid, epoch, marked)]]
_Access = tuple[int, int, bool]


def on_access(ex: Execution, t: Thread, key: int, obj: Any, field: str, write: bool, marked: bool) -> None:
    state: dict[int, list[Any]] = ex.k.kcsan
    rec = state.get(key)
    if rec is None:
        rec = state[key] = [None, []]
    vc = t.vc
    tid = t.tid
    w: _Access | None = rec[0]
    if w is not None and w[0] != tid and w[1] > vc_get(vc, w[0]) and not (w[2] and marked):
        _report(ex, obj, field, write, "write", w[0])
    if write:
        for r in rec[1]:
            if r[0] != tid and r[1] > vc_get(vc, r[0]) and not (r[2] and marked):
                _report(ex, obj, field, write, "read", r[0])
                break
        rec[0] = (tid, vc_get(vc, tid), marked)
        rec[1] = []
    else:
        reads = rec[1]
        for i, r in enumerate(reads):
            if r[0] == tid:
                reads[i] = (tid, vc_get(vc, tid), marked)
                break
        else:
            reads.append((tid, vc_get(vc, tid), marked))


def _report(ex: Execution, obj: Any, field: str, write: bool, other: str, other_tid: int) -> None:
    name = f"{type(obj).__name__}.{field}"
    seen: set[str] = ex.session.setdefault("kcsan_reported", set())
    if name in seen:
        return
    seen.add(name)
    me = ex.current.name if ex.current else "?"
    them = ex.threads[other_tid].name
    warn(
        "data-race",
        f"{'write' if write else 'read'} of {name} by {me} races with {other} by {them}",
        headline=f"BUG: KCSAN: data-race on {name}",
    )
