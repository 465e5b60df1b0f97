"""Every candidate execution of a litmus test, checked against the LKMM: the brute-force oracle.

1. *Domains*: the values each location may hold, by iterating the threads (reads
   drawing from the values found so far) until nothing new appears -- at most one
   round per write the program can make, which covers every chain of values read
   and written again (an out-of-thin-air cycle has no such chain, and herd7 cannot
   solve it either).
2. *Paths*: each thread's runs for those values (:mod:`.unfold`).
3. For each combination of paths: every ``rf`` (each read from a write of its
   location holding the value it returned -- never a po-later write of its own
   thread; lock.cat's ``cross`` choices for failed ``spin_trylock()`` and
   ``spin_is_locked()``), then every ``co`` (per location, each linear order of
   its writes that extends herd's ``cobase`` of cos-opt.cat; a cyclic ``cobase``
   prunes the rf at once), then :func:`.model.check`.

A consistent execution that passes the test's ``filter`` is counted, as herd7
counts: positive when the condition's proposition holds in its final state.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

from .events import Event
from .model import AXIOMS, Outcome, check, with_cycle
from .rel import Rel, bits
from .static import Static
from .syntax import (
    And,
    Atom,
    BinOp,
    Call,
    Const,
    Deref,
    Expr,
    If,
    LitmusTest,
    LocRef,
    Not,
    Or,
    Prop,
    Ref,
    RegRef,
    Stmt,
    Store,
    Truth,
    UnOp,
    Value,
    refs_of,
)
from .unfold import Path, paths_of

State = dict[Ref, Value]


@dataclass
class Witness:
    """One candidate execution, kept to explain the verdict."""

    events: list[Event]
    outcome: Outcome
    state: State
    rf: list[tuple[int, int]]
    co: dict[str, list[int]]


@dataclass
class Result:
    test: LitmusTest
    shown: list[Ref]
    states: set[tuple[Value, ...]] = field(default_factory=set)
    pos: int = 0
    neg: int = 0
    flags: set[str] = field(default_factory=set)
    candidates: int = 0
    allowed: Witness | None = None  # a consistent execution where the proposition holds
    denied: Witness | None = None  # a candidate where it holds, and the axiom that forbids it
    other: Witness | None = None  # a consistent execution where it does not hold


def holds(p: Prop, val: State) -> bool:
    if isinstance(p, Truth):
        return p.value
    if isinstance(p, Atom):
        rhs = val[p.value] if isinstance(p.value, RegRef | LocRef) else p.value
        return (val[p.ref] == rhs) != p.negated
    if isinstance(p, Not):
        return not holds(p.arg, val)
    if isinstance(p, And):
        return holds(p.left, val) and holds(p.right, val)
    assert isinstance(p, Or)
    return holds(p.left, val) or holds(p.right, val)


def shown_refs(test: LitmusTest) -> list[Ref]:
    """The locations herd7 prints in a state: ``locations`` and the condition's, registers first."""
    seen: list[Ref] = []
    for r in [*test.locations, *refs_of(test.condition.prop)]:
        if r not in seen:
            seen.append(r)
    return sorted(seen, key=lambda r: (0, r.proc, r.name) if isinstance(r, RegRef) else (1, 0, r.name))


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
        current = {k: sorted(v, key=_vkey) for k, v in dom.items()}
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
    return {k: sorted(v, key=_vkey) for k, v in dom.items()}


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


def _vkey(v: Value) -> tuple[int, int, str]:
    return (0, v, "") if isinstance(v, int) else (1, 0, v)


