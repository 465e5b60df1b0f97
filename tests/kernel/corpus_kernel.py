"""A conformance corpus for the kernel primitives: RCU, SRCU, atomics, refcounts, completions.

Each scenario returns a hashable terminal state, so that DPOR and brute
force can be compared by the *set* of terminal states and findings they
reach.  Tiny on purpose: two or three threads and a few visible operations.
``EXPECTED`` lists, for some of them, the exact set of terminal states the
primitive's semantics allow (checked against brute force).
"""

from __future__ import annotations

from typing import Any

import pytest

from kvmcheck import Scenario, join, scenario, spawn
from kvmcheck.kernel import (
    INIT_WORK,
    READ_ONCE,
    TASK_RUNNING,
    TASK_UNINTERRUPTIBLE,
    WRITE_ONCE,
    Atomic,
    Completion,
    DelayedWork,
    Kref,
    Mutex,
    Refcount,
    RwLock,
    RwSem,
    SeqCount,
    SeqLock,
    SpinLock,
    Srcu,
    Struct,
    WaitQueueHead,
    Work,
    XArray,
    __set_current_state,
    alloc_workqueue,
    atomic_cmpxchg,
    atomic_inc_return,
    atomic_read,
    call_rcu,
    cancel_delayed_work_sync,
    cancel_work_sync,
    complete,
    container_of,
    down_read,
    down_read_trylock,
    down_write,
    finish_wait,
    flush_work,
    flush_workqueue,
    get_current,
    kfree,
    kmalloc,
    kref_get_unless_zero,
    kref_put,
    list_add_tail_rcu,
    list_del_rcu,
    list_for_each_entry_rcu,
    mutex_lock,
    mutex_unlock,
    prepare_to_wait,
    queue_delayed_work,
    queue_work,
    rcu_assign_pointer,
    rcu_barrier,
    rcu_dereference,
    rcu_read_lock,
    rcu_read_unlock,
    read_lock,
    read_seqbegin,
    read_seqcount_begin,
    read_seqretry,
    read_unlock,
    refcount_dec_and_test,
    refcount_inc,
    schedule,
    schedule_timeout,
    schedule_work,
    set_current_state,
    smp_load_acquire,
    smp_store_release,
    spawn_irq,
    spin_lock,
    spin_unlock,
    spin_until_cond,
    srcu_read_lock,
    srcu_read_unlock,
    synchronize_rcu,
    synchronize_srcu,
    try_wait_for_completion,
    up_read,
    up_write,
    wait_event,
    wait_for_completion,
    wait_for_completion_timeout,
    wake_up,
    wake_up_all,
    wake_up_process,
    write_lock,
    write_lock_irq,
    write_seqcount_begin,
    write_seqcount_end,
    write_seqlock,
    write_sequnlock,
    write_unlock,
    write_unlock_irq,
    xa_erase,
    xa_for_each,
    xa_load,
    xa_store,
)


class Node(Struct):
    val: int = 0


class K(Struct):
    ptr: Any = None
    x: int = 0
    flag: int = 0
    inside: int = 0
    items: tuple[Any, ...] = ()  # an RCU list: the list functions replace it whole


CORPUS: dict[str, Scenario] = {}
EXPECTED: dict[str, set[Any]] = {}
# the programs whose brute-force enumeration takes ~20 s here: the full tier runs them
BIG = ("workqueue_queue_twice",)


def tiered(names: list[str]) -> list[Any]:
    """``names`` as pytest parameters, the BIG ones (a ``kernel:`` prefix allowed) marked slow."""
    return [pytest.param(n, marks=pytest.mark.slow) if n.rpartition(":")[2] in BIG else n for n in names]


def corpus(expect: set[Any] | None = None) -> Any:
    def wrap(fn: Any) -> Scenario:
        s = scenario(fn)
        assert s.name not in CORPUS, s.name
        CORPUS[s.name] = s
        if expect is not None:
            EXPECTED[s.name] = expect
        return s

    return wrap


