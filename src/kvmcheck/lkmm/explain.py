"""Counterexamples in LKMM terms.

* An outcome that is allowed: the witnessing execution -- which write each read
  read from (``rf``), the coherence order of every location written more than
  once (``co``), and the po-ordered access pairs the LKMM leaves unordered (no
  ``ppo`` edge: no fence, dependency, acquire or release between them), which is
  usually why the outcome is possible.
* An outcome that is forbidden: a candidate execution producing it, the axiom of
  linux-kernel.cat it breaks, and the cycle (each edge named by the relation that
  makes it: ``ppo``, ``rfe``, ``prop``, ``po-loc``, ``rf``, ``co``, ``fr`` ...).
"""

from __future__ import annotations

import itertools
from typing import Any

from .events import Event
from .explore import Result, Witness
from .rel import Rel

AXIOM_TEXT = {
    "coherence": "coherence (acyclic po-loc | rf | co | fr)",
    "atomic": "atomic (empty rmw & (fre ; coe))",
    "happens-before": "happens-before (acyclic hb)",
    "propagation": "propagation (acyclic pb)",
    "rcu": "rcu (irreflexive rb)",
    "plain-coherence": "plain-coherence (empty wr-incoh | rw-incoh | ww-incoh)",
}
EDGE_ORDER = {
    "coherence": ("po-loc", "rf", "co", "fr"),
    "happens-before": ("rfe", "ppo", "prop"),
    "propagation": ("pb",),
    "rcu": ("rb",),
}


def describe(e: Event) -> str:
    if e.is_init:
        return f"init {e.loc}={e.value}"
    where = f" (line {e.line} {e.text})" if e.line else ""
    return f"P{e.thread}:{e.label()}{where}"


def explain(res: Result) -> dict[str, Any]:
    """The explanation as data: for the outcome the condition asks about (and a data race)."""
    if res.allowed is not None:
        out = {"outcome": "allowed", **_execution(res.allowed), "unordered": _unordered(res.allowed)}
    elif res.denied is not None:
        out = {"outcome": "forbidden", **_execution(res.denied), **_failure(res.denied)}
    else:
        out = {"outcome": "impossible", "why": "no candidate execution (even ignoring the LKMM) reaches it"}
    if res.race is not None:
        out["data_race"] = _races(res.race)
    return out


def _races(w: Witness) -> dict[str, Any]:
    """The racing pairs of one consistent execution (cat: ww-race | wr-race | rw-race)."""
    ev = w.events
    pairs = w.outcome.rels["data-race"].pairs()
    return {
        "pairs": [[describe(ev[a]), describe(ev[b])] for a, b in pairs],
        "state": {str(k): v for k, v in w.state.items()},
    }


def _execution(w: Witness) -> dict[str, Any]:
    ev = w.events
    rf = [{"read": describe(ev[r]), "from": describe(ev[s])} for s, r in sorted(w.rf, key=lambda p: p[1])]
    co = {
        loc: [describe(ev[i]) for i in ws]
        for loc, ws in sorted(w.co.items())
        if sum(not ev[i].is_init for i in ws) > 1
    }
    return {"rf": rf, "co": co, "state": {str(k): v for k, v in w.state.items()}}


def _unordered(w: Witness) -> list[str]:
    ppo = w.outcome.rels.get("ppo")
    if ppo is None:
        return []
    ev = w.events
    out = []
    by_thread: dict[int, list[int]] = {}
    for i, e in enumerate(ev):
        if e.kind in ("R", "W") and not e.is_init:
            by_thread.setdefault(e.thread, []).append(i)
    for idx in by_thread.values():
        for a, b in itertools.pairwise(idx):
            if ev[a].loc != ev[b].loc and not ppo.has(a, b):
                out.append(f"{describe(ev[a])} -> {describe(ev[b])}: no ppo")
    return out


# The composite relations a cycle edge is spelled out in: (relation, "?" | "*" | "1") steps.
PROP = (("overwrite-ext", "?"), ("cumul-fence", "*"), ("rfe", "?"))
EXPAND = {
    "prop": PROP,
    "pb": (*PROP, ("strong-fence", "1"), ("hb", "*")),
    "rb": (*PROP, ("rcu-fence", "1"), ("hb", "*"), ("pb", "*")),
}


def expand(
    a: int, b: int, steps: tuple[tuple[str, str], ...], rels: dict[str, Rel]
) -> list[tuple[int, str]] | None:
    """A path a -> b through ``steps`` (a regular expression over named relations), as (event, edge) pairs."""
    start = (a, 0)
    parent: dict[tuple[int, int], tuple[tuple[int, int], str]] = {}
    frontier, seen = [start], {start}
    goal = (b, len(steps))
    while frontier:
        nxt = []
        for ev, i in frontier:
            moves: list[tuple[tuple[int, int], str]] = []
            if i < len(steps):
                name, q = steps[i]
                if q in "?*":
                    moves.append(((ev, i + 1), ""))
                r = rels.get(name)
                if r is not None:
                    for j in range(r.n):
                        if r.has(ev, j):
                            moves.append(((j, i if q == "*" else i + 1), name))
            for st, label in moves:
                if st not in seen:
                    seen.add(st)
                    parent[st] = ((ev, i), label)
                    nxt.append(st)
        frontier = nxt
        if goal in seen:
            path: list[tuple[int, str]] = []
            cur = goal
            while cur != start:
                prev, label = parent[cur]
                if label == "overwrite-ext":
                    fr = rels.get("fr")
                    label = "fre" if fr is not None and fr.has(prev[0], cur[0]) else "coe"
                if label:
                    path.append((prev[0], label))
                cur = prev
            return path[::-1]
    return None


