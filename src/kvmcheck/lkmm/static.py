"""What the LKMM computes from the events alone, before any rf or co is chosen.

One :class:`Static` per combination of thread paths: herd7's built-in sets and
relations (``po``, ``loc``, ``int``, ``addr``/``data``/``ctrl``, ``rmw``,
``fencerel``), the event sets of linux-kernel.bell, and the rf/co-independent
lines of lock.cat and linux-kernel.cat.  Comments quote the line implemented.
"""

from __future__ import annotations

from .events import Event
from .rel import Rel, bits, cross, ident


class Static:
    def __init__(self, events: list[Event]) -> None:
        self.events = events
        n = self.n = len(events)
        self.thread_start: dict[int, int] = {}
        for i, e in enumerate(events):
            self.thread_start.setdefault(e.thread, i)

        def mask(pred: object) -> int:
            m = 0
            for i, e in enumerate(events):
                if pred(e):  # type: ignore[operator]
                    m |= 1 << i
            return m

        def tag(k: str, t: str) -> int:
            return mask(lambda e: e.kind == k and t in e.tags)

        self.all = (1 << n) - 1
        # herd's built-in event sets
        self.IW = mask(lambda e: e.is_init)
        self.R0 = mask(lambda e: e.kind == "R")
        self.W0 = mask(lambda e: e.kind == "W")
        self.M0 = self.R0 | self.W0
        self.LKR = mask(lambda e: e.kind == "LKR")
        self.LKW = mask(lambda e: e.kind == "LKW")
        self.UL = mask(lambda e: e.kind == "UL")
        self.LF0 = mask(lambda e: e.kind == "LF")
        self.RL = mask(lambda e: e.kind == "RL")
        self.RU = mask(lambda e: e.kind == "RU")
        self.RMW = mask(lambda e: e.atomic)
        self.Once = mask(lambda e: "once" in e.tags)
        self.Acquire0 = mask(lambda e: "acquire" in e.tags)
        self.Release0 = mask(lambda e: "release" in e.tags)
        self.Noreturn = mask(lambda e: "noreturn" in e.tags)
        fence = {
            k: tag("F", k)
            for k in [
                "mb",
                "rmb",
                "wmb",
                "barrier",
                "rcu-lock",
                "rcu-unlock",
                "sync-rcu",
                "before-atomic",
                "after-atomic",
                "after-spinlock",
                "after-unlock-lock",
                "after-srcu-read-unlock",
            ]
        }
        self.fence = fence
        self.Srcu_lock = tag("SRCU", "srcu-lock")
        self.Srcu_unlock = tag("SRCU", "srcu-unlock")
        self.Sync_srcu = tag("SRCU", "sync-srcu")

        # herd's built-in relations
        po = Rel(n)
        same_loc = Rel(n)
        same_thread = Rel(n)
        for i, a in enumerate(events):
            for j, b in enumerate(events):
                if a.thread == b.thread:
                    same_thread.rows[i] |= 1 << j
                    if j > i and not a.is_init:
                        po.rows[i] |= 1 << j
                if a.loc is not None and a.loc == b.loc:
                    same_loc.rows[i] |= 1 << j
        self.po, self.loc, self.int = po, same_loc, same_thread
        self.ext = Rel(n, [self.all & ~row for row in same_thread.rows])
        self.po_loc = po & same_loc
        self.id = ident(n, self.all)
        self.addr0, self.data0, self.ctrl0 = Rel(n), Rel(n), Rel(n)
        self.rmw0 = Rel(n)
        for j, e in enumerate(events):
            base = self.thread_start.get(e.thread, 0)
            for dep, rel in ((e.addr, self.addr0), (e.data, self.data0), (e.ctrl, self.ctrl0)):
                for k in dep:
                    rel.rows[base + k] |= 1 << j
            if e.rmw_read is not None:
                self.rmw0.rows[base + e.rmw_read] |= 1 << j

        # ---- linux-kernel.bell (the companion of this linux-kernel.cat; see the package docstring)
        # let Marked = (~M) | IW | Once | Release | Acquire | domain(rmw) | range(rmw) |
        #              LKR | LKW | UL | LF | RL | RU
        self.Marked = (
            (self.all & ~self.M0)
            | self.IW
            | self.Once
            | self.Release0
            | self.Acquire0
            | self.rmw0.domain()
            | self.rmw0.range()
            | self.LKR
            | self.LKW
            | self.UL
            | self.LF0
            | self.RL
            | self.RU
        )
        # let Plain = M \ Marked
        self.Plain = self.M0 & ~self.Marked
        self.rcu_rscs = self._rcu_rscs()
        self.srcu_rscs = self._srcu_rscs()

        # ---- lock.cat, the rf/co-independent part
        # let LF = LF | RL
        self.LF = self.LF0 | self.RL
        # let ALL-LOCKS = LKR | LKW | UL | LF | RU
        self.ALL_LOCKS = self.LKR | self.LKW | self.UL | self.LF | self.RU
        # let lk-rmw = ([LKR] ; po-loc ; [LKW]) \ (po ; po)
        self.lk_rmw = self.po_loc.restrict(self.LKR, self.LKW) - po.seq(po)
        # let rmw = rmw | lk-rmw
        self.rmw = self.rmw0 | self.lk_rmw
        # let R = R | LKR | LF | RU ;  let W = W | LKW  (UL joins W after co is generated)
        self.R = self.R0 | self.LKR | self.LF | self.RU
        self.W_co = self.W0 | self.LKW
        self.W = self.W_co | self.UL
        self.M = self.R | self.W
        # let Release = Release | UL ;  let Acquire = Acquire | LKR
        self.Release = self.Release0 | self.UL
        self.Acquire = self.Acquire0 | self.LKR
        # let critical = ([LKW] ; po-loc ; [UL]) \ (po-loc ; [LKW | UL] ; po-loc)
        self.critical = self.po_loc.restrict(self.LKW, self.UL) - self.po_loc.seq(
            ident(n, self.LKW | self.UL), self.po_loc
        )
        # let UNMATCHED-LKW = LKW \ domain(critical)
        self.UNMATCHED_LKW = self.LKW & ~self.critical.domain()
        # let rfi-lf = ([LKW] ; po-loc ; [LF]) \ ([LKW] ; po-loc ; [UL] ; po-loc)
        self.rfi_lf = self.po_loc.restrict(self.LKW, self.LF) - self.po_loc.restrict(self.LKW, self.UL).seq(
            self.po_loc
        )
        # let rfi-ru = ([UL] ; po-loc ; [RU]) \ ([UL] ; po-loc ; [LKW] ; po-loc)
        self.rfi_ru = self.po_loc.restrict(self.UL, self.RU) - self.po_loc.restrict(self.UL, self.LKW).seq(
            self.po_loc
        )
        # co0 | ([IW] ; loc ; [LKW]) | (([LKW] ; loc ; [UNMATCHED-LKW]) \ [UNMATCHED-LKW])
        self.co0 = (
            same_loc.restrict(self.IW, self.W0 & ~self.IW)
            | same_loc.restrict(self.IW, self.LKW)
            | (same_loc.restrict(self.LKW, self.UNMATCHED_LKW) - ident(n, self.UNMATCHED_LKW))
        )

        # ---- linux-kernel.cat, the rf/co-independent part
        mem = self.M
        # let acq-po = [Acquire] ; po ; [M] ;  let po-rel = [M] ; po ; [Release]
        self.acq_po = po.restrict(self.Acquire, mem)
        self.po_rel = po.restrict(mem, self.Release)
        # let R4rmb = R \ Noreturn
        self.R4rmb = self.R & ~self.Noreturn
        # let rmb = [R4rmb] ; fencerel(Rmb) ; [R4rmb] ;  let wmb = [W] ; fencerel(Wmb) ; [W]
        self.rmb = self.fencerel(fence["rmb"]).restrict(self.R4rmb, self.R4rmb)
        self.wmb = self.fencerel(fence["wmb"]).restrict(self.W, self.W)
        po_opt = po.opt()
        # the terms of mb that need no co
        self.mb_static = (
            self.fencerel(fence["mb"]).restrict(mem, mem)  # ([M] ; fencerel(Mb) ; [M])
            # ([M] ; fencerel(Before-atomic) ; [RMW] ; po? ; [M])
            | self.fencerel(fence["before-atomic"]).seq(ident(n, self.RMW), po_opt).restrict(mem, mem)
            # ([M] ; po? ; [RMW] ; fencerel(After-atomic) ; [M])
            | po_opt.seq(ident(n, self.RMW), self.fencerel(fence["after-atomic"])).restrict(mem, mem)
            # ([M] ; po? ; [LKW] ; fencerel(After-spinlock) ; [M])
            | po_opt.seq(ident(n, self.LKW), self.fencerel(fence["after-spinlock"])).restrict(mem, mem)
        )
        # let gp = po ; [Sync-rcu | Sync-srcu] ; po?
        self.gp = po.seq(ident(n, fence["sync-rcu"] | self.Sync_srcu), po_opt)
        # let barrier = fencerel(Barrier | Rmb | Wmb | Mb | Sync-rcu | Sync-srcu | Before-atomic |
        #     After-atomic | Acquire | Release | Rcu-lock | Rcu-unlock | Srcu-lock | Srcu-unlock) |
        #     (po ; [Release]) | ([Acquire] ; po)
        bar = (
            fence["barrier"]
            | fence["rmb"]
            | fence["wmb"]
            | fence["mb"]
            | fence["sync-rcu"]
            | self.Sync_srcu
            | fence["before-atomic"]
            | fence["after-atomic"]
            | self.Acquire
            | self.Release
            | fence["rcu-lock"]
            | fence["rcu-unlock"]
            | self.Srcu_lock
            | self.Srcu_unlock
        )
        self.barrier = (
            self.fencerel(bar) | po.restrict(self.all, self.Release) | po.restrict(self.Acquire, self.all)
        )
        # let mixed-accesses = ([Plain & W] ; (po-loc \ barrier) ; [Marked]) |
        #                      ([Marked] ; (po-loc \ barrier) ; [Plain & W])
        plb = self.po_loc - self.barrier
        self.mixed_accesses = plb.restrict(self.Plain & self.W, self.Marked) | plb.restrict(
            self.Marked, self.Plain & self.W
        )

    def fencerel(self, s: int) -> Rel:
        """herd's ``fencerel(S)`` = ``po ; [S] ; po``."""
        return self.po.restrict(self.all, s).seq(self.po)

    def _rcu_rscs(self) -> Rel:
        """linux-kernel.bell: ``let rcu-rscs = let rec unmatched-locks = Rcu-lock \\ domain(matched)
        and unmatched-unlocks = Rcu-unlock \\ range(matched) and unmatched = ... and matched =
        matched | (unmatched-locks-to-unlocks \\ (unmatched-po ; unmatched-po)) in matched``."""
        n, po = self.n, self.po
        lock, unlock = self.fence["rcu-lock"], self.fence["rcu-unlock"]
        matched = Rel(n)
        while True:
            ul = lock & ~matched.domain()
            uu = unlock & ~matched.range()
            um = ul | uu
            um_po = po.restrict(um, um)
            l2u = po.restrict(ul, uu)
            new = matched | (l2u - um_po.seq(um_po))
            if new.rows == matched.rows:
                return matched
            matched = new

    def _srcu_rscs(self) -> Rel:
        """linux-kernel.bell: ``let srcu-rscs = srcu-unmatched-locks-to-unlock \\
        (srcu-unmatched-po ; srcu-unmatched-po)`` (nesting on one srcu_struct is not matched)."""
        um = self.Srcu_lock | self.Srcu_unlock
        um_po = self.po.restrict(um, um) & self.loc
        l2u = self.po.restrict(self.Srcu_lock, self.Srcu_unlock) & self.loc
        return l2u - um_po.seq(um_po)

    def static_flags(self) -> set[str]:
        """The flags of the bell and lock.cat that need no rf or co."""
        flags: set[str] = set()
        if (
            self.fence["rcu-lock"] & ~self.rcu_rscs.domain()
            or self.fence["rcu-unlock"] & ~self.rcu_rscs.range()
        ):
            flags.add("unbalanced-rcu-locking")
        if self.Srcu_lock & ~self.srcu_rscs.domain() or self.Srcu_unlock & ~self.srcu_rscs.range():
            flags.add("unbalanced-srcu-locking")
        # flag ~empty rcu-rscs & (po ; [Sync-srcu] ; po) as invalid-sleep
        if not (self.rcu_rscs & self.fencerel(self.Sync_srcu)).is_empty():
            flags.add("invalid-sleep")
        # flag ~empty different-values(srcu-rscs) as srcu-bad-nesting
        if any(self.events[a].value != self.events[b].value for a, b in self.srcu_rscs.pairs()):
            flags.add("srcu-bad-nesting")
        # flag ~empty [M \ IW] ; loc ; [ALL-LOCKS] as mixed-lock-accesses
        if not self.loc.restrict(self.M0 & ~self.IW, self.ALL_LOCKS).is_empty():
            flags.add("mixed-lock-accesses")
        # flag ~empty LKW \ range(lk-rmw) as unpaired-LKW ; LKR \ domain(lk-rmw) as unpaired-LKR
        if self.LKW & ~self.lk_rmw.range():
            flags.add("unpaired-LKW")
        if self.LKR & ~self.lk_rmw.domain():
            flags.add("unpaired-LKR")
        # flag ~empty UL \ range(critical) as unmatched-unlock
        if self.UL & ~self.critical.range():
            flags.add("unmatched-unlock")
        # flag ~empty mixed-accesses as mixed-accesses
        if not self.mixed_accesses.is_empty():
            flags.add("mixed-accesses")
        return flags

    def static_failure(self) -> str | None:
        """The checks of lock.cat that need no rf or co (the execution is then never consistent)."""
        # empty ([LKW] ; po-loc ; [LKR]) \ (po-loc ; [UL] ; po-loc) as lock-nest
        nest = self.po_loc.restrict(self.LKW, self.LKR) - self.po_loc.seq(ident(self.n, self.UL), self.po_loc)
        if not nest.is_empty():
            return "lock-nest"
        # empty ([UNMATCHED-LKW] ; loc ; [UNMATCHED-LKW]) \ id as unmatched-locks
        if not (self.loc.restrict(self.UNMATCHED_LKW, self.UNMATCHED_LKW) - self.id).is_empty():
            return "unmatched-locks"
        return None

    def cross(self, a: int, b: int) -> Rel:
        return cross(self.n, a, b)

    def members(self, m: int) -> list[int]:
        return list(bits(m))