# -- independence: readers never order each other ---------------------------------------------
@corpus({(7, 7)})
def rcu_two_readers() -> Any:
    k = K(ptr=kmalloc(Node, val=7))

    def reader() -> int:
        rcu_read_lock()
        p = rcu_dereference(k, "ptr")
        v = p.val
        rcu_read_unlock()
        return int(v)

    return join(spawn(reader), spawn(reader))


@corpus({(3, 3)})
def rwlock_two_readers() -> Any:
    k = K(x=3)
    lock = RwLock("lock")

    def reader() -> int:
        read_lock(lock)
        v = k.x
        read_unlock(lock)
        return int(v)

    return join(spawn(reader), spawn(reader))


# -- grace periods ----------------------------------------------------------------------
@corpus({(0, 0), (0, 1), (1, 0)})
def rcu_gp_waits_for_preexisting_reader() -> Any:
    """(updater saw the reader inside, reader saw the grace period's end): never both."""
    k = K()

    def updater() -> int:
        seen = READ_ONCE(k, "inside")
        synchronize_rcu()
        WRITE_ONCE(k, "flag", 1)
        return int(seen)

    def reader() -> int:
        rcu_read_lock()
        WRITE_ONCE(k, "inside", 1)
        v = READ_ONCE(k, "flag")
        rcu_read_unlock()
        return int(v)

    return join(spawn(updater), spawn(reader))


@corpus({0, 1})
def rcu_late_reader_not_waited() -> Any:
    k = K()

    def updater() -> None:
        synchronize_rcu()
        WRITE_ONCE(k, "flag", 1)

    def reader() -> int:
        rcu_read_lock()
        v = READ_ONCE(k, "flag")
        rcu_read_unlock()
        return int(v)

    return join(spawn(updater), spawn(reader))[1]


@corpus({None, 5})
def rcu_publish() -> Any:
    k = K()

    def updater() -> None:
        n = kmalloc(Node)
        n.val = 5
        rcu_assign_pointer(k, "ptr", n)

    def reader() -> Any:
        rcu_read_lock()
        p = rcu_dereference(k, "ptr")
        v = p.val if p is not None else None
        rcu_read_unlock()
        return v

    return join(spawn(updater), spawn(reader))[1]


@corpus({(1, 2), (2,)})
def rcu_list_del_traversal() -> Any:
    """Delete the head entry a reader may be standing on (it goes on to b), free it after a GP."""
    k = K()
    a, b = kmalloc(Node, val=1), kmalloc(Node, val=2)
    list_add_tail_rcu(a, k, "items")
    list_add_tail_rcu(b, k, "items")

    def reader() -> tuple[int, ...]:
        rcu_read_lock()
        vals = tuple(int(e.val) for e in list_for_each_entry_rcu(k, "items"))
        rcu_read_unlock()
        return vals

    def updater() -> None:
        list_del_rcu(a, k, "items")
        synchronize_rcu()
        kfree(a)

    return join(spawn(reader), spawn(updater))[0]


@corpus({(0, 0), (0, 1), (1, 0)})
def call_rcu_waits_for_reader() -> Any:
    """(main saw the reader inside before call_rcu, the reader saw the callback's effect)."""
    k = K()

    def cb(head: Any) -> None:
        WRITE_ONCE(k, "flag", 1)

    def reader() -> int:
        rcu_read_lock()
        WRITE_ONCE(k, "inside", 1)
        v = READ_ONCE(k, "flag")
        rcu_read_unlock()
        return int(v)

    t = spawn(reader)
    inside = READ_ONCE(k, "inside")
    call_rcu(None, cb)
    v = join(t)
    rcu_barrier()
    return (int(inside), v)


