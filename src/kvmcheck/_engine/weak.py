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
from typing import Any

from kvmcheck._engine.finding import UsageError

SC = "sc"
MODELS = (SC, "lkmm")
_start: dict[str, Callable[[], None]] = {}


def register(name: str, start: Callable[[], None]) -> None:
    """Make ``start`` the switch to memory model ``name`` (called at import by the layer that owns it)."""
    _start[name] = start


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
