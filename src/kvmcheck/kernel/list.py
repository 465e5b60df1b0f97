"""``struct list_head``: the kernel's doubly linked list, with its poison values.

Follows include/linux/list.h, include/linux/rculist.h and
include/linux/poison.h (v5.11; unchanged in substance through v6.9).

A :class:`ListHead` is one ``struct list_head``: two pointer fields,
``next`` and ``prev``, each read and write a visible operation the checker
sees (KCSAN, the search's dependencies).  It is *embedded* in the Struct
that owns it, as in C, by wiring it in the owner's constructor::

    class KvmMmuPage(Struct):
        def __init__(self) -> None:
            super().__init__()
            self.link = ListHead(self, "link")    # struct list_head link;

``list_entry(lh)`` (``container_of``) is ``lh.owner``.  An embedded list
head lives and dies with its owner: once the owner is freed (kfree), every
access to its ``next``/``prev`` is a KASAN use-after-free, and the search
orders such an access against the free (the access also touches the owner
as a whole).  A standalone head (``LIST_HEAD(name)``) has no owner.

Pointer values are ``ListHead`` objects, or the poison integers:

* ``list_del(entry)`` unlinks it and writes ``LIST_POISON1``
  (``0xdead000000000100``) to ``entry->next`` and ``LIST_POISON2``
  (``0xdead000000000122``) to ``entry->prev`` (poison.h: "non-NULL pointers
  that will result in page faults under normal circumstances");
* ``list_del_rcu(entry)`` poisons only ``entry->prev`` (with
  ``LIST_POISON2``), keeping ``->next`` so a reader standing on the entry
  can go on;
* ``list_del_init(entry)`` re-initialises the entry to point at itself.

Following a poisoned pointer -- reading through it, writing through it, or
handing its ``container_of`` to the loop body -- is a finding of kind
``general-protection`` with the kernel's headline ("general protection
fault, probably for non-canonical address 0xdead000000000100: 0000 [#1]
SMP"), as on x86-64 where the poison values are non-canonical addresses.
The iterators raise it when they would hand the body ``container_of(poison)``:
in C the comparison with the head does not dereference, but every loop body
in the modelled code does, so the fault is one step later at the latest.

Iterators are generators that read one link per step, so the search can
interleave a walk with a concurrent ``list_del`` (under whatever lock the
model holds -- or does not hold, across a ``cond_resched_lock``):

* ``list_for_each_entry(head)`` reads ``pos->next`` *after* the body ran on
  ``pos`` (the macro's step expression), so a body that freed ``pos``
  makes the walk read freed memory;
* ``list_for_each_entry_safe(head)`` reads ``n = pos->next`` *before* the
  body and steps to the cached ``n`` afterwards, so a body that frees
  ``pos`` is fine, but an ``n`` freed meanwhile by someone else is read
  after the free.

RCU forms (rculist.h): ``list_add_rcu``/``list_add_tail_rcu`` publish the
new entry with a release store of ``prev->next`` (``rcu_assign_pointer``);
``list_for_each_entry_rcu``, ``list_next_or_null_rcu`` and
``list_first_or_null_rcu`` read ``->next`` with ``rcu_dereference`` (an
acquire load) and, as CONFIG_PROVE_RCU does, warn outside
``rcu_read_lock()`` unless the caller's ``cond`` holds.  These take
``ListHead`` arguments; the ``list_*_rcu`` functions of ``kvmcheck.kernel``
(kernel/rcu.py) are the same operations on a Python-list-valued field, a
representation without addresses and so without poison.  Use one or the
other for a given list.

Not modelled: CONFIG_DEBUG_LIST's validity checks (``__list_add_valid``,
``__list_del_entry_valid``) -- a corrupted list shows up here as the fault
the non-debug kernel takes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kvmcheck._engine import runtime
from kvmcheck._engine.clock import vc_get, vc_join, vc_tick
from kvmcheck._engine.ops import FIELD_SLOTS, WHOLE, Op, object_key
from kvmcheck.kernel import kasan, kcsan
from kvmcheck.kernel._core import bug, creation
from kvmcheck.kernel.cfunction import c_function_site
from kvmcheck.kernel.rcu import _check, rcu_read_lock_any_held
from kvmcheck.kernel.struct import Field, FieldState, Struct

LIST_POISON1 = 0xDEAD000000000100  # POISON_POINTER_DELTA (0xdead000000000000 on x86-64) + 0x100
LIST_POISON2 = 0xDEAD000000000122  # ... + 0x122

GPF_KIND = "general-protection"


class _LinkField(Field):
    """A ``next``/``prev`` field of a list_head: every access goes through :func:`_link`."""

    __slots__ = ()

    def __get__(self, obj: Any, cls: Any = None) -> Any:
        if obj is None:
            return self
        return _link(obj, self, False)

    def __set__(self, obj: Any, value: Any) -> None:
        _link(obj, self, True, value)


class ListHead(Struct):
    """``struct list_head``: ``next`` and ``prev``, embedded in ``owner`` (or standalone)."""

    next: Any = None
    prev: Any = None

    def __init__(self, owner: Struct | None = None, member: str = "list") -> None:
        super().__init__()
        self.__dict__["owner"] = owner  # container_of: immutable wiring, not shared memory
        self.__dict__["member"] = member
        ex = runtime.current
        if owner is not None and ex is not None and ex.k.objects and ex.k.objects[-1] is self:
            ex.k.objects.pop()  # part of its owner: reached (kmemleak) through the owner only
        # INIT_LIST_HEAD at definition time (a C initialiser; not shared yet)
        self.__dict__["next"] = self
        self.__dict__["prev"] = self

    @property
    def owner(self) -> Struct | None:
        """The struct this list_head is embedded in (``container_of``), or None."""
        return self.__dict__["owner"]  # type: ignore[no-any-return]

    @property
    def member(self) -> str:
        return self.__dict__["member"]  # type: ignore[no-any-return]

    def _kc_label(self) -> str:
        o = self.__dict__["owner"]
        if o is None:
            return str(self.__dict__["member"])
        return f"{o._kc_label()}->{self.__dict__['member']}"

    def __repr__(self) -> str:
        return f"<list_head {self._kc_label()}>"


for _i, _name in enumerate(("next", "prev")):
    _f = _LinkField("ListHead", _name, _i)
    setattr(ListHead, _name, _f)
    ListHead._kc_fields[_name] = _f


def LIST_HEAD(name: str | None = None) -> ListHead:
    """``LIST_HEAD(name)``: an initialised list head (embedded when kept in a struct).

    Built in a method of a Struct as ``self.items = LIST_HEAD()`` (``struct
    list_head items;`` with ``INIT_LIST_HEAD(&obj->items)``), the head is part
    of that object, as in C: it dies with it (KASAN), and for kmemleak what is
    reachable only through it is reachable only through the object.  Anywhere
    else it is a standalone head (a global ``LIST_HEAD(name)``).
    """
    c, owner = creation()
    member = name
    target = c.target or ""
    if owner is not None and hasattr(type(owner), "_kc_fields") and "." in target and "->" not in target:
        return ListHead(owner, member or target.rsplit(".", 1)[1])  # self.<member> = LIST_HEAD()
    return ListHead(None, member or c.target or "list")


# -- the one access path of list_head fields -------------------------------------------------------
def _link(
    lh: ListHead,
    f: Field,
    write: bool,
    value: Any = None,
    what: str | None = None,
    marked: bool = False,
    release: bool = False,
    acquire: bool = False,
) -> Any:
    """One visible access to ``lh->next`` or ``lh->prev``.

    The operation's second key is the owner's whole-object key, so that a
    free of the owner is dependent with it; an access after the owner's free
    is a KASAN use-after-free.
    """
    ex = runtime.current
    d = lh.__dict__
    if ex is None or not d["_kc_num"]:
        if write:
            d[f.name] = value
            return None
        return d[f.name]
    owner = d["owner"]
    key = object_key(d["_kc_num"], f.index)
    whole = owner._kc_num * FIELD_SLOTS + WHOLE if owner is not None and owner._kc_freeable else -1
    if ex.tracing:
        label = f"{what or ('write' if write else 'read')} {lh._kc_label()}.{f.name}"
    else:
        label = what or (f.wlabel if write else f.rlabel)
    ex.visible(Op(key, write, label, None, None, whole, FieldState(lh, f.name) if write else None))
    if ex.k.weak is not None:  # LKMM exploration: a list link is a fully ordered sync (kernel/barrier.py)
        ex.k.weak.link(ex, key)
    if owner is not None and owner._kc_freed is not None:
        _report_freed_link(owner, f"{d['member']}.{f.name}", write, d[f.name])
    t = ex.current
    assert t is not None
    if ex.k.kcsan_on:
        kcsan.on_access(ex, t, key, lh, f.name, write, marked)
        if release and write:
            ex.k.rel[key] = (t.vc[:], t.tid, vc_get(t.vc, t.tid))
            vc_tick(t.vc, t.tid)
        elif acquire and not write:
            rel = ex.k.rel.get(key)
            rec = ex.k.kcsan.get(key)
            w = rec[0] if rec is not None else None
            if rel is not None and w is not None and w[0] == rel[1] and w[1] == rel[2]:
                t.vc = vc_join(t.vc, rel[0])
    if write:
        d[f.name] = value
        return None
    return d[f.name]


def _report_freed_link(owner: Any, field: str, write: bool, stale: Any) -> None:
    """KASAN's use-after-free report for a list_head of a freed struct, saying what a kernel
    without KASAN would have read there (a list_del()'ed entry holds the poison)."""
    if write or not is_poison(stale):
        kasan.report_freed(owner, field, write)
    fr = owner._kc_freed
    name = f"{owner._kc_label()}->{field}"
    where = c_function_site(1) if runtime.current is not None and runtime.current.tracing else ""
    what = "LIST_POISON1" if stale == LIST_POISON1 else "LIST_POISON2"
    ex = runtime.current
    task = ex.current.name if ex is not None and ex.current is not None else "?"
    bug(
        "use-after-free",
        f"read of {name} after {fr.how}",
        f"BUG: KASAN: use-after-free in {where.split(' ')[0] or name}",
        [
            f"Read of {name} by task {task}" + (f" at {where}" if where else ""),
            f"Allocated at: {owner.__dict__.get('_kc_alloc_site', '(see trace)')}",
            f"Freed by task {fr.thread} ({fr.how}) at: {fr.site}",
            f"The freed memory still holds {what} ({stale:#018x}) from list_del(): without KASAN the "
            f'load returns it and the next dereference is "general protection fault, probably for '
            f'non-canonical address {stale:#018x}: 0000 [#1] SMP"',
        ],
    )


_NEXT: Field = ListHead._kc_fields["next"]
_PREV: Field = ListHead._kc_fields["prev"]


def _read(lh: Any, f: Field, what: str | None = None, marked: bool = False, acquire: bool = False) -> Any:
    return _link(_deref(lh, f"{what or 'read'} ->{f.name}"), f, False, None, what, marked, acquire=acquire)


def _write(
    lh: Any, f: Field, value: Any, what: str | None = None, marked: bool = False, release: bool = False
) -> None:
    how = f"{what or 'write'} ->{f.name}"
    _link(_deref(lh, how), f, True, value, what, marked=marked or release, release=release)


def is_poison(p: Any) -> bool:
    return isinstance(p, int) and not isinstance(p, bool)


def _deref(p: Any, how: str) -> ListHead:
    """The list_head ``p`` points to, or the fault of following a poisoned (or NULL) pointer."""
    if isinstance(p, ListHead):
        return p
    gpf(p, how)
    raise AssertionError("unreachable")  # pragma: no cover - gpf() does not return


def gpf(addr: Any, how: str) -> None:
    """Dereferencing a non-canonical (poisoned) address: general protection fault, an oops."""
    if addr is None:
        bug(
            "null-deref",
            f"{how}: NULL list pointer (list_head never initialised)",
            "BUG: kernel NULL pointer dereference, address: 0000000000000000",
        )
    where = c_function_site(1) if runtime.current is not None and runtime.current.tracing else ""
    name = {LIST_POISON1: "LIST_POISON1", LIST_POISON2: "LIST_POISON2"}.get(addr, "a poison value")
    bug(
        GPF_KIND,
        f"{how}: followed {name} ({addr:#018x}), the pointer list_del() leaves in a deleted entry",
        f"general protection fault, probably for non-canonical address {addr:#018x}: 0000 [#1] SMP",
        [f"RIP: {where.split(' ')[0]}"] if where else [],
    )


def _entry(p: Any, how: str) -> Any:
    """``list_entry(p)`` handed to a loop body: the owner, or the fault of a poisoned pointer."""
    lh = _deref(p, how)
    return lh.__dict__["owner"] if lh.__dict__["owner"] is not None else lh


# -- initialisation, add, delete ---------------------------------------------------------------------
def INIT_LIST_HEAD(lh: ListHead) -> None:
    """``INIT_LIST_HEAD(list)``: WRITE_ONCE(list->next, list); list->prev = list."""
    _link(lh, _NEXT, True, lh, "WRITE_ONCE", marked=True)
    _link(lh, _PREV, True, lh)


def _list_add(new: ListHead, prev: Any, nxt: Any, rcu: bool) -> None:
    """``__list_add(new, prev, next)`` / ``__list_add_rcu``: link ``new`` between two entries."""
    _write(nxt, _PREV, new)
    _link(new, _NEXT, True, nxt)
    _link(new, _PREV, True, prev)
    if rcu:
        _write(prev, _NEXT, new, "rcu_assign_pointer", release=True)  # publishes new
    else:
        _write(prev, _NEXT, new, "WRITE_ONCE", marked=True)


def list_add(new: ListHead, head: ListHead) -> None:
    """``list_add(new, head)``: insert ``new`` right after ``head`` (a stack)."""
    _list_add(new, head, _read(head, _NEXT), rcu=False)


def list_add_tail(new: ListHead, head: ListHead) -> None:
    """``list_add_tail(new, head)``: insert ``new`` right before ``head`` (a queue)."""
    _list_add(new, _read(head, _PREV), head, rcu=False)


def list_add_rcu(new: ListHead, head: ListHead) -> None:
    """``list_add_rcu(new, head)`` (rculist.h): as list_add, publishing ``new`` to RCU readers."""
    _list_add(new, head, _read(head, _NEXT), rcu=True)


def list_add_tail_rcu(new: ListHead, head: ListHead) -> None:
    """``list_add_tail_rcu(new, head)`` (rculist.h)."""
    _list_add(new, _read(head, _PREV), head, rcu=True)


def __list_del_entry(entry: ListHead) -> None:
    """``__list_del(entry->prev, entry->next)``: next->prev = prev; WRITE_ONCE(prev->next, next)."""
    prev = _link(entry, _PREV, False)
    nxt = _link(entry, _NEXT, False)
    _write(nxt, _PREV, prev)
    _write(prev, _NEXT, nxt, "WRITE_ONCE", marked=True)


def list_del(entry: ListHead) -> None:
    """``list_del(entry)``: unlink, then poison ->next (LIST_POISON1) and ->prev (LIST_POISON2)."""
    __list_del_entry(entry)
    _link(entry, _NEXT, True, LIST_POISON1)
    _link(entry, _PREV, True, LIST_POISON2)


def list_del_init(entry: ListHead) -> None:
    """``list_del_init(entry)``: unlink and re-initialise (the entry points to itself)."""
    __list_del_entry(entry)
    INIT_LIST_HEAD(entry)


def list_del_rcu(entry: ListHead) -> None:
    """``list_del_rcu(entry)`` (rculist.h): unlink, poison only ->prev; ->next stays for readers.

    Free the entry only after a grace period (call_rcu, synchronize_rcu).
    """
    __list_del_entry(entry)
    _link(entry, _PREV, True, LIST_POISON2)


# -- queries ---------------------------------------------------------------------------------------
def list_empty(head: ListHead) -> bool:
    """``list_empty(head)``: READ_ONCE(head->next) == head."""
    return _link(head, _NEXT, False, None, "READ_ONCE", marked=True) is head


def list_first_entry(head: ListHead) -> Any:
    """``list_first_entry(head, type, member)``: the first entry (on an empty list: the head's)."""
    return _entry(_read(head, _NEXT), "list_first_entry")


def list_first_entry_or_null(head: ListHead) -> Any:
    """``list_first_entry_or_null(head, type, member)``."""
    p = _link(head, _NEXT, False, None, "READ_ONCE", marked=True)
    return None if p is head else _entry(p, "list_first_entry_or_null")


def list_entry(p: Any) -> Any:
    """``list_entry(ptr, type, member)`` (container_of): the owner of the list_head ``p``.

    A standalone head has no owner: its "entry" is the head itself, which is
    what ``list_entry_is_head`` recognises.  A poisoned ``p`` faults.
    """
    return _entry(p, "list_entry")


def list_entry_is_head(pos: Any, head: ListHead) -> bool:
    """``list_entry_is_head(pos, head, member)``: ``&pos->member == head`` (no dereference)."""
    return pos is head or (head.owner is not None and pos is head.owner)


def list_next_entry(entry: Any, member: str = "link") -> Any:
    """``list_next_entry(pos, member)``: container_of(pos->member.next); may be the head's entry."""
    lh = entry if isinstance(entry, ListHead) else getattr(entry, member)
    return _entry(_read(lh, _NEXT, "list_next_entry"), "list_next_entry")


# -- iterators -------------------------------------------------------------------------------------
def list_for_each(head: ListHead) -> Iterator[ListHead]:
    """``list_for_each(pos, head)``: the list_heads themselves, one ``->next`` read per step."""
    pos = _read(head, _NEXT, "list_for_each")
    while pos is not head:
        yield _deref(pos, "list_for_each")
        pos = _read(pos, _NEXT, "list_for_each")


def list_for_each_entry(head: ListHead) -> Iterator[Any]:
    """``list_for_each_entry(pos, head, member)``: ``pos->member.next`` is read after the body."""
    pos = _read(head, _NEXT, "list_for_each_entry")
    while pos is not head:
        yield _entry(pos, "list_for_each_entry")
        pos = _read(pos, _NEXT, "list_for_each_entry")


def list_for_each_entry_safe(head: ListHead) -> Iterator[Any]:
    """``list_for_each_entry_safe(pos, n, head, member)``: ``n`` is read before the body runs.

    The body may delete (and free) ``pos``; the walk steps to the cached
    ``n`` and reads ``n->member.next`` -- which is a use-after-free if
    another thread freed ``n`` while the body ran (a lock dropped in it).
    """
    pos = _read(head, _NEXT, "list_for_each_entry_safe")
    n = _read(pos, _NEXT, "list_for_each_entry_safe")
    while pos is not head:
        yield _entry(pos, "list_for_each_entry_safe")
        pos = n
        n = _read(pos, _NEXT, "list_for_each_entry_safe")


def _rcu_next(p: ListHead, cond: bool, fn: str) -> Any:
    v = _read(p, _NEXT, f"rcu_dereference {fn}", marked=True, acquire=True)
    if runtime.current is not None:
        _check(cond or rcu_read_lock_any_held(), f"suspicious RCU usage: {fn}() outside rcu_read_lock()")
    return v


def list_for_each_entry_rcu(head: ListHead, cond: bool = False) -> Iterator[Any]:
    """``list_for_each_entry_rcu(pos, head, member, cond)``: each ``->next`` an rcu_dereference."""
    pos = _rcu_next(head, cond, "list_for_each_entry_rcu")
    while pos is not head:
        yield _entry(pos, "list_for_each_entry_rcu")
        pos = _rcu_next(pos, cond, "list_for_each_entry_rcu")


def list_next_or_null_rcu(head: ListHead, p: ListHead, cond: bool = False) -> Any:
    """``list_next_or_null_rcu(head, ptr, type, member)``: the entry after ``p``, or None at the end."""
    nxt = _rcu_next(p, cond, "list_next_or_null_rcu")
    return None if nxt is head else _entry(nxt, "list_next_or_null_rcu")


def list_first_or_null_rcu(head: ListHead, cond: bool = False) -> Any:
    """``list_first_or_null_rcu(head, type, member)`` on a ListHead."""
    return list_next_or_null_rcu(head, head, cond)


# kvmcheck.kernel's part, re-exported whole.  Out of it, imported from kvmcheck.kernel.list by
# name: the ListHead forms of the RCU list functions (kvmcheck.kernel's are rculist.py's), gpf.
__all__ = [
    "INIT_LIST_HEAD",
    "LIST_HEAD",
    "LIST_POISON1",
    "LIST_POISON2",
    "ListHead",
    "list_add",
    "list_add_tail",
    "list_del",
    "list_del_init",
    "list_empty",
    "list_entry",
    "list_entry_is_head",
    "list_first_entry",
    "list_first_entry_or_null",
    "list_for_each",
    "list_for_each_entry",
    "list_for_each_entry_safe",
    "list_next_entry",
    "list_next_or_null_rcu",
]
