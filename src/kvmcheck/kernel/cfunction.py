"""Which model function a report is "in": the C function a kernel report would name.

KASAN prints the function the faulting access is in ("BUG: KASAN: use-after-free in
kvm_tdp_mmu_zap_invalidated_roots+0x..."), and a C macro or iterator is no function of its own:
its code is inlined into the caller.  A model writes some of those as Python helpers --
``for_each_tdp_mmu_root_yield_safe`` is a generator, ``list_for_each_entry`` too -- so the
report must skip their frames.  The rule:

* a frame of a *generator* (``yield``: the model of a ``for_each_*`` iterator macro) is skipped;
* a frame of a function marked :func:`macro` is skipped (a model of a function-like macro);
* a frame of a function whose name is all capitals (``KVM_BUG_ON``-style macro names) or of a
  ``lambda`` / comprehension is skipped;

and the engine's and kernel layer's own frames are skipped as :func:`model_site` skips them.  The
report names the first frame left, at the line where that function is (inside the macro's use).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from kvmcheck._engine.execution import _engine_dirs, _short

__all__ = ["macro"]

F = TypeVar("F", bound=Callable[..., Any])
_MACROS: set[Any] = set()  # code objects of functions marked @macro


def macro(fn: F) -> F:
    """Mark a model function as the model of a C macro: reports name its caller instead."""
    code = getattr(fn, "__code__", None)
    if code is not None:
        _MACROS.add(code)
    return fn


def is_macro(code: Any) -> bool:
    name: str = code.co_name
    return (
        code in _MACROS
        or bool(code.co_flags & (inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR))
        or name.startswith("<")
        or (name.isupper() and any(c.isalpha() for c in name))
    )


def c_function_site(depth: int = 1) -> str:
    """'function (file:line)' of the C function the caller's model code is in (see the module)."""
    skip = _engine_dirs()
    f: Any = sys._getframe(depth)
    fallback = ""
    while f is not None:
        code = f.f_code
        if not code.co_filename.startswith(skip) and code.co_name not in ("_thread_main", "<module>"):
            site = f"{code.co_name} ({_short(code.co_filename)}:{f.f_lineno})"
            if not is_macro(code):
                return site
            fallback = fallback or site
        f = f.f_back
    return fallback
