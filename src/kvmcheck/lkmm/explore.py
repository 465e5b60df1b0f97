"""Every candidate execution of a litmus test, checked against the LKMM: the brute-force oracle.

1. *Domains* (:mod:`.domains`): the values each location may hold.
2. *Paths* (:mod:`.unfold`): the threads' runs, chosen in turn (:func:`_combinations`), each
   read drawing from what some write may store.
3. For each combination of paths: every ``rf``, then every ``co`` (:mod:`.candidates`), then
   :func:`.model.check`.

A consistent execution that passes the test's ``filter`` is counted, as herd7 counts:
positive when the condition's proposition holds in its final state.  The candidate that
reaches the condition's outcome and passes the most axioms is kept to explain a forbidden
outcome; the first consistent one that reaches it, an allowed one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from .candidates import chain, cobase_of, cos, rfs
from .domains import domains, value_key
from .events import Event
from .model import AXIOMS, Outcome, check, with_cycle
from .rel import Rel
from .static import Static
from .syntax import (
    And,
    Atom,
    LitmusTest,
    LocRef,
    Not,
    Or,
    Prop,
    Ref,
    RegRef,
    Truth,
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
    race: Witness | None = None  # the first consistent execution with a data race


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
        for rf_pairs in rfs(st):
            rf = Rel.of_pairs(st.n, rf_pairs) | st.rfi_lf | st.rfi_ru
            cobase = cobase_of(st, rf)
            if not cobase.acyclic():
                if best_fail < 0:  # keep one such candidate to explain a forbidden outcome
                    best_fail = _explain_cocycle(res, test, combo, events, st, rf, rf_pairs, observed)
                continue
            for co_lists in cos(st, cobase):
                co = Rel.of_pairs(st.n, [(a, b) for ws in co_lists.values() for a, b in chain(ws)])
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
                if res.race is None and "data-race" in out.flags:
                    res.race = Witness(events, out, state, rf_pairs, co_lists)
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
        d = {k: sorted(set(v), key=value_key) for k, v in d.items()}
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
    co_lists = next(cos(st, st.co0))
    state = _final_state(test, combo, events, co_lists)
    if test.filter is not None and not holds(test.filter, state):
        return -1
    if not holds(test.condition.prop, state):
        return -1
    co = Rel.of_pairs(st.n, [(a, b) for ws in co_lists.values() for a, b in chain(ws)])
    out = check(st, rf, co, observed)
    if out.failed is None:
        return -1
    res.denied = Witness(events, with_cycle(out), state, rf_pairs, co_lists)
    return AXIOMS.index(out.failed)


def _values_available(events: list[Event]) -> bool:
    have = {(e.loc, e.value) for e in events if e.kind == "W"}
    return all((e.loc, e.value) in have for e in events if e.kind == "R")


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