def explore(test: LitmusTest) -> Result:
    locs = {name for name, _ in test.init}
    dom = domains(test)
    init_pairs = {(name, v) for name, v in test.init}
    init_events = [Event("W", name, v, frozenset({"IW"}), -1) for name, v in test.init]
    res = Result(test, shown_refs(test))
    observed = {r.name for r in res.shown if isinstance(r, LocRef)}
    best_fail = -1
    for combo in _combinations(test, dom, locs, init_pairs):
        events = init_events + [e for p in combo for e in p.events]
        if not _values_available(events):
            continue
        st = Static(events)
        if st.static_failure():
            continue
        for rf_pairs in _rfs(st):
            rf = Rel.of_pairs(st.n, rf_pairs) | st.rfi_lf | st.rfi_ru
            cobase = _cobase(st, rf)
            if not cobase.acyclic():
                if best_fail < 0:  # keep one such candidate to explain a forbidden outcome
                    best_fail = _explain_cocycle(res, test, combo, events, st, rf, rf_pairs, observed)
                continue
            for co_lists in _cos(st, cobase):
                co = Rel.of_pairs(st.n, [(a, b) for ws in co_lists.values() for a, b in _chain(ws)])
                res.candidates += 1
                out = check(st, rf, co, observed)
                state = _final_state(test, combo, events, co_lists)
                if test.filter is not None and not holds(test.filter, state):
                    continue
                ok = holds(test.condition.prop, state)
                if out.failed is not None:
                    rank = AXIOMS.index(out.failed)
                    if ok and rank > best_fail:
                        best_fail = rank
                        res.denied = Witness(events, with_cycle(out), state, rf_pairs, co_lists)
                    continue
                res.states.add(tuple(state[r] for r in res.shown))
                res.flags |= out.flags
                if ok:
                    res.pos += 1
                    if res.allowed is None:
                        res.allowed = Witness(events, out, state, rf_pairs, co_lists)
                else:
                    res.neg += 1
                    if res.other is None:
                        res.other = Witness(events, out, state, rf_pairs, co_lists)
    return res


def _combinations(
    test: LitmusTest, dom: dict[str, list[Value]], locs: set[str], init_pairs: set[tuple[str, Value]]
) -> Iterator[tuple[Path, ...]]:
    """Every combination of thread paths whose reads some write may feed.

    Threads are taken in turn (fewest paths first); a thread's reads draw from the initial
    values, the stores of the paths already chosen, what the threads still to come may store
    (over all their paths), and the stores of its own run so far -- which is every value a
    read can get, but far fewer than the whole domain once the other threads are fixed.
    """
    n = len(test.threads)
    every = [paths_of(t, dom, locs) for t in test.threads]
    may = [{(e.loc, e.value) for p in ps for e in p.events if e.kind == "W"} for ps in every]
    order = sorted(range(n), key=lambda t: len(every[t]))
    chosen: dict[int, Path] = {}

    def rec(i: int, gives: set[tuple[str | None, Value]]) -> Iterator[tuple[Path, ...]]:
        if i == n:
            yield tuple(chosen[t] for t in range(n))
            return
        t = order[i]
        base: set[tuple[str | None, Value]] = set(init_pairs) | gives
        for u in order[i + 1 :]:
            base |= may[u]
        d: dict[str, list[Value]] = {loc: [] for loc in locs}
        for loc, v in base:
            if loc is not None:
                d[loc].append(v)
        d = {k: sorted(set(v), key=_vkey) for k, v in d.items()}
        paths = every[t] if i == 0 else paths_of(test.threads[t], d, locs)
        for p in paths:
            chosen[t] = p
            yield from rec(i + 1, gives | {(e.loc, e.value) for e in p.events if e.kind == "W"})
        chosen.pop(t, None)

    yield from rec(0, set())


def _explain_cocycle(
    res: Result,
    test: LitmusTest,
    combo: tuple[Path, ...],
    events: list[Event],
    st: Static,
    rf: Rel,
    rf_pairs: list[tuple[int, int]],
    observed: set[str],
) -> int:
    """An rf whose cobase is cyclic breaks coherence whatever co is; keep it (with some co) as a witness."""
    co_lists = next(_cos(st, st.co0))
    state = _final_state(test, combo, events, co_lists)
    if test.filter is not None and not holds(test.filter, state):
        return -1
    if not holds(test.condition.prop, state):
        return -1
    co = Rel.of_pairs(st.n, [(a, b) for ws in co_lists.values() for a, b in _chain(ws)])
    out = check(st, rf, co, observed)
    if out.failed is None:
        return -1
    res.denied = Witness(events, with_cycle(out), state, rf_pairs, co_lists)
    return AXIOMS.index(out.failed)


def _values_available(events: list[Event]) -> bool:
    have = {(e.loc, e.value) for e in events if e.kind == "W"}
    return all((e.loc, e.value) in have for e in events if e.kind == "R")


