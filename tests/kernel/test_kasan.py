"""KASAN and kmemleak: use-after-free/unmap, double and invalid frees, leaks."""

from __future__ import annotations

from typing import Any

import pytest

from kvmcheck import join, spawn
from kvmcheck.kernel import (
    KernelMapping,
    Mutex,
    Struct,
    kfree,
    kmalloc,
    kmap,
    kmemleak_not_leak,
    kunmap,
    kzalloc,
    memremap,
    memunmap,
    mutex_lock,
    mutex_unlock,
)
from tests.kernel.helpers import found, ok, run


class Obj(Struct):
    data: int = 0
    child: Any = None


class Page(Struct):
    pfn: int = 7


class Root(Struct):
    ptr: Any = None


# -- use-after-free ---------------------------------------------------------------------------------
def alloc_obj() -> Obj:
    return kmalloc(Obj, data=1)


def release_obj(o: Obj) -> None:
    kfree(o)


@pytest.mark.parametrize("write", [False, True])
def test_use_after_free(write: bool) -> None:
    def use_it(o: Obj) -> None:
        if write:
            o.data = 2
        else:
            _ = o.data

    def body() -> None:
        o = alloc_obj()
        release_obj(o)
        use_it(o)

    r = run(body)
    found(r, "use-after-free", "BUG: KASAN: use-after-free in use_it")
    f = r.finding
    assert f is not None
    assert f.message == f"{'write' if write else 'read'} of obj->data after kfree"
    text = "\n".join(f.details)
    assert f"{'Write' if write else 'Read'} of obj->data by task main at use_it" in text
    assert "Allocated at: alloc_obj" in text
    assert "Freed by task main (kfree) at: release_obj" in text


def test_access_before_free_is_fine() -> None:
    def body() -> None:
        o = kzalloc(Obj)
        o.data = 3
        assert o.data == 3
        kfree(o)

    ok(run(body))


def test_kfree_null_is_a_no_op() -> None:
    def body() -> None:
        kfree(None)

    ok(run(body))


def test_free_racing_with_a_reader_is_found_by_dpor() -> None:
    """Only the interleavings where the free comes first are bugs."""

    def body() -> None:
        o = kmalloc(Obj)

        def reader() -> int:
            return o.data

        def freer() -> None:
            kfree(o)

        join(spawn(reader, name="reader"), spawn(freer, name="freer"))

    r = run(body)
    found(r, "use-after-free", "BUG: KASAN: use-after-free in reader")
    assert r.executions >= 2  # the first interleaving explored is the harmless one
    text = "\n".join(r.finding.details)  # type: ignore[union-attr]
    assert "Read of obj->data by task reader" in text
    assert "Freed by task freer (kfree) at: freer" in text


def test_free_after_join_is_fine() -> None:
    def body() -> None:
        o = kmalloc(Obj)

        def reader() -> int:
            return o.data

        join(spawn(reader))
        kfree(o)

    r = run(body)
    ok(r)


# -- double and invalid frees ------------------------------------------------------------------------
def test_double_kfree() -> None:
    def body() -> None:
        o = kmalloc(Obj)
        release_obj(o)
        kfree(o)

    r = run(body)
    found(r, "double-free", "BUG: KASAN: double-free in body")  # the caller of kfree (its _RET_IP_)
    assert "first kfree by task main at: release_obj" in "\n".join(r.finding.details)  # type: ignore[union-attr]


def test_racing_double_free() -> None:
    def body() -> None:
        o = kmalloc(Obj)
        join(spawn(kfree, o), spawn(kfree, o))

    found(run(body), "double-free", "BUG: KASAN: double-free in kfree")


@pytest.mark.parametrize("what", ["static struct", "plain object"])
def test_kfree_of_memory_not_from_kmalloc(what: str) -> None:
    def body() -> None:
        kfree(Obj() if what == "static struct" else object())

    r = run(body)
    found(r, "double-free", "BUG: KASAN: invalid-free")
    assert r.finding.headline == "BUG: KASAN: invalid-free"  # type: ignore[union-attr]
    assert "was not kmalloc'ed" in r.finding.message  # type: ignore[union-attr]


# -- kernel mappings (x86-64, no CONFIG_HIGHMEM) ---------------------------------------------------
def map_iomem() -> KernelMapping:
    return memremap(42)