@corpus({(0, 0), (0, 1), (1, 1)})
def rcu_reader_twice_across_gp() -> Any:
    """Two sections of one reader: the second never sees less than the first."""
    k = K()

    def reader() -> tuple[int, int]:
        rcu_read_lock()
        v = READ_ONCE(k, "flag")
        rcu_read_unlock()
        rcu_read_lock()
        w = READ_ONCE(k, "flag")
        rcu_read_unlock()
        return (int(v), int(w))

    def updater() -> None:
        synchronize_rcu()
        WRITE_ONCE(k, "flag", 1)

    return join(spawn(reader), spawn(updater))[0]


@corpus({(1, 2), (1,), (2,)})
def rcu_list_add_then_del() -> Any:
    k = K()
    a, b = kmalloc(Node, val=1), kmalloc(Node, val=2)
    list_add_tail_rcu(a, k, "items")

    def reader() -> tuple[int, ...]:
        rcu_read_lock()
        vals = tuple(int(e.val) for e in list_for_each_entry_rcu(k, "items"))
        rcu_read_unlock()
        return vals

    def updater() -> None:
        list_add_tail_rcu(b, k, "items")
        list_del_rcu(a, k, "items")
        synchronize_rcu()
        kfree(a)

    return join(spawn(reader), spawn(updater))[0]


@corpus()
def srcu_two_domains() -> Any:
    """Nested sections of two srcu_structs, released out of order, against both grace periods."""
    k = K()
    s1, s2 = Srcu("s1"), Srcu("s2")

    def reader() -> tuple[int, int, int, int]:
        i = srcu_read_lock(s1)
        j = srcu_read_lock(s2)
        v = READ_ONCE(k, "flag")
        srcu_read_unlock(s1, i)
        w = READ_ONCE(k, "flag")
        srcu_read_unlock(s2, j)
        return (int(v), int(w), i, j)

    def updater() -> None:
        synchronize_srcu(s2)
        WRITE_ONCE(k, "flag", 1)
        synchronize_srcu(s1)

    return join(spawn(reader), spawn(updater))[0]


@corpus({(0, 0), (0, 1), (1, 0)})
def srcu_gp_waits_for_preexisting_reader() -> Any:
    k = K()
    ssp = Srcu("ssp")

    def updater() -> int:
        seen = READ_ONCE(k, "inside")
        synchronize_srcu(ssp)
        WRITE_ONCE(k, "flag", 1)
        return int(seen)

    def reader() -> int:
        idx = srcu_read_lock(ssp)
        WRITE_ONCE(k, "inside", 1)
        v = READ_ONCE(k, "flag")
        srcu_read_unlock(ssp, idx)
        return int(v)

    return join(spawn(updater), spawn(reader))


@corpus({0, 1})
def srcu_index_depends_on_grace_period() -> Any:
    ssp = Srcu("ssp")

    def reader() -> int:
        idx = srcu_read_lock(ssp)
        srcu_read_unlock(ssp, idx)
        return idx

    t = spawn(reader)
    synchronize_srcu(ssp)
    return join(t)


# -- atomics ----------------------------------------------------------------------------
@corpus({((1, 2), 2)})
def atomic_inc_return_race() -> Any:
    v = Atomic(0)
    got = join(spawn(atomic_inc_return, v), spawn(atomic_inc_return, v))
    return (tuple(sorted(got)), atomic_read(v))


@corpus({(0, 1, 1), (2, 0, 2)})
def atomic_cmpxchg_winner() -> Any:
    v = Atomic(0)
    a, b = join(spawn(atomic_cmpxchg, v, 0, 1), spawn(atomic_cmpxchg, v, 0, 2))
    return (a, b, atomic_read(v))


@corpus({(0, -1), (1, 42)})
def release_acquire_message_passing() -> Any:
    k = K()

    def producer() -> None:
        k.x = 42
        smp_store_release(k, "flag", 1)

    def consumer() -> tuple[int, int]:
        f = smp_load_acquire(k, "flag")
        return (int(f), int(k.x) if f else -1)

    return join(spawn(producer), spawn(consumer))[1]


