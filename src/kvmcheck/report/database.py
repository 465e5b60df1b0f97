"""The failure database: every counterexample is saved and replayed first next time.

As Hypothesis keeps ``.hypothesis/``, kvmcheck keeps ``.kvmcheck/`` in the
current directory (``KVMCHECK_DB`` names another): one JSON file per scenario
and variant under ``failures/``, and ``last.json`` for ``kvmcheck replay --last``.
A saved schedule that no longer shows a bug (the model was fixed) or no longer
fits the model is dropped.

Every save is atomic: written to a uniquely named file in the same directory, then
renamed over the old one, so two processes saving at once never mix their files and
a reader sees the old save or the new one, never a half.  A file that is not a
saved counterexample (edited by hand, or from another tool) is ignored, and for
``replay --last`` is one line saying so.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from typing import Any

from kvmcheck._engine.finding import UsageError

DEFAULT_DIR = ".kvmcheck"


@dataclass
class Saved:
    """One saved counterexample."""

    target: str  # what `kvmcheck replay` takes: FILE.py::SCENARIO or a bundled name
    scenario: str
    variant: str | None
    schedule: str
    kind: str
    headline: str
    saved_at: float


_root: str | None = None  # set by the pytest plugin: the rootdir's .kvmcheck/


def set_root(path: str | None) -> None:
    """Keep the database in ``path`` (``KVMCHECK_DB`` still wins)."""
    global _root
    _root = path


def root() -> str:
    return os.environ.get("KVMCHECK_DB") or _root or DEFAULT_DIR


def key(scenario: str, variant: str | None, origin: str = "") -> str:
    """File name for a scenario x variant; ``origin`` (the model file) keeps two files' apart."""
    safe = re.sub(r"[^\w.@\-]+", "_", f"{scenario}@{variant or '-'}")
    tag = hashlib.sha1(os.path.abspath(origin).encode()).hexdigest()[:8] if origin else "bundled"
    return f"{safe}.{tag}.json"


def _path(name: str) -> str:
    return os.path.join(root(), "failures", name)


_TYPES: dict[str, tuple[type, ...]] = {
    "target": (str,),
    "scenario": (str,),
    "variant": (str, type(None)),
    "schedule": (str,),
    "kind": (str,),
    "headline": (str,),
    "saved_at": (int, float),
}


def _read(path: str) -> Saved:
    """The counterexample saved in ``path``; ValueError (saying why) if it is not one."""
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    for f in fields(Saved):
        if f.name not in data:
            raise ValueError(f"field {f.name!r} is missing")
        v = data[f.name]
        if isinstance(v, bool) or not isinstance(v, _TYPES[f.name]):
            want = " or ".join("null" if t is type(None) else t.__name__ for t in _TYPES[f.name])
            raise ValueError(f"field {f.name!r} must be {want}, not {type(v).__name__}")
    return Saved(**{f.name: data[f.name] for f in fields(Saved)})


def load(scenario: str, variant: str | None, origin: str = "") -> Saved | None:
    try:
        return _read(_path(key(scenario, variant, origin)))
    except (OSError, ValueError):  # none saved, or not ours: search afresh
        return None


def _write_json(path: str, data: dict[str, Any]) -> None:
    """Write ``data`` to a unique file next to ``path``, then rename it onto ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save(s: Saved, origin: str = "") -> None:
    """Save ``s`` (and make it the last one); a read-only directory is not an error."""
    data: dict[str, Any] = asdict(s)
    try:
        os.makedirs(os.path.join(root(), "failures"), exist_ok=True)
        for path in (_path(key(s.scenario, s.variant, origin)), os.path.join(root(), "last.json")):
            _write_json(path, data)
    except OSError:
        pass


def drop(scenario: str, variant: str | None, origin: str = "") -> None:
    with contextlib.suppress(OSError):
        os.remove(_path(key(scenario, variant, origin)))


def last() -> Saved | None:
    """The last counterexample saved (None if there is none); a UsageError if last.json is not one."""
    path = os.path.join(root(), "last.json")
    try:
        return _read(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    except ValueError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UsageError(
            f"{path} is not a saved counterexample ({first}); delete it, or run kvmcheck check again"
        ) from None


def now() -> float:
    return round(time.time(), 3)
