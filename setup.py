"""Build the optional compiled hot path (issue 19): mypyc compiles the modules that
src/kvmcheck/_hotpath.py lists into C extensions beside their .py files.

Everything else is in pyproject.toml.  When mypy (mypyc) or a C compiler is missing, or the
build fails, the install goes on with pure Python after one line saying so; KVMCHECK_NO_COMPILE=1
skips the attempt.  KVMCHECK_PURE=1 runs pure Python even when the extensions are built.
"""

from __future__ import annotations

import ast
import os
import sys
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


def _say(msg: str) -> None:
    print(f"kvmcheck: {msg}", file=sys.stderr, flush=True)


def _modules() -> list[str]:
    """_hotpath.MODULES, read from its source (importing kvmcheck here would need its dependencies)."""
    with open(os.path.join(HERE, "src", "kvmcheck", "_hotpath.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "MODULES":
            assert node.value is not None
            return list(ast.literal_eval(node.value))
    raise RuntimeError("kvmcheck/_hotpath.py has no MODULES")


class _OptionalBuildExt(build_ext):
    """build_ext that never fails the install: a failed compile leaves pure Python."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as e:  # noqa: BLE001 - any build failure means: pure Python
            _say(f"compiled hot path not built ({type(e).__name__}: {e}); using pure Python")
            return
        # mypyc leaves a module's small shim extension as it was when only the shared library's
        # code changed: date every one now, as _hotpath.stale() compares it with its .py
        for ext in self.extensions:
            path = self.get_ext_fullpath(ext.name)
            if os.path.exists(path):
                os.utime(path)

    def build_extension(self, ext: Any) -> None:
        try:
            super().build_extension(ext)
        except Exception as e:  # noqa: BLE001
            _say(f"compiled hot path not built ({type(e).__name__}: {e}); using pure Python")


def _ext_modules() -> list[Any]:
    if os.environ.get("KVMCHECK_NO_COMPILE", "") not in ("", "0"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _say("compiled hot path not built (mypy is not installed); using pure Python")
        return []
    paths = [os.path.join("src", *m.split(".")) + ".py" for m in _modules()]
    cwd = os.getcwd()
    os.chdir(HERE)
    try:
        # the build environment has only setuptools and mypy: kvmcheck's other imports are Any here
        args = ["--config-file", "pyproject.toml", "--ignore-missing-imports", *paths]
        return list(mypycify(args, opt_level="3"))
    except BaseException as e:  # noqa: BLE001 - mypyc's type check exits via SystemExit
        _say(f"compiled hot path not built (mypyc: {e!r}); using pure Python")
        return []
    finally:
        os.chdir(cwd)


# mypyc runs (a minute or more) only for a command that builds, not for pip's metadata steps
_BUILDS = {"build", "build_ext", "bdist_wheel", "editable_wheel", "install", "develop"}
_building = bool(_BUILDS.intersection(sys.argv[1:]))
setup(ext_modules=_ext_modules() if _building else [], cmdclass={"build_ext": _OptionalBuildExt})
