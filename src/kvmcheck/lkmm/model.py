"""The LKMM's axioms on one candidate execution: linux-kernel.cat, line by line.

Given the :class:`~.static.Static` part and a candidate's ``rf`` (every read's
write, lock.cat's LF/RU reads included) and ``co`` (the coherence order lock.cat
generates: over ``W | LKW``, before its UL events are merged in), :func:`check`
computes the rest of lock.cat and linux-kernel.cat and answers which axiom fails
(with the cycle or the edge that breaks it) or, for a consistent execution, its
flags.  Each relation quotes the cat line it implements.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .rel import Rel, ident
from .static import Static

AXIOMS = ("coherence", "atomic", "happens-before", "propagation", "rcu", "plain-coherence")


def with_cycle(out: Outcome) -> Outcome:
    """Fill in the witness cycle of a failed acyclicity axiom (a shortest one), when it is kept."""
    if out.cyclic is not None and not out.witness:
        out.witness = out.cyclic.cycle()
    return out


@dataclass
class Outcome:
    """The model's answer for one candidate execution."""

    failed: str | None  # the first axiom that fails, None when consistent
    witness: list[int] = field(default_factory=list)  # its cycle (or the offending pair)
    flags: set[str] = field(default_factory=set)
    rf: Rel | None = None
    co: Rel | None = None
    rels: dict[str, Rel] = field(default_factory=dict)
    cyclic: Rel | None = None  # for an acyclicity axiom: the relation, its cycle found on demand


def _acyc(name: str, r: Rel, rels: dict[str, Rel]) -> Outcome | None:
    plus = r.plus()
    if plus.irreflexive():
        return None
    return Outcome(name, [], rels=rels, cyclic=r)


