"""LKMM exploration: a model's run as an execution graph checked by the Linux-kernel memory model.

Selected per scenario (``@scenario(memory_model="lkmm")``) or per run (``check(...,
memory_model="lkmm")``, ``kvmcheck check --memory-model lkmm``).  Under SC (the
default) nothing here runs: no graph, no hook, the engine and kernel layer take
exactly their old paths.

The design follows execution-graph model checking -- GenMC / HMC (Kokologiannakis,
Raad, Vafeiadis: "Model checking for weakly consistent libraries", PLDI 2019;
Kokologiannakis & Vafeiadis: "HMC: Model checking for hardware memory models",
ASPLOS 2020, which covers the LKMM): the run builds a graph of events (po per
thread, ``rf`` and ``co`` per location), each read chooses which write it reads
from, and a graph the memory model forbids is never extended.  What is kept from
GenMC is the graph and the consistency check (the LKMM's axioms, computed by
:mod:`kvmcheck.lkmm.model` -- linux-kernel.cat and lock.cat translated line by
line); what is NOT kept is GenMC's revisiting of reads by po-later writes: here
the graph grows in the interleaving order the engine's DPOR explores, so

* a **write** is appended co-last on its location (``co`` = the order in which
  the interleaving performs the writes; every order of two writes is an
  interleaving DPOR explores);
* a **marked read** (``READ_ONCE``, ``smp_load_acquire``, ``rcu_dereference*``,
  ``srcu_dereference``, an RCU-list traversal) may read from any same-location
  write *already in the graph* that keeps the graph LKMM-consistent: a ``nondet``
  choice the DPOR explores (choice 0 is the co-last write, i.e. the SC behaviour);
* a **plain read**, ``data_race()``, ``rcu_dereference_protected()`` and the read
  of an **RMW** read the co-last write (a plain read of a stale value is a data
  race the LKMM gives no semantics to; the bundled seed models sample
  ``mmu_invalidate_seq`` with ``data_race()`` and keep the C's ``smp_rmb()`` as a
  comment, so letting those read stale values would invent outcomes the kernel's
  barrier forbids; an RMW must read co-last for the LKMM's ``atomic`` axiom);
* a **plain write** is a release and a **plain read** (also ``data_race()`` and
  ``rcu_dereference_protected()``) an acquire.  The LKMM gives racing plain
  accesses no meaning at all (a data race), and models use them where the C has
  ordering the model does not spell out: a harness reading "is the gfn tracked
  yet?" and then the SPTE, a flag set after a TLB flush.  Without this, page_track's
  fast_path [v6.1] (ok under SC) reported a stale SPTE read after the harness saw
  the tracking flag -- an outcome of the model's shortcut, not of the kernel.
  Stronger than the LKMM: outcomes may be missed, none invented;
* **fences** (``smp_mb``, ``smp_rmb``, ``smp_wmb``, ``smp_mb__before_atomic``,
  ``smp_mb__after_atomic``) are ``F`` events;
* every **other synchronisation** (locks, atomic_t/refcount_t, RCU, completions,
  spawn, join, kfree, ...) is an ``F[mb]; R; W; F[mb]`` RMW on a location of its
  own object that reads the co-last write there -- a fully ordered,
  fully synchronising operation, *stronger* than most of these are in the kernel.

Why a read's choice is checked once, when it is made: an event appended at the
end of its thread that nobody reads yet (a write, a fence, a read of the co-last
write) has no outgoing edge in any LKMM relation, so it cannot close a cycle;
only a read of an older write can, and that is the moment it is checked.  Reading
the co-last write is always consistent, so a run never has to be discarded.

Covered, and tested against the brute-force oracle (tests/kernel/test_lkmm_engine.py):
the executions whose graph is LKMM-consistent *and* has ``po | rf | co`` acyclic
(every read reads a write performed before it in some interleaving, and co is
such an interleaving's order of writes) -- for programs of marked accesses and
fences, which is what that test runs; with plain accesses, locks or atomics the
strengthenings below make it a subset.  Not covered (missed, never reported):

* outcomes that need a read from a po-later or not-yet-performed write
  (load buffering, LB) or a coherence order against every interleaving (2+2W);
  they need GenMC's revisits;
* anything the stronger synchronisation above forbids: a lock, an atomic_t or an
  RCU call is a full barrier here (e.g. store buffering across ``spin_lock``);
* plain reads never read stale values; ``atomic_t``/``refcount_t`` operations are
  never relaxed (``smp_mb__before/after_atomic`` around them change nothing).

Dependencies, which the LKMM uses to order accesses: a Python model has no
registers, so ``ctrl``/``data`` are over-approximated -- every write depends on
every earlier read of its thread (stronger than the code: outcomes may be missed,
none invented) -- and ``addr`` is reconstructed by identity: an access to a field
of object ``o`` depends on each earlier read of that thread that returned ``o``
itself (``p = READ_ONCE(gp); READ_ONCE(p->x)``).  An address computed from an
integer read (an array index) is not seen; such a model would need the ordering
by a barrier to be found consistent with the kernel.

The kernel layer's checks run unchanged on these executions (KASAN, lockdep, RCU,
refcount, WARN/BUG); KCSAN keeps its own happens-before from the interleaving,
so it may miss a race a stale marked read would expose, never invents one.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from kvmcheck._engine import runtime, weak
from kvmcheck._engine.ops import FIELD_SLOTS, WHOLE, Op
from kvmcheck.lkmm.events import Event
from kvmcheck.lkmm.model import check
from kvmcheck.lkmm.rel import Rel
from kvmcheck.lkmm.static import Static

if TYPE_CHECKING:
    from kvmcheck._engine.execution import Execution, Thread

__all__ = ["fence"]

_ACQUIRE = ("smp_load_acquire", "atomic_read_acquire")
_RELEASE = ("smp_store_release", "rcu_assign_pointer", "atomic_set_release")
_LATEST = ("data_race", "rcu_dereference_protected")  # marked for KCSAN, but never read stale here
NOTHING = object()


@dataclass
class _Ev:
    """One event of the graph, before it is laid out for the LKMM's check."""

    kind: str  # R W F
    loc: str | None
    tags: frozenset[str]
    thread: int
    atomic: bool = False
    rmw_read: int | None = None  # thread-local index of the R of an RMW's W
    addr: frozenset[int] = frozenset()
    ctrl: frozenset[int] = frozenset()
    label: str = ""


