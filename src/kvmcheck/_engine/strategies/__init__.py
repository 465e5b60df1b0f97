"""The bundled search strategies, one file each, registered here: one line per strategy."""

from __future__ import annotations

from kvmcheck._engine.registry import StrategySpec, register_strategy
from kvmcheck._engine.strategies.bounded import Bounded
from kvmcheck._engine.strategies.dpor import Dpor
from kvmcheck._engine.strategies.optimal import OptimalDpor
from kvmcheck._engine.strategies.pct import Pct
from kvmcheck._engine.strategies.random_walk import RandomWalk

register_strategy(StrategySpec("dpor", lambda s: OptimalDpor(), splits=True, resumable=True))
register_strategy(StrategySpec("bounded", lambda s: Bounded(s.bound)))
register_strategy(StrategySpec("random", lambda s: RandomWalk(s.seed), sampling=True))
register_strategy(StrategySpec("pct", lambda s: Pct(s.seed, s.depth), sampling=True))
# runnable by name, for comparison (not listed)
register_strategy(StrategySpec("dpor-source", lambda s: Dpor(), listed=False))
