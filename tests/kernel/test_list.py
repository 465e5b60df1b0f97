"""struct list_head (kernel/list.py): each operation, poison, walks racing with deletion."""

from __future__ import annotations

from typing import Any

from kvmcheck import join, scenario, spawn
from kvmcheck._engine.strategies.dpor import Dpor
from kvmcheck.kernel import (
    INIT_LIST_HEAD,
    LIST_HEAD,
    LIST_POISON1,
    LIST_POISON2,
    ListHead,
    SpinLock,
    Struct,
    call_rcu,
    cond_resched_lock,
    kfree,
    kmalloc,
    list_add,
    list_add_tail,
    list_del,
    list_del_init,
    list_empty,
    list_first_entry,
    list_for_each_entry,
    list_for_each_entry_safe,
    rcu_read_lock,
    rcu_read_unlock,
    spin_lock,
    spin_unlock,
)
from kvmcheck.kernel.list import (
    list_add_tail_rcu,
    list_del_rcu,
    list_entry_is_head,
    list_for_each_entry_rcu,
    list_next_entry,
)
from tests.engine.bruteforce import BruteForce, explore
from tests.kernel.helpers import found, ok, run


class Item(Struct):
    """An entry: ``struct item { int val; struct list_head link; }``."""

    val: int = 0

    def __init__(self, val: int = 0) -> None:
        super().__init__(val=val)
        self.link = ListHead(self, "link")


def vals(head: ListHead) -> list[int]:
    return [it.val for it in list_for_each_entry(head)]


def new_item(v: int) -> Item:
    return kmalloc(Item, val=v)


# -- each operation, single-threaded ---------------------------------------------------------------
def test_add_add_tail_del_order() -> None:
    def body() -> None:
        head = LIST_HEAD("items")
        assert list_empty(head)
        a, b, c = Item(1), Item(2), Item(3)
        list_add(a.link, head)  # [1]
        list_add(b.link, head)  # [2, 1]
        list_add_tail(c.link, head)  # [2, 1, 3]
        assert vals(head) == [2, 1, 3]
        assert list_first_entry(head) is b
        assert list_next_entry(b) is a
        assert list_entry_is_head(list_next_entry(c), head)
        list_del(a.link)
        assert vals(head) == [2, 3]
        assert a.link.next == LIST_POISON1
        assert a.link.prev == LIST_POISON2
        list_del_init(b.link)
        assert b.link.next is b.link and b.link.prev is b.link
        assert list_empty(b.link)
        assert vals(head) == [3]
        assert not list_empty(head)
        list_del(c.link)
        assert list_empty(head)
        INIT_LIST_HEAD(a.link)
        assert list_empty(a.link)

    ok(run(body))


def test_safe_walk_may_delete_the_current_entry() -> None:
    def body() -> None:
        head = LIST_HEAD("items")
        items = [new_item(v) for v in (1, 2, 3)]
        for it in items:
            list_add_tail(it.link, head)
        for it in list_for_each_entry_safe(head):
            if it.val != 2:
                list_del(it.link)
                kfree(it)
        assert vals(head) == [2]
        list_del(items[1].link)
        kfree(items[1])

    ok(run(body))


def test_plain_walk_deleting_the_current_entry_follows_poison() -> None:
    """list_for_each_entry reads pos->next after the body: after list_del that is LIST_POISON1."""

    def body() -> None:
        head = LIST_HEAD("items")
        a, b = Item(1), Item(2)
        list_add_tail(a.link, head)
        list_add_tail(b.link, head)
        for it in list_for_each_entry(head):
            list_del(it.link)

    r = run(body)
    found(r, "general-protection", "non-canonical address 0xdead000000000100: 0000 [#1] SMP")


def test_plain_walk_freeing_the_current_entry_is_use_after_free() -> None:
    def body() -> None:
        head = LIST_HEAD("items")
        a, b = new_item(1), new_item(2)
        list_add_tail(a.link, head)
        list_add_tail(b.link, head)
        for it in list_for_each_entry(head):
            list_del(it.link)
            kfree(it)

    found(run(body), "use-after-free")


