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

And no import cycle between files of two different folders (issue 24's acceptance), however
long the chain: the import graph's strongly connected components may each span one folder
only.  There an import inside a function counts (it is a dependency all the same), one under
``if TYPE_CHECKING:`` does not (it never runs).  ``kernel/`` has no cycle at all, and an import
inside one of its functions says why on its line (issue 24 item 7).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator, Mapping
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


# -- import cycles -------------------------------------------------------------------------------
def _type_checking(node: ast.stmt) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(nodes: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements among ``nodes`` that run: all but those under ``if TYPE_CHECKING:``."""
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            if name == "body" and _type_checking(node):
                continue
            for sub in getattr(node, name, None) or []:
                yield from _runtime_imports(
                    sub.body if isinstance(sub, (ast.ExceptHandler, ast.match_case)) else [sub]
                )


def import_graph() -> dict[str, set[str]]:
    """kvmcheck module -> the kvmcheck modules (files) it imports at run time.

    ``from kvmcheck.kernel import lockdep`` is an edge to the file ``kernel/lockdep.py``; an
    edge to a package means its ``__init__.py``.  The parent packages a Python import runs
    first are no edges: a package's ``__init__`` re-exporting its modules is no cycle.
    """
    files = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for me, path in files.items():
        package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
        out: set[str] = set()
        for node in _runtime_imports(ast.parse(path.read_text(), str(path)).body):
            if isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
                continue
            mod = node.module or ""
            if node.level:
                base = package.split(".")
                mod = ".".join(base[: len(base) - (node.level - 1)] + ([mod] if mod else []))
            out.update(f"{mod}.{a.name}" if f"{mod}.{a.name}" in files else mod for a in node.names)
        graph[me] = {m for m in out if m in files and m != me}
    return graph


def _folder(module: str) -> str:
    """The folder a module's file is in: kvmcheck.kernel.lockdep -> kvmcheck.kernel."""
    path = PKG.parent / module.replace(".", "/")
    return (
        module
        if (path / "__init__.py").exists() and not path.with_suffix(".py").exists()
        else module.rsplit(".", 1)[0]
    )


def components(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of ``graph`` with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, edges = work[-1]
            w = next(edges, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return sorted(out)


def _path(graph: Mapping[str, set[str]], within: set[str], src: str, dst: str) -> list[str]:
    """A shortest import chain src -> ... -> dst inside one component."""
    came: dict[str, str] = {src: src}
    todo = [src]
    while todo:
        v = todo.pop(0)
        if v == dst:
            chain = [v]
            while chain[-1] != src:
                chain.append(came[chain[-1]])
            return chain[::-1]
        for w in sorted(graph.get(v, ())):
            if w in within and w not in came:
                came[w] = v
                todo.append(w)
    raise AssertionError(f"{dst} is not reachable from {src}: not one component")


def cross_folder_cycles(graph: Mapping[str, set[str]], folder: Callable[[str], str] = _folder) -> list[str]:
    """Each component spanning two folders, named by one cycle through a folder crossing.

    ``a.x -> b.y -> a.x``: the first crossing edge (by name) and the shortest way back.
    """
    named = []
    for comp in components(graph):
        if len({folder(m) for m in comp}) < 2:
            continue
        within = set(comp)
        u, v = min((u, v) for u in comp for v in graph[u] if v in within and folder(u) != folder(v))
        cycle = [u, *_path(graph, within, v, u)]
        more = len(within) - len(set(cycle))
        named.append(" -> ".join(cycle) + (f" (and {more} more modules in the same knot)" if more else ""))
    return named


# Cross-folder import cycles on main today, each to be broken by its owner; strict like KNOWN:
# an entry that no longer is a cycle fails the test, so the list only shrinks.  None today.
KNOWN_CYCLES: set[str] = set()


def test_no_import_cycle_between_two_folders() -> None:
    found = set(cross_folder_cycles(import_graph()))
    assert found - KNOWN_CYCLES == set(), "import cycle between folders: break it (move the function down)"
    assert KNOWN_CYCLES - found == set(), "broken: remove it from KNOWN_CYCLES"


def test_kernel_has_no_import_cycle() -> None:
    graph = import_graph()
    kernel = {m: {t for t in ts if _layer(t) == "kernel"} for m, ts in graph.items() if _layer(m) == "kernel"}
    assert cross_folder_cycles(kernel, folder=lambda m: m) == []


def test_every_import_inside_a_kernel_function_says_why() -> None:
    """kernel/ imports at the top of its modules; one that must stay in a function says why."""
    bad = []
    for path in sorted((PKG / "kernel").rglob("*.py")):
        lines = path.read_text().splitlines()
        for fn in ast.walk(ast.parse("\n".join(lines), str(path))):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and "#" not in lines[node.lineno - 1]:
                    bad.append(f"{path.relative_to(SRC)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert sorted(set(bad)) == [], "hoist it to the top of the module, or say on its line why it must stay"


@pytest.mark.parametrize(
    ("graph", "cycles"),
    [
        ({"a.x": {"b.y"}, "b.y": {"a.x"}}, ["a.x -> b.y -> a.x"]),  # two folders import each other
        ({"a.x": {"a.z"}, "a.z": {"b.y"}, "b.y": {"a.x"}}, ["a.z -> b.y -> a.x -> a.z"]),  # through a chain
        ({"a.x": {"a.z"}, "a.z": {"a.x"}, "b.y": {"a.x"}}, []),  # a cycle inside one folder
        ({"a.x": {"b.y"}, "b.y": {"c.w"}, "c.w": set()}, []),  # arrows down only
        (
            {"a.x": {"a.z", "b.y"}, "a.z": {"a.x"}, "b.y": {"a.x"}, "c.w": {"a.x"}},
            ["a.x -> b.y -> a.x (and 1 more modules in the same knot)"],
        ),
    ],
)
def test_the_cycle_check_names_a_planted_cycle(graph: dict[str, set[str]], cycles: list[str]) -> None:
    assert cross_folder_cycles(graph, folder=lambda m: m.rsplit(".", 1)[0]) == cycles


@pytest.mark.parametrize(
    ("engine_b", "found"),
    [
        (
            "from kvmcheck.report import a\n",
            ["kvmcheck._engine.b -> kvmcheck.report.a -> kvmcheck._engine.b"],
        ),
        (
            "def f():\n    from kvmcheck.report.a import x\n",
            ["kvmcheck._engine.b -> kvmcheck.report.a -> kvmcheck._engine.b"],
        ),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from kvmcheck.report import a\n", []),
    ],
)
def test_the_cycle_check_reads_the_files(tmp_path: Path, engine_b: str, found: list[str]) -> None:
    """A planted cycle in a package on disk: _engine/b.py and report/a.py import each other."""
    global SRC, PKG
    pkg = tmp_path / "kvmcheck"
    for d in ("_engine", "report"):
        (pkg / d).mkdir(parents=True)
        (pkg / d / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "report" / "a.py").write_text("from .._engine.b import x\n")
    (pkg / "_engine" / "b.py").write_text(engine_b)
    saved = SRC, PKG
    SRC, PKG = tmp_path, pkg
    try:
        assert cross_folder_cycles(import_graph()) == found
    finally:
        SRC, PKG = saved
