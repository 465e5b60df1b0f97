"""LKMM exploration: a model's run as an execution graph checked by the Linux-kernel memory model.

Selected per scenario (``@scenario(memory_model="lkmm")``) or per run (``check(...,
memory_model="lkmm")``, ``kvmcheck check --memory-model lkmm``).  Under SC (the
default) nothing here runs: no graph, no hook, the engine and kernel layer take
exactly their old paths (tests/kernel/test_lkmm_engine.py pins the SC execution
counts of its 65 programs and of two bundled seed scenarios).

The design follows execution-graph model checking -- GenMC / HMC (Kokologiannakis,
Raad, Vafeiadis: "Model checking for weakly consistent libraries", PLDI 2019;
Kokologiannakis & Vafeiadis: "HMC: Model checking for hardware memory models",
ASPLOS 2020, which covers the LKMM): the run builds a graph of events (po per
thread, ``rf`` and ``co`` per location), each read chooses which write it reads
from, each write where it goes in ``co``, and a graph the memory model forbids is
never extended.  The consistency check is the LKMM's axioms as
:mod:`kvmcheck.lkmm.model` computes them (linux-kernel.cat and lock.cat translated
line by line, shared with ``kvmcheck litmus``).  What differs from GenMC is how the
graphs are enumerated: the engine re-executes the model under its DPOR over
interleavings, so every choice of the graph is a ``nondet`` step of the run.

* a **marked read** (``READ_ONCE``, ``smp_load_acquire``, ``rcu_dereference*``,
  ``srcu_dereference``, an RCU-list traversal) is an *open* choice
  (``ops.OPEN``): outcomes ``0..n-1`` read one of the ``n`` same-location writes
  already in the graph that keep it LKMM-consistent (0 is the co-last write: the
  SC behaviour); outcome ``n + encode(v)`` reads a write *not performed yet* that
  will store ``v``.  Those outcomes are GenMC's backward revisits (PLDI 2019, §5;
  HMC §4, where the revisiting write need not be porf-after the read, since the
  LKMM allows ``po | rf`` cycles): when a write of ``v`` is added to the graph,
  every earlier marked read of its location by another thread gets outcome
  ``n + encode(v)`` added to its choice (``Execution.add_outcome``; the optimal
  DPOR explores it after the subtree under way, once per state and value).  Such
  a run reads ``v`` at once and goes on; when it ends, :meth:`Graph.accept` binds
  each such read to a write of ``v`` now in the graph (not a po-later one of its
  own thread) so that the whole graph is consistent, or drops the run as *not an
  execution* (blocked; its reports dropped).  Only ``None``, ``bool`` and ``int``
  values can be read this way (the outcome encodes the value, so a schedule
  replays with no other state); a read of an object pointer from a later write is
  not explored (``Stats.unencodable`` counts the writes concerned);
* a **marked write** (``WRITE_ONCE``, ``smp_store_release``, ``rcu_assign_pointer``)
  goes co-last (choice 0) or, as a ``nondet`` choice, before any writes already in
  ``co`` after what its own thread has seen there, wherever the graph stays
  consistent: the coherence orders no interleaving performs (2+2W, S).  The
  field holds the co-last value, whatever the order the writes ran in;
* a **plain read**, ``data_race()``, ``rcu_dereference_protected()`` and the read
  of an **RMW** read the co-last write (a plain read of a stale value is a data
  race the LKMM gives no semantics to, and a model that reads a counter plainly
  where the C pairs it with a barrier would get outcomes the kernel's barrier
  forbids -- so the seed models mark the accesses a barrier orders, READ_ONCE /
  WRITE_ONCE with the C's ``smp_rmb()``/``smp_wmb()`` as events, see
  docs/models/lkmm-mutants.md; an RMW must read co-last for the LKMM's ``atomic``
  axiom);
  plain writes and RMWs go co-last;
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

When a choice is checked.  A read of a write in the graph is checked when it is
made; a write's co place likewise; a read of a write not yet performed has no
``rf`` until the run ends, and the checks meanwhile are of the graph without that
edge (the axioms only gain edges with it, so what they forbid stays forbidden);
the whole graph is checked at the end.  Events appended at the end of a thread
that nobody reads yet (a co-last write, a fence, a read of the co-last write) have
no outgoing edge in any LKMM relation and cannot close a cycle, so the all-zeros
path (the SC one) is never dropped.

Dependencies (:mod:`kvmcheck.kernel.lkmm_dep`), which order LB: a marked read of
an ``int`` returns an ``int`` that remembers the read; arithmetic keeps it, so a
write of a value computed from it has a ``data`` dependency; any other use (truth
in an ``if``, a comparison, a dict key) makes every later write of the thread
depend on it (``ctrl``, with the rest of the thread as its scope: stronger than
the LKMM's ``if``-branches).  Reads of anything else (objects, ``None``, ``bool``)
keep the old rule: every later write of the thread depends on them.  ``addr`` is
reconstructed by identity: an access to a field of object ``o`` depends on each
earlier read of that thread that returned ``o`` itself (``p = READ_ONCE(gp);
READ_ONCE(p->x)``).  Not seen: an address computed from an integer read (an
array index: CPython reads an ``int`` subclass's value directly there).

Covered, and tested against the brute-force oracle (tests/kernel/test_lkmm_engine.py,
65 programs of marked accesses, fences, data and control dependencies -- MP, SB,
LB and its fenced/ordered/dependent forms, 2+2W, S, R, Co*, WRC, ISA2, IRIW, Z6.0,
Z6.3): the engine's final states equal the LKMM's on every one, and its distinct
graphs are as many as the oracle's consistent executions (331 in all), each checked
consistent as a whole -- every LKMM-consistent execution is explored.  A read of a
write not yet performed is bound to the first write of its value that makes the graph
consistent, so in general a graph is reached up to which of several equal-valued writes
such a read reads (on the corpus every one is reached anyway).  Duplicates remain: a
graph is reached by every interleaving whose choices build it, and by a revisit that
rebuilds what an interleaving also reaches; they are counted (``Stats.duplicates``):
the corpus runs 2,721 executions for its 331 graphs (MP 14 for 4, IRIW 380 for 16).
Runs whose guesses do not come true are dropped and counted (``Stats.dropped``).

Not covered (missed, never reported):

* anything the stronger synchronisation above forbids: a lock, an atomic_t or an
  RCU call is a full barrier here (e.g. store buffering across ``spin_lock``);
* plain reads never read stale values, and plain writes and RMWs are co-last;
  ``atomic_t``/``refcount_t`` operations are never relaxed
  (``smp_mb__before/after_atomic`` around them change nothing);
* reads of a later write of a non-int value (pointers), and revisits under a
  strategy that does not enumerate (random, PCT: ``Stats.lost``) or, with several
  workers, of a read above a job's fixed path (``Stats.lost`` too): only the
  one-worker dpor search is complete;
* the ``data-race`` flag: KCSAN keeps reporting plain races from the interleaving.

A traced replay shows, on a marked read's choice step, the value the graph returned
(the field holds the co-last write's).  :mod:`kvmcheck.kernel.lkmm_explain` reads a
run's graph back in LKMM terms (which write each read read, co, the unordered pairs).

The kernel layer's checks run unchanged on these executions (KASAN, lockdep, RCU,
refcount, WARN/BUG), and their reports count only from runs :meth:`Graph.accept`
keeps (a run the search abandons included: its guesses must have come true); KCSAN keeps its
own happens-before from the interleaving, so it may miss a race a stale marked read
would expose, never invents one.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from kvmcheck._engine import runtime, weak
from kvmcheck._engine.ops import FIELD_SLOTS, WHOLE, Op
from kvmcheck.kernel.lkmm_dep import Dep, plain, sources
from kvmcheck.kernel.trace_values import fmt
from kvmcheck.lkmm.events import Event
from kvmcheck.lkmm.model import check
from kvmcheck.lkmm.rel import Rel
from kvmcheck.lkmm.static import Static

if TYPE_CHECKING:
    from kvmcheck._engine.execution import Execution, Thread

__all__ = ["Graph", "Stats", "fence", "stats"]

_ACQUIRE = ("smp_load_acquire", "atomic_read_acquire")
_RELEASE = ("smp_store_release", "rcu_assign_pointer", "atomic_set_release")
_LATEST = ("data_race", "rcu_dereference_protected")  # marked for KCSAN, but never read stale here
NOTHING = object()
_STATS = "kernel.barrier.stats"  # session layer: Stats of the whole check


@dataclass
class Stats:
    """Figures of one check under the LKMM (kept in the session; the tests and docs quote them)."""

    revisits: int = 0  # outcomes added to a read's choice: a write performed after it
    lost: int = 0  # revisits the strategy could not take (not dpor, or a parallel job's fixed path)
    unencodable: int = 0  # writes of a value a read cannot guess (not None/bool/int)
    dropped: int = 0  # runs whose guesses did not come true (not executions)
    graphs: set[int] = field(default_factory=set)  # hashes of the consistent graphs explored
    duplicates: int = 0  # executions whose graph an earlier execution already had


def stats(session: Any) -> Stats:
    st: Stats = session.layers.setdefault(_STATS, Stats())
    return st


def encode(value: Any) -> int | None:
    """A value a read may take from a write not yet performed, as a choice outcome (>= 0)."""
    if value is None:
        return 0
    if value is False or value is True:
        return 1 + int(value)
    if type(value) is int or type(value) is Dep:
        i = int.__int__(value)
        return 3 + (2 * i if i >= 0 else -2 * i - 1)
    return None


def decode(code: int) -> Any:
    if code < 3:
        return (None, False, True)[code]
    z = code - 3
    return z // 2 if z % 2 == 0 else -(z + 1) // 2


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
    data: frozenset[int] = frozenset()
    marked: bool = False  # a marked access of a field (READ_ONCE, WRITE_ONCE, ...): what explain() shows
    step: int = -1  # the run's step that performed it (set by _add)


class _Access(NamedTuple):
    """One field access as :meth:`Graph.access` sees it, for the read and write paths."""

    tid: int
    obj: Any
    name: str
    loc: str  # "Type#num.field"
    fn: str  # the marking function (READ_ONCE, smp_load_acquire, ...); "" for a plain access
    marked: bool
    addr: frozenset[int]  # the reads this access's address depends on
    what: str | None  # the step's label


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
    # Dependencies (kernel/lkmm_dep.py): per thread, the local indices of the reads whose
    # value decided something (used) and of those whose value is not tracked (opaque).
    used: dict[int, set[int]] = field(default_factory=dict)
    opaque: dict[int, set[int]] = field(default_factory=dict)
    # Reads of a write not yet performed: read id -> the value guessed (bound in accept()).
    promised: dict[int, Any] = field(default_factory=dict)
    # Every marked read's open choice: (read id, loc, tid, step of its choice, outcomes in the graph)
    open_reads: list[tuple[int, str, int, int, int]] = field(default_factory=list)
    invalid: bool = False  # a choice that cannot stand (see _place): the run is dropped
    now: int = -1  # the step being performed (each event records it, for lkmm_explain)
    NOTHING: ClassVar[object] = NOTHING  # what access() returns for "the field's current value"
    checks: int = 0  # consistency checks run (a figure for the docs)
    stale: int = 0  # reads that read a write other than the co-last one

    # -- building ------------------------------------------------------------------
    def _add(self, ev: _Ev) -> int:
        i = len(self.events)
        ev.step = self.now
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

    def _deps(self, tid: int) -> frozenset[int]:
        """The reads every write of ``tid`` from now on depends on (ctrl, conservatively)."""
        return frozenset(self.used.get(tid, set()) | self.opaque.get(tid, set()))

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
        v[loc] = self.co[loc].index(w)  # its own write (po-loc coherence)
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

    def _shift(self, loc: str, p: int) -> None:
        """A write was inserted at co index ``p`` of ``loc``: the views' indices from there move up."""
        for v in itertools.chain(self.view.values(), self.wview.values()):
            i = v.get(loc)
            if i is not None and i >= p:
                v[loc] = i + 1

    # -- the LKMM's check ------------------------------------------------------------
    def consistent(self, st: tuple[Static, dict[int, int]] | None = None) -> bool:
        """Do the LKMM's axioms hold on the graph as it is now (``st``: its layout, when known)?

        A read of a write not yet performed has no ``rf`` yet: the check is then of the graph
        without that edge (the LKMM's axioms only gain edges with it, so what fails here fails
        with it too); accept() checks the whole graph once the write is there."""
        self.checks += 1
        st_, pos = st if st is not None else self.layout()
        n = st_.n
        rf = Rel.of_pairs(n, [(pos[w], pos[r]) for r, w in self.rf.items()])
        co = Rel.of_pairs(n, [(pos[a], pos[b]) for ws in self.co.values() for a, b in itertools.pairwise(ws)])
        return check(st_, rf, co, set()).failed is None

    def relations(self) -> tuple[dict[int, int], dict[str, Rel]]:
        """The layout position of each event and the LKMM's relations on the graph as it is
        (``ppo``, ``hb``, ``prop``, ...; for kernel/lkmm_explain.py)."""
        st, pos = self.layout()
        n = st.n
        rf = Rel.of_pairs(n, [(pos[w], pos[r]) for r, w in self.rf.items()])
        co = Rel.of_pairs(n, [(pos[a], pos[b]) for ws in self.co.values() for a, b in itertools.pairwise(ws)])
        return pos, check(st, rf, co, set()).rels

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
                    x.data,
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
        self.now = len(ex.schedule) - 1
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
        value: Any = None,
    ) -> Any:
        """Record one field access; for a read, the value it reads (``NOTHING``: the current one).

        A write (not an RMW) is stored here, in the field when it is co-last."""
        self.now = len(ex.schedule) - 1
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
                _Ev("W", loc, frozenset({"once"}), tid, True, k, addr, self._deps(tid), what or name)
            )
            self.co[loc].append(w)
            self._wrote(tid, loc, w, True)
            self.fence(tid, "mb")
            return w  # the caller stores the value (rmw_stored)
        a = _Access(tid, obj, name, loc, fn, marked, addr, what)
        if write:
            self._write(ex, a, value)
            return None
        return self._read(ex, a)

    def rmw_stored(self, ex: Execution, w: int, value: Any) -> None:
        """The value an RMW's write ``w`` stored (known once the caller applied the update)."""
        self.values[w] = value
        self._revisit(ex, w)

    def _write(self, ex: Execution, a: _Access, value: Any) -> None:
        tid, obj, name, loc, fn, marked, addr, what = a
        # a plain write is a release (see the docstring: stronger than the LKMM)
        tags = frozenset({"once"} if marked and fn not in _RELEASE else {"release"})
        data = sources(value, tid)
        w = self._add(
            _Ev("W", loc, tags, tid, False, None, addr, self._deps(tid), what or name, data, marked)
        )
        self.values[w] = value = plain(value)
        ws = self.co[loc]
        ws.append(w)
        if marked:
            self._place(ex, tid, loc, w, what)
        self._wrote(tid, loc, w, "release" in tags)
        if ws[-1] == w:
            obj.__dict__[name] = value
        self._revisit(ex, w)

    def _place(self, ex: Execution, tid: int, loc: str, w: int, what: str | None) -> None:
        """Where a marked write goes in ``co``: co-last (choice 0, the interleaving's order) or
        before writes already there, wherever the graph stays consistent (2+2W, S)."""
        ws = self.co[loc]
        lo = self.view.get(tid, {}).get(loc, 0)  # co-after what its thread has seen there
        if lo >= len(ws) - 2:
            return
        ws.pop()
        places = [len(ws)]
        layout = self.layout()
        for p in range(len(ws) - 1, lo, -1):
            ws.insert(p, w)
            if self.consistent(layout):
                places.append(p)
            ws.pop(p)
        ws.append(w)
        if len(places) == 1:
            return
        n_events = len(self.events)
        p = places[ex.nondet(len(places), f"co {what}")]
        if p == len(ws) - 1:
            return
        if len(self.events) != n_events:  # another thread ran between: the places computed are stale
            self.invalid = True
            return
        ws.pop()
        ws.insert(p, w)
        self._shift(loc, p)

    def _read(self, ex: Execution, a: _Access) -> Any:
        tid, obj, name, loc, fn, marked, addr, what = a
        # a plain read, data_race() and rcu_dereference_protected() are acquires (the docstring says why)
        tags = frozenset({"once"} if marked and fn not in _ACQUIRE and fn not in _LATEST else {"acquire"})
        acquire = "acquire" in tags
        k = self._local(tid)
        r = self._add(_Ev("R", loc, tags, tid, False, None, addr, label=what or name, marked=marked))
        ws = self.co[loc]
        last = ws[-1]
        self.rf[r] = last
        pick = last
        if marked and fn not in _LATEST:
            first = self.view.get(tid, {}).get(loc, 0)  # what the LKMM already forbids (see _learn)
            ok = [last]
            if first < len(ws) - 1:
                layout = self.layout()  # one layout for every candidate: only rf differs
                for w in reversed(ws[first:-1]):
                    self.rf[r] = w
                    if self.consistent(layout):
                        ok.append(w)
            v = ex.nondet(len(ok), f"rf {what}", open_=True)
            self.open_reads.append((r, loc, tid, len(ex.schedule) - 1, len(ok)))
            if v >= len(ok):  # a write not performed yet (a revisit): bound in accept()
                del self.rf[r]
                value = self.promised[r] = decode(v - len(ok))
                self.stale += 1
                return self._value(ex, tid, k, value, acquire)
            pick = ok[v]
            self.rf[r] = pick
            if pick != last:
                self.stale += 1
        self._learn(tid, loc, pick, acquire)
        # the field holds the co-last write's value (also what any write outside the graph left)
        value = obj.__dict__.get(name, NOTHING) if pick == ws[-1] else self.values[pick]
        return self._value(ex, tid, k, value, acquire)

    def _value(self, ex: Execution, tid: int, k: int, value: Any, acquire: bool) -> Any:
        """What a read returns: an int carries its dependencies (lkmm_dep); other values are noted."""
        if value is NOTHING:
            return NOTHING  # an unset field: the caller reports it
        if ex.tracing:  # the value read, on the trace's step (the field may hold a co-later one)
            prev, runtime.current = runtime.current, None
            try:
                text = f" = {fmt(value)}"
            finally:
                runtime.current = prev
            ex.note_value(text)
        if type(value) is int and not acquire:  # an acquire orders everything after it anyway
            return Dep(value, frozenset({(tid, k)}), self.used)
        self.opaque.setdefault(tid, set()).add(k)
        if value is not None and not isinstance(value, (int, str, bool, float, tuple, frozenset)):
            self.refs.setdefault(tid, []).append((k, id(value)))
        return value

    # -- reads of writes not yet performed (after GenMC's revisits) ----------------------------
    def _revisit(self, ex: Execution, w: int) -> None:
        """Write ``w`` is in the graph: every earlier marked read of its location by another thread
        may read it as well -- a new outcome of that read's choice, explored after this subtree."""
        e = self.events[w]
        code = None
        st = stats(ex.session)
        for _r, loc, tid, step, n in self.open_reads:
            if loc != e.loc or tid == e.thread:
                continue
            if code is None:
                code = encode(self.values[w])
                if code is None:
                    st.unencodable += 1
                    return
            if ex.add_outcome(step, n + code):
                st.revisits += 1
            else:
                st.lost += 1

    def accept(self, ex: Execution) -> bool:
        """At the end of a run: is it an execution?  Each read of a write not yet performed must
        read one now in the graph, with the value it guessed, and the whole graph be consistent.

        Asked of a run the search abandoned (sleep-set blocked) too: what it reported before
        stands only if its guesses came true in the part that ran."""
        st = stats(ex.session)
        if self.invalid or not self._bind():
            st.dropped += 1
            return False
        if ex.outcome == "blocked":  # abandoned by the search: its prefix stands, it is no execution
            return True
        h = hash(self._signature())
        if h in st.graphs:
            st.duplicates += 1
        st.graphs.add(h)
        return True

    def _bind(self) -> bool:
        if not self.promised:
            return True
        reads = sorted(self.promised)
        options = []
        for r in reads:
            e = self.events[r]
            want = encode(self.promised[r])
            options.append(
                [
                    w
                    for w in self.co[e.loc]  # type: ignore[index]
                    if encode(self.values[w]) == want and not (self.events[w].thread == e.thread and w > r)
                ]
            )
        layout = self.layout()
        for pick in itertools.product(*options):
            for r, w in zip(reads, pick, strict=True):
                self.rf[r] = w
            if self.consistent(layout):
                return True
        for r in reads:
            self.rf.pop(r, None)
        return False

    def _signature(self) -> tuple[Any, ...]:
        """The graph up to event identity: each thread's events, rf and co by (thread, po index)."""
        where: dict[int, tuple[int, Any]] = {}
        for tid, evs in self.threads.items():
            for k, e in enumerate(evs):
                where[e] = (tid, k)
        for e, x in enumerate(self.events):
            if x.thread < 0:
                where[e] = (-1, x.loc)  # a location's initial write (created when first touched)
        shape = tuple(
            (tid, tuple((self.events[e].kind, self.events[e].loc) for e in evs))
            for tid, evs in sorted(self.threads.items())
        )
        rf = tuple(sorted((where[r], where[w]) for r, w in self.rf.items()))
        co = tuple(sorted((loc, tuple(where[w] for w in ws)) for loc, ws in self.co.items()))
        return shape, rf, co


def start() -> None:
    """Switch the running execution to LKMM exploration (registered as memory model "lkmm")."""
    ex = runtime.current
    assert ex is not None
    g = Graph()
    ex.k.weak = g
    ex.accept = g.accept

    def after_visible(op: Op) -> None:  # each op once granted: an event of the graph
        g.on_op(ex, op)

    ex.after_visible = after_visible


def fence(kind: str) -> None:
    """An LKMM fence event in the running thread (nothing under SC)."""
    ex = runtime.current
    if ex is None or ex.k is None or ex.k.weak is None or ex.current is None:
        return
    g: Graph = ex.k.weak
    g.now = len(ex.schedule) - 1
    g._begin(ex, ex.current)
    g.fence(ex.current.tid, kind)


weak.register("lkmm", start)
