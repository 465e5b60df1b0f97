"""RCU-protected lists (include/linux/rculist.h): list_add_rcu, list_del_rcu,
list_for_each_entry_rcu.

One list model for list.h and rculist.h: every function here also takes the
``struct list_head`` form of kernel/list.py (``list_add_rcu(&new->link,
&obj->items)`` is ``list_add_rcu(new.link, obj.items)``), so a list of
``ListHead`` s switched to RCU changes only the calls, never the data layout --
exactly as in C.  The forms below taking ``(obj, "field")`` are a second,
older representation (a Python list in a Struct field, no addresses, no
poison); use one or the other for a given list.

Lists: a Python-list-valued Struct field is an RCU-protected list.
``list_add_rcu``/``list_add_tail_rcu``/``list_del_rcu`` are one exclusive
step each (a marked store for readers; for KCSAN also a plain write of the
writers' side of the list, so two updaters without a lock race);
``list_for_each_entry_rcu`` reads one ``->next`` pointer per step with the
pointer semantics of the kernel's list: a reader standing on an entry that
was deleted goes on from the successor that entry had when it was deleted.
Each entry is published by the ``list_add_rcu`` that added it, and a reader
reaching it acquires that.

"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from kvmcheck._engine import runtime
from kvmcheck._engine.clock import Clock, vc_join, vc_tick
from kvmcheck._engine.execution import Thread
from kvmcheck._engine.finding import UsageError
from kvmcheck._engine.ops import object_key
from kvmcheck.kernel import kasan, kcsan
from kvmcheck.kernel import list as lh
from kvmcheck.kernel._core import warn
from kvmcheck.kernel.rcu import _check, _label, rcu_read_lock_any_held
from kvmcheck.kernel.struct import READ_ONCE, access, field_of

__all__ = [
    "list_add_rcu",
    "list_add_tail_rcu",
    "list_del_rcu",
    "list_empty_rcu",
    "list_first_or_null_rcu",
    "list_for_each_entry_rcu",
]

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


def _heads(*args: Any) -> bool:
    return all(isinstance(a, lh.ListHead) for a in args)


def list_add_rcu(new: Any, obj: Any, name: str | None = None) -> None:
    """``list_add_rcu(&new->list, &obj->name)``: add at the head, publishing ``new``."""
    if name is None and _heads(new, obj):
        return lh.list_add_rcu(new, obj)
    _add(new, obj, _name(name, "list_add_rcu"), tail=False)
    return None


def list_add_tail_rcu(new: Any, obj: Any, name: str | None = None) -> None:
    """``list_add_tail_rcu(&new->list, &obj->name)``: add at the tail, publishing ``new``."""
    if name is None and _heads(new, obj):
        return lh.list_add_tail_rcu(new, obj)
    _add(new, obj, _name(name, "list_add_tail_rcu"), tail=True)
    return None


def _name(name: str | None, fn: str) -> str:
    if name is None:
        raise UsageError(f"{fn}() takes two list_heads (ListHead), or an entry, an object and a field name")
    return name


def list_del_rcu(entry: Any, obj: Any = None, name: str | None = None) -> None:
    """``list_del_rcu(&entry->list)``: unlink it; readers standing on it still find its successor.

    Free it only after a grace period (synchronize_rcu, kfree_rcu, call_rcu).
    """
    if obj is None and _heads(entry):
        return lh.list_del_rcu(entry)
    name = _name(name, "list_del_rcu")
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
    return None


def list_for_each_entry_rcu(obj: Any, name: Any = None, cond: bool = False) -> Iterator[Any]:
    """``list_for_each_entry_rcu(pos, &obj->name, member, cond)``: one ``->next`` load per step.

    Legal inside rcu_read_lock() (or any non-preemptible region), or when ``cond`` holds.
    """
    if not isinstance(name, str) and _heads(obj):  # (head, cond)
        yield from lh.list_for_each_entry_rcu(obj, bool(name) or cond)
        return
    name = _name(name, "list_for_each_entry_rcu")
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


def list_first_or_null_rcu(obj: Any, name: Any = None) -> Any:
    """``list_first_or_null_rcu(&obj->name, type, member)``."""
    if not isinstance(name, str) and _heads(obj):
        return lh.list_first_or_null_rcu(obj, bool(name))
    for entry in list_for_each_entry_rcu(obj, _name(name, "list_first_or_null_rcu")):
        return entry
    return None


def list_empty_rcu(obj: Any, name: str | None = None) -> bool:
    """``list_empty_rcu``-style check (``list_empty()`` of an RCU list is a marked load of ->next)."""
    if name is None and _heads(obj):
        return lh.list_empty(obj)
    return not READ_ONCE(obj, _name(name, "list_empty_rcu"))
