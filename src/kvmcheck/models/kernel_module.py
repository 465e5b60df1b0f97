"""struct module's reference count, as symbol_get()/symbol_put() use it (kernel/module/main.c).

vfio must not depend on kvm.ko at link time, and kvm must not depend on
vfio.ko: each side reaches the other's exported functions through
``symbol_get(sym)``, which looks the symbol up and takes a reference on the
module that exports it (``try_module_get``), and ``symbol_put(sym)``, which
drops it.  While a reference is held the module cannot be unloaded, so a
function pointer obtained this way stays valid.

Model: a per-execution symbol table (the kernel's exported-symbol table) of
the modules a scenario loads with :func:`module_init`.  ``refcnt`` is kept as
a plain counter, invisible to the search: increments and decrements commute
and nothing in the modelled code branches on the value, so only its final
value matters -- :func:`module_refcount` is 0 again once every user has
dropped what it took (a non-zero count is a leaked module reference; a
negative one is a symbol_put without its symbol_get).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvmcheck.kernel._core import execution


class KernelModule:
    """``struct module`` (only its name, exported symbols and refcnt)."""

    def __init__(self, name: str, symbols: dict[str, Callable[..., Any]]) -> None:
        self.name = name
        self.symbols = dict(symbols)
        self.refcnt = 0  # module_refcount(): references taken by try_module_get()

    def __repr__(self) -> str:
        return f"<module {self.name} refcnt={self.refcnt}>"


_table: tuple[object | None, dict[str, KernelModule]] = (None, {})


def _symtab() -> dict[str, KernelModule]:
    """The running execution's exported-symbol table (symbol name -> owning module)."""
    global _table
    ex = execution()
    if _table[0] is not ex:
        _table = (ex, {})
    return _table[1]


def module_init(name: str, symbols: dict[str, Callable[..., Any]]) -> KernelModule:
    """Load module ``name`` exporting ``symbols`` (EXPORT_SYMBOL_GPL) in this execution."""
    mod = KernelModule(name, symbols)
    tab = _symtab()
    for sym in symbols:
        tab[sym] = mod
    return mod


def symbol_get(sym: str) -> Callable[..., Any] | None:
    """symbol_get() (include/linux/module.h): the function, with a reference on its module; or NULL."""
    mod = _symtab().get(sym)
    if mod is None:
        return None  # the module is not loaded
    mod.refcnt += 1  # try_module_get() on a live module
    return mod.symbols[sym]


def symbol_put(sym: str) -> None:
    """symbol_put() (kernel/module/main.c, __symbol_put): drop the reference symbol_get took."""
    mod = _symtab()[sym]
    mod.refcnt -= 1  # module_put()


def module_refcount(mod: KernelModule) -> int:
    """module_refcount() (kernel/module/main.c)."""
    return mod.refcnt