def for_each_item(head: ListHead) -> Any:
    """A model's own iterator macro (for_each_tdp_mmu_root_yield_safe-style) over the list."""
    yield from list_for_each_entry(head)


def zap_items(head: ListHead) -> None:
    """A C function whose loop is the for_each_item macro, inlined into it."""
    for it in for_each_item(head):
        list_del(it.link)
        kfree(it)


def test_a_walk_through_a_freed_entry_names_the_function_the_macro_is_in() -> None:
    """KASAN names the C function the access is in; the iterator macro is no function of its own."""

    def body() -> None:
        head = LIST_HEAD("items")
        a, b = new_item(1), new_item(2)
        list_add_tail(a.link, head)
        list_add_tail(b.link, head)
        zap_items(head)

    found(run(body), "use-after-free", "BUG: KASAN: use-after-free in zap_items")


def test_list_del_twice_writes_through_poison() -> None:
    def body() -> None:
        head = LIST_HEAD("items")
        a = Item(1)
        list_add(a.link, head)
        list_del(a.link)
        list_del(a.link)

    found(run(body), "general-protection", "0xdead000000000100")  # next->prev = prev first


def test_list_del_rcu_poisons_only_prev() -> None:
    def body() -> None:
        head = LIST_HEAD("items")
        a, b = Item(1), Item(2)
        list_add_tail_rcu(a.link, head)
        list_add_tail_rcu(b.link, head)
        list_del_rcu(a.link)
        assert a.link.next is b.link
        assert a.link.prev == LIST_POISON2
        assert vals(head) == [2]

    ok(run(body))


# -- a walk that yields the lock, racing with a deletion --------------------------------------------
def walk_vs_delete(safe: bool, free: bool) -> Any:
    """Walker holds ``lock`` and yields it (cond_resched_lock) while on the first entry; a deleter
    removes (and maybe frees) the second entry under the same lock."""

    def body() -> None:
        lock = SpinLock("items_lock")
        head = LIST_HEAD("items")
        a, b = new_item(1), new_item(2)
        list_add_tail(a.link, head)
        list_add_tail(b.link, head)

        def walker() -> None:
            spin_lock(lock)
            it_ = list_for_each_entry_safe(head) if safe else list_for_each_entry(head)
            for it in it_:
                if it.val == 1:  # the lock is dropped while standing on the first entry only
                    cond_resched_lock(lock)
            spin_unlock(lock)

        def deleter() -> None:
            spin_lock(lock)
            list_del(b.link)
            spin_unlock(lock)
            if free:
                kfree(b)

        join(spawn(walker), spawn(deleter))
        list_del(a.link)
        kfree(a)
        if not free:
            kfree(b)

    return body


def test_safe_walk_through_a_freed_next_is_found() -> None:
    """Sean's point: _safe caches next across the lock drop; a concurrent free makes it a UAF."""
    found(run(walk_vs_delete(safe=True, free=True)), "use-after-free")


def test_safe_walk_through_a_deleted_next_follows_poison() -> None:
    found(run(walk_vs_delete(safe=True, free=False)), "general-protection", "0xdead000000000100")


def test_plain_walk_survives_deletion_of_the_next_entry() -> None:
    """The silent twin: list_for_each_entry reads ->next after the relock, so it never sees b."""
    ok(run(walk_vs_delete(safe=False, free=True)))