def _failure(w: Witness) -> dict[str, Any]:
    out = w.outcome
    assert out.failed is not None
    ev = w.events
    cyc = out.witness
    names = EDGE_ORDER.get(out.failed, ())
    rels = dict(out.rels)
    steps: list[dict[str, str]] = []
    for k, a in enumerate(cyc):
        b = cyc[(k + 1) % len(cyc)]
        edge = _edge(a, b, names, rels, w)
        path = expand(a, b, EXPAND[edge], rels) if edge in EXPAND else None
        if path:
            steps.extend({"event": describe(ev[x]), "edge": lab, "part_of": edge} for x, lab in path)
        else:
            steps.append({"event": describe(ev[a]), "edge": edge})
    result: dict[str, Any] = {"axiom": AXIOM_TEXT[out.failed], "cycle": steps}
    if out.failed == "rcu":
        result["rcu"] = _rcu_parts(w)
    return result


def _rcu_parts(w: Witness) -> list[str]:
    """The grace periods and read-side critical sections an ``rcu-fence`` goes through."""
    ev, rels = w.events, w.outcome.rels
    po = rels.get("po")
    out = [f"grace period {describe(e)}" for e in ev if e.kind == "F" and "sync-rcu" in e.tags]
    out += [f"grace period {describe(e)}" for e in ev if e.kind == "SRCU" and "sync-srcu" in e.tags]
    for name in ("rcu-rscs", "srcu-rscs"):
        r = rels.get(name)
        if r is None or po is None:
            continue
        for lock, unlock in r.pairs():
            out.append(
                f"read-side critical section P{ev[lock].thread} lines {ev[lock].line}-{ev[unlock].line}"
            )
    return out


def _edge(a: int, b: int, names: tuple[str, ...], rels: dict[str, Rel], w: Witness) -> str:
    ev = w.events
    for name in names:
        r = _named(name, rels, ev)
        if r is not None and r.has(a, b):
            return name
    return names[0] if len(names) == 1 else "->"


def _named(name: str, rels: dict[str, Rel], ev: list[Event]) -> Rel | None:
    if name in rels:
        return rels[name]
    base = name.rstrip("ei")
    if name in ("rfe", "rfi") and "rf" in rels:
        r = rels["rf"]
        ext = name == "rfe"
        n = len(ev)
        rows = [0] * n
        for i in range(n):
            for j in range(n):
                if r.has(i, j) and (ev[i].thread != ev[j].thread) == ext:
                    rows[i] |= 1 << j
        return Rel(n, rows)
    if name == "po-loc":
        n = len(ev)
        rows = [0] * n
        for i in range(n):
            for j in range(i + 1, n):
                if (
                    ev[i].thread == ev[j].thread
                    and not ev[i].is_init
                    and ev[i].loc
                    and ev[i].loc == ev[j].loc
                ):
                    rows[i] |= 1 << j
        return Rel(n, rows)
    return rels.get(base)


def explain_text(res: Result) -> str:
    x = explain(res)
    lines: list[str] = []
    if x["outcome"] == "impossible":
        lines.append(f"Outcome: {x['why']}.")
        lines.extend(_race_lines(x))
        return "\n".join(lines)
    if x["outcome"] == "allowed":
        lines.append("Outcome allowed; a consistent execution that reaches it:")
    else:
        lines.append("Outcome forbidden; a candidate execution that reaches it, and the axiom it breaks:")
    for step in x["rf"]:
        lines.append(f"  rf  {step['read']}  reads from  {step['from']}")
    for loc, ws in x["co"].items():
        lines.append(f"  co  {loc}: " + "  ->  ".join(ws))
    if x["outcome"] == "allowed":
        for u in x["unordered"]:
            lines.append(f"  unordered  {u}")
    else:
        lines.append(f"  violates {x['axiom']}:")
        cyc = x["cycle"]
        for k, step in enumerate(cyc):
            back = " (back to the start)" if k == len(cyc) - 1 else ""
            part = f" (in {step['part_of']})" if "part_of" in step else ""
            lines.append(f"    {step['event']}  -{step['edge']}->{part}{back}")
        for part in x.get("rcu", []):
            lines.append(f"  rcu-fence through the {part}")
    lines.extend(_race_lines(x))
    return "\n".join(lines)


def _race_lines(x: dict[str, Any]) -> list[str]:
    race = x.get("data_race")
    if race is None:
        return []
    out = ["Data race (no fence, dependency or lock orders them, and one is plain):"]
    out.extend(f"  {a}  races with  {b}" for a, b in race["pairs"])
    return out
