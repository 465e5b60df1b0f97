"""The rf and co choices of one combination of thread paths (herd7's lock.cat and cos-opt.cat).

* :func:`rfs` -- every rf: each ordinary read from a write of its location holding the value
  it returned (never a po-later write of its own thread), and lock.cat's ``cross`` choices of
  ``rfe-lf`` (a failed ``spin_trylock()`` outside a critical section reads an external LKW)
  and ``rfe-ru`` (a ``spin_is_locked()`` that returns false reads an external UL or IW).
* :func:`cobase` / :func:`cos` -- cos-opt.cat's ``cobase`` and ``generate_cos``: per location,
  every linear order of its writes (``W | LKW``) extending it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from .rel import Rel, bits
from .static import Static


def rfs(st: Static) -> Iterator[list[tuple[int, int]]]:
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


def cobase_of(st: Static, rf: Rel) -> Rel:
    """cos-opt.cat: ``let cobase = obsco | rmwco | co0`` (rmwco is empty: no event is both R and W)."""
    ws, rs, pl = st.W_co, st.R, st.po_loc
    inv = rf.inv()
    ww = pl.restrict(ws, ws)  # po-loc & (W * W)
    rw = rf.seq(pl.restrict(rs, ws))  # rf ; (po-loc & (R * W))
    wr = pl.restrict(ws, rs).seq(inv) - st.id  # ((po-loc & (W * R)) ; invrf) \ id
    rr = rf.seq(pl.restrict(rs, rs), inv) - st.id  # (rf ; (po-loc & (R * R)) ; invrf) \ id
    return ww | rw | wr | rr | st.co0


def cos(st: Static, cobase: Rel) -> Iterator[dict[str, list[int]]]:
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


def chain(ws: list[int]) -> list[tuple[int, int]]:
    return [(ws[i], ws[j]) for i in range(len(ws)) for j in range(i + 1, len(ws))]