@dataclass
class Graph:
    """The execution graph of one run (per-execution kernel state ``ex.k.weak``)."""

    threads: dict[int, list[int]] = field(default_factory=dict)  # tid -> event ids in po
    events: list[_Ev] = field(default_factory=list)
    rf: dict[int, int] = field(default_factory=dict)  # read id -> write id
    co: dict[str, list[int]] = field(default_factory=dict)  # loc -> write ids, co order
    values: dict[int, Any] = field(default_factory=dict)  # write id -> value
    refs: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # tid -> (local R idx, id(obj read))
    started: set[int] = field(default_factory=set)
    # Views (a pruning, never a verdict): per thread, per location, the co index below which
    # the LKMM forbids it to read -- learned from its own accesses (coherence) and joined
    # from a release-like write when an acquire-like read reads it (see _learn).
    view: dict[int, dict[str, int]] = field(default_factory=dict)
    wview: dict[int, dict[str, int]] = field(default_factory=dict)  # release-like write -> its view
    NOTHING: ClassVar[object] = NOTHING  # what access() returns for "the field's current value"
    checks: int = 0  # consistency checks run (a figure for the docs)
    stale: int = 0  # reads that read a write other than the co-last one

    # -- building ------------------------------------------------------------------
    def _add(self, ev: _Ev) -> int:
        i = len(self.events)
        self.events.append(ev)
        if ev.thread >= 0:
            self.threads.setdefault(ev.thread, []).append(i)
        return i

    def _local(self, tid: int) -> int:
        return len(self.threads.get(tid, ()))

    def _init(self, loc: str, value: Any) -> None:
        if loc not in self.co:
            w = self._add(_Ev("W", loc, frozenset({"IW"}), -1))
            self.co[loc] = [w]
            self.values[w] = value

    def _reads_before(self, tid: int) -> frozenset[int]:
        evs = self.threads.get(tid, [])
        return frozenset(k for k, e in enumerate(evs) if self.events[e].kind == "R")

    def _addr_of(self, tid: int, obj: Any) -> frozenset[int]:
        return frozenset(k for k, o in self.refs.get(tid, ()) if o == id(obj))

    def _begin(self, ex: Execution, t: Thread) -> None:
        """A spawned thread's first event reads its spawn: everything before the spawn happens before it."""
        if t.tid in self.started:
            return
        self.started.add(t.tid)
        if t.tid != 0:
            self._sync(t.tid, f"task{t.key}")

    def link(self, ex: Execution, key: int) -> None:
        """A list_head link access (kernel/list.py): a fully ordered sync on the link."""
        t = ex.current
        assert t is not None
        self._begin(ex, t)
        self._sync(t.tid, f"link{key}")

    def fence(self, tid: int, kind: str) -> None:
        self._add(_Ev("F", None, frozenset({kind}), tid, label=f"F[{kind}]"))

    def _sync(self, tid: int, loc: str) -> None:
        """A fully ordered, fully synchronising RMW on ``loc``: ``F[mb]; R; W; F[mb]``."""
        self._init(loc, 0)
        self.fence(tid, "mb")
        k = self._local(tid)
        r = self._add(_Ev("R", loc, frozenset({"once"}), tid, atomic=True, label=f"sync {loc}"))
        self.rf[r] = self.co[loc][-1]
        self._learn(tid, loc, self.co[loc][-1], True)
        w = self._add(_Ev("W", loc, frozenset({"once"}), tid, atomic=True, rmw_read=k, label=f"sync {loc}"))
        self.co[loc].append(w)
        self._wrote(tid, loc, w, True)
        self.values[w] = 0
        self.fence(tid, "mb")

    # -- views: which writes a read cannot read, known without the full check -------------------
    def _wrote(self, tid: int, loc: str, w: int, release: bool) -> None:
        v = self.view.setdefault(tid, {})
        v[loc] = len(self.co[loc]) - 1  # co-last: its own write (po-loc coherence)
        if release:  # a release, a plain write, an RMW, a sync: carries everything its thread saw
            self.wview[w] = dict(v)

    def _learn(self, tid: int, loc: str, w: int, acquire: bool) -> None:
        """``tid`` read ``w``: it can no longer read co-before it (CoRR); an acquire-like read of a
        release-like write also joins that write's view.  The LKMM forbids the stale reads this
        excludes: for the join, ``fre ; cumul-fence* ; rfe`` back into the reader is a ``prop``
        edge in ``hb`` against its acquire's ``ppo`` (the release-acquire chains of ISA2/WRC),
        which tests/kernel/test_lkmm_engine.py checks against the oracle."""
        v = self.view.setdefault(tid, {})
        j = self.co[loc].index(w)
        if v.get(loc, 0) < j:
            v[loc] = j
        if acquire:
            for x, i in self.wview.get(w, {}).items():
                if v.get(x, 0) < i:
                    v[x] = i

    # -- the LKMM's check ------------------------------------------------------------
    def consistent(self, st: tuple[Static, dict[int, int]] | None = None) -> bool:
        """Do the LKMM's axioms hold on the graph as it is now (``st``: its layout, when known)?"""
        self.checks += 1
        st_, pos = st if st is not None else self.layout()
        n = st_.n
        rf = Rel.of_pairs(n, [(pos[w], pos[r]) for r, w in self.rf.items()])
        co = Rel.of_pairs(n, [(pos[a], pos[b]) for ws in self.co.values() for a, b in itertools.pairwise(ws)])
        return check(st_, rf, co, set()).failed is None

    def layout(self) -> tuple[Static, dict[int, int]]:
        """The events as the LKMM's check lays them out (init writes, then each thread in po)."""
        order = [i for i, e in enumerate(self.events) if e.thread < 0]
        for tid in sorted(self.threads):
            order.extend(self.threads[tid])
        pos = {e: j for j, e in enumerate(order)}
        evs = []
        for e in order:
            x = self.events[e]
            evs.append(
                Event(
                    x.kind,
                    x.loc,
                    0,
                    x.tags,
                    x.thread,
                    x.atomic,
                    x.rmw_read,
                    x.addr,
                    frozenset(),
                    x.ctrl,
                    text=x.label,
                )
            )
        return Static(evs), pos

    # -- the kernel layer's hooks ------------------------------------------------------
    def on_op(self, ex: Execution, op: Op) -> None:
        """A granted visible operation that is not a field access: a synchronisation."""
        t = ex.current
        if t is None or op.key < 0 or op.key % FIELD_SLOTS != WHOLE or op.key == t.key:
            return  # a choice, a field access (access() records those), a scheduling point
        self._begin(ex, t)
        loc = f"obj{op.key}"
        if op.arg == "join" and op.obj is not None:
            child = op.obj
            self._begin(ex, child)  # type: ignore[arg-type]
            self._sync(child.tid, loc)  # type: ignore[attr-defined]  # the child's exit, read by the join
        if op.arg == "spawn" and op.obj is not None:
            loc = f"task{op.key}"
        self._sync(t.tid, loc)

    def access(
        self,
        ex: Execution,
        t: Thread,
        obj: Any,
        name: str,
        key: int,
        write: bool,
        what: str | None,
        update: Any,
    ) -> Any:
        """Record one field access; for a read, the value it reads (``NOTHING``: the current one)."""
        self._begin(ex, t)
        d = obj.__dict__
        loc = f"{type(obj).__name__}#{obj._kc_num}.{name}"
        self._init(loc, d.get(name, NOTHING))
        tid = t.tid
        fn = (what or "").split("(", 1)[0]
        marked = what is not None
        addr = self._addr_of(tid, obj)
        if update is not None:  # an RMW: fully ordered, reads the co-last write
            self.fence(tid, "mb")
            k = self._local(tid)
            r = self._add(_Ev("R", loc, frozenset({"once"}), tid, True, None, addr, label=what or name))
            self.rf[r] = self.co[loc][-1]
            self._learn(tid, loc, self.co[loc][-1], True)
            w = self._add(
                _Ev("W", loc, frozenset({"once"}), tid, True, k, addr, self._reads_before(tid), what or name)
            )
            self.co[loc].append(w)
            self._wrote(tid, loc, w, True)
            self.fence(tid, "mb")
            return w  # the caller records the value stored
        if write:  # a plain write is a release (see the docstring: stronger than the LKMM)
            tags = frozenset({"once"} if marked and fn not in _RELEASE else {"release"})
            w = self._add(_Ev("W", loc, tags, tid, False, None, addr, self._reads_before(tid), what or name))
            self.co[loc].append(w)
            self._wrote(tid, loc, w, "release" in tags)
            return w  # the caller records the value stored
        # a plain read, data_race() and rcu_dereference_protected() are acquires (the docstring says why)
        tags = frozenset({"once"} if marked and fn not in _ACQUIRE and fn not in _LATEST else {"acquire"})
        k = self._local(tid)
        r = self._add(_Ev("R", loc, tags, tid, False, None, addr, label=what or name))
        ws = self.co[loc]
        last = ws[-1]
        self.rf[r] = last
        acquire = "acquire" in tags
        first = self.view.get(tid, {}).get(loc, 0)  # what the LKMM already forbids (see _learn)
        if marked and fn not in _LATEST and first < len(ws) - 1:
            ok = [last]
            layout = self.layout()  # one layout for every candidate: only rf differs
            for w in reversed(ws[first:-1]):
                self.rf[r] = w
                if self.consistent(layout):
                    ok.append(w)
            self.rf[r] = last
            if len(ok) > 1:
                pick = ok[ex.nondet(len(ok), f"rf {what}")]
                self.rf[r] = pick
                self._learn(tid, loc, pick, acquire)
                if pick != last:
                    self.stale += 1
                    value = self.values[pick]
                    if value is NOTHING:
                        return NOTHING  # an unset field: the caller reports it
                    self._note_ref(tid, k, value)
                    return value
        self._learn(tid, loc, last, acquire)
        self._note_ref(tid, k, d.get(name))
        return NOTHING

    def _note_ref(self, tid: int, k: int, value: Any) -> None:
        if value is not None and not isinstance(value, (int, str, bool, float, tuple, frozenset)):
            self.refs.setdefault(tid, []).append((k, id(value)))


def start() -> None:
    """Switch the running execution to LKMM exploration (registered as memory model "lkmm")."""
    ex = runtime.current
    assert ex is not None
    g = Graph()
    ex.k.weak = g
    plain = ex.visible

    def visible(op: Op) -> None:
        plain(op)
        g.on_op(ex, op)

    ex.visible = visible  # type: ignore[method-assign]


def fence(kind: str) -> None:
    """An LKMM fence event in the running thread (nothing under SC)."""
    ex = runtime.current
    if ex is None or ex.k is None or ex.k.weak is None or ex.current is None:
        return
    g: Graph = ex.k.weak
    g._begin(ex, ex.current)
    g.fence(ex.current.tid, kind)


weak.register("lkmm", start)
