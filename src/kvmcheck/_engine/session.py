"""The state that lives across the executions of one exploration.

The engine's own part is typed: which run this is, the schedules of runs a
later report depends on (lockdep's first chain), whether KCSAN is on.  A
layer above keeps its own check-wide state (lockdep's graph, "reported
once" marks) in :attr:`Session.layers`, under a key it owns.

For the layers written before the session was typed, a session also reads
and writes like the dict it used to be: ``session["run"]`` is
``session.run``; any other key lives in ``layers``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_TYPED = ("run", "schedules", "kcsan", "keep_run")


@dataclass
class Session:
    kcsan: bool = True  # report data races
    run: int = 0  # index of the execution now running (0-based, blocked ones included)
    # schedules of earlier runs a finding may need replayed first, by run index
    schedules: dict[int, str] = field(default_factory=dict)
    keep_run: bool = False  # set during a run: keep its schedule (a later report may need it)
    layers: dict[str, Any] = field(default_factory=dict)  # check-wide state of the layers above

    # -- the dict interface of the untyped session --------------------------------------
    def __getitem__(self, key: str) -> Any:
        if key in _TYPED:
            return getattr(self, key)
        return self.layers[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key in _TYPED:
            setattr(self, key, value)
        else:
            self.layers[key] = value

    def __contains__(self, key: str) -> bool:
        return key in _TYPED or key in self.layers

    def get(self, key: str, default: Any = None) -> Any:
        if key in _TYPED:
            return getattr(self, key)
        return self.layers.get(key, default)

    def setdefault(self, key: str, default: Any) -> Any:
        if key not in self:
            self[key] = default
        return self[key]
