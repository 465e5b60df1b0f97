"""The value each traced step read or wrote, as the report appends it to the operation.

While a counterexample is replayed with tracing on, the kernel layer says what each access
saw: a field read ``read gpc->khva = khva[pfn 1]``, a write ``write gpc->valid = true``, an
atomic update ``xchg(...) 0→1``, a counter ``refcount_dec_and_test(kvm->users_count) 1→0 =
true`` (with what a ``_and_test``/``_not_zero`` operation returned).  The value goes on the
step the access announced (``Execution.note_value``); an old->new is completed once the
step has taken effect, when the next step is announced.  A ``refcount_t`` read out of a
field names that counter ``obj->field`` in the whole trace (``Execution.rename``).

Only traced runs get here (``ex.tracing``): the search pays nothing for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kvmcheck._engine import runtime

if TYPE_CHECKING:
    from collections.abc import Callable

    from kvmcheck._engine.execution import Execution

__all__ = ["note_access", "note_counter"]


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
    if isinstance(name, str) and _is_counter(v):
        return name
    text = repr(v)
    return text if len(text) <= 28 else text[:26] + "~"


def _is_counter(v: Any) -> bool:
    return hasattr(v, "counter") and isinstance(getattr(v, "name", None), str)


def _quiet(fn: Callable[[], str]) -> Callable[[], str]:
    """``fn`` run with no execution current: naming a value must not announce steps."""

    def run() -> str:
        prev, runtime.current = runtime.current, None
        try:
            return fn()
        finally:
            runtime.current = prev

    return run


def note_access(ex: Execution, obj: Any, name: str, write: bool, value: Any, update: Any) -> None:
    """The value of a field access just announced (before it takes effect)."""
    d = obj.__dict__
    if update is not None:
        old = d.get(name)
        ex.note_value(_quiet(lambda: f" {fmt(old)}→{fmt(d.get(name))}"))
    elif write:
        ex.note_value(_quiet(lambda: f" = {fmt(value)}")())
    else:
        v = d.get(name)
        if _is_counter(v):  # the refcount_t in a field: the trace names it by that field
            ex.rename(v.name, _quiet(lambda: f"{fmt(obj)}->{name}")())
        else:
            ex.note_value(_quiet(lambda: f" = {fmt(v)}")())


def note_counter(ex: Execution, c: Any, label: str) -> None:
    """The counter's value before->after an atomic or refcount operation just announced, and
    what a ``_and_test``/``_not_zero`` operation returned."""
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

    ex.note_value(_quiet(after))
