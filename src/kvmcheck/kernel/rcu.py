"""RCU: read-side critical sections, grace periods, callbacks, published pointers, RCU lists.

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

``rcu_read_lock`` makes the thread atomic (``KThread.rcu_depth``);
``synchronize_rcu`` may sleep.  Called inside a read-side section it is
reported as sleeping in atomic context (and as illegal, the lockdep-RCU
splat) and does not wait for the caller's own section -- with non-preemptible
RCU the caller's context switch is a quiescent state -- so the run goes on.

``call_rcu(head, func)`` starts a grace period in the caller (its snapshot
includes the caller's own section) and spawns a thread named
``rcu_callback`` that waits for it and then calls ``func(head)`` with
softirqs disabled, as RCU core invokes callbacks.  ``kfree_rcu(obj)`` is
``call_rcu(obj, kfree)``; ``rcu_barrier()`` waits for every queued callback.

Pointers: ``rcu_assign_pointer(obj, "field", v)`` is a release store,
``rcu_dereference(obj, "field")`` a marked load that acquires what the
matching ``rcu_assign_pointer`` published, and warns ("suspicious RCU
usage", kind ``suspicious-rcu``) outside ``rcu_read_lock()`` unless the
``_check`` condition holds, as CONFIG_PROVE_RCU does.

Lists: a Python-list-valued Struct field is an RCU-protected list.
``list_add_rcu``/``list_add_tail_rcu``/``list_del_rcu`` are one exclusive
step each (a marked store for readers; for KCSAN also a plain write of the
writers' side of the list, so two updaters without a lock race);
``list_for_each_entry_rcu`` reads one ``->next`` pointer per step with the
pointer semantics of the kernel's list: a reader standing on an entry that
was deleted goes on from the successor that entry had when it was deleted.
Each entry is published by the ``list_add_rcu`` that added it, and a reader
reaching it acquires that.

A grace period can end as soon as its readers are gone, or at any later
step (the scheduler decides when the waiting thread runs), which covers
every duration a real grace period can have.

Simplifications: only explicit ``rcu_read_lock`` sections are readers
(since v4.20 a preempt-/irq-/bh-disabled region is one too, but holding a
spinlock does not delay a grace period here); callbacks are not batched
(each has its own grace period and thread); lockdep does not see RCU/SRCU
read sections as locks (an SRCU deadlock is found when an explored
execution deadlocks, not predicted from lock order alone).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from kvmcheck._engine import runtime
from kvmcheck._engine.clock import Clock, vc_join, vc_tick
from kvmcheck._engine.execution import Thread
from kvmcheck._engine.finding import UsageError
from kvmcheck._engine.ops import Op, object_key
from kvmcheck.kernel import kasan, kcsan
from kvmcheck.kernel._core import current_thread, kthread, new_number, warn
from kvmcheck.kernel.atomic import load_acquire, store_release
from kvmcheck.kernel.struct import access, field_of


class _Gp:
    """One grace period: the reader sections (thread, position) it must wait for, and the
    clocks of the sections that had already ended when it began (they precede its end too)."""

    __slots__ = ("ended", "readers")

    def __init__(self, readers: tuple[tuple[int, int], ...], ended: Clock) -> None:
        self.readers = readers
        self.ended = ended

    def __repr__(self) -> str:
        return f"<gp waiting for {self.readers}>"


class GpDomain:
    """The readers and grace periods of one RCU flavour (RCU itself, or one srcu_struct)."""

    kind = "rcu"

    def __init__(self, name: str) -> None:
        self.key = object_key(new_number())
        self.name = name
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

    def _kc_label(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<{self.kind} {self.name}>"

    # -- steps: each announces one visible operation, then has its effect ---------------
    def step(self, excl: bool, label: str, arg: Any) -> Thread:
        ex = runtime.current
        assert ex is not None
        ex.visible(Op(self.key, excl, label, self, arg))
        t = ex.current
        assert t is not None
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


def _rcu() -> GpDomain:
    ex = runtime.current
    if ex is None:
        raise UsageError("RCU used outside a running check (call it from a scenario)")
    d: GpDomain | None = ex.k.rcu
    if d is None:
        d = ex.k.rcu = GpDomain("rcu")
    return d


def suspicious(what: str) -> None:
    """lockdep-RCU's splat (CONFIG_PROVE_RCU), once per message per check."""
    ex = runtime.current
    if ex is not None:
        once = f"suspicious-rcu:{what}"
        if once in ex.session:
            return
        ex.session[once] = True
    t = current_thread()
    kt = kthread(t)
    held = kt.held_names()
    warn(
        "suspicious-rcu",
        f"{what} (in {t.name})",
        headline="WARNING: suspicious RCU usage",
        details=[
            f"rcu_read_lock() nesting {kt.rcu_depth}; "
            + (f"locks held: {', '.join(held)}" if held else f"no locks held by {t.name}")
        ],
    )


