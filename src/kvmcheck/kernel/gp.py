"""Grace periods: the machinery RCU and every SRCU domain share.

The grace-period guarantee (Documentation/RCU/Design/Requirements): a grace
period waits for exactly the readers that were inside a read-side critical
section when it began.  One :class:`GpDomain` per flavour holds the readers
(the RCU domain of an execution is made at its first use and kept in
``ex.k.rcu``; each ``Srcu`` is a domain of its own):

* the outermost ``rcu_read_lock``/``rcu_read_unlock`` is one *shared*
  visible step on the domain (two readers never order each other);
* ``synchronize_rcu`` is a *gp start* step (exclusive) that snapshots which
  reader sections are open, then a blocking *gp wait* step (exclusive),
  enabled once every snapshotted section has closed.  Sections are named by
  a per-thread position (``2*k+1`` while inside the k-th section, ``2*k``
  after it), so the domain's state -- the tuple of positions, which the
  search records before every step -- says whether a given wait would have
  been enabled: a reader that did not belong to the snapshot never makes a
  race with the wait look irreversible.  With no reader in the snapshot the
  wait step is left out (it would do nothing).

Happens-before (the clocks KCSAN uses): the end of a grace period joins
the clocks of the snapshotted readers' unlocks and of every section that
had ended before it began ("if any part of a reader precedes the beginning
of a grace period, all of it precedes its end"), and a reader section that
begins after a grace period began joins the updater's clock at that start
("if any part of a reader follows the end of a grace period, all of it
follows its beginning" -- the model cannot know yet whether the section will
outlast the grace period, so it grants the ordering to every section that
begins after the start; a section that begins before the start is in the
snapshot and gets nothing, which is where the races are).

A grace period can end as soon as its readers are gone, or at any later
step (the scheduler decides when the waiting thread runs), which covers
every duration a real grace period can have.

"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvmcheck._engine import runtime
from kvmcheck._engine.clock import Clock, vc_join, vc_tick
from kvmcheck._engine.execution import Thread
from kvmcheck._engine.finding import UsageError
from kvmcheck._engine.ops import Op
from kvmcheck.kernel._core import Primitive, current_thread, kthread

__all__ = ["GpDomain"]


class _Gp:
    """One grace period: the reader sections (thread, position) it must wait for, and the
    clocks of the sections that had already ended when it began (they precede its end too)."""

    __slots__ = ("ended", "readers")

    def __init__(self, readers: tuple[tuple[int, int], ...], ended: Clock) -> None:
        self.readers = readers
        self.ended = ended

    def __repr__(self) -> str:
        return f"<gp waiting for {self.readers}>"


class GpDomain(Primitive):
    """The readers and grace periods of one RCU flavour (RCU itself, or one srcu_struct)."""

    kind = "rcu"

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name)
        self.pos: list[int] = []  # per thread: 2*k+1 inside its k-th section, 2*k after it
        self.ends: dict[tuple[int, int], Clock] = {}  # (thread, position) -> clock at that unlock
        self.ended: Clock = []  # join of the clocks at every unlock so far
        self.gp_clock: Clock = []  # join of the updaters' clocks at every grace-period start
        self.callbacks: list[Thread] = []
        self.flips = 0  # grace periods started (an SRCU reader's idx is flips & 1)

    # -- the engine's Blocker protocol -------------------------------------------------
    def _kc_state(self) -> tuple[int, ...]:
        return tuple(self.pos)

    def _kc_enabled(self, op: Op, tid: int, state: Any) -> bool:
        gp = op.arg
        if not isinstance(gp, _Gp):
            return True
        pos = self.pos if state is None else state
        n = len(pos)
        return all(not (t < n and pos[t] == p) for t, p in gp.readers)

    def _kc_holders(self) -> list[int]:
        return [t for t, p in enumerate(self.pos) if p & 1]

    # -- steps: each announces one visible operation, then has its effect ---------------
    def step(self, excl: bool, label: str, arg: Any = None) -> Thread:
        t = super().step(excl, label, arg)
        if t is None:
            raise UsageError(f"{label} outside a running check (call it from a scenario)")
        return t

    def inside(self, tid: int) -> bool:
        return tid < len(self.pos) and bool(self.pos[tid] & 1)

    def enter(self, label: str) -> None:
        t = self.step(False, label, "enter")
        pos = self.pos
        if t.tid >= len(pos):
            pos.extend([0] * (t.tid + 1 - len(pos)))
        pos[t.tid] += 1
        t.vc = vc_join(t.vc, self.gp_clock)

    def exit(self, label: str) -> None:
        t = self.step(False, label, "exit")
        p = self.pos[t.tid]
        self.ends[(t.tid, p)] = t.vc[:]
        self.ended = vc_join(self.ended, t.vc)
        self.pos[t.tid] = p + 1
        vc_tick(t.vc, t.tid)

    def gp_start(self, label: str, exclude_self: bool) -> _Gp:
        t = self.step(True, label, "gp")
        me = t.tid if exclude_self else -1
        readers = tuple((i, p) for i, p in enumerate(self.pos) if p & 1 and i != me)
        self.gp_clock = vc_join(self.gp_clock, t.vc)
        vc_tick(t.vc, t.tid)
        self.flips += 1
        return _Gp(readers, self.ended)

    def gp_wait(self, gp: _Gp, label: str) -> None:
        """The end of ``gp``: after every section it waited for, and every one that ended before it."""
        if gp.readers:
            t = self.step(True, label, gp)
            for r in gp.readers:
                t.vc = vc_join(t.vc, self.ends[r])
        else:
            t = current_thread()
        t.vc = vc_join(t.vc, gp.ended)

    def queue_callback(self, gp: _Gp, head: Any, func: Callable[[Any], Any], name: str) -> Thread:
        """Spawn the thread that runs ``func(head)`` once ``gp`` has ended."""
        ex = runtime.current
        assert ex is not None
        domain = self

        def callback() -> None:
            domain.gp_wait(gp, f"{name}: grace period of {domain.name} ends")
            kt = kthread()
            kt.bh_off += 1  # callbacks are invoked with softirqs disabled
            try:
                func(head)
            finally:
                kt.bh_off -= 1

        callback.__name__ = name
        th = ex.spawn(callback, (), name)
        self.callbacks.append(th)
        return th

    def barrier(self) -> None:
        ex = runtime.current
        assert ex is not None
        for th in list(self.callbacks):
            ex.join(th)
