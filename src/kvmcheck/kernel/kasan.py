"""KASAN: use-after-free, use-after-unmap, double-free, invalid free.

A freed object (kfree) or an unmapped kernel mapping (kunmap/memunmap)
keeps its identity; every later access through it is reported with the
sites of its allocation and of its free/unmap, as KASAN prints them.  Sites
are collected only while a counterexample is replayed for its report, so the
search itself stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kvmcheck._engine import runtime
from kvmcheck._engine.ops import FIELD_SLOTS, Op, object_key
from kvmcheck.kernel._core import Primitive, _task, _where, bug, site_here

if TYPE_CHECKING:
    from kvmcheck._engine.execution import Execution

__all__ = ["Freed", "check_free", "make_freeable", "mark_freed", "on_create", "report_freed"]


@dataclass
class Freed:
    how: str  # "kfree", "kunmap", "memunmap", "page freed"
    site: str  # where (only while tracing)
    thread: str


def on_create(ex: Execution, obj: Any) -> None:
    ex.k.objects.append(obj)
    if ex.tracing:
        obj.__dict__["_kc_alloc_site"] = site_here()


def mark_freed(obj: Any, how: str) -> None:
    """Free or unmap ``obj``: one visible step, exclusive on the whole object."""
    ex = runtime.current
    assert ex is not None
    assert ex.current is not None
    embed(obj, freeing=True)
    ex.visible(Op(object_key(obj._kc_num), True, f"{how}({obj._kc_label()})"))
    # Checked again *after* the step: a racing free granted in between is a double-free too.
    _check_not_freed(obj, how)
    site = site_here() if ex.tracing else "(site recorded on replay)"
    obj.__dict__["_kc_freed"] = Freed(how, site, ex.current.name)


def make_freeable(obj: Any) -> None:
    obj.__dict__["_kc_freeable"] = True
    embed(obj)


def embed(obj: Any, freeing: bool = False) -> None:
    """Primitives held in ``obj``'s attributes and fields are embedded in it (see Primitive).

    Called when ``obj`` becomes freeable (kmalloc, a kernel mapping) and again
    when it is freed, so a primitive built for it after the allocation is
    covered too.  Only a primitive that lives in no object yet is taken (one
    that does -- ``self.lock = other.lock`` -- is a pointer to another object's
    lock), only one that can be embedded (a workqueue is always a pointer), and
    at the free only one built after ``obj``.  Ops cached before the binding are
    dropped: they must carry the object's key from now on.
    """
    for k, v in obj.__dict__.items():
        if (
            isinstance(v, Primitive)
            and not k.startswith("_kc_")
            and v._kc_home is None
            and v.embeddable
            and (not freeing or v.key // FIELD_SLOTS > obj._kc_num)
        ):
            v._kc_home = obj
            if "_ops" in v.__dict__:
                v.__dict__["_ops"] = {}


def report_freed(obj: Any, field: str, write: bool) -> None:
    fr: Freed = obj._kc_freed
    name = f"{obj._kc_label()}->{field}"
    verb = "Write" if write else "Read"
    unmap = fr.how in ("kunmap", "memunmap", "vunmap")
    kind = "use-after-unmap" if unmap else "use-after-free"
    where = _where()
    headline = (
        f"BUG: unable to handle page fault for address: {obj._kc_label()} (unmapped by {fr.how})"
        if unmap
        else f"BUG: KASAN: use-after-free in {where.split(' ')[0] or name}"
    )
    details = [
        *([f"RIP: {where.split(' ')[0]}"] if unmap and where else []),
        f"{verb} of {name} by task {_task()}" + (f" at {where}" if where else ""),
        f"Allocated at: {obj.__dict__.get('_kc_alloc_site', '(see trace)')}",
        f"{'Unmapped' if unmap else 'Freed'} by task {fr.thread} ({fr.how}) at: {fr.site}",
    ]
    bug(kind, f"{verb.lower()} of {name} after {fr.how}", headline, details)


def check_free(obj: Any, how: str) -> None:
    """Before a free/unmap: a second one is a double-free."""
    if obj is None:
        return
    if not hasattr(obj, "_kc_freed"):
        bug("double-free", f"{how} of {obj!r}, which is not a tracked allocation", "BUG: KASAN: invalid-free")
    _check_not_freed(obj, how)


def _check_not_freed(obj: Any, how: str) -> None:
    fr = obj._kc_freed
    if fr is not None:
        where = _where() if how == "kfree" else ""  # KASAN names kfree()'s caller (its _RET_IP_)
        bug(
            "double-free",
            f"{how} of {type(obj).__name__} already released by {fr.how}",
            f"BUG: KASAN: double-free in {where.split(' ')[0] or how}",
            [f"first {fr.how} by task {fr.thread} at: {fr.site}"],
        )
