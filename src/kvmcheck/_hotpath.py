"""The compiled hot path and how to turn it off.

``pip install -e .`` compiles the modules in :data:`MODULES` with mypyc when it can
(setup.py; mypy and a C compiler), leaving each ``.py`` beside its extension.  Python's
import system prefers an extension module to a ``.py`` of the same name in the same
folder, so the pure-Python path is chosen here, before any of them is imported:
``KVMCHECK_PURE=1`` puts a finder first on ``sys.meta_path`` that loads each listed
module from its ``.py`` source.  Without it, whatever was built is used, unless a ``.py``
was edited after the build (then pure Python, with one line saying so).

Imports nothing of kvmcheck (kvmcheck/__init__.py imports it first).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

# The modules setup.py compiles (dotted names); the order is the build's, nothing else.
MODULES: tuple[str, ...] = (
    "kvmcheck._engine.clock",
    "kvmcheck._engine.ops",
    "kvmcheck._engine.schedule",
    "kvmcheck._engine.execution",
    "kvmcheck._engine.strategies.dpor",
    "kvmcheck._engine.strategies.optimal",
    "kvmcheck.kernel.kcsan",
    "kvmcheck.kernel.lockdep",
)

ENV = "KVMCHECK_PURE"


def pure_requested() -> bool:
    """True when the environment asks for the pure-Python path (KVMCHECK_PURE set, not 0)."""
    return os.environ.get(ENV, "") not in ("", "0")


class _SourceFirst:
    """A meta path finder: the listed modules from their ``.py``, never an extension."""

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name not in MODULES or not path:
            return None
        leaf = name.rpartition(".")[2]
        for folder in path:
            source = os.path.join(folder, leaf + ".py")
            if os.path.isfile(source):
                loader = importlib.machinery.SourceFileLoader(name, source)
                return importlib.util.spec_from_file_location(name, source, loader=loader)
        return None


def stale() -> list[str]:
    """The listed modules whose built extension is older than their ``.py`` (edited since the
    build): running it would run old code, so then every listed module runs from source (the
    compiled ones call each other natively: all or none)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = []
    for name in MODULES:
        base = os.path.join(root, *name.split("."))
        try:
            src = os.stat(base + ".py").st_mtime
        except OSError:
            continue
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            try:
                if os.stat(base + suffix).st_mtime < src:
                    out.append(name)
            except OSError:
                continue
    return out


def install() -> None:
    """Put the source-first finder in front when KVMCHECK_PURE asks for it, or when a built
    extension is older than its source (one line says so); idempotent."""
    if any(isinstance(f, _SourceFirst) for f in sys.meta_path):
        return
    if pure_requested():
        sys.meta_path.insert(0, _SourceFirst())
        return
    old = stale()
    if old:
        print(
            f"kvmcheck: the compiled hot path is older than {old[0].rsplit('.', 1)[1]}.py "
            "(pip install -e . rebuilds it); running pure Python",
            file=sys.stderr,
        )
        sys.meta_path.insert(0, _SourceFirst())


def compiled() -> list[str]:
    """The listed modules imported so far as compiled extensions."""
    out = []
    for name in MODULES:
        m = sys.modules.get(name)
        if m is not None and not (getattr(m, "__file__", None) or "").endswith(".py"):
            out.append(name)
    return out


def describe() -> str:
    """One line: which path this process runs (imports the listed modules)."""
    for name in MODULES:
        __import__(name)
    got = compiled()
    if got:
        return f"kvmcheck: compiled hot path ({len(got)} modules; KVMCHECK_PURE=1 runs pure Python)"
    if pure_requested():
        return "kvmcheck: pure Python (KVMCHECK_PURE is set)"
    if stale():
        return "kvmcheck: pure Python (the compiled hot path is older than its source: rebuild it)"
    return "kvmcheck: pure Python (the compiled hot path is not built: it needs mypy and a C compiler)"


install()

if __name__ == "__main__":
    print(describe())
