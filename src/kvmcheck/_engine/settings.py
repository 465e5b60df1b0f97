"""One object for every knob of an exploration, validated in one place.

``check()`` builds one from its keyword arguments; the CLI and the pytest
plugin can build one directly and pass it as ``check(scn, settings=...)``.
Every bad value is a :class:`UsageError` with a one-line message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from kvmcheck._engine.finding import UsageError

STRATEGIES = ("dpor", "bounded", "random", "pct")
HIDDEN_STRATEGIES = ("dpor-source",)  # runnable by name, for comparison (not listed)
DEFAULT_MAX_STEPS = 20_000
DEFAULT_SAMPLES = 1_000  # executions of random / pct when no bound is given
BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class Settings:
    strategy: str = "dpor"
    max_executions: int | None = None
    max_seconds: float | None = None
    max_steps: int = DEFAULT_MAX_STEPS
    seed: int = 0
    bound: int | None = None  # preemption bound (strategy "bounded")
    depth: int = 3  # bug depth (strategy "pct")
    kcsan: bool | None = None  # None: the scenario's choice
    keep_going: bool | None = None  # None: the scenario's choice
    workers: int = 1
    backend: str = "local"
    address: str | None = None
    checkpoint: str | None = None
    checkpoint_every_s: float = 60.0
    resume: str | None = None

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES + HIDDEN_STRATEGIES:
            raise UsageError(f"unknown strategy {self.strategy!r}; choose one of: {', '.join(STRATEGIES)}")
        _positive_int("max_executions", self.max_executions, optional=True)
        _positive_number("max_seconds", self.max_seconds, optional=True)
        _positive_int("max_steps", self.max_steps)
        _int("seed", self.seed)
        if self.bound is not None:
            _int("bound", self.bound)
            if self.bound < 0:
                raise UsageError(f"bound must be >= 0 (got {self.bound})")
        _positive_int("depth", self.depth)
        _positive_int("workers", self.workers)
        _positive_number("checkpoint_every_s", self.checkpoint_every_s)
        if self.backend not in BACKENDS:
            raise UsageError(f"unknown backend {self.backend!r}; choose one of: {', '.join(BACKENDS)}")
        if self.address is not None and self.backend != "ray":
            raise UsageError("address is only for backend='ray'")
        # Reserved for issue 15 items 4-6; refused rather than silently ignored.
        if self.workers != 1:
            raise UsageError(f"workers={self.workers}: parallel exploration is not implemented yet (use 1)")
        if self.backend != "local":
            raise UsageError(f"backend={self.backend!r} is not implemented yet (use 'local')")
        if (self.checkpoint is not None or self.resume is not None) and self.strategy != "dpor":
            raise UsageError(f"checkpoint/resume needs strategy 'dpor' (got {self.strategy!r})")

    @property
    def sampling(self) -> bool:
        return self.strategy in ("random", "pct")

    def with_defaults(self) -> Settings:
        """A sampling strategy with no bound at all gets DEFAULT_SAMPLES executions."""
        if self.sampling and self.max_executions is None and self.max_seconds is None:
            return replace(self, max_executions=DEFAULT_SAMPLES)
        return self

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _int(name: str, v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, int):
        raise UsageError(f"{name} must be an integer (got {v!r})")


def _positive_int(name: str, v: Any, optional: bool = False) -> None:
    if v is None and optional:
        return
    _int(name, v)
    if v < 1:
        raise UsageError(f"{name} must be >= 1 (got {v})")


def _positive_number(name: str, v: Any, optional: bool = False) -> None:
    if v is None and optional:
        return
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise UsageError(f"{name} must be a number (got {v!r})")
    if math.isnan(v) or v <= 0:
        raise UsageError(f"{name} must be a positive number (got {v})")
