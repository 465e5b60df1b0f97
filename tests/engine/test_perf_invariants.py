"""The engine's speed-ups keep its semantics: caches agree with what they stand for.

No timings here (speed is measured by bench/); each test checks an exact
value that a faster code path must reproduce.
"""

from __future__ import annotations

from typing import Any

import pytest

from kvmcheck._engine.strategies.optimal import OptimalDpor
from tests.engine.bruteforce import explore
from tests.engine.test_nondet import CASES


class _CheckedPrefix(OptimalDpor):
    """Optimal DPOR whose incrementally kept prefix is compared, every execution, with
    the prefix computed from scratch from the search stack."""

    def prefix(self) -> tuple[list[int], dict[int, int]]:
        got = super().prefix()
        nodes = self.ostack[: len(self.ev_tid)]
        want = (
            [n.chosen for n in nodes],
            {i: n.value for i, n in enumerate(nodes) if n.pending[n.chosen].choices},
        )
        assert got == want
        return got


@pytest.mark.parametrize("scn", CASES, ids=lambda s: s.name)
def test_incremental_prefix_equals_the_prefix_from_scratch(scn: Any) -> None:
    checked = explore(scn, _CheckedPrefix())
    plain = explore(scn, OptimalDpor())
    assert checked.executions == plain.executions
    assert checked.traces == plain.traces
    assert checked.blocked == plain.blocked == 0