def _rfs(st: Static) -> Iterator[list[tuple[int, int]]]:
    """Every rf: each ordinary read from a same-value write; lock.cat's rfe-lf and rfe-ru choices."""
    ev = st.events
    choices: list[list[tuple[int, int]]] = []
    for r in bits(st.R0):
        cands = [
            (w, r)
            for w in bits(st.W0)
            if ev[w].loc == ev[r].loc
            and ev[w].value == ev[r].value
            and not (ev[w].thread == ev[r].thread and w > r)
        ]
        if not cands:
            return
        choices.append(cands)
    # map possible-rfe-lf (LF \ range(rfi-lf)), possible-rfe-lf r = (LKW * {r}) & loc & ext
    for r in bits(st.LF & ~st.rfi_lf.range()):
        cands = [(w, r) for w in bits(st.LKW) if ev[w].loc == ev[r].loc and ev[w].thread != ev[r].thread]
        if not cands:
            return
        choices.append(cands)
    # map possible-rfe-ru RU, possible-rfe-ru r = ((UL | IW) * {r}) & loc & ext
    for r in bits(st.RU):
        cands = [
            (w, r) for w in bits(st.UL | st.IW) if ev[w].loc == ev[r].loc and ev[w].thread != ev[r].thread
        ]
        if not cands:
            return
        choices.append(cands)
    for pick in itertools.product(*choices):
        yield list(pick)


def _cobase(st: Static, rf: Rel) -> Rel:
    """cos-opt.cat: ``let cobase = obsco | rmwco | co0`` (rmwco is empty: no event is both R and W)."""
    ws, rs, pl = st.W_co, st.R, st.po_loc
    inv = rf.inv()
    ww = pl.restrict(ws, ws)  # po-loc & (W * W)
    rw = rf.seq(pl.restrict(rs, ws))  # rf ; (po-loc & (R * W))
    wr = pl.restrict(ws, rs).seq(inv) - st.id  # ((po-loc & (W * R)) ; invrf) \ id
    rr = rf.seq(pl.restrict(rs, rs), inv) - st.id  # (rf ; (po-loc & (R * R)) ; invrf) \ id
    return ww | rw | wr | rr | st.co0


def _cos(st: Static, cobase: Rel) -> Iterator[dict[str, list[int]]]:
    """``generate_cos(cobase)``: per location, every linear order of its writes extending cobase."""
    by_loc: dict[str, list[int]] = {}
    for w in bits(st.W_co):
        loc = st.events[w].loc
        assert loc is not None
        by_loc.setdefault(loc, []).append(w)
    locs = sorted(by_loc)
    per_loc = [list(_linearisations(by_loc[k], cobase)) for k in locs]
    for pick in itertools.product(*per_loc):
        yield dict(zip(locs, pick, strict=True))


def _linearisations(ws: list[int], order: Rel) -> Iterator[list[int]]:
    if not ws:
        yield []
        return
    yield from _lin(ws, order.inv())


def _lin(ws: list[int], preds: Rel) -> Iterator[list[int]]:
    if not ws:
        yield []
        return
    mask = 0
    for w in ws:
        mask |= 1 << w
    for w in ws:
        if preds.rows[w] & mask & ~(1 << w):
            continue
        rest = [x for x in ws if x != w]
        for tail in _lin(rest, preds):
            yield [w, *tail]


def _chain(ws: list[int]) -> list[tuple[int, int]]:
    return [(ws[i], ws[j]) for i in range(len(ws)) for j in range(i + 1, len(ws))]


def _final_state(
    test: LitmusTest, combo: tuple[Path, ...], events: list[Event], co: dict[str, list[int]]
) -> State:
    val: State = {}
    for name, v in test.init:
        val[LocRef(name)] = v
    for name, ws in co.items():
        if ws:
            val[LocRef(name)] = events[ws[-1]].value
    for ref, v in test.reg_init:
        val[ref] = v
    for p in combo:
        for reg, v in p.regs:
            val[RegRef(p.thread, reg)] = v
    for r in [*refs_of(test.condition.prop), *refs_of(test.filter), *test.locations]:
        val.setdefault(r, 0)
    return val