def _rcu_reader_vs_list_del(grace_period: bool) -> Any:
    """A reader walks [a, b] under rcu_read_lock() while a deleter unlinks ``a`` and frees it:
    after a grace period (call_rcu), or at once (the mutant)."""

    def body() -> None:
        lock = SpinLock("items_lock")
        head = LIST_HEAD("items")
        a, b = new_item(1), new_item(2)
        list_add_tail_rcu(a.link, head)
        list_add_tail_rcu(b.link, head)

        def reader() -> None:
            rcu_read_lock()
            for it in list_for_each_entry_rcu(head):
                _ = it.val
            rcu_read_unlock()

        def deleter() -> None:
            spin_lock(lock)
            list_del_rcu(a.link)
            spin_unlock(lock)
            if grace_period:
                call_rcu(a, kfree)
            else:
                kfree(a)

        join(spawn(reader), spawn(deleter))
        list_del(b.link)
        kfree(b)

    return body


def test_rcu_reader_vs_list_del_rcu_is_clean() -> None:
    ok(run(_rcu_reader_vs_list_del(grace_period=True)))


def test_rcu_reader_vs_list_del_and_immediate_free_is_found() -> None:
    """The mutant: kfree without a grace period; the reader standing on ``a`` reads freed memory."""
    found(run(_rcu_reader_vs_list_del(grace_period=False), kcsan=False), "use-after-free")


# -- brute force agrees with DPOR --------------------------------------------------------------------
def test_dpor_matches_bruteforce_on_a_walk_racing_a_deletion() -> None:
    for safe, free in ((False, True), (True, True), (True, False)):
        scn = scenario(walk_vs_delete(safe=safe, free=free))
        bf = explore(scn, BruteForce())
        dp = explore(scn, Dpor())
        assert dp.terminal == bf.terminal, (safe, free)
        assert dp.soft_kinds == bf.soft_kinds
        assert dp.executions <= bf.executions


def test_freed_entry_report_names_the_poison_a_kernel_without_kasan_reads() -> None:
    def body() -> None:
        head = LIST_HEAD("items")
        a = new_item(1)
        list_add_tail(a.link, head)
        for it in list_for_each_entry(head):
            list_del(it.link)
            kfree(it)

    r = run(body)
    found(r, "use-after-free")
    assert r.finding is not None
    assert any("LIST_POISON1 (0xdead000000000100)" in d for d in r.finding.details)


# -- a list head kept in a struct; one model for list.h and rculist.h (issue 22) ---------------------
class Pool(Struct):
    """``struct pool { struct list_head items; }``: the head lives in the pool."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.items = LIST_HEAD()


def test_a_list_head_kept_in_a_struct_is_embedded_in_it() -> None:
    def body() -> None:
        p = Pool()
        assert p.items.owner is p and p.items.member == "items"

    ok(run(body))


def test_entries_reachable_only_through_a_freed_structs_list_are_leaked() -> None:
    """Before, the head was a root of its own, so kmemleak found the entry referenced."""

    def body() -> None:
        p = kmalloc(Pool)
        list_add(new_item(1).link, p.items)
        kfree(p)  # the item is still on p->items: nothing references it any more

    r = run(body)
    found(r, "leak", "kmemleak")
    assert "Item" in r.finding.message  # type: ignore[union-attr]


def test_a_list_head_of_a_freed_struct_is_use_after_free() -> None:
    def body() -> None:
        p = kmalloc(Pool)
        head = p.items
        kfree(p)
        list_empty(head)

    found(run(body), "use-after-free")


def test_rculist_names_take_list_heads_too() -> None:
    """Switching a list_head list to RCU changes the calls only: the exported list_*_rcu."""
    import kvmcheck.kernel as k

    def body() -> None:
        p = Pool()
        a, b = new_item(1), new_item(2)
        k.list_add_tail_rcu(a.link, p.items)
        k.list_add_rcu(b.link, p.items)
        k.rcu_read_lock()
        got = [it.val for it in k.list_for_each_entry_rcu(p.items)]
        first = k.list_first_or_null_rcu(p.items)
        k.rcu_read_unlock()
        assert got == [2, 1] and first is b
        k.list_del_rcu(b.link)
        k.synchronize_rcu()
        kfree(b)
        assert vals(p.items) == [1]
        assert not k.list_empty_rcu(p.items)
        list_del(a.link)
        kfree(a)

    ok(run(body))
