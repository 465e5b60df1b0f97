"""The values each location may hold: a superset of those any execution of the test produces.

The initial values and every integer constant of the code (a value can also come round a
cycle of reads and writes -- ``r1 = 1; if (READ_ONCE(*x) == 0) r1 = 0; WRITE_ONCE(*y, r1);``
against ``WRITE_ONCE(*x, READ_ONCE(*y))`` -- which herd7's equation solver finds), closed by
running the threads with reads drawing from the values found so far, for at most as many
rounds as one execution has writes (a chain of writes, each justified by an earlier one).
"""

from __future__ import annotations

from .syntax import BinOp, Call, Const, Deref, Expr, If, LitmusTest, Stmt, Store, UnOp, Value
from .unfold import paths_of


def domains(test: LitmusTest) -> dict[str, list[Value]]:
    locs = {name for name, _ in test.init}
    consts: set[Value] = set()
    for t in test.threads:
        _constants(t.body, consts)
    # Every integer constant of the code seeds every domain: a value may also come round a
    # cycle of reads and writes (``r1 = 1; if (READ_ONCE(*x) == 0) r1 = 0; WRITE_ONCE(*y, r1);``
    # against ``WRITE_ONCE(*x, READ_ONCE(*y))``), which herd7's equation solver finds and a
    # forward fixpoint from the initial values alone would not.
    dom: dict[str, set[Value]] = {name: {v} | consts for name, v in test.init}
    # A value is written after at most as many rounds as there are writes in one execution
    # (a chain of reads and writes, each justified by an earlier one): at most the sum over
    # the threads of the writes on their longest path, recounted as the paths grow.
    rounds = 0
    while True:
        current = {k: sorted(v, key=value_key) for k, v in dom.items()}
        grew = False
        bound = 0
        for t in test.threads:
            longest = 0
            for p in paths_of(t, current, locs, partial=True):
                longest = max(longest, sum(e.kind == "W" for e in p.events))
                for e in p.events:
                    if e.kind == "W" and e.loc is not None and e.value not in dom[e.loc]:
                        dom[e.loc].add(e.value)
                        grew = True
            bound += longest
        rounds += 1
        if not grew or rounds >= max(bound, 1):
            break
    return {k: sorted(v, key=value_key) for k, v in dom.items()}


def _constants(body: tuple[Stmt, ...], out: set[Value]) -> None:
    for s in body:
        if isinstance(s, If):
            _expr_constants(s.cond, out)
            _constants(s.then, out)
            _constants(s.orelse, out)
        elif isinstance(s, Store):
            _expr_constants(s.addr, out)
            _expr_constants(s.value, out)
        else:
            _expr_constants(s.expr, out)


def _expr_constants(e: Expr, out: set[Value]) -> None:
    if isinstance(e, Const) and isinstance(e.value, int):
        out.add(e.value)
    elif isinstance(e, Call):
        for a in e.args:
            _expr_constants(a, out)
    elif isinstance(e, BinOp):
        _expr_constants(e.left, out)
        _expr_constants(e.right, out)
    elif isinstance(e, UnOp | Deref):
        _expr_constants(e.arg if isinstance(e, UnOp) else e.addr, out)


def value_key(v: Value) -> tuple[int, int, str]:
    return (0, v, "") if isinstance(v, int) else (1, 0, v)