# -- read side ------------------------------------------------------------------------
def rcu_read_lock() -> None:
    kt = kthread()
    if kt.rcu_depth == 0:
        _rcu().enter("rcu_read_lock()")
    kt.rcu_depth += 1


def rcu_read_unlock() -> None:
    kt = kthread()
    if kt.rcu_depth == 0:
        warn(
            "unlock-unheld",
            "rcu_read_unlock() without rcu_read_lock()",
            headline="WARNING: bad unlock balance detected!",
        )
        return
    kt.rcu_depth -= 1
    if kt.rcu_depth == 0:
        _rcu().exit("rcu_read_unlock()")


def rcu_read_lock_held() -> bool:
    return kthread().rcu_depth > 0


def rcu_read_lock_any_held() -> bool:
    """Inside rcu_read_lock(), or non-preemptible (a spinlock held, irqs or bh off)."""
    kt = kthread()
    return kt.rcu_depth > 0 or kt.atomic_reason() is not None


def lockdep_is_held(lock: Any) -> bool:
    """``lockdep_is_held(&lock)``: for the conditions of ``*_dereference_check``."""
    from kvmcheck.kernel.lockdep import held_by

    return held_by(kthread(), lock) is not None


# -- grace periods and callbacks --------------------------------------------------------------
def synchronize_rcu() -> None:
    """Wait until every reader section open now has closed.  May sleep."""
    from kvmcheck.kernel.context import might_sleep_check

    might_sleep_check("synchronize_rcu()")
    if rcu_read_lock_held():
        suspicious("Illegal synchronize_rcu() in RCU read-side critical section")
    d = _rcu()
    gp = d.gp_start("synchronize_rcu()", exclude_self=True)
    d.gp_wait(gp, "synchronize_rcu(): grace period ends")


def synchronize_rcu_expedited() -> None:
    synchronize_rcu()


def call_rcu(head: Any, func: Callable[[Any], Any]) -> Thread:
    """Run ``func(head)`` after a grace period, in a thread named ``rcu_callback``; returns it."""
    d = _rcu()
    gp = d.gp_start(f"call_rcu({getattr(func, '__name__', 'func')})", exclude_self=False)
    return d.queue_callback(gp, head, func, "rcu_callback")


def kfree_rcu(obj: Any, rhf: str | None = None) -> Thread:
    """``kfree_rcu(obj, rhf)`` / ``kfree_rcu_mightsleep(obj)``: kfree after a grace period."""
    from kvmcheck.kernel.memory import kfree

    return call_rcu(obj, kfree)


def rcu_barrier() -> None:
    """Wait for every callback queued by call_rcu()/kfree_rcu() so far.  May sleep."""
    from kvmcheck.kernel.context import might_sleep_check

    might_sleep_check("rcu_barrier()")
    ex = runtime.current
    if ex is not None and ex.k.rcu is not None:
        ex.k.rcu.barrier()


# -- published pointers ----------------------------------------------------------------------
def _label(fn: str, obj: Any, name: str) -> str:
    return f"{fn}({type(obj).__name__}.{name})"


def rcu_assign_pointer(obj: Any, name: str, value: Any) -> None:
    """``rcu_assign_pointer(obj->name, value)``: a release store."""
    store_release(obj, name, value, _label("rcu_assign_pointer", obj, name))


