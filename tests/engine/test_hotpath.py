"""The compiled hot path is optional and the environment picks it (issue 19 item 2).

KVMCHECK_PURE=1 must load every listed module from its .py even when an extension of the
same name sits beside it (Python's import system prefers the extension); without it, a
built extension is used.  Each check runs in a fresh interpreter, as the choice is made
at import."""

from __future__ import annotations

import glob
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kvmcheck import _hotpath

SRC = os.path.dirname(os.path.dirname(os.path.abspath(_hotpath.__file__)))

PROBE = r"""
import json, sys
from kvmcheck import check, _hotpath
from tests.engine.corpus import CORPUS
r = check(CORPUS["lost_update_assert"])
mods = {n: getattr(sys.modules[n], "__file__", "") for n in _hotpath.MODULES}
ext = sorted(n for n, m in sys.modules.items() if (getattr(m, "__file__", None) or "").endswith(".so")
             and ("kvmcheck" in n or n.endswith("__mypyc")))
print(json.dumps({"mods": mods, "ext": ext, "verdict": r.verdict, "executions": r.executions}))
"""


def _probe(pure: str) -> dict[str, object]:
    env = dict(os.environ, KVMCHECK_PURE=pure)
    env["PYTHONPATH"] = os.pathsep.join([SRC, os.getcwd(), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _built() -> bool:
    return all(
        glob.glob(os.path.join(SRC, *m.split(".")[:-1], m.rsplit(".", 1)[1] + ".*.so"))
        for m in _hotpath.MODULES
    )


def test_pure_runs_no_compiled_module() -> None:
    got = _probe("1")
    mods = got["mods"]
    assert isinstance(mods, dict)
    assert all(str(f).endswith(".py") for f in mods.values()), mods
    assert got["ext"] == []  # neither a listed module nor mypyc's shared library
    assert got["verdict"] == "bug"


@pytest.mark.skipif(not _built(), reason="the compiled hot path is not built (pip install -e . with mypy)")
def test_default_runs_the_compiled_modules() -> None:
    got = _probe("")
    mods = got["mods"]
    assert isinstance(mods, dict)
    assert all(str(f).endswith(".so") for f in mods.values()), mods
    pure = _probe("1")
    assert (got["verdict"], got["executions"]) == (pure["verdict"], pure["executions"])


def test_pure_requested_reads_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for value, want in (("1", True), ("yes", True), ("0", False), ("", False)):
        monkeypatch.setenv("KVMCHECK_PURE", value)
        assert _hotpath.pure_requested() is want
    monkeypatch.delenv("KVMCHECK_PURE")
    assert _hotpath.pure_requested() is False


def test_an_edited_source_runs_pure(tmp_path: Path) -> None:
    """A .py newer than its extension: the extension is old code, so all run from source."""
    shutil.copytree(os.path.join(SRC, "kvmcheck"), tmp_path / "kvmcheck")
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    for name in _hotpath.MODULES:
        ext = os.path.join(tmp_path, *name.split(".")) + suffix
        Path(ext).write_bytes(b"")  # stands for an extension built before the last edit
        os.utime(ext, (1, 1))
    code = "from kvmcheck import _hotpath as h; print(h.stale() == list(h.MODULES), h.describe())"
    env = dict(os.environ, KVMCHECK_PURE="", PYTHONPATH=str(tmp_path))
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert p.stdout.startswith("True kvmcheck: pure Python"), (p.stdout, p.stderr)
    assert p.stderr.count("older than") == 1