# -- refcounts ----------------------------------------------------------------------------
@corpus({(False, True), (True, False)})
def refcount_racing_puts() -> Any:
    r = Refcount(2)
    return join(spawn(refcount_dec_and_test, r), spawn(refcount_dec_and_test, r))


@corpus({(0, 1), (1, 1)})
def kref_get_unless_zero_vs_put() -> Any:
    """(lookup got a reference, objects released): the release happens exactly once."""
    k = K()
    ref = Kref(1)

    def release(kref: Kref) -> None:
        k.flag = k.flag + 1

    def lookup() -> int:
        if kref_get_unless_zero(ref):
            kref_put(ref, release)
            return 1
        return 0

    def owner() -> None:
        kref_put(ref, release)

    got, _ = join(spawn(lookup), spawn(owner))
    return (got, k.flag)


# -- completions ------------------------------------------------------------------------------
@corpus({1})
def completion_orders_data() -> Any:
    k = K()
    done = Completion("done")

    def producer() -> None:
        k.x = 1
        complete(done)

    def consumer() -> int:
        wait_for_completion(done)
        return int(k.x)

    return join(spawn(producer), spawn(consumer))[1]


@corpus({(1, 2), (2, 1), (2, 2)})
def completion_two_waiters() -> Any:
    """Each complete() wakes one waiter; the second is woken only after flag = 2."""
    k = K()
    done = Completion("done")

    def waiter() -> int:
        wait_for_completion(done)
        return int(READ_ONCE(k, "flag"))

    def producer() -> None:
        WRITE_ONCE(k, "flag", 1)
        complete(done)
        WRITE_ONCE(k, "flag", 2)
        complete(done)

    a, b, _ = join(spawn(waiter), spawn(waiter), spawn(producer))
    return (a, b)


@corpus({(False, 0), (True, 1)})
def completion_try_wait() -> Any:
    k = K()
    done = Completion("done")

    def producer() -> None:
        WRITE_ONCE(k, "x", 1)
        complete(done)

    def consumer() -> tuple[bool, int]:
        got = try_wait_for_completion(done)
        return (got, int(READ_ONCE(k, "x")) if got else 0)

    return join(spawn(producer), spawn(consumer))[1]


# == issue 7: writer fairness, embedded KASAN, NULL dereference, workqueues, wait queues, XArray ==
class Holder(Struct):
    """An object whose primitives are embedded in it (built in its constructor)."""

    n: int = 0

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.ref = Refcount(1)
        self.lock = SpinLock()
        self.done = Completion()
        self.work = Work()
        self.wq = WaitQueueHead()


# -- reader-writer fairness ---------------------------------------------------------------------
def _recursive_reader(lk: Any, rlock: Any, runlock: Any) -> None:
    rlock(lk)
    rlock(lk)
    runlock(lk)
    runlock(lk)


@corpus()
def rwsem_reader_queued_writer_reader() -> Any:
    """Deadlocks when the writer queues between the two down_read()s."""
    sem = RwSem("sem")

    def writer() -> None:
        down_write(sem)
        up_write(sem)

    join(spawn(_recursive_reader, sem, down_read, up_read), spawn(writer))


@corpus()
def rwlock_reader_queued_writer_reader() -> Any:
    lk = RwLock("lk")

    def writer() -> None:
        write_lock(lk)
        write_unlock(lk)

    join(spawn(_recursive_reader, lk, read_lock, read_unlock), spawn(writer))


@corpus({0, 1})
def rwlock_irq_reader_ignores_queued_writer() -> Any:
    """A hard-irq reader nests read_lock() with a writer queued in between: no deadlock."""
    k = K()
    lk = RwLock("lk")

    def handler() -> int:
        read_lock(lk)
        read_lock(lk)
        v = int(k.x)
        read_unlock(lk)
        read_unlock(lk)
        return v

    def writer() -> None:
        write_lock_irq(lk)
        k.x = 1
        write_unlock_irq(lk)

    return join(spawn_irq(handler), spawn(writer))[0]