def unmap_iomem(m: KernelMapping) -> None:
    memunmap(m)


@pytest.mark.parametrize("write", [False, True])
def test_use_after_memunmap_names_both_sites(write: bool) -> None:
    def touch(m: KernelMapping) -> None:
        if write:
            m.mem = 2
        else:
            _ = m.mem

    def body() -> None:
        m = map_iomem()
        m.mem = 1
        unmap_iomem(m)
        touch(m)

    r = run(body)
    found(
        r,
        "use-after-unmap",
        "BUG: unable to handle page fault for address: khva[pfn 42] (unmapped by memunmap)",
    )
    text = "\n".join(r.finding.details)  # type: ignore[union-attr]
    assert "RIP: touch" in text
    assert "Allocated at: map_iomem" in text
    assert "Unmapped by task main (memunmap) at: unmap_iomem" in text


def test_kmap_is_the_direct_map_and_kunmap_does_nothing() -> None:
    def body() -> None:
        p = Page()
        m = kmap(p)
        assert m.page is p
        assert m.pfn == 7
        assert kmap(p) is m  # page_address(): one address per page
        kunmap(p)
        assert m.page is p  # still mapped: the direct map is never torn down
        kunmap(p)  # and kunmap twice is harmless

    ok(run(body))


def test_kunmap_takes_the_page_not_the_address() -> None:
    def body() -> None:
        p = Page()
        kunmap(kmap(p))

    r = run(body)
    assert r.verdict == "bug"
    assert "kunmap() takes the struct page" in str(r.finding)


def test_what_goes_wrong_through_a_kmap_is_use_after_free_of_the_page() -> None:
    def body() -> None:
        p = kmalloc(Page)
        m = kmap(p)
        kunmap(p)
        kfree(p)  # the last reference dropped: the page goes back to the allocator
        _ = m.page.pfn  # the direct-map address still works; the page behind it is gone

    r = run(body)
    found(r, "use-after-free", "BUG: KASAN: use-after-free")


def test_memunmap_of_a_direct_map_address_is_invalid() -> None:
    def body() -> None:
        memunmap(kmap(Page()))

    found(run(body), "double-free", "BUG: KASAN: invalid-free")


def test_use_after_memunmap() -> None:
    def body() -> None:
        m = memremap(42)
        m.mem = 1
        memunmap(m)
        _ = m.mem

    r = run(body)
    found(r, "use-after-unmap", "address: khva[pfn 42] (unmapped by memunmap)")
    assert "Unmapped by task main (memunmap)" in "\n".join(r.finding.details)  # type: ignore[union-attr]


def test_memremap_memunmap_balanced_is_fine() -> None:
    def body() -> None:
        m = memremap(42)
        m.mem = 1
        assert m.mem == 1
        memunmap(m)

    ok(run(body))


def test_double_memunmap() -> None:
    def body() -> None:
        m = memremap(1)
        memunmap(m)
        memunmap(m)

    found(run(body), "double-free", "BUG: KASAN: double-free in memunmap")


def test_unmap_racing_with_a_reader_is_found_by_dpor() -> None:
    def body() -> None:
        m = memremap(3)

        def reader() -> int:
            return m.mem

        join(spawn(reader), spawn(memunmap, m))

    r = run(body)
    found(r, "use-after-unmap", "unmapped by memunmap")
    assert r.executions >= 2


# -- kmemleak ---------------------------------------------------------------------------------------
def test_dropped_allocation_is_a_leak() -> None:
    def body() -> None:
        o = alloc_obj()
        o.data = 2  # used, then forgotten

    r = run(body)
    found(r, "leak", "kmemleak: 1 new suspected memory leak")
    assert r.finding.headline == "kmemleak: 1 new suspected memory leak"  # type: ignore[union-attr]
    assert "unreferenced object Obj" in r.finding.message  # type: ignore[union-attr]
    assert "alloc_obj" in r.finding.message  # type: ignore[union-attr]


def test_allocation_referenced_from_a_static_struct_is_not_a_leak() -> None:
    def body() -> None:
        root = Root()
        root.ptr = kmalloc(Obj)

    ok(run(body))


