"""The failure database: every counterexample is saved and replayed first next time.

As Hypothesis keeps ``.hypothesis/``, kvmcheck keeps ``.kvmcheck/`` in the
current directory (``KVMCHECK_DB`` names another): one JSON file per scenario
and variant under ``failures/``, and ``last.json`` for ``kvmcheck replay --last``.
A saved schedule that no longer shows a bug (the model was fixed) or no longer
fits the model is dropped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from dataclasses import asdict, dataclass
from typing import Any

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


def load(scenario: str, variant: str | None, origin: str = "") -> Saved | None:
    try:
        with open(_path(key(scenario, variant, origin)), encoding="utf-8") as fh:
            return Saved(**json.load(fh))
    except (OSError, ValueError, TypeError):
        return None


def save(s: Saved, origin: str = "") -> None:
    """Save ``s`` (and make it the last one); a read-only directory is not an error."""
    data: dict[str, Any] = asdict(s)
    try:
        os.makedirs(os.path.join(root(), "failures"), exist_ok=True)
        for path in (_path(key(s.scenario, s.variant, origin)), os.path.join(root(), "last.json")):
            tmp = path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=1)
            os.replace(tmp, path)
    except OSError:
        pass


def drop(scenario: str, variant: str | None, origin: str = "") -> None:
    with contextlib.suppress(OSError):
        os.remove(_path(key(scenario, variant, origin)))


def last() -> Saved | None:
    try:
        with open(os.path.join(root(), "last.json"), encoding="utf-8") as fh:
            return Saved(**json.load(fh))
    except (OSError, ValueError, TypeError):
        return None


def now() -> float:
    return round(time.time(), 3)