def RCU_INIT_POINTER(obj: Any, name: str, value: Any) -> None:
    """A marked store without release (for NULL, or before the structure is published)."""
    from kvmcheck.kernel.struct import WRITE_ONCE

    WRITE_ONCE(obj, name, value)


def _check(ok: bool, what: str) -> None:
    if not ok and runtime.current is not None:
        suspicious(what)


def rcu_dereference(obj: Any, name: str) -> Any:
    """``rcu_dereference(obj->name)``: a marked acquire-load, legal inside rcu_read_lock()."""
    return rcu_dereference_check(obj, name, False, "rcu_dereference")


def rcu_dereference_check(obj: Any, name: str, cond: bool, _fn: str = "rcu_dereference_check") -> Any:
    """``rcu_dereference_check(obj->name, cond)``: legal inside rcu_read_lock() or when ``cond``."""
    label = _label(_fn, obj, name)
    v = load_acquire(obj, name, label)
    if runtime.current is not None:
        _check(cond or rcu_read_lock_held(), f"suspicious rcu_dereference_check() usage: {label}")
    return v


def rcu_dereference_raw(obj: Any, name: str) -> Any:
    return load_acquire(obj, name, _label("rcu_dereference_raw", obj, name))


def rcu_dereference_protected(obj: Any, name: str, cond: bool) -> Any:
    """The update side's read (a plain load): ``cond`` says why no reader-side protection is needed."""
    label = _label("rcu_dereference_protected", obj, name)
    if runtime.current is None or not obj._kc_num:
        return getattr(obj, name)
    v = access(obj, field_of(obj, name), False, False, what=label)
    _check(cond, f"suspicious rcu_dereference_protected() usage: {label}")
    return v


def rcu_access_pointer(obj: Any, name: str) -> Any:
    """Fetch the pointer's value without dereferencing it (a marked load, no protection needed)."""
    from kvmcheck.kernel.struct import READ_ONCE

    return READ_ONCE(obj, name)


def rcu_replace_pointer(obj: Any, name: str, value: Any, cond: bool) -> Any:
    """Replace the pointer (update side, ``cond`` held); returns the old value."""
    old = rcu_dereference_protected(obj, name, cond)
    rcu_assign_pointer(obj, name, value)
    return old


# -- RCU lists ---------------------------------------------------------------------------
_END = object()  # the list head, reached again: the end of the traversal


class _ListMeta:
    """Per-list bookkeeping: each entry's publishing clock, and deleted entries' ->next."""

    __slots__ = ("next_of_deleted", "published")

    def __init__(self) -> None:
        self.published: dict[int, Clock] = {}
        self.next_of_deleted: dict[int, Any] = {}


def _meta(obj: Any, name: str) -> _ListMeta:
    key = f"_kc_rculist_{name}"
    m: _ListMeta | None = obj.__dict__.get(key)
    if m is None:
        m = obj.__dict__[key] = _ListMeta()
    return m


def _index(lst: list[Any], entry: Any) -> int:
    for i, x in enumerate(lst):
        if x is entry:
            return i
    return -1


def _list_update(obj: Any, name: str, label: str, fn: Callable[[list[Any]], list[Any]]) -> Thread | None:
    """One exclusive step that replaces the list by ``fn(copy of it)``."""
    ex = runtime.current
    if ex is None or not obj._kc_num:
        obj.__dict__[name] = fn(list(obj.__dict__[name] or []))
        return None
    f = field_of(obj, name)
    access(obj, f, True, True, what=label, update=lambda old: fn(list(old or [])))
    t = ex.current
    assert t is not None
    if ex.k.kcsan_on:  # the writers' side (new->next, next->prev): plain, writers need a lock
        kcsan.on_access(ex, t, -1 - object_key(obj._kc_num, f.index), obj, f"{name}.prev", True, False)
    return t


def _corrupt(what: str) -> None:
    warn("list-corruption", what, headline=f"{what.split(':')[0]} (CONFIG_DEBUG_LIST)")


