"""Values read and written at each step of a counterexample, for the story.

The engine's steps name the operation (``read gpc->khva``) but not the value
it saw.  The report re-runs the counterexample once more under a probe that
looks at each operation just before it takes effect: for a field access, the
object and field the kernel layer's ``access()`` is working on; for an atomic
or refcount operation, the counter ``step()`` announces.  The value after an
operation is read when the next one is announced.

This peeks at the kernel layer's frames (``access(obj, f, write, ...)`` in
``kernel/struct.py``, ``step(c, ...)`` in ``kernel/atomic.py``), read-only; if
those change shape the probe simply finds nothing and the story shows no
values.  A ``value`` carried by the step itself would make it unnecessary.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import greenlet

from kvmcheck._engine import runtime

if TYPE_CHECKING:
    from collections.abc import Callable

    from kvmcheck._engine.check import Result
    from kvmcheck._engine.execution import Execution
    from kvmcheck._engine.finding import Step
    from kvmcheck._engine.ops import Op
    from kvmcheck._engine.scenario import Scenario


def fmt(v: Any) -> str:
    """A value as the kernel developer would say it: NULL, true, khva[pfn 1], 3."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v) if -4096 < v < 65536 else hex(v & 0xFFFF_FFFF_FFFF_FFFF)
    label = getattr(v, "_kc_label", None)
    if callable(label):
        return str(label())
    name = getattr(v, "name", None)
    if isinstance(name, str) and hasattr(v, "counter"):
        return name
    text = repr(v)
    return text if len(text) <= 28 else text[:26] + "~"


@dataclass
class ValueProbe:
    """Collects ``values[step] = " = khva[pfn 1]"`` and counter aliases while a run is replayed."""

    values: dict[int, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # refcount@file:12 -> obj->ref
    _after: list[tuple[int, Callable[[], str]]] = field(default_factory=list)

    def __call__(self, ex: Execution, tid: int, op: Op) -> None:
        prev, runtime.current = runtime.current, None  # labels must not announce steps
        try:
            self.flush()
            frame = _frame_of(ex, tid)
            if frame is not None:
                self._look(len(ex.schedule), frame)
        finally:
            runtime.current = prev

    def flush(self) -> None:
        for idx, fn in self._after:
            self.values[idx] = fn()
        self._after.clear()

    def _look(self, idx: int, frame: Any) -> None:
        f = frame
        for _ in range(16):
            if f is None:
                return
            code = f.f_code
            if code.co_name == "access" and code.co_filename.endswith("struct.py"):
                self._access(idx, f.f_locals)
                return
            if code.co_name == "step" and code.co_filename.endswith("atomic.py"):
                self._counter(idx, f.f_locals)
                return
            f = f.f_back

    def _access(self, idx: int, loc: dict[str, Any]) -> None:
        obj, fld = loc.get("obj"), loc.get("f")
        name = getattr(fld, "name", None)
        if obj is None or name is None:
            return
        d = obj.__dict__
        if loc.get("update") is not None:
            old = d.get(name)
            self._after.append((idx, lambda: f" {fmt(old)}→{fmt(d.get(name))}"))
        elif loc.get("write"):
            self.values[idx] = f" = {fmt(loc.get('value'))}"
        else:
            v = d.get(name)
            if hasattr(v, "counter") and isinstance(getattr(v, "name", None), str):
                self.aliases.setdefault(v.name, f"{fmt(obj)}->{name}")  # the refcount_t in a field
            else:
                self.values[idx] = f" = {fmt(v)}"

    def _counter(self, idx: int, loc: dict[str, Any]) -> None:
        c, label = loc.get("c"), str(loc.get("label", ""))
        if c is None:
            return
        before = c.counter

        def after() -> str:
            now = c.counter
            text = f" {before}→{now}" if now != before else f" = {before}"
            fn = label.split("(", 1)[0]
            if fn.endswith("_and_test"):
                text += f" = {fmt(now == 0)}"
            elif fn.endswith(("_not_zero", "_unless_zero")):
                text += f" = {fmt(before != 0)}"
            return text

        self._after.append((idx, after))


def _frame_of(ex: Execution, tid: int) -> Any:
    t = ex.threads[tid]
    g = t.glet
    if g is None:
        return None
    if g is greenlet.getcurrent():
        return sys._getframe(2)
    return g.gr_frame


@dataclass
class Annotated:
    """A counterexample's traced steps with the values each one read or wrote."""

    steps: list[Step]
    values: dict[int, str]
    aliases: dict[str, str]

    def op(self, s: Step) -> str:
        """The step's operation (counters named by their field) with the value appended."""
        return s.op + self.values.get(s.index, "")


def annotate(
    scn: Scenario, result: Result, kcsan: bool | None = None, step_timeout_s: float | None = None
) -> Annotated | None:
    """Re-run ``result``'s counterexample once under a :class:`ValueProbe` (and the watchdog:
    a thread stuck in pure Python for ``step_timeout_s`` ends the re-run, as in the search)."""
    from kvmcheck._engine import guard
    from kvmcheck._engine.minimise import per_thread, run_guided
    from kvmcheck._engine.schedule import split_runs

    f = result.finding
    if f is None or not f.schedule:
        return None
    runs = split_runs(f.schedule)
    probe = ValueProbe()
    use = scn.kcsan if kcsan is None else kcsan
    try:
        tids, values = runs[-1]
        with guard.watching(None, step_timeout_s):
            run = run_guided(
                scn, result.variant, runs[:-1], tids, kcsan=use, probe=probe, choices=per_thread(tids, values)
            )
    except Exception:  # noqa: BLE001 - values are a nicety; the report stands without them
        return None
    probe.flush()
    if list(run.execution.schedule) != runs[-1][0]:
        return None
    steps = [replace(s, op=_alias(s.op, probe.aliases)) for s in run.execution.steps]
    return Annotated(steps, probe.values, probe.aliases)


def _alias(op: str, aliases: dict[str, str]) -> str:
    for raw, alias in aliases.items():
        op = op.replace(raw, alias)
    return op
