"""Checkpoints of a dpor search: what was searched, and how far (``--checkpoint`` / ``--resume``).

A checkpoint holds the search's frontier, its totals so far and its session, and
*what it was taken of* (:class:`Identity`): the scenario and variant, the options
that shape the tree (max_steps, kcsan, keep_going, strategy), the kvmcheck version
and a content hash of every source file the model runs (the scenario's file, the
modules loaded from its directory, and kvmcheck's own sources: the kernel layer's
semantics shape the tree too).  Resuming from a checkpoint of anything else would
add the totals of one search to another's and call the sum "complete", so
:func:`load` refuses any difference with one line naming it.

Saving is atomic: the data goes to a uniquely named file in the checkpoint's
directory, then is renamed over it; two runs saving to one path never mix.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kvmcheck._engine.finding import UsageError
from kvmcheck._engine.strategies.optimal import restore, snapshot

if TYPE_CHECKING:
    from kvmcheck._engine.explore import Explored
    from kvmcheck._engine.scenario import Scenario
    from kvmcheck._engine.session import Session
    from kvmcheck._engine.settings import Settings
    from kvmcheck._engine.strategy import Strategy
    from kvmcheck._engine.target import Target

VERSION = 2  # of the file's layout: 1 had no identity


@dataclass(frozen=True)
class Identity:
    """What a checkpoint was taken of; two searches with equal identities have one tree."""

    name: str  # scenario[variant]
    options: tuple[tuple[str, Any], ...]  # the options that shape the tree
    kvmcheck: str  # the version
    files: tuple[tuple[str, str], ...]  # (path, sha256 of its content) of every source file

    def mismatch(self, other: Identity) -> str | None:
        """Why ``other`` (a saved identity) is not this search, or None."""
        if other.name != self.name:
            return f"it is a checkpoint of {other.name}, not {self.name}"
        if other.kvmcheck != self.kvmcheck:
            return f"it was taken by kvmcheck {other.kvmcheck}, this is {self.kvmcheck}"
        theirs, mine = dict(other.options), dict(self.options)
        for k in sorted(set(theirs) | set(mine)):
            if theirs.get(k) != mine.get(k):
                return f"it was taken with {k}={theirs.get(k)!r}, this run has {k}={mine.get(k)!r}"
        theirs_f, mine_f = dict(other.files), dict(self.files)
        if self.files[0][0] not in theirs_f:  # the scenario's own file comes first
            return f"it was taken of a scenario in {other.files[0][0]}, not {self.files[0][0]}"
        for path in sorted(set(theirs_f) & set(mine_f)):  # a module loaded later: its importer changed
            if theirs_f[path] != mine_f[path]:
                return f"the model's source {path} changed since it was taken"
        return None


def identity(target: Target, settings: Settings) -> Identity:
    """``target``'s identity under resolved ``settings`` (Settings.resolve)."""
    options = (
        ("strategy", settings.strategy),
        ("max_steps", settings.max_steps),
        ("kcsan", settings.kcsan_on),
        ("keep_going", bool(settings.keep_going)),
    )
    return Identity(target.name, options, _version(), _source_hashes(target.scenario))


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("kvmcheck")
    except metadata.PackageNotFoundError:
        return "unknown"


def _source_hashes(scn: Scenario) -> tuple[tuple[str, str], ...]:
    """sha256 of the scenario's file (first), of every loaded module under its directory, and
    of every loaded kvmcheck module that runs in an execution (engine, kernel, models)."""
    own = os.path.abspath(scn.fn.__code__.co_filename)
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    roots = (
        os.path.dirname(own) + os.sep,
        *(os.path.join(pkg, d) + os.sep for d in ("_engine", "kernel", "models", "scenarios")),
    )
    paths = set()
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if isinstance(f, str) and f.endswith(".py"):
            full = os.path.abspath(f)
            if full.startswith(roots):
                paths.add(full)
    out = []
    for p in [own, *sorted(paths - {own})]:
        try:
            with open(p, "rb") as fh:
                out.append((p, hashlib.sha256(fh.read()).hexdigest()))
        except OSError:
            out.append((p, "unreadable"))
    return tuple(out)


def probe(path: str) -> None:
    """A one-line UsageError now, before the search, unless ``path`` can be saved to."""
    full = os.path.abspath(path)
    if os.path.isdir(full):
        raise UsageError(f"checkpoint {path!r} is a directory; give a file name")
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{os.path.basename(full)}.", suffix=".tmp", dir=os.path.dirname(full)
        )
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise UsageError(f"checkpoint {path!r} cannot be written: {e.strerror or e}") from None


def save(path: str, ident: Identity, strategy: Strategy, out: Explored, session: Session) -> None:
    """Save the frontier of the search, atomically (a unique file aside, then renamed)."""
    try:
        session_bytes: bytes | None = pickle.dumps(session)
    except Exception:  # noqa: BLE001 - a layer's state that does not pickle: resume starts it afresh
        session_bytes = None
    data = {
        "version": VERSION,
        "identity": ident,
        "strategy": snapshot(strategy),  # type: ignore[arg-type]
        "explored": out,
        "session": session_bytes,
    }
    full = os.path.abspath(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(full)}.", suffix=".tmp", dir=os.path.dirname(full))
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(data, f)
        os.replace(tmp, full)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path: str, ident: Identity) -> tuple[Strategy, Explored, Session | None]:
    """The strategy, totals so far and session saved in ``path``, if it is a checkpoint of ``ident``."""
    try:
        with open(path, "rb") as f:
            data = pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError) as e:
        raise UsageError(f"cannot resume from {path}: {e}") from None
    if not isinstance(data, dict) or data.get("version") != VERSION:
        old = isinstance(data, dict) and data.get("version") == 1
        why = "it was taken by an older kvmcheck" if old else "not a kvmcheck checkpoint"
        raise UsageError(f"cannot resume from {path}: {why}")
    saved = data.get("identity")
    if not isinstance(saved, Identity):
        raise UsageError(f"cannot resume from {path}: not a kvmcheck checkpoint")
    differs = ident.mismatch(saved)
    if differs is not None:
        raise UsageError(f"cannot resume from {path}: {differs} (start afresh without --resume)")
    session = pickle.loads(data["session"]) if data["session"] is not None else None
    return restore(data["strategy"]), data["explored"], session