@corpus()
def rwsem_second_reader_behind_queued_writer() -> Any:
    """r1 waits for r2 while holding the lock; w queues; r2 waits behind w: a deadlock."""
    sem = RwSem("sem")
    k = K()

    def r1() -> None:
        down_read(sem)
        spin_until_cond(k, "flag", bool)
        up_read(sem)

    def w() -> None:
        down_write(sem)
        up_write(sem)

    def r2() -> None:
        down_read(sem)
        WRITE_ONCE(k, "flag", 1)
        up_read(sem)

    join(spawn(r1), spawn(w), spawn(r2))


@corpus({0, 1})
def rwsem_reader_and_writer_values() -> Any:
    """A reader and a writer: the reader sees before or after the write, never during it."""
    sem = RwSem("sem")
    k = K()

    def reader() -> int:
        down_read(sem)
        v = int(k.x)
        up_read(sem)
        return v

    def writer() -> None:
        down_write(sem)
        k.x = 1
        up_write(sem)

    return join(spawn(reader), spawn(writer))[0]


@corpus({True, False})
def rwsem_read_trylock_vs_queued_writer() -> Any:
    sem = RwSem("sem")
    k = K()

    def holder() -> None:
        down_read(sem)
        spin_until_cond(k, "flag", bool)
        up_read(sem)

    def writer() -> None:
        down_write(sem)
        up_write(sem)

    def trier() -> bool:
        got = bool(down_read_trylock(sem))
        if got:
            up_read(sem)
        WRITE_ONCE(k, "flag", 1)
        return got

    t = spawn(trier)
    join(spawn(holder), spawn(writer))
    return join(t)


# -- KASAN on embedded primitives, NULL dereference ---------------------------------------------
@corpus()
def kasan_refcount_inc_on_freed_object() -> Any:
    h = kmalloc(Holder)
    ref = h.ref

    def user() -> None:
        refcount_inc(ref)

    def freer() -> None:
        kfree(h)

    join(spawn(user), spawn(freer))


@corpus()
def kasan_spin_lock_on_freed_object() -> Any:
    h = kmalloc(Holder)
    lk = h.lock

    def user() -> None:
        spin_lock(lk)
        spin_unlock(lk)

    def freer() -> None:
        kfree(h)

    join(spawn(user), spawn(freer))


@corpus()
def kasan_complete_on_freed_object() -> Any:
    h = kmalloc(Holder)
    done = h.done

    def user() -> None:
        complete(done)

    def freer() -> None:
        kfree(h)

    join(spawn(user), spawn(freer))


@corpus()
def null_deref_after_unpublish() -> Any:
    k = K(ptr=Node(val=3))

    def reader() -> int:
        p = READ_ONCE(k, "ptr")
        return int(p.val)

    def clearer() -> None:
        WRITE_ONCE(k, "ptr", None)

    join(spawn(reader), spawn(clearer))


# -- workqueues ----------------------------------------------------------------------------------
def _count(work: Any) -> None:
    h = work.holder
    h.n = h.n + 1


def _holder_with_work(fn: Any = _count) -> Holder:
    h = Holder()
    INIT_WORK(h.work, fn)
    h.work.holder = h
    return h


@corpus({(True, False, 1), (True, True, 2)})
def workqueue_queue_twice() -> Any:
    h = _holder_with_work()
    wq = alloc_workqueue("wq")
    a = queue_work(wq, h.work)
    b = queue_work(wq, h.work)
    flush_work(h.work)
    return (a, b, int(h.n))


@corpus({(True, 0), (False, 1)})
def workqueue_cancel_work_sync() -> Any:
    h = _holder_with_work()
    queue_work(alloc_workqueue("wq"), h.work)
    was = cancel_work_sync(h.work)
    return (was, int(h.n))


@corpus({1})
def workqueue_flush_workqueue() -> Any:
    h = _holder_with_work()
    wq = alloc_workqueue("wq")
    queue_work(wq, h.work)
    flush_workqueue(wq)
    return int(h.n)


