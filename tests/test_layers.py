"""The layer rules (issue 7 item 6): each layer imports only what is below it.

    _engine    <- kernel <- models <- scenarios
       ^
    report  <- run (the run pipeline: failure db -> check -> minimise -> save)
                 ^
                cli, the pytest plugin, the loader, the package's public face: anything

* ``_engine`` imports only ``_engine`` (and the standard library, greenlet);
* ``kernel`` imports only ``_engine`` and ``kernel``;
* ``models`` import only ``kernel``, ``models`` and kvmcheck's public names;
* ``scenarios`` import ``models``, ``kernel`` and kvmcheck's public names;
* ``report`` imports ``_engine`` and ``report`` (never ``kernel`` or ``models``, nor ``run``:
  the pipeline above it, a top-level module like ``cli``).
* ``lkmm`` (the litmus-test checker, issue 20) imports only ``lkmm`` and, from the engine, just
  ``_engine.finding`` (for UsageError); nothing but the CLI imports ``lkmm``, except that
  ``kernel.barrier`` (LKMM exploration, issue 20 item 2) uses its graph-level check: the
  modules in ``LKMM_CHECK`` (events, relations, the axioms), which import only ``lkmm``.
  The consistency check is the oracle's own code, so the engine's LKMM and the litmus
  tool's cannot drift apart; it sits below ``kernel`` for that one module.

Every import counts, also those under ``if TYPE_CHECKING:`` and inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PKG = SRC / "kvmcheck"

ALLOWED: dict[str, set[str]] = {
    "_engine": {"_engine"},
    "kernel": {"_engine", "kernel"},
    "models": {"kernel", "models", "<public>"},
    "scenarios": {"models", "kernel", "<public>"},
    "report": {"_engine", "report"},
    "lkmm": {"lkmm", "_engine"},
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> str:
    """The layer of a kvmcheck module: the first component under kvmcheck (or <public>)."""
    parts = module.split(".")
    if parts[0] != "kvmcheck":
        return "<outside>"
    if len(parts) == 1:
        return "<public>"
    return parts[1] if parts[1] in ALLOWED else f"<{parts[1]}>"


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports (absolute names), with its line."""
    tree = ast.parse(path.read_text(), str(path))
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod == "kvmcheck":  # from kvmcheck import spawn: the public face, or a subpackage
                for a in node.names:
                    sub = PKG / a.name
                    out.append((node.lineno, f"kvmcheck.{a.name}" if sub.exists() else "kvmcheck"))
            else:
                out.append((node.lineno, mod))
    return out


# What kernel/barrier.py may take from lkmm: the graph-level LKMM check, nothing else.
LKMM_CHECK = {"kvmcheck.lkmm.events", "kvmcheck.lkmm.model", "kvmcheck.lkmm.rel", "kvmcheck.lkmm.static"}
LKMM_USER = "kvmcheck.kernel.barrier"


def violations() -> list[str]:
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        layer = _layer(_module_name(path))
        allowed = ALLOWED.get(layer)
        if allowed is None:
            continue  # cli, the loader, kvmcheck/__init__: anything
        for line, mod in imports_of(path):
            target = _layer(mod)
            if target == "<outside>":
                continue
            if _module_name(path) == LKMM_USER and mod in LKMM_CHECK:
                continue
            if target not in allowed:
                bad.append(f"{path.relative_to(SRC)}:{line}: {layer} imports {mod} ({target})")
    return bad


# Violations on main today, each to be fixed by its owner; strict: an entry that is
# no longer a violation fails the test, so the list only shrinks.
KNOWN: set[str] = set()  # violations accepted for now (each with its reason); none today


def test_every_layer_imports_only_what_is_below_it() -> None:
    found = set(violations())
    assert found - KNOWN == set()
    assert KNOWN - found == set(), "fixed: remove it from KNOWN"


def test_lkmm_stands_alone() -> None:
    """lkmm takes only UsageError from the engine, and only the CLI imports lkmm."""
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        me = _module_name(path)
        for line, mod in imports_of(path):
            if _layer(me) == "lkmm" and _layer(mod) == "_engine" and mod != "kvmcheck._engine.finding":
                bad.append(f"{me}:{line} imports {mod}")
            if _layer(mod) == "lkmm" and _layer(me) != "lkmm" and me != "kvmcheck.cli":
                if me == LKMM_USER and mod in LKMM_CHECK:
                    continue
                bad.append(f"{me}:{line} imports {mod}")
    assert bad == []


def test_the_checker_sees_every_layer() -> None:
    layers = {_layer(_module_name(p)) for p in PKG.rglob("*.py")}
    assert {"_engine", "kernel", "models", "scenarios", "report", "lkmm"} <= layers


@pytest.mark.parametrize(
    ("layer", "source", "ok"),
    [
        ("_engine", "import kvmcheck\n", False),
        ("_engine", "from kvmcheck.report.text import render_finding\n", False),
        ("_engine", "from kvmcheck import kernel\n", False),
        ("_engine", "from . import clock\n", True),
        ("kernel", "from kvmcheck.models.build import Build\n", False),
        ("kernel", "from kvmcheck._engine.ops import Op\n", True),
        ("models", "from kvmcheck import spawn, join\n", True),
        ("models", "from kvmcheck.scenarios import pfncache\n", False),
        ("report", "from kvmcheck.kernel import Mutex\n", False),
        ("lkmm", "from kvmcheck.kernel import Mutex\n", False),
        ("lkmm", "from . import clock\n", True),
        ("kernel", "from kvmcheck.lkmm.explore import explore\n", False),
    ],
)
def test_the_rules_catch_a_violation(tmp_path: Path, layer: str, source: str, ok: bool) -> None:
    """A mutant: a module with one import put in a layer's folder."""
    global SRC, PKG
    pkg = tmp_path / "kvmcheck"
    for d in ("_engine", "kernel", "models", "scenarios", "report", "lkmm"):
        (pkg / d).mkdir(parents=True)
        (pkg / d / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / layer / "clock.py").write_text("")
    (pkg / layer / "mutant.py").write_text(source)
    saved = SRC, PKG
    SRC, PKG = tmp_path, pkg
    try:
        assert (violations() == []) == ok
    finally:
        SRC, PKG = saved
