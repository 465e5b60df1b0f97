"""mm/kasan/kasan_test_c.c (KUnit), case by case.

Source: mm/kasan/kasan_test_c.c as stored for torvalds/linux (commit 08c51f5bddc8..., the version
with rust_uaf and copy_to_kernel_nofault_oob), its ``kasan_kunit_test_cases[]``: every
``KUNIT_CASE`` in order.  A case whose body runs ``KUNIT_EXPECT_KASAN_FAIL`` expects a KASAN
report ("bug"); the few that only check nothing is reported (kfree_via_page, kfree_via_phys,
kmem_cache_accounted, kmem_cache_bulk) expect "ok".

kvmcheck's objects have identity, not bytes: a freed object stays freed and every later access to
it is reported.  So the use-after-free and double-free cases are modelled; everything that
depends on byte offsets (out-of-bounds by an index, memset/memmove/memchr lengths, redzones,
tags, alignment), on allocators kvmcheck does not have (the page allocator, kmem_cache, mempool,
vmalloc, krealloc, ksize) or on other languages (Rust) is listed as not applicable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kvmcheck.kernel import (
    INIT_WORK,
    Struct,
    Work,
    alloc_workqueue,
    call_rcu,
    destroy_workqueue,
    kfree,
    kmalloc,
    queue_work,
    rcu_barrier,
)
from tests.conformance.case import KernelCase
from tests.conformance.conformance_table import assert_agrees

SUITE = "mm/kasan/kasan_test_c.c"


class Buf(Struct):
    """A kmalloc'ed buffer: ``data`` stands for the bytes the test reads or writes."""

    data: int = 0


class RcuInfo(Struct):
    """``struct kasan_rcu_info`` (an int and its rcu_head)."""

    i: int = 0


class WorkBuf(Struct):
    """The kmalloc'ed ``struct work_struct`` of workqueue_uaf; ``data`` is its data word."""

    data: int = 0

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.work = Work()


def kmalloc_large_uaf() -> None:
    """kmalloc(KMALLOC_MAX_CACHE_SIZE + 10); kfree(); read ptr[0]: use-after-free."""
    ptr = kmalloc(Buf)
    kfree(ptr)
    _ = ptr.data


def kmalloc_uaf_16() -> None:
    """Two 16-byte objects; kfree(ptr2); *ptr1 = *ptr2 reads freed memory."""
    ptr1, ptr2 = kmalloc(Buf), kmalloc(Buf)
    kfree(ptr2)
    ptr1.data = ptr2.data
    kfree(ptr1)


def kmalloc_uaf() -> None:
    """kmalloc(10); kfree(); read ptr[8]: use-after-free."""
    ptr = kmalloc(Buf)
    kfree(ptr)
    _ = ptr.data


def kmalloc_uaf_memset() -> None:
    """kmalloc(33); kfree(); memset(ptr, 0, size): a write to freed memory."""
    ptr = kmalloc(Buf)
    kfree(ptr)
    ptr.data = 0


def kmalloc_uaf2() -> None:
    """kfree(ptr1); ptr2 = kmalloc(); read ptr1[40]: the freed object, not the new one."""
    ptr1 = kmalloc(Buf)
    kfree(ptr1)
    ptr2 = kmalloc(Buf)
    _ = ptr1.data
    kfree(ptr2)


def kmalloc_uaf3() -> None:
    """kfree(ptr1); ptr2 = kmalloc(); kfree(ptr2); read ptr1[8]."""
    ptr1 = kmalloc(Buf)
    kfree(ptr1)
    ptr2 = kmalloc(Buf)
    kfree(ptr2)
    _ = ptr1.data


def kmalloc_double_kzfree() -> None:
    """kfree_sensitive(ptr) twice (kfree_sensitive is kfree after zeroing): double free."""
    ptr = kmalloc(Buf)
    ptr.data = 0
    kfree(ptr)
    ptr.data = 0  # the second kfree_sensitive() zeroes first: KASAN reports that write already
    kfree(ptr)


def rcu_uaf() -> None:
    """call_rcu() of a callback that kfree()s the object and then reads it; rcu_barrier()."""
    ptr = kmalloc(RcuInfo)

    def rcu_uaf_reclaim(fp: RcuInfo) -> None:
        kfree(fp)
        _ = fp.i

    call_rcu(ptr, rcu_uaf_reclaim)
    rcu_barrier()


def workqueue_uaf() -> None:
    """The work frees its own work_struct (allowed); after destroy_workqueue() the test reads
    work->data: use-after-free."""
    wq = alloc_workqueue("kasan_workqueue_test")
    w = kmalloc(WorkBuf)

    def workqueue_uaf_work(work: Work) -> None:
        kfree(w)

    INIT_WORK(w.work, workqueue_uaf_work)
    queue_work(wq, w.work)
    destroy_workqueue(wq)
    _ = w.data


