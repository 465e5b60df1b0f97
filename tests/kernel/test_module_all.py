"""Each kernel module owns its ``__all__`` (issue 24 item 7): the names other modules may use.

``kvmcheck.kernel`` re-exports a curated part of them (the vocabulary models are written in,
guarded by tests/test_public_api.py); every name it re-exports is in the ``__all__`` of the
module it comes from, and the layers above (models, scenarios) import from a kernel module
only what its ``__all__`` offers.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import kvmcheck.kernel

KERNEL = Path(kvmcheck.kernel.__file__).parent
SRC = KERNEL.parent.parent
MODULES = sorted(p.stem for p in KERNEL.glob("*.py") if p.stem not in ("__init__", "_vocabulary"))


def _from_imports(path: Path) -> list[tuple[int, str, str]]:
    """(line, kernel module, name) of each ``from kvmcheck.kernel.<module> import name`` in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (module := node.module or "").startswith("kvmcheck.kernel."):
            out.extend((node.lineno, module.split(".")[2], a.name) for a in node.names)
    return out


@pytest.mark.parametrize("name", MODULES)
def test_every_kernel_module_has_an_all_of_names_it_has(name: str) -> None:
    module = importlib.import_module(f"kvmcheck.kernel.{name}")
    names = getattr(module, "__all__", None)
    assert names is not None, f"kernel/{name}.py has no __all__: list the names other modules use"
    assert len(names) == len(set(names))
    assert [n for n in names if not hasattr(module, n)] == []


def test_kvmcheck_kernel_reexports_only_what_a_module_offers() -> None:
    bad = []
    for line, module, name in _from_imports(KERNEL / "__init__.py"):
        if name not in importlib.import_module(f"kvmcheck.kernel.{module}").__all__:
            bad.append(f"kernel/__init__.py:{line}: {name} is not in kernel/{module}.py's __all__")
    assert bad == []


def test_models_and_scenarios_import_only_what_a_kernel_module_offers() -> None:
    bad = []
    for folder in ("models", "scenarios"):
        for path in sorted((SRC / "kvmcheck" / folder).rglob("*.py")):
            for line, module, name in _from_imports(path):
                if name not in importlib.import_module(f"kvmcheck.kernel.{module}").__all__:
                    bad.append(
                        f"{path.relative_to(SRC)}:{line}: {name} is not in kernel/{module}.py's __all__"
                    )
    assert bad == []


def test_the_vocabulary_is_the_union_of_what_it_imports() -> None:
    """kvmcheck.kernel.__all__ is exactly the names its __init__ takes from the modules."""
    tree = ast.parse((KERNEL / "__init__.py").read_text())
    imported = [
        a.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kvmcheck.kernel.")
        for a in node.names
        if a.asname is None  # `import setup as _setup`: for the package's own use, not exported
    ]
    assert sorted(kvmcheck.kernel.__all__) == sorted(imported)