def _add(new: Any, obj: Any, name: str, tail: bool) -> None:
    fn = "list_add_tail_rcu" if tail else "list_add_rcu"
    meta = _meta(obj, name)
    dup = False

    def update(lst: list[Any]) -> list[Any]:
        nonlocal dup
        if _index(lst, new) >= 0:
            dup = True
            return lst
        meta.next_of_deleted.pop(id(new), None)
        return [*lst, new] if tail else [new, *lst]

    t = _list_update(obj, name, _label(fn, obj, name), update)
    if dup:
        _corrupt(f"list_add double add: {type(new).__name__} is already on {type(obj).__name__}.{name}")
    elif t is not None:  # rcu_assign_pointer(list_next_rcu(prev), new): publish it
        meta.published[id(new)] = t.vc[:]
        vc_tick(t.vc, t.tid)


def list_add_rcu(new: Any, obj: Any, name: str) -> None:
    """``list_add_rcu(&new->list, &obj->name)``: add at the head, publishing ``new``."""
    _add(new, obj, name, tail=False)


def list_add_tail_rcu(new: Any, obj: Any, name: str) -> None:
    """``list_add_tail_rcu(&new->list, &obj->name)``: add at the tail, publishing ``new``."""
    _add(new, obj, name, tail=True)


def list_del_rcu(entry: Any, obj: Any, name: str) -> None:
    """``list_del_rcu(&entry->list)``: unlink it; readers standing on it still find its successor.

    Free it only after a grace period (synchronize_rcu, kfree_rcu, call_rcu).
    """
    meta = _meta(obj, name)
    missing = False

    def update(lst: list[Any]) -> list[Any]:
        nonlocal missing
        i = _index(lst, entry)
        if i < 0:
            missing = True
            return lst
        meta.next_of_deleted[id(entry)] = lst[i + 1] if i + 1 < len(lst) else _END
        return lst[:i] + lst[i + 1 :]

    _list_update(obj, name, _label("list_del_rcu", obj, name), update)
    if missing:
        _corrupt(f"list_del corruption: {type(entry).__name__} is not on {type(obj).__name__}.{name}")


def list_for_each_entry_rcu(obj: Any, name: str, cond: bool = False) -> Iterator[Any]:
    """``list_for_each_entry_rcu(pos, &obj->name, member, cond)``: one ``->next`` load per step.

    Legal inside rcu_read_lock() (or any non-preemptible region), or when ``cond`` holds.
    """
    ex = runtime.current
    if ex is None or not obj._kc_num:
        yield from list(obj.__dict__[name] or [])
        return
    label = _label("list_for_each_entry_rcu", obj, name)
    f = field_of(obj, name)
    _check(cond or rcu_read_lock_any_held(), f"RCU-list traversed in non-reader section: {label}")
    meta = _meta(obj, name)
    prev: Any = None
    while True:
        lst = access(obj, f, False, True, what=label) or []
        if prev is not None and getattr(prev, "_kc_freed", None) is not None:
            kasan.report_freed(prev, "next", False)  # the ->next of a freed entry
        if prev is None:
            nxt = lst[0] if lst else _END
        else:
            i = _index(lst, prev)
            if i >= 0:
                nxt = lst[i + 1] if i + 1 < len(lst) else _END
            else:
                nxt = meta.next_of_deleted.get(id(prev), _END)
        if nxt is _END:
            return
        c = meta.published.get(id(nxt))
        if c is not None and ex.k.kcsan_on:
            t = ex.current
            assert t is not None
            t.vc = vc_join(t.vc, c)
        yield nxt
        prev = nxt


def list_first_or_null_rcu(obj: Any, name: str) -> Any:
    """``list_first_or_null_rcu(&obj->name, type, member)``."""
    for entry in list_for_each_entry_rcu(obj, name):
        return entry
    return None


def list_empty_rcu(obj: Any, name: str) -> bool:
    """``list_empty_rcu``-style check (``list_empty()`` of an RCU list is a marked load of ->next)."""
    from kvmcheck.kernel.struct import READ_ONCE

    return not READ_ONCE(obj, name)
