"""The value domains: every value an execution can produce, and not many more."""

from __future__ import annotations

from kvmcheck.lkmm.domains import domains
from kvmcheck.lkmm.parser import parse_litmus

TWO_INCS = """C two-incs
{}
P0(atomic_t *v)
{
	atomic_inc(v);
}
P1(atomic_t *v)
{
	atomic_inc(v);
}
exists (v=2)
"""


def test_a_counter_reaches_only_as_far_as_the_writes_go():
    """Two increments: 0, 1, 2; a chain of writes is at most two long."""
    assert domains(parse_litmus(TWO_INCS))["v"] == [0, 1, 2]


def test_a_constant_seeds_every_domain():
    src = TWO_INCS.replace("atomic_inc(v);\n}\nP1", "atomic_inc(v);\n\tWRITE_ONCE(*w, 7);\n}\nP1").replace(
        "P0(atomic_t *v)", "P0(atomic_t *v, int *w)"
    )
    dom = domains(parse_litmus(src))
    assert 7 in dom["v"] and 8 in dom["v"]  # 7, then one increment of it