def check(st: Static, rf_lock: Rel, co_gen: Rel, observed_locs: set[str]) -> Outcome:
    n, po, po_loc, loc = st.n, st.po, st.po_loc, st.loc
    intl = st.int
    ext = st.ext
    rels: dict[str, Rel] = {}
    # ---- lock.cat, after the co's are generated
    # let co = (co | critical | (critical^-1 ; co))+
    co = (co_gen | st.critical | st.critical.inv().seq(co_gen)).plus()
    # let rf = rf | ([IW | UL] ; singlestep(co) ; lk-rmw^-1)     (singlestep(r) = r \ (r ; r))
    single = co - co.seq(co)
    rf = rf_lock | single.restrict(st.IW | st.UL, st.all).seq(st.lk_rmw.inv())
    rfe, rfi = rf & ext, rf & intl
    coe = co & ext
    # let fr = rf^-1 ; co
    fr = rf.inv().seq(co)
    fre = fr & ext
    rels.update(rf=rf, co=co, fr=fr)

    # let com = rf | co | fr ; acyclic po-loc | com as coherence
    out = _acyc("coherence", po_loc | rf | co | fr, rels)
    if out:
        return out
    # empty rmw & (fre ; coe) as atomic
    bad = st.rmw & fre.seq(coe)
    if not bad.is_empty():
        a, b = bad.pairs()[0]
        return Outcome("atomic", [a, b], rels=rels)

    # ---- linux-kernel.bell: dependencies carried through plain accesses
    # let carry-dep = (data ; rfi)* ; addr = carry-dep ; addr ; ctrl = ... ; data = ...
    carry = st.data0.seq(rf_lock & intl).star()
    addr, ctrl, data = carry.seq(st.addr0), carry.seq(st.ctrl0), carry.seq(st.data0)

    # ---- linux-kernel.cat
    mem, wr, marked = st.M, st.W, st.Marked
    mkd = ident(n, marked)
    # let po-unlock-lock-po = po ; [UL] ; (po|rf) ; [LKR] ; po
    pullp = po.seq(ident(n, st.UL), (po | rf).restrict(st.UL, st.LKR), po)
    # mb, last term: ([M] ; po ; [UL] ; (co | po) ; [LKW] ; fencerel(After-unlock-lock) ; [M])
    mb = st.mb_static | po.seq(
        (co | po).restrict(st.UL, st.LKW), st.fencerel(st.fence["after-unlock-lock"])
    ).restrict(mem, mem)
    # let strong-fence = mb | gp ; nonrw-fence = strong-fence | po-rel | acq-po ; fence = ...
    strong_fence = mb | st.gp
    nonrw_fence = strong_fence | st.po_rel | st.acq_po
    fence = nonrw_fence | st.wmb | st.rmb

    # let dep = addr | data ; rwdep = (dep | ctrl) ; [W] ; overwrite = co | fr
    dep = addr | data
    rwdep = (dep | ctrl).restrict(st.all, wr)
    overwrite = co | fr
    # let to-w = rwdep | (overwrite & int) | (addr ; [Plain] ; wmb)
    to_w = rwdep | (overwrite & intl) | addr.seq(ident(n, st.Plain), st.wmb)
    # let to-r = addr | (dep ; [Marked] ; rfi)
    to_r = addr | dep.seq(mkd, rfi)
    # let ppo = to-r | to-w | fence | (po-unlock-lock-po & int)
    ppo = to_r | to_w | fence | (pullp & intl)
    # let A-cumul(r) = (rfe ; [Marked])? ; r
    # let cumul-fence = [Marked] ; (A-cumul(strong-fence | po-rel) | wmb | po-unlock-lock-po) ; [Marked]
    sfpr = strong_fence | st.po_rel
    cumul_fence = (rfe.seq(mkd, sfpr) | sfpr | st.wmb | pullp).restrict(marked, marked)
    # let prop = [Marked] ; (overwrite & ext)? ; cumul-fence* ; [Marked] ; rfe? ; [Marked]
    prop = (overwrite & ext).opt().seq(cumul_fence.star(), mkd, rfe.opt()).restrict(marked, marked)
    # let hb = [Marked] ; (ppo | rfe | ((prop \ id) & int)) ; [Marked]
    hb = (ppo | rfe | ((prop - st.id) & intl)).restrict(marked, marked)
    rels.update(ppo=ppo, hb=hb, prop=prop, rfe=rfe)
    rels.update({"overwrite-ext": overwrite & ext, "cumul-fence": cumul_fence, "strong-fence": strong_fence})
    out = _acyc("happens-before", hb, rels)
    if out:
        return out
    # let pb = prop ; strong-fence ; hb* ; [Marked]
    hb_star = hb.star()
    pb = prop.seq(strong_fence, hb_star).restrict(st.all, marked)
    rels["pb"] = pb
    out = _acyc("propagation", pb, rels)
    if out:
        return out

    # ---- RCU
    # let rcu-link = po? ; hb* ; pb* ; prop ; po
    pb_star = pb.star()
    link = po.opt().seq(hb_star, pb_star, prop, po)
    rcu_fence = _rcu_fence(st, link)
    # let fence = fence | rcu-fence ; let strong-fence = strong-fence | rcu-fence
    fence2 = fence | rcu_fence
    strong2 = strong_fence | rcu_fence
    # let rb = prop ; rcu-fence ; hb* ; pb* ; [Marked] ; irreflexive rb as rcu
    rb = prop.seq(rcu_fence, hb_star, pb_star).restrict(st.all, marked)
    rels.update(
        {"rb": rb, "rcu-fence": rcu_fence, "po": po, "rcu-rscs": st.rcu_rscs, "srcu-rscs": st.srcu_rscs}
    )
    if not rb.irreflexive():
        i = rb.reflexive_points()[0]
        return Outcome("rcu", [i], rels=rels)

    # ---- plain accesses and data races
    # let xbstar = (hb | pb | rb)*
    xbstar = (hb | pb | rb).star()
    # let vis = cumul-fence* ; rfe? ; [Marked] ; ((strong-fence ; [Marked] ; xbstar) | (xbstar & int))
    vis = cumul_fence.star().seq(rfe.opt(), mkd, strong2.seq(mkd, xbstar) | (xbstar & intl))
    # let w-pre-bounded = [Marked] ; (addr | fence)?
    w_pre = (addr | fence2).opt().restrict(marked, st.all)
    # let r-pre-bounded = [Marked] ; (addr | nonrw-fence | ([R4rmb] ; fencerel(Rmb) ; [~Noreturn]))?
    rmbf = st.fencerel(st.fence["rmb"])
    r_pre = (
        (addr | nonrw_fence | rmbf.restrict(st.R4rmb, st.all & ~st.Noreturn)).opt().restrict(marked, st.all)
    )
    # let w-post-bounded = fence? ; [Marked]
    w_post = fence2.opt().restrict(st.all, marked)
    # let r-post-bounded = (nonrw-fence | ([~Noreturn] ; fencerel(Rmb) ; [R4rmb]))? ; [Marked]
    r_post = (nonrw_fence | rmbf.restrict(st.all & ~st.Noreturn, st.R4rmb)).opt().restrict(st.all, marked)
    # let ww-vis = fence | (strong-fence ; xbstar ; w-pre-bounded) | (w-post-bounded ; vis ; w-pre-bounded)
    sx = strong2.seq(xbstar)
    ww_vis = fence2 | sx.seq(w_pre) | w_post.seq(vis, w_pre)
    # let wr-vis = fence | (strong-fence ; xbstar ; r-pre-bounded) | (w-post-bounded ; vis ; r-pre-bounded)
    wr_vis = fence2 | sx.seq(r_pre) | w_post.seq(vis, r_pre)
    # let rw-xbstar = fence | (r-post-bounded ; xbstar ; w-pre-bounded)
    rw_xbstar = fence2 | r_post.seq(xbstar, w_pre)
    # let pre-race = ext & ((Plain * M) | ((M \ IW) * Plain))
    pre_race = ext & (st.cross(st.Plain, mem) | st.cross(mem & ~st.IW, st.Plain))
    # let wr-incoh = pre-race & rf & rw-xbstar^-1 ; rw-incoh = pre-race & fr & wr-vis^-1 ;
    # let ww-incoh = pre-race & co & ww-vis^-1 ; empty (wr-incoh | rw-incoh | ww-incoh) as plain-coherence
    incoh = (
        (pre_race & rf & rw_xbstar.inv()) | (pre_race & fr & wr_vis.inv()) | (pre_race & co & ww_vis.inv())
    )
    if not incoh.is_empty():
        a, b = incoh.pairs()[0]
        return Outcome("plain-coherence", [a, b], rels=rels)

    flags = st.static_flags()
    # let ww-nonrace = ww-vis & ((Marked * W) | rw-xbstar) & ((W * Marked) | wr-vis)
    ww_nonrace = ww_vis & (st.cross(marked, wr) | rw_xbstar) & (st.cross(wr, marked) | wr_vis)
    # let ww-race = (pre-race & co) \ ww-nonrace
    ww_race = (pre_race & co) - ww_nonrace
    # let wr-race = (pre-race & (co? ; rf)) \ wr-vis \ rw-xbstar^-1
    wr_race = (pre_race & co.opt().seq(rf)) - wr_vis - rw_xbstar.inv()
    # let rw-race = (pre-race & fr) \ rw-xbstar
    rw_race = (pre_race & fr) - rw_xbstar
    races = ww_race | wr_race | rw_race
    if not races.is_empty():
        flags.add("data-race")
        rels["data-race"] = races
    # flag ~empty [FW] ; loc ; [ALL-LOCKS] as lock-final  (FW: the final writes the test observes)
    last = co.domain()
    fw = 0
    for i in st.members(st.W):
        if st.events[i].loc in observed_locs and not (last >> i & 1):
            fw |= 1 << i
    if not loc.restrict(fw, st.ALL_LOCKS).is_empty():
        flags.add("lock-final")
    return Outcome(None, [], flags, rf, co, rels)


