"""Which memory model an execution runs under: ``"sc"`` (the default) or a weak one.

The engine knows only the names.  A layer above registers, for each weak model,
the function that switches a fresh execution to it (the kernel layer registers
``"lkmm"``: :mod:`kvmcheck.kernel.barrier`).  A scenario run under a weak model has
its body wrapped so that this function runs first, inside the execution: every
path that runs a scenario body (the search, parallel workers, the traced replay,
minimisation, the determinism probe) therefore runs it under the same model.
Under ``"sc"`` the body is returned unwrapped -- nothing changes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from kvmcheck._engine.execution import Execution

from kvmcheck._engine.finding import UsageError

SC = "sc"
MODELS = (SC, "lkmm")
_start: dict[str, Callable[[], None]] = {}


class Explanation(Protocol):
    """A run in a weak model's terms (the kernel layer's ``lkmm_explain.LkmmExplanation``):
    opaque to the engine, which stores it on the counterexample and the reports render."""

    def lines(self) -> list[str]: ...

    def as_dict(self) -> dict[str, Any]: ...

    def step_notes(self) -> dict[int, str]: ...  # a label per step (the HTML swimlanes')


_explain: dict[str, Callable[[Execution], Explanation | None]] = {}


def register(name: str, start: Callable[[], None]) -> None:
    """Make ``start`` the switch to memory model ``name`` (called at import by the layer that owns it)."""
    _start[name] = start


def register_explainer(name: str, fn: Callable[[Execution], Explanation | None]) -> None:
    """Make ``fn`` say a run of memory model ``name`` in its own terms (the counterexample's)."""
    _explain[name] = fn


def explainer(name: str) -> Callable[[Execution], Explanation | None] | None:
    """What explains a run under ``name``; None under SC or when nothing registered one."""
    return None if name == SC else _explain.get(name)


def check_name(name: str) -> str:
    if name not in MODELS:
        raise UsageError(f"unknown memory model {name!r}; known: {', '.join(MODELS)}")
    return name


def wrap(body: Callable[[], Any], name: str) -> Callable[[], Any]:
    """``body`` run under memory model ``name`` (``body`` itself under SC)."""
    if name == SC:
        return body
    start = _start.get(name)
    if start is None:  # the owning layer is imported by kvmcheck's public face; be explicit
        raise UsageError(f"memory model {name!r} is not available (its layer is not loaded)")

    @functools.wraps(body)
    def run() -> Any:
        start()
        return body()

    return run
