"""Deadlock: every live thread blocked.  Name the wait-for cycle when there is one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kvmcheck._engine.finding import Finding

if TYPE_CHECKING:
    from kvmcheck._engine.execution import Execution


def _holders(obj: Any) -> list[int]:
    get = getattr(obj, "_kc_holders", None)
    if get is not None:
        return list(get())
    tid = getattr(obj, "tid", None)  # a thread being joined "holds" itself
    return [tid] if isinstance(tid, int) else []


def _label(obj: Any) -> str:
    name = getattr(obj, "_kc_label", None)
    return str(name() if callable(name) else name or getattr(obj, "name", "?"))


def deadlock_finding(ex: Execution) -> Finding:
    waits: dict[int, tuple[str, list[int]]] = {}
    for t in ex.threads:
        if t.pending is not None and t.pending.obj is not None:
            obj = t.pending.obj
            waits[t.tid] = (_label(obj), _holders(obj))
    cycle = _find_cycle(waits)
    names = {t.tid: t.name for t in ex.threads}
    details = [
        f"  {names[tid]} waits for {what} held by {', '.join(names[h] for h in hs) or 'nobody'}"
        for tid, (what, hs) in sorted(waits.items())
    ]
    if cycle:
        chain = " -> ".join(f"{names[t]} [{waits[t][0]}]" for t in cycle)
        msg = f"wait-for cycle: {chain} -> {names[cycle[0]]}"
    else:
        msg = "all live threads are blocked: " + "; ".join(d.strip() for d in details)
    return Finding(
        "deadlock",
        msg,
        headline="INFO: task blocked forever (deadlock)",
        thread=cycle[0] if cycle else None,
        details=tuple(details),
    )


def _find_cycle(waits: dict[int, tuple[str, list[int]]]) -> list[int]:
    for start in sorted(waits):
        path: list[int] = []
        seen: set[int] = set()
        t: int | None = start
        while t is not None and t in waits and t not in seen:
            seen.add(t)
            path.append(t)
            holders = waits[t][1]
            t = holders[0] if holders else None
        if t is not None and t in path:
            return path[path.index(t) :]
    return []
