"""Finding scenarios: in a user's model file, or among the bundled models."""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import sys
from types import ModuleType

from kvmcheck._engine.finding import UsageError
from kvmcheck._engine.guard import raised_by_model
from kvmcheck._engine.scenario import Scenario

BUNDLED_PACKAGE = "kvmcheck.scenarios"  # every module in it is a seed system's scenarios


def bundled_modules() -> list[str]:
    """The bundled scenario modules, in name order (one per seed system)."""
    pkg = importlib.import_module(BUNDLED_PACKAGE)
    return sorted(f"{BUNDLED_PACKAGE}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__))


def load_file(path: str) -> ModuleType:
    if not os.path.exists(path):
        raise UsageError(f"model file {path!r} does not exist")
    if not path.endswith(".py"):
        raise UsageError(f"model file {path!r} is not a .py file")
    name = "kvmcheck_user_" + os.path.splitext(os.path.basename(path))[0].replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot import {path!r} as a Python module")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except SyntaxError as e:
        raise UsageError(f"{path}:{e.lineno}: syntax error: {e.msg}; fix the model file") from None
    except UsageError:
        raise
    except BaseException as e:
        if not raised_by_model(e):  # a real Ctrl-C while importing
            raise
        tb = e.__traceback__
        line = 0
        while tb is not None:
            if (
                tb.tb_frame.f_code.co_filename == os.path.abspath(path)
                or tb.tb_frame.f_code.co_filename == path
            ):
                line = tb.tb_lineno
            tb = tb.tb_next
        raise UsageError(
            f"{path}:{line}: importing the model raised {type(e).__name__}: {e}; fix the model file"
        ) from None
    return mod


def scenarios_in(mod: ModuleType) -> list[Scenario]:
    found = [v for v in vars(mod).values() if isinstance(v, Scenario)]
    return sorted(found, key=lambda s: s.fn.__code__.co_firstlineno)


def bundled() -> list[Scenario]:
    out: list[Scenario] = []
    for name in bundled_modules():
        out.extend(scenarios_in(importlib.import_module(name)))
    return out


def resolve(target: str) -> list[Scenario]:
    """``FILE.py``, ``FILE.py::NAME`` or a bundled scenario name."""
    if "::" in target or target.endswith(".py"):
        path, _, name = target.partition("::")
        found = scenarios_in(load_file(path))
        if not found:
            raise UsageError(f"{path} defines no scenarios (decorate a function with @scenario)")
        if not name:
            return found
        for s in found:
            if s.name == name:
                return [s]
        raise UsageError(f"no scenario {name!r} in {path}; it defines: {', '.join(s.name for s in found)}")
    for s in bundled():
        if s.name == target:
            return [s]
    names = ", ".join(s.name for s in bundled())
    raise UsageError(f"unknown scenario {target!r}: give FILE.py[::SCENARIO] or a bundled one ({names})")