MODELS: dict[str, tuple[Callable[[], None], str]] = {
    "kmalloc_large_uaf": (kmalloc_large_uaf, "use-after-free"),
    "kmalloc_uaf_16": (kmalloc_uaf_16, "use-after-free"),
    "kmalloc_uaf": (kmalloc_uaf, "use-after-free"),
    "kmalloc_uaf_memset": (kmalloc_uaf_memset, "use-after-free"),
    "kmalloc_uaf2": (kmalloc_uaf2, "use-after-free"),
    "kmalloc_uaf3": (kmalloc_uaf3, "use-after-free"),
    "kmalloc_double_kzfree": (kmalloc_double_kzfree, "use-after-free"),
    "rcu_uaf": (rcu_uaf, "use-after-free"),
    "workqueue_uaf": (workqueue_uaf, "use-after-free"),
}

OOB = "out-of-bounds by a byte offset: kvmcheck objects have fields, not a byte layout or redzones"
NA: dict[str, str] = {
    "kmalloc_oob_right": OOB,
    "kmalloc_oob_left": OOB,
    "kmalloc_node_oob_right": OOB,
    "kmalloc_track_caller_oob_right": OOB,
    "kmalloc_big_oob_right": OOB,
    "kmalloc_large_oob_right": OOB,
    "kmalloc_large_invalid_free": "kfree() of an interior pointer (ptr + 1): no pointer arithmetic",
    "page_alloc_oob_right": "the page allocator (alloc_pages) is not in kvmcheck's kernel layer",
    "page_alloc_uaf": "the page allocator (alloc_pages/free_pages) is not in kvmcheck's kernel layer",
    "krealloc_more_oob": "krealloc() is not modelled (and the case is out-of-bounds)",
    "krealloc_less_oob": "krealloc() is not modelled (and the case is out-of-bounds)",
    "krealloc_large_more_oob": "krealloc() is not modelled (and the case is out-of-bounds)",
    "krealloc_large_less_oob": "krealloc() is not modelled (and the case is out-of-bounds)",
    "krealloc_uaf": "krealloc() is not modelled (the report is krealloc's check of a freed pointer)",
    "kmalloc_oob_16": OOB,
    "kmalloc_oob_in_memset": OOB,
    "kmalloc_oob_memset_2": OOB,
    "kmalloc_oob_memset_4": OOB,
    "kmalloc_oob_memset_8": OOB,
    "kmalloc_oob_memset_16": OOB,
    "kmalloc_memmove_negative_size": OOB,
    "kmalloc_memmove_invalid_size": OOB,
    "ksize_unpoisons_memory": "ksize() and the slack past the requested size are not modelled",
    "ksize_uaf": "ksize() is not modelled",
    "kfree_via_page": "kfree() through page_address(virt_to_page(ptr)) + offset: no pointer arithmetic",
    "kfree_via_phys": "kfree() through phys_to_virt(virt_to_phys(ptr)): no pointer arithmetic",
    "kmem_cache_oob": "kmem_cache is not modelled",
    "kmem_cache_double_free": "kmem_cache is not modelled",
    "kmem_cache_invalid_free": "kmem_cache is not modelled",
    "kmem_cache_rcu_uaf": "kmem_cache (SLAB_TYPESAFE_BY_RCU) is not modelled",
    "kmem_cache_double_destroy": "kmem_cache is not modelled",
    "kmem_cache_accounted": "kmem_cache is not modelled",
    "kmem_cache_bulk": "kmem_cache is not modelled",
    "mempool_kmalloc_oob_right": "mempool is not modelled",
    "mempool_kmalloc_large_oob_right": "mempool is not modelled",
    "mempool_slab_oob_right": "mempool is not modelled",
    "mempool_kmalloc_uaf": "mempool is not modelled",
    "mempool_kmalloc_large_uaf": "mempool is not modelled",
    "mempool_slab_uaf": "mempool is not modelled",
    "mempool_page_alloc_uaf": "mempool is not modelled",
    "mempool_kmalloc_double_free": "mempool is not modelled",
    "mempool_kmalloc_large_double_free": "mempool is not modelled",
    "mempool_page_alloc_double_free": "mempool is not modelled",
    "mempool_kmalloc_invalid_free": "mempool is not modelled",
    "mempool_kmalloc_large_invalid_free": "mempool is not modelled",
    "kasan_global_oob_right": "globals have no redzones in kvmcheck (out-of-bounds)",
    "kasan_global_oob_left": "globals have no redzones in kvmcheck (out-of-bounds)",
    "kasan_stack_oob": "stack objects are not instrumented (out-of-bounds)",
    "kasan_alloca_oob_left": "alloca is not modelled (out-of-bounds)",
    "kasan_alloca_oob_right": "alloca is not modelled (out-of-bounds)",
    "kasan_memchr": OOB,
    "kasan_memcmp": OOB,
    "kasan_strings": "string functions on a freed buffer: kvmcheck has no byte strings",
    "kasan_bitops_generic": "bit operations past the end of an allocation (nr >= BITS_PER_LONG): out-of-bounds",
    "kasan_bitops_tags": "bit operations past the end of an allocation: out-of-bounds (tag modes)",
    "kasan_atomics": "atomics at an offset past the end of a 48-byte allocation: out-of-bounds",
    "vmalloc_helpers_tags": "vmalloc and tag-based modes are not modelled",
    "vmalloc_oob": "vmalloc is not modelled",
    "vmap_tags": "vmap and tag-based modes are not modelled",
    "vm_map_ram_tags": "vm_map_ram and tag-based modes are not modelled",
    "match_all_not_assigned": "tag-based KASAN modes are not modelled",
    "match_all_ptr_tag": "tag-based KASAN modes are not modelled",
    "match_all_mem_tag": "tag-based KASAN modes are not modelled",
    "copy_to_kernel_nofault_oob": OOB,
    "rust_uaf": "Rust code is not modelled",
    "copy_user_test_oob": "user memory and copy_{to,from}_user are not modelled (out-of-bounds)",
}
OK_CASES = ("kfree_via_page", "kfree_via_phys", "kmem_cache_accounted", "kmem_cache_bulk")
# kasan_kunit_test_cases[], in order
ORDER = [
    "kmalloc_oob_right",
    "kmalloc_oob_left",
    "kmalloc_node_oob_right",
    "kmalloc_track_caller_oob_right",
    "kmalloc_big_oob_right",
    "kmalloc_large_oob_right",
    "kmalloc_large_uaf",
    "kmalloc_large_invalid_free",
    "page_alloc_oob_right",
    "page_alloc_uaf",
    "krealloc_more_oob",
    "krealloc_less_oob",
    "krealloc_large_more_oob",
    "krealloc_large_less_oob",
    "krealloc_uaf",
    "kmalloc_oob_16",
    "kmalloc_uaf_16",
    "kmalloc_oob_in_memset",
    "kmalloc_oob_memset_2",
    "kmalloc_oob_memset_4",
    "kmalloc_oob_memset_8",
    "kmalloc_oob_memset_16",
    "kmalloc_memmove_negative_size",
    "kmalloc_memmove_invalid_size",
    "kmalloc_uaf",
    "kmalloc_uaf_memset",
    "kmalloc_uaf2",
    "kmalloc_uaf3",
    "kmalloc_double_kzfree",
    "ksize_unpoisons_memory",
    "ksize_uaf",
    "rcu_uaf",
    "workqueue_uaf",
    "kfree_via_page",
    "kfree_via_phys",
    "kmem_cache_oob",
    "kmem_cache_double_free",
    "kmem_cache_invalid_free",
    "kmem_cache_rcu_uaf",
    "kmem_cache_double_destroy",
    "kmem_cache_accounted",
    "kmem_cache_bulk",
    "mempool_kmalloc_oob_right",
    "mempool_kmalloc_large_oob_right",
    "mempool_slab_oob_right",
    "mempool_kmalloc_uaf",
    "mempool_kmalloc_large_uaf",
    "mempool_slab_uaf",
    "mempool_page_alloc_uaf",
    "mempool_kmalloc_double_free",
    "mempool_kmalloc_large_double_free",
    "mempool_page_alloc_double_free",
    "mempool_kmalloc_invalid_free",
    "mempool_kmalloc_large_invalid_free",
    "kasan_global_oob_right",
    "kasan_global_oob_left",
    "kasan_stack_oob",
    "kasan_alloca_oob_left",
    "kasan_alloca_oob_right",
    "kasan_memchr",
    "kasan_memcmp",
    "kasan_strings",
    "kasan_bitops_generic",
    "kasan_bitops_tags",
    "kasan_atomics",
    "vmalloc_helpers_tags",
    "vmalloc_oob",
    "vmap_tags",
    "vm_map_ram_tags",
    "match_all_not_assigned",
    "match_all_ptr_tag",
    "match_all_mem_tag",
    "copy_to_kernel_nofault_oob",
    "rust_uaf",
    "copy_user_test_oob",
]


def _case(name: str) -> KernelCase:
    if name in MODELS:
        fn, kind = MODELS[name]
        return KernelCase(SUITE, name, "bug", fn, kind, f"{SUITE}: {name}: {fn.__doc__}")
    return KernelCase(SUITE, name, "ok" if name in OK_CASES else "bug", None, why=NA[name])


CASES: tuple[KernelCase, ...] = tuple(_case(n) for n in ORDER)
assert len(set(ORDER)) == len(ORDER) == len(MODELS) + len(NA)


@pytest.mark.parametrize("case", [c for c in CASES if c.applicable], ids=lambda c: c.case)
def test_kasan_case(case: KernelCase) -> None:
    assert_agrees(case)
