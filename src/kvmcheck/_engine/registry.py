"""The strategies and the backends a check can name: one registry each.

Adding a search strategy is one new file (its class, meeting ``strategy.py``'s contract) and one
line registering it -- in ``strategies/__init__.py`` for a bundled one, anywhere for your own::

    register_strategy(StrategySpec("leftmost", lambda settings: Leftmost()))

after which ``Settings(strategy="leftmost")``, ``kvmcheck.check(scn, strategy="leftmost")`` and
the search take it.  A backend (where a split search's jobs run: ``parallel.Pool``) is
registered the same way (``backends.py`` registers "local" and "ray").  What a strategy or a
backend allows (several workers, checkpoints, an address) is said in its spec, and
``Settings`` checks a request against it, so no other file names a strategy or a backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kvmcheck._engine.finding import UsageError

if TYPE_CHECKING:
    from kvmcheck._engine.parallel import Pool
    from kvmcheck._engine.settings import Settings
    from kvmcheck._engine.strategy import Strategy
    from kvmcheck._engine.target import Target


@dataclass(frozen=True)
class StrategySpec:
    name: str
    make: Callable[[Settings], Strategy]  # a fresh strategy for one search, from its settings
    listed: bool = True  # offered by the command line (and in kvmcheck.STRATEGIES)
    sampling: bool = False  # runs until a budget: with none, DEFAULT_SAMPLES executions
    splits: bool = False  # its search can be split into jobs for several workers (parallel.py)
    resumable: bool = False  # its frontier can be saved and resumed (checkpoint.py)


@dataclass(frozen=True)
class BackendSpec:
    name: str
    # a pool of ``workers`` (0: as many as the backend has) running the jobs of ``target``'s search
    make_pool: Callable[[int, Target, Settings], Pool]
    remote: bool = False  # runs elsewhere: needs an address, and says itself how many jobs at once
    address_help: str = "an address"  # what a remote backend's address is (for the error line)
    tasks: str = "tasks"  # what runs the jobs of a remote backend, for the coverage line

    def where(self, workers: int, address: str | None) -> str:
        """What ran the jobs, for the coverage line: "2 workers", "4 Ray tasks at HOST:PORT"."""
        if self.remote:
            return f"{workers} {self.tasks} at {address}"
        return f"{workers} {'worker' if workers == 1 else 'workers'}"


_STRATEGIES: dict[str, StrategySpec] = {}
_BACKENDS: dict[str, BackendSpec] = {}


def register_strategy(spec: StrategySpec) -> None:
    """Make ``spec.name`` a strategy a check can name (a name taken already is refused)."""
    if spec.name in _STRATEGIES:
        raise UsageError(f"strategy {spec.name!r} is registered already")
    _STRATEGIES[spec.name] = spec


def unregister_strategy(name: str) -> None:
    _STRATEGIES.pop(name, None)


def register_backend(spec: BackendSpec) -> None:
    """Make ``spec.name`` a backend a check can name (a name taken already is refused)."""
    if spec.name in _BACKENDS:
        raise UsageError(f"backend {spec.name!r} is registered already")
    _BACKENDS[spec.name] = spec


def unregister_backend(name: str) -> None:
    _BACKENDS.pop(name, None)


def strategy_names() -> tuple[str, ...]:
    """The listed strategies, in the order they were registered."""
    return tuple(n for n, s in _STRATEGIES.items() if s.listed)


def backend_names() -> tuple[str, ...]:
    return tuple(_BACKENDS)


def strategy(name: str) -> StrategySpec:
    spec = _STRATEGIES.get(name)
    if spec is None:
        raise UsageError(f"unknown strategy {name!r}; choose one of: {', '.join(strategy_names())}")
    return spec


def backend(name: str) -> BackendSpec:
    spec = _BACKENDS.get(name)
    if spec is None:
        raise UsageError(f"unknown backend {name!r}; choose one of: {', '.join(backend_names())}")
    return spec


def make_strategy(settings: Settings) -> Strategy:
    """A fresh strategy for one search under ``settings``."""
    return strategy(settings.strategy).make(settings)