def test_reachability_is_transitive() -> None:
    def body() -> None:
        root = Root()
        parent = kmalloc(Obj)
        parent.child = kmalloc(Obj)
        root.ptr = parent

    ok(run(body))


def test_object_reachable_only_through_a_freed_object_leaks() -> None:
    def body() -> None:
        root = Root()
        parent = kmalloc(Obj)
        parent.child = kmalloc(Obj)
        root.ptr = parent
        root.ptr = None
        kfree(parent)  # the child was not freed with it

    found(run(body), "leak", "kmemleak")


def test_reference_through_plain_containers_counts() -> None:
    def body() -> None:
        root = Root()
        root.ptr = [{"entry": kmalloc(Obj)}]

    ok(run(body))


def test_freed_allocation_is_not_a_leak() -> None:
    def body() -> None:
        kfree(kmalloc(Obj))

    ok(run(body))


def test_kmemleak_not_leak() -> None:
    def body() -> None:
        o = kmalloc(Obj)
        o.child = kmalloc(Obj)  # reachable from an object marked not-leak: not a leak either
        kmemleak_not_leak(o)

    ok(run(body))


def test_kmap_never_leaks() -> None:
    ok(run(lambda: kmap(Page()) and None))


def test_mapping_never_unmapped_is_a_leak() -> None:
    def body() -> None:
        memremap(5)

    r = run(body)
    found(r, "leak", "kmemleak")
    assert "unreferenced mapping KernelMapping" in r.finding.message  # type: ignore[union-attr]


@pytest.mark.parametrize("order", ["racing", "unpublish-first"])
def test_leak_in_one_interleaving_only(order: str) -> None:
    """Unpublishing without freeing leaks only if the object was published first:
    kmemleak runs at the end of every complete execution."""

    def body() -> None:
        root = Root()

        def publish() -> None:
            root.ptr = kmalloc(Obj)

        def unpublish() -> None:
            root.ptr = None  # forgets to kfree() what it unlinks

        if order == "racing":
            join(spawn(publish), spawn(unpublish))
        else:
            join(spawn(unpublish))
            join(spawn(publish))

    r = run(body, kcsan=False)
    if order == "racing":
        found(r, "leak", "kmemleak")
    else:
        ok(r)


def test_unpublish_and_free_under_a_lock_is_not_a_leak() -> None:
    def body() -> None:
        root, lock = Root(), Mutex("root->lock")

        def publish() -> None:
            o = kmalloc(Obj)
            mutex_lock(lock)
            old = root.ptr
            root.ptr = o
            mutex_unlock(lock)
            kfree(old)

        def unpublish() -> None:
            mutex_lock(lock)
            old = root.ptr
            root.ptr = None
            mutex_unlock(lock)
            kfree(old)

        join(spawn(publish), spawn(unpublish))

    r = run(body)
    ok(r)
    assert r.executions >= 2


# -- the function a KASAN report is "in" (kernel/cfunction.py) -----------------------------------------
def test_kasan_names_the_caller_of_an_iterator_macro() -> None:
    """A generator is a for_each_* macro: the access inside it is in the function that loops."""

    def for_each_live_obj(objs: list[Obj]) -> Any:
        for o in objs:
            if o.data >= 0:  # the read that hits freed memory, inside the "macro"
                yield o

    def walk_objs(objs: list[Obj]) -> None:
        for _ in for_each_live_obj(objs):
            pass

    def body() -> None:
        o = kmalloc(Obj)
        kfree(o)
        walk_objs([o])

    r = run(body)
    found(r, "use-after-free", "BUG: KASAN: use-after-free in walk_objs")


def test_kasan_names_the_caller_of_a_macro_marked_function() -> None:
    from kvmcheck.kernel import macro

    @macro
    def obj_data(o: Obj) -> int:
        return o.data

    def use_obj(o: Obj) -> int:
        return obj_data(o)

    def body() -> None:
        o = kmalloc(Obj)
        kfree(o)
        use_obj(o)

    found(run(body), "use-after-free", "BUG: KASAN: use-after-free in use_obj")


def test_double_free_names_the_caller_of_kfree() -> None:
    def release_obj(o: Obj) -> None:
        kfree(o)

    def body() -> None:
        o = kmalloc(Obj)
        release_obj(o)
        release_obj(o)

    found(run(body), "double-free", "BUG: KASAN: double-free in release_obj")