@corpus()
def workqueue_flush_under_the_lock_the_work_takes() -> Any:
    def locked(work: Any) -> None:
        h = work.holder
        mutex_lock(h.m)
        mutex_unlock(h.m)

    h = _holder_with_work(locked)
    h.m = Mutex("h->m")
    mutex_lock(h.m)
    schedule_work(h.work)
    flush_work(h.work)
    mutex_unlock(h.m)


# -- wait queues ---------------------------------------------------------------------------------
@corpus({42})
def waitqueue_handoff() -> Any:
    h = Holder()
    k = K()

    def waiter() -> int:
        wait_event(h.wq, lambda: smp_load_acquire(k, "flag"))
        return int(k.x)

    def waker() -> None:
        k.x = 42
        smp_store_release(k, "flag", 1)
        wake_up(h.wq)

    return join(spawn(waiter), spawn(waker))[0]


@corpus()
def waitqueue_lost_wakeup() -> Any:
    h = Holder()
    k = K()

    def waiter() -> None:
        wait_event(h.wq, lambda: READ_ONCE(k, "flag"))

    def waker() -> None:
        wake_up(h.wq)
        WRITE_ONCE(k, "flag", 1)

    join(spawn(waiter), spawn(waker))


@corpus({1})
def waitqueue_wake_up_all() -> Any:
    """(Two waiters woken by one wake_up_all: tests/kernel/test_wait.py, too big for brute force.)"""
    h = Holder()
    k = K()

    def waiter() -> int:
        wait_event(h.wq, lambda: READ_ONCE(k, "flag"))
        return 1

    def waker() -> None:
        WRITE_ONCE(k, "flag", 1)
        wake_up_all(h.wq)

    return join(spawn(waiter), spawn(waker))[0]


# -- XArray --------------------------------------------------------------------------------------
@corpus({-1, 5})
def xarray_load_sees_published_entry() -> Any:
    xa = XArray("xa")

    def storer() -> None:
        n = Node()
        n.val = 5
        xa_store(xa, 0, n)

    def loader() -> int:
        n = xa_load(xa, 0)
        return -1 if n is None else int(n.val)

    return join(spawn(storer), spawn(loader))[1]


@corpus({("a", "b"), ("a",), ("b",), ()})
def xarray_for_each_vs_erase() -> Any:
    xa = XArray("xa")
    xa_store(xa, 1, "a")
    xa_store(xa, 2, "b")

    def walker() -> tuple[Any, ...]:
        return tuple(e for _, e in xa_for_each(xa))

    def eraser() -> None:
        xa_erase(xa, 1)
        xa_erase(xa, 2)

    return join(spawn(walker), spawn(eraser))[0]


@corpus({("x", "y"), ("y", "x")})
def xarray_two_storers() -> Any:
    xa = XArray("xa")

    def store(v: str) -> Any:
        return xa_store(xa, 0, v)

    a, b = join(spawn(store, "x"), spawn(store, "y"))
    final = xa_load(xa, 0)
    first = b if a is None else a
    return (first, final)


# -- issue 22: workqueue teardown, seqcount, set_current_state/wake_up_process --------------------
class Owned(Struct):
    """``struct owned { int n; struct work_struct work; struct delayed_work dwork; }``."""

    n: int = 0

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.work = Work(_owned_bump)
        self.dwork = DelayedWork(_owned_dbump)


def _owned_bump(work: Any) -> None:
    o = container_of(work, Owned, "work")
    o.n = o.n + 1


def _owned_dbump(work: Any) -> None:
    o = container_of(work, Owned, "dwork.work")
    o.n = o.n + 1


@corpus({(True, 0), (False, 1)})
def workqueue_cancel_sync_then_kfree() -> Any:
    o = kmalloc(Owned)
    queue_work(alloc_workqueue("wq"), o.work)
    was = cancel_work_sync(o.work)
    n = int(o.n)
    kfree(o)
    return (was, n)


