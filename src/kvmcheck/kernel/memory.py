"""Allocation and kernel mappings: kmalloc/kzalloc/kfree, kmap/kunmap, memremap/memunmap.

``kmalloc(Type, **fields)`` builds an instrumented object and remembers it
for kmemleak: at the end of a complete execution, an allocation that was
neither freed nor reachable from a statically allocated object (one built
with ``Type(...)``, not kmalloc) is a leak -- "kmemleak: unreferenced object".

A kernel mapping is an object of its own: ``kunmap``/``memunmap`` retire it,
and any later access through it is a use-after-unmap (in the kernel: a page
fault on a valid-looking kernel address).
"""

from __future__ import annotations

from typing import Any, TypeVar

from kvmcheck._engine import runtime
from kvmcheck.kernel import kasan
from kvmcheck.kernel._core import bug, site_here
from kvmcheck.kernel.struct import Struct

T = TypeVar("T", bound=Struct)


def kmalloc(cls: type[T], **fields: Any) -> T:
    """kmalloc(Type, **fields): allocate an instrumented object (freeable, checked by kmemleak)."""
    obj = cls(**fields)
    kasan.make_freeable(obj)
    ex = runtime.current
    if ex is not None:
        ex.k.allocs.append(obj)
        obj.__dict__["_kc_kmalloc"] = site_here() if ex.tracing else "(site recorded on replay)"
    return obj


def kzalloc(cls: type[T], **fields: Any) -> T:
    """kmalloc with every field not given set to its zero value (the field's default)."""
    return kmalloc(cls, **fields)


def kfree(obj: Any) -> None:
    """kfree(obj): free a kmalloc'ed object; later uses of it or of what it embeds are use-after-free."""
    if obj is None:
        return
    if "_kc_kmalloc" not in getattr(obj, "__dict__", {}):
        bug(
            "double-free",
            f"kfree() of {type(obj).__name__}, which was not kmalloc'ed",
            "BUG: KASAN: invalid-free",
        )
    kasan.check_free(obj, "kfree")
    kasan.mark_freed(obj, "kfree")


def kmemleak_not_leak(obj: Any) -> None:
    """kmemleak_not_leak(obj): tell kmemleak this allocation is not a leak."""
    obj.__dict__["_kc_not_leak"] = True


class KernelMapping(Struct):
    """A kernel virtual mapping of one page (kmap / memremap result, ``void *khva``).

    ``mem`` stands for the mapped bytes the model reads and writes through
    the mapping (e.g. vcpu_info->evtchn_upcall_pending).
    """

    pfn: int = 0
    mem: int = 0
    page: Any = None  # the struct page behind it (None for memremap of a non-page pfn)

    def _kc_label(self) -> str:
        return f"khva[pfn {self.__dict__['pfn']}]"


def kmap(page: Any) -> KernelMapping:
    m = kmalloc_mapping(getattr(page, "pfn", 0))
    m.__dict__["page"] = page
    return m


def kunmap(m: KernelMapping) -> None:
    _unmap(m, "kunmap")


def memremap(pfn: int) -> KernelMapping:
    return kmalloc_mapping(pfn)


def memunmap(m: KernelMapping) -> None:
    _unmap(m, "memunmap")


def kmalloc_mapping(pfn: int) -> KernelMapping:
    m = KernelMapping(pfn=pfn)
    kasan.make_freeable(m)
    ex = runtime.current
    if ex is not None:
        ex.k.allocs.append(m)
        site = site_here() if ex.tracing else "(site recorded on replay)"
        m.__dict__["_kc_kmalloc"] = site
        m.__dict__["_kc_alloc_site"] = site
    return m


def _unmap(m: KernelMapping, how: str) -> None:
    kasan.check_free(m, how)
    kasan.mark_freed(m, how)


# -- kmemleak ---------------------------------------------------------------------
def kmemleak_scan(ex: Any) -> None:
    """End-of-execution leak scan (registered as an end hook)."""
    allocs = [a for a in ex.k.allocs if a._kc_freed is None and not a.__dict__.get("_kc_not_leak")]
    if not allocs:
        return
    alloc_ids = {id(a) for a in ex.k.allocs}
    roots = [o for o in ex.k.objects if id(o) not in alloc_ids]
    roots += [a for a in ex.k.allocs if a.__dict__.get("_kc_not_leak")]
    reached = _reach(roots)
    for a in allocs:
        if id(a) not in reached:
            what = "mapping" if isinstance(a, KernelMapping) else "object"
            bug(
                "leak",
                f"unreferenced {what} {type(a).__name__} (allocated at {a.__dict__.get('_kc_kmalloc')}) "
                "was never freed",
                headline="kmemleak: 1 new suspected memory leak",
            )


def _reach(roots: list[Any]) -> set[int]:
    seen: set[int] = set()
    todo = list(roots)
    while todo:
        o = todo.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        if isinstance(o, Struct):
            if o._kc_freed is not None:
                continue
            todo.extend(v for k, v in o.__dict__.items() if not k.startswith("_kc_"))
        elif isinstance(o, (list, tuple, set, frozenset)):
            todo.extend(o)
        elif isinstance(o, dict):
            todo.extend(o.values())
    return seen