def _rcu_fence(st: Static, link: Rel) -> Rel:
    """linux-kernel.cat's ``let rec rcu-order = ...`` (least fixpoint), then
    ``let rcu-fence = po ; rcu-order ; po?``."""
    n = st.n
    gp = ident(n, st.fence["sync-rcu"])  # let rcu-gp = [Sync-rcu]
    sgp = ident(n, st.Sync_srcu)  # let srcu-gp = [Sync-srcu]
    rscsi = st.rcu_rscs.inv()  # let rcu-rscsi = rcu-rscs^-1
    srscsi = st.srcu_rscs.inv()  # let srcu-rscsi = srcu-rscs^-1
    if st.fence["sync-rcu"] == 0 and st.Sync_srcu == 0:
        return Rel(n)
    loc = st.loc
    order = gp | sgp
    while True:
        lo = link.seq(order, link)
        new = (
            gp
            | sgp
            | gp.seq(link, rscsi)  # (rcu-gp ; rcu-link ; rcu-rscsi)
            | (sgp.seq(link, srscsi) & loc)  # ((srcu-gp ; rcu-link ; srcu-rscsi) & loc)
            | rscsi.seq(link, gp)  # (rcu-rscsi ; rcu-link ; rcu-gp)
            | (srscsi.seq(link, sgp) & loc)  # ((srcu-rscsi ; rcu-link ; srcu-gp) & loc)
            | gp.seq(lo, rscsi)  # (rcu-gp ; rcu-link ; rcu-order ; rcu-link ; rcu-rscsi)
            | (sgp.seq(lo, srscsi) & loc)  # ((srcu-gp ; rcu-link ; rcu-order ; rcu-link ; srcu-rscsi) & loc)
            | rscsi.seq(lo, gp)  # (rcu-rscsi ; rcu-link ; rcu-order ; rcu-link ; rcu-gp)
            | (srscsi.seq(lo, sgp) & loc)  # ((srcu-rscsi ; rcu-link ; rcu-order ; rcu-link ; srcu-gp) & loc)
            | order.seq(link, order)  # (rcu-order ; rcu-link ; rcu-order)
        )
        if new.rows == order.rows:
            break
        order = new
    return st.po.seq(order, st.po.opt())