@corpus({None})
def workqueue_work_frees_its_own_struct() -> Any:
    def free_self(work: Any) -> None:
        kfree(container_of(work, Owned, "work"))

    o = kmalloc(Owned)
    INIT_WORK(o.work, free_self)
    queue_work(alloc_workqueue("wq"), o.work)
    return None


@corpus({(True, 0), (False, 1)})
def workqueue_delayed_cancel_sync() -> Any:
    o = kmalloc(Owned)
    queue_delayed_work(alloc_workqueue("wq"), o.dwork, 1)
    was = cancel_delayed_work_sync(o.dwork)
    n = int(o.n)
    kfree(o)
    return (was, n)


@corpus()
def workqueue_flush_inside_the_work() -> Any:
    def flush_self(work: Any) -> None:
        flush_work(work)

    o = Owned()
    INIT_WORK(o.work, flush_self)
    queue_work(alloc_workqueue("wq"), o.work)


class Pair(Struct):
    a: int = 0
    b: int = 0

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.seq = SeqLock()


@corpus({(0, 0), (1, 1)})
def seqlock_reader_retries() -> Any:
    p = Pair()

    def reader() -> tuple[int, int]:
        while True:
            start = read_seqbegin(p.seq)
            got = (int(p.a), int(p.b))
            if not read_seqretry(p.seq, start):
                return got

    def writer() -> None:
        write_seqlock(p.seq)
        p.a = 1
        p.b = 1
        write_sequnlock(p.seq)

    return join(spawn(reader), spawn(writer))[0]


@corpus()
def seqcount_reader_without_retry_is_torn() -> Any:
    p = Pair()
    lock = SpinLock("lock")
    s = SeqCount("s", lock=lock)

    def reader() -> tuple[int, int]:
        read_seqcount_begin(s)
        return (int(p.a), int(p.b))

    def writer() -> None:
        spin_lock(lock)
        write_seqcount_begin(s)
        p.a = 1
        p.b = 1
        write_seqcount_end(s)
        spin_unlock(lock)

    return join(spawn(reader), spawn(writer))[0]


@corpus({1})
def sched_set_current_state_then_test() -> Any:
    k = K()

    def waiter() -> int:
        while True:
            set_current_state(TASK_UNINTERRUPTIBLE)
            if READ_ONCE(k, "flag"):
                break
            schedule()
        __set_current_state(TASK_RUNNING)
        return 1

    w = spawn(waiter)
    WRITE_ONCE(k, "flag", 1)
    wake_up_process(w)
    return join(w)


@corpus()
def sched_test_then_set_current_state_loses_wakeup() -> Any:
    k = K()

    def waiter() -> None:
        if not READ_ONCE(k, "flag"):
            set_current_state(TASK_UNINTERRUPTIBLE)
            schedule()

    w = spawn(waiter)
    WRITE_ONCE(k, "flag", 1)
    wake_up_process(w)
    join(w)


@corpus({0, 7})
def sched_schedule_timeout_races_the_wakeup() -> Any:
    me = get_current()

    def waker() -> None:
        wake_up_process(me)

    w = spawn(waker)
    set_current_state(TASK_UNINTERRUPTIBLE)
    left = schedule_timeout(7)
    join(w)
    return left


@corpus({None})
def waitqueue_prepare_to_wait_schedule() -> Any:
    h = Holder()
    k = K()

    def worker() -> None:
        while True:
            prepare_to_wait(h.wq, TASK_UNINTERRUPTIBLE)
            if READ_ONCE(k, "flag"):
                break
            schedule()
        finish_wait(h.wq)

    w = spawn(worker)
    WRITE_ONCE(k, "flag", 1)
    wake_up(h.wq)
    join(w)
    return None


@corpus({(0, True), (5, False)})
def completion_wait_timeout_races_complete() -> Any:
    h = Holder()
    t = spawn(lambda: complete(h.done))
    left = wait_for_completion_timeout(h.done, 5)
    join(t)
    return (left, try_wait_for_completion(h.done))
