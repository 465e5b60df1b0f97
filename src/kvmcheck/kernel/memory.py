"""Allocation and kernel mappings: kmalloc/kzalloc/kfree, kmap/kunmap, memremap/memunmap.

``kmalloc(Type, **fields)`` builds an instrumented object and remembers it
for kmemleak: at the end of a complete execution, an allocation that was
neither freed nor reachable from a statically allocated object (one built
with ``Type(...)``, not kmalloc) is a leak -- "kmemleak: unreferenced object".

Kernel mappings follow x86-64 (no CONFIG_HIGHMEM), as in
include/linux/highmem-internal.h and kernel/iomem.c (v6.8):

* ``kmap(page)`` of a pfn that has a struct page is ``page_address(page)``:
  the page's address in the direct map, which exists for as long as the
  machine does.  ``kunmap(page)`` does nothing (x86 has no
  ARCH_HAS_FLUSH_ON_KUNMAP).  So there is no "use after kunmap": what goes
  wrong with such a pointer is a use-after-free of the *page*, once its last
  reference is dropped and it goes back to the allocator (KASAN reports the
  access to the page, not to the mapping).
* ``memremap(pfn)`` of a pfn with no struct page (``!pfn_valid()``) builds a
  new mapping (an ioremap/vmap area); ``memunmap()`` tears it down, and any
  later access through it is a use-after-unmap (in the kernel: a page fault on
  a valid-looking kernel address).
"""

from __future__ import annotations

from typing import Any, TypeVar

from kvmcheck._engine import runtime
from kvmcheck.kernel import kasan
from kvmcheck.kernel._core import bug, site_here
from kvmcheck.kernel.context import might_sleep_check
from kvmcheck.kernel.struct import Struct

__all__ = [
    "KernelMapping",
    "kfree",
    "kmalloc",
    "kmap",
    "kmemleak_not_leak",
    "kunmap",
    "kzalloc",
    "memremap",
    "memunmap",
]

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
    """A kernel virtual address of one page (``void *khva``): a direct-map address or a memremap.

    ``page`` is what the address reaches: the struct page (direct map) or the
    object standing for memory without a struct page (memremap); ``mem``
    stands for bytes read and written through a memremap mapping.
    """

    pfn: int = 0
    mem: int = 0
    page: Any = None

    def _kc_label(self) -> str:
        return f"khva[pfn {self.__dict__['pfn']}]"


def page_address(page: Any) -> KernelMapping:
    """``page_address()``: the page's direct-map address -- one per page, never unmapped."""
    m: KernelMapping | None = page.__dict__.get("_kc_direct_map")
    if m is None:
        m = KernelMapping(pfn=getattr(page, "pfn", 0), page=page)
        m.__dict__["_kc_direct"] = True
        page.__dict__["_kc_direct_map"] = m
    return m


def kmap(page: Any) -> KernelMapping:
    """``kmap()`` without CONFIG_HIGHMEM: might_sleep(), then page_address(page)."""
    _might_sleep("kmap()")
    return page_address(page)


def kunmap(page: Any) -> None:
    """``kunmap()`` without CONFIG_HIGHMEM: nothing to undo on x86-64 (the direct map stays).

    Takes the struct page, as in C; passing the address (a KernelMapping) is a
    model bug and fails loudly.
    """
    if isinstance(page, KernelMapping):
        raise TypeError("kunmap() takes the struct page (kunmap(pfn_to_page(pfn))), not the address")


def memremap(pfn: int, mem: Any = None) -> KernelMapping:
    """``memremap(pfn_to_hpa(pfn), PAGE_SIZE, MEMREMAP_WB)``: a new mapping; may sleep.

    ``mem`` is the memory behind it (an object with the fields the model reads).
    """
    _might_sleep("memremap()")
    m = kmalloc_mapping(pfn)
    m.__dict__["page"] = mem
    return m


def memunmap(m: KernelMapping) -> None:
    """``memunmap()``: tear the mapping down; any later access through it faults."""
    if m.__dict__.get("_kc_direct"):
        bug("double-free", "memunmap() of a direct-map address (kmap'ed page)", "BUG: KASAN: invalid-free")
    _unmap(m, "memunmap")


def _might_sleep(what: str) -> None:
    if runtime.current is not None and runtime.current.current is not None:
        might_sleep_check(what)


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
    reached = _reach(roots, {id(a) for a in allocs})
    for a in allocs:
        if id(a) not in reached:
            what = "mapping" if isinstance(a, KernelMapping) else "object"
            bug(
                "leak",
                f"unreferenced {what} {type(a).__name__} (allocated at {a.__dict__.get('_kc_kmalloc')}) "
                "was never freed",
                headline="kmemleak: 1 new suspected memory leak",
            )


# Values that hold no reference (skipped by the scan without being recorded).
_LEAVES = frozenset({int, str, bool, float, bytes, type(None)})


def _reach(roots: list[Any], want: set[int] | None = None) -> set[int]:
    """Ids of the objects reachable from ``roots`` (leaf values such as ints left out);
    with ``want``, the scan stops as soon as every id in it has been reached."""
    seen: set[int] = set()
    todo = list(roots)
    left = len(want) if want else -1
    leaves = _LEAVES
    while todo:
        o = todo.pop()
        if type(o) in leaves:
            continue
        i = id(o)
        if i in seen:
            continue
        seen.add(i)
        if want is not None and i in want:
            left -= 1
            if left == 0:
                return seen  # every object asked about is reached
        if isinstance(o, Struct):
            if o._kc_freed is not None:
                continue
            for k, v in o.__dict__.items():
                if type(v) not in leaves and not k.startswith("_kc_"):
                    todo.append(v)
        elif isinstance(o, (list, tuple, set, frozenset)):
            todo.extend(o)
        elif isinstance(o, dict):
            todo.extend(o.values())
    return seen
