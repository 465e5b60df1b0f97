"""Each kernel module owns its ``__all__`` (issue 24 item 7).

A vocabulary module's ``__all__`` is its part of ``kvmcheck.kernel``, which re-exports each
whole (tests/test_public_api.py guards the result); the modules that add no vocabulary (_core,
_setup, lockdep, kasan, kcsan, gp, barrier) list what other modules take from them.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path
from types import ModuleType

import pytest

import kvmcheck.kernel

KERNEL = Path(kvmcheck.kernel.__file__).parent
MODULES = sorted(p.stem for p in KERNEL.glob("*.py") if p.stem != "__init__")


def _star_imported() -> list[str]:
    """The modules kernel/__init__.py re-exports: ``from kvmcheck.kernel.<module> import *``."""
    tree = ast.parse((KERNEL / "__init__.py").read_text())
    return [
        (node.module or "").rsplit(".", 1)[1]
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and [a.name for a in node.names] == ["*"]
    ]


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"kvmcheck.kernel.{name}")


@pytest.mark.parametrize("name", MODULES)
def test_every_kernel_module_has_an_all_of_names_it_has(name: str) -> None:
    module = _module(name)
    names = getattr(module, "__all__", None)
    assert names is not None, f"kernel/{name}.py has no __all__: list its public names"
    assert len(names) == len(set(names))
    assert [n for n in names if not hasattr(module, n)] == []


def test_the_vocabulary_is_every_reexported_module_s_all() -> None:
    """kvmcheck.kernel.__all__ is the star-imported modules' __all__, each whole, and no more."""
    modules = _star_imported()
    assert len(modules) >= 20
    assert sorted(kvmcheck.kernel.__all__) == sorted(n for m in modules for n in _module(m).__all__)


def test_each_vocabulary_name_has_one_owner() -> None:
    """No name in two re-exported modules (one star import would hide the other), and a module
    lists only what it defines itself -- a function or class, by its __module__."""
    owner: dict[str, str] = {}
    bad = []
    for m in _star_imported():
        for n in _module(m).__all__:
            if n in owner:
                bad.append(f"{n}: in {owner[n]}.__all__ and {m}.__all__")
            owner[n] = m
            obj = getattr(_module(m), n)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ != _module(m).__name__:
                bad.append(f"{m}.__all__ lists {n}, which {obj.__module__} defines")
    assert bad == []
