"""One object for every knob of an exploration, validated in one place.

The CLI and the pytest plugin build one (once) and pass it down unchanged: to
``check(target, settings)``, the run pipeline, worker processes and Ray tasks.
The public keyword API (``kvmcheck.check(scn, strategy=..., max_seconds=...)``)
builds one from its keywords with :meth:`Settings.of`: the knobs are spelled
here only.  Every bad value is a :class:`UsageError` with a one-line message.

What a setting leaves to the scenario (``kcsan``, ``keep_going`` and
``memory_model`` None: the scenario's choice) is decided in one place,
:meth:`Settings.resolve`, which the engine's front door calls once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

import kvmcheck._engine.backends  # registers the bundled backends (local, ray)
import kvmcheck._engine.strategies  # noqa: F401 - registers the bundled strategies
from kvmcheck._engine import registry, weak
from kvmcheck._engine.finding import UsageError
from kvmcheck._engine.target import Target

STRATEGIES = registry.strategy_names()  # the bundled ones (the registry takes more: registry.py)
BACKENDS = registry.backend_names()
DEFAULT_MAX_STEPS = 20_000
DEFAULT_SAMPLES = 1_000  # executions of a sampling strategy (random, pct) when no bound is given


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
    workers: int | None = 1  # None: auto (one worker, then every core if the search is big)
    backend: str = "local"
    address: str | None = None
    checkpoint: str | None = None
    checkpoint_every_s: float = 60.0
    resume: str | None = None
    step_timeout_s: float = 10.0  # pure Python this long without a visible operation: a finding
    memory_model: str | None = None  # "sc" or "lkmm"; None: the scenario's choice

    # the public keyword API's positional arguments, in order: check(scn, "pct", 500, 2.0, 7)
    POSITIONAL = ("strategy", "max_executions", "max_seconds", "seed")

    @classmethod
    def of(cls, *positional: Any, settings: Settings | None = None, **knobs: Any) -> Settings:
        """Settings from the public API's arguments: ``settings`` (or the defaults) with
        ``knobs`` (and the positional ones, in :data:`POSITIONAL` order) replaced."""
        if len(positional) > len(cls.POSITIONAL):
            raise UsageError(
                f"at most {len(cls.POSITIONAL)} positional options ({', '.join(cls.POSITIONAL)})"
            )
        for name, value in zip(cls.POSITIONAL, positional, strict=False):
            if name in knobs:
                raise UsageError(f"{name} given twice")
            knobs[name] = value
        unknown = sorted(set(knobs) - {f.name for f in fields(cls)})
        if unknown:
            raise UsageError(
                f"unknown option {unknown[0]!r}; known: {', '.join(f.name for f in fields(cls))}"
            )
        return replace(settings, **knobs) if settings is not None else cls(**knobs)

    def __post_init__(self) -> None:
        strategy = registry.strategy(self.strategy)  # an unknown name: one line
        _positive_int("max_executions", self.max_executions, optional=True)
        _positive_number("max_seconds", self.max_seconds, optional=True)
        _positive_int("max_steps", self.max_steps)
        _int("seed", self.seed)
        if self.bound is not None:
            _int("bound", self.bound)
            if self.bound < 0:
                raise UsageError(f"bound must be >= 0 (got {self.bound})")
        _positive_int("depth", self.depth)
        _positive_int("workers", self.workers, optional=True)
        _positive_number("checkpoint_every_s", self.checkpoint_every_s)
        _positive_number("step_timeout_s", self.step_timeout_s)
        backend = registry.backend(self.backend)
        if self.address is not None and not backend.remote:
            remote = [n for n in registry.backend_names() if registry.backend(n).remote]
            raise UsageError(f"address is only for {' or '.join(f'backend={n!r}' for n in remote)}")
        if backend.remote and self.address is None:
            raise UsageError(f"backend={self.backend!r} needs {backend.address_help}")
        if self.parallel:
            if not strategy.splits:
                raise UsageError(
                    f"several workers explore the dpor search; strategy {self.strategy!r} runs on one "
                    "(use workers=1)"
                )
            if self.checkpoint is not None or self.resume is not None:
                raise UsageError("checkpoint/resume runs on one worker (use workers=1)")
        if (self.checkpoint is not None or self.resume is not None) and not strategy.resumable:
            raise UsageError(f"checkpoint/resume needs strategy 'dpor' (got {self.strategy!r})")
        if self.memory_model is not None:
            weak.check_name(self.memory_model)
        for name in ("kcsan", "keep_going"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, bool):
                raise UsageError(f"{name} must be True, False or None (got {v!r})")

    def resolve(self, target: Target) -> tuple[Target, Settings]:
        """What is left to the scenario, decided -- the one place that does it: the target
        under the memory model asked for, and settings whose ``kcsan`` and ``keep_going`` are
        the scenario's where they were None (and a sampling strategy's default budget)."""
        target = target.under(self.memory_model)
        s = target.scenario
        out = replace(
            self.with_defaults(),
            kcsan=s.kcsan if self.kcsan is None else self.kcsan,
            keep_going=s.keep_going if self.keep_going is None else self.keep_going,
            memory_model=target.memory_model,
        )
        return target, out

    @property
    def kcsan_on(self) -> bool:
        """KCSAN on or off, once :meth:`resolve` has decided it."""
        assert self.kcsan is not None, "Settings.resolve() decides kcsan"
        return self.kcsan

    @property
    def may_go_parallel(self) -> bool:
        """Can auto (workers=None) move this search to every core?  Only an exhaustive dpor
        search with no execution bound and no checkpoint (their counts are one worker's), under SC."""
        return (
            registry.strategy(self.strategy).splits
            and not self.one_worker_model
            and self.max_executions is None
            and self.checkpoint is None
            and self.resume is None
        )

    @property
    def one_worker_model(self) -> bool:
        """Is the memory model one whose search runs on one worker (a weak one: search.choose()
        says why)?"""
        return self.memory_model not in (None, weak.SC)

    @property
    def parallel(self) -> bool:
        """Is the search split into jobs for worker processes (or a Ray cluster)?"""
        return (self.workers or 1) > 1 or registry.backend(self.backend).remote

    @property
    def sampling(self) -> bool:
        return registry.strategy(self.strategy).sampling

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
    if not math.isfinite(v) or v <= 0:
        raise UsageError(f"{name} must be a positive number (got {v})")
