"""A conformance corpus: small scenarios whose every interleaving brute force can enumerate.

Each scenario returns a hashable terminal state (usually a tuple of field
values or of what the threads saw), so that two strategies can be compared by
the *set* of terminal states and findings they reach.  Keep them tiny: 2-3
threads and a few visible operations each, or brute force gets slow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvmcheck import Scenario, join, scenario, spawn
from kvmcheck.kernel import (
    BUG_ON,
    READ_ONCE,
    WARN_ON,
    WRITE_ONCE,
    Atomic,
    Completion,
    Mutex,
    Refcount,
    RwLock,
    RwSem,
    SpinLock,
    Struct,
    atomic_inc_return,
    complete,
    complete_all,
    cond_resched,
    cpu_relax,
    down_read,
    down_read_trylock,
    down_write,
    down_write_trylock,
    guard,
    kfree,
    kmalloc,
    mutex_is_locked,
    mutex_lock,
    mutex_trylock,
    mutex_unlock,
    rcu_assign_pointer,
    rcu_dereference,
    rcu_read_lock,
    rcu_read_unlock,
    read_lock,
    read_trylock,
    read_unlock,
    refcount_dec_and_test,
    spin_lock,
    spin_trylock,
    spin_unlock,
    spin_until_cond,
    synchronize_rcu,
    try_wait_for_completion,
    up_read,
    up_write,
    wait_for_completion,
    write_lock,
    write_trylock,
    write_unlock,
)


class S(Struct):
    x: int = 0
    y: int = 0
    z: int = 0
    flag: int = 0
    log: tuple[int, ...] = ()
    ptr: Any = None


CORPUS: dict[str, Scenario] = {}


def corpus(fn: Callable[..., Any]) -> Scenario:
    s = scenario(fn)
    assert s.name not in CORPUS, s.name
    CORPUS[s.name] = s
    return s


# -- plain shared memory -------------------------------------------------------------
@corpus
def lost_update() -> Any:
    c = S()

    def inc() -> None:
        t = c.x
        c.x = t + 1

    join(spawn(inc), spawn(inc))
    return c.x


@corpus
def lost_update_assert() -> Any:
    c = S()

    def inc() -> None:
        t = c.x
        c.x = t + 1

    join(spawn(inc), spawn(inc))
    assert c.x == 2, f"x is {c.x}"
    return c.x


@corpus
def disjoint_fields() -> Any:
    c = S()

    def wx() -> None:
        c.x = 1
        c.x = c.x + 1

    def wy() -> None:
        c.y = 5
        c.y = c.y + 1

    join(spawn(wx), spawn(wy))
    return (c.x, c.y)


@corpus
def store_buffering() -> Any:
    c = S()

    def t1() -> int:
        c.x = 1
        return c.y

    def t2() -> int:
        c.y = 1
        return c.x

    return join(spawn(t1), spawn(t2))


@corpus
def message_passing() -> Any:
    c = S()

    def producer() -> None:
        c.x = 42
        c.flag = 1

    def consumer() -> tuple[int, int]:
        f = c.flag
        d = c.x
        return (f, d)

    _, seen = join(spawn(producer), spawn(consumer))
    return seen


@corpus
def marked_message_passing() -> Any:
    """READ_ONCE / WRITE_ONCE: same orders as plain accesses, but no KCSAN report."""
    c = S()

    def producer() -> None:
        WRITE_ONCE(c, "x", 42)
        WRITE_ONCE(c, "flag", 1)

    def consumer() -> tuple[int, int]:
        f = READ_ONCE(c, "flag")
        d = READ_ONCE(c, "x")
        return (f, d)

    _, seen = join(spawn(producer), spawn(consumer))
    return seen


@corpus
def marked_and_plain() -> Any:
    """One marked and one plain access to a field: still a data race."""
    c = S()

    def writer() -> None:
        WRITE_ONCE(c, "x", 1)

    def reader() -> int:
        return c.x

    return join(spawn(writer), spawn(reader))


@corpus
def main_races_child() -> Any:
    """The main thread itself is one of the racing threads."""
    c = S()

    def child() -> None:
        c.x = c.x + 10

    t = spawn(child)
    c.x = c.x + 1
    join(t)
    return c.x


# -- spawn and join -------------------------------------------------------------------
@corpus
def conditional_spawn() -> Any:
    c = S()

    def setter() -> None:
        c.flag = 1

    def extra() -> None:
        c.y = 7

    t = spawn(setter)
    seen = c.flag
    if seen == 1:
        join(spawn(extra))
    join(t)
    return (seen, c.y)


@corpus
def join_chain() -> Any:
    """main joins A, A joins B, B joins C; main races with the chain on x."""
    c = S()

    def tc() -> None:
        c.x = c.x + 1

    def tb() -> int:
        join(spawn(tc))
        return c.x

    def ta() -> int:
        return int(join(spawn(tb)))

    a = spawn(ta)
    c.x = 10
    seen = join(a)
    return (seen, c.x)


@corpus
def spawn_from_thread() -> Any:
    """Two threads each spawn a child: which child gets which thread id varies."""
    c = S()

    def child_x() -> None:
        c.x = 1

    def child_y() -> None:
        c.y = c.x

    def pa() -> None:
        join(spawn(child_x))

    def pb() -> None:
        join(spawn(child_y))

    join(spawn(pa), spawn(pb))
    return (c.x, c.y)


@corpus
def objects_made_in_threads() -> Any:
    """Threads build their own locks and structs: creation numbers vary with the order."""
    c = S()

    def worker(v: int) -> None:
        mine = S(x=v)
        m = Mutex(f"m{v}")
        mutex_lock(m)
        mutex_unlock(m)
        c.log = (*c.log, mine.x)

    join(spawn(worker, 1), spawn(worker, 2))
    return c.log


# -- mutexes and spinlocks ---------------------------------------------------------------
@corpus
def two_appends() -> Any:
    """2 threads x 2 lock-protected appends: all 6 orders."""
    c = S()
    m = Mutex("m")

    def worker(me: int) -> None:
        for _ in range(2):
            mutex_lock(m)
            c.log = (*c.log, me)
            mutex_unlock(m)

    join(spawn(worker, 1), spawn(worker, 2))
    return c.log


@corpus
def three_on_one_lock() -> Any:
    """Three threads (main is the third) on one mutex: all 6 orders."""
    c = S()
    m = Mutex("m")

    def section(me: int) -> None:
        mutex_lock(m)
        c.log = (*c.log, me)
        mutex_unlock(m)

    a, b = spawn(section, 1), spawn(section, 2)
    section(0)
    join(a, b)
    return c.log


@corpus
def lock_and_unlocked_read() -> Any:
    """A writer under the lock, a reader of one field without it."""
    c = S()
    m = Mutex("m")

    def writer() -> None:
        mutex_lock(m)
        c.x = 1
        c.y = 1
        mutex_unlock(m)

    def reader() -> tuple[int, int]:
        a = c.x
        mutex_lock(m)
        b = c.y
        mutex_unlock(m)
        return (a, b)

    return join(spawn(writer), spawn(reader))[1]


@corpus
def nested_consistent_order() -> Any:
    c = S()
    a, b = Mutex("A"), Mutex("B")

    def worker(me: int) -> None:
        mutex_lock(a)
        mutex_lock(b)
        c.log = (*c.log, me)
        mutex_unlock(b)
        mutex_unlock(a)

    join(spawn(worker, 1), spawn(worker, 2))
    return c.log


@corpus
def guard_mutex() -> Any:
    c = S()
    m = Mutex("m")

    def worker() -> None:
        with guard(m):
            c.x = c.x + 1

    join(spawn(worker), spawn(worker))
    return c.x


@corpus
def spinlock_counter() -> Any:
    c = S()
    lk = SpinLock("lk")

    def worker(me: int) -> None:
        spin_lock(lk)
        c.log = (*c.log, me)
        spin_unlock(lk)

    join(spawn(worker, 1), spawn(worker, 2))
    return c.log


@corpus
def mutex_is_locked_peek() -> Any:
    c = S()
    m = Mutex("m")

    def holder() -> None:
        mutex_lock(m)
        c.x = 1
        mutex_unlock(m)

    def peeker() -> bool:
        return mutex_is_locked(m)

    return join(spawn(holder), spawn(peeker))[1]


# -- trylock -----------------------------------------------------------------------------
@corpus
def mutex_trylock_race() -> Any:
    c = S()
    m = Mutex("m")

    def worker(me: int) -> bool:
        if not mutex_trylock(m):
            return False
        c.x = me
        mutex_unlock(m)
        return True

    got = join(spawn(worker, 1), spawn(worker, 2))
    return (got, c.x)


@corpus
def spin_trylock_vs_lock() -> Any:
    c = S()
    lk = SpinLock("lk")

    def locker() -> None:
        spin_lock(lk)
        c.x = c.x + 1
        spin_unlock(lk)

    def trier() -> bool:
        if spin_trylock(lk):
            c.x = c.x + 10
            spin_unlock(lk)
            return True
        return False

    got = join(spawn(locker), spawn(trier))
    return (got, c.x)


@corpus
def trylock_retry() -> Any:
    """Trylock, back off (cond_resched), retry once."""
    c = S()
    m = Mutex("m")

    def locker() -> None:
        mutex_lock(m)
        c.x = 1
        mutex_unlock(m)

    def trier() -> int:
        for attempt in range(2):
            if mutex_trylock(m):
                c.y = c.x
                mutex_unlock(m)
                return attempt
            cond_resched()
        return -1

    _, attempt = join(spawn(locker), spawn(trier))
    return (attempt, c.y)


# -- reader-writer locks ---------------------------------------------------------------------
@corpus
def rwlock_two_readers() -> Any:
    c = S(x=3)
    lk = RwLock("rw")

    def reader() -> int:
        read_lock(lk)
        v = c.x
        read_unlock(lk)
        return v

    return join(spawn(reader), spawn(reader))


@corpus
def rwlock_reader_writer() -> Any:
    c = S()
    lk = RwLock("rw")

    def reader() -> tuple[int, int]:
        read_lock(lk)
        v = (c.x, c.y)
        read_unlock(lk)
        return v

    def writer() -> None:
        write_lock(lk)
        c.x = 1
        c.y = 1
        write_unlock(lk)

    return join(spawn(reader), spawn(writer))[0]


@corpus
def rwlock_two_readers_writer() -> Any:
    """Two readers and a writer (main): each reader sees the write or not."""
    c = S()
    lk = RwLock("rw")

    def reader() -> int:
        read_lock(lk)
        v = c.x
        read_unlock(lk)
        return v

    r1, r2 = spawn(reader), spawn(reader)
    write_lock(lk)
    c.x = 1
    write_unlock(lk)
    return join(r1, r2)


@corpus
def rwlock_trylocks() -> Any:
    c = S()
    lk = RwLock("rw")

    def rtry() -> bool:
        if read_trylock(lk):
            c.y = c.x
            read_unlock(lk)
            return True
        return False

    def wtry() -> bool:
        if write_trylock(lk):
            c.x = 1
            write_unlock(lk)
            return True
        return False

    got = join(spawn(rtry), spawn(wtry))
    return (got, c.y)


@corpus
def rwsem_readers_writer() -> Any:
    c = S()
    sem = RwSem("sem")

    def reader() -> int:
        down_read(sem)
        v = c.x
        up_read(sem)
        return v

    def writer() -> None:
        down_write(sem)
        c.x = c.x + 1
        up_write(sem)

    return join(spawn(reader), spawn(writer))[0]


@corpus
def rwsem_trylocks() -> Any:
    c = S()
    sem = RwSem("sem")

    def rtry() -> bool:
        if down_read_trylock(sem):
            v = c.x
            up_read(sem)
            return v == 0
        return False

    def wtry() -> bool:
        if down_write_trylock(sem):
            c.y = 1
            up_write(sem)
            return True
        return False

    r, w = spawn(rtry), spawn(wtry)
    down_write(sem)
    c.x = 1
    up_write(sem)
    return join(r, w)


# -- findings in some interleavings only ----------------------------------------------------
@corpus
def abba_deadlock() -> Any:
    a, b = Mutex("A"), Mutex("B")

    def t1() -> None:
        mutex_lock(a)
        mutex_lock(b)
        mutex_unlock(b)
        mutex_unlock(a)

    def t2() -> None:
        mutex_lock(b)
        mutex_lock(a)
        mutex_unlock(a)
        mutex_unlock(b)

    join(spawn(t1), spawn(t2))
    return "done"


@corpus
def deadlock_sometimes() -> Any:
    """t1 takes B after A only if it saw the flag: a deadlock in some interleavings."""
    c = S()
    a, b = Mutex("A"), Mutex("B")

    def t1() -> int:
        mutex_lock(a)
        f = READ_ONCE(c, "flag")
        if f:
            mutex_lock(b)
            mutex_unlock(b)
        mutex_unlock(a)
        return int(f)

    def t2() -> None:
        WRITE_ONCE(c, "flag", 1)
        mutex_lock(b)
        mutex_lock(a)
        mutex_unlock(a)
        mutex_unlock(b)

    return join(spawn(t1), spawn(t2))[0]


@corpus
def warn_on_sometimes() -> Any:
    c = S()

    def setter() -> None:
        WRITE_ONCE(c, "x", 1)

    def checker() -> int:
        v = READ_ONCE(c, "x")
        WARN_ON(v == 1)
        return int(v)

    return join(spawn(setter), spawn(checker))[1]


@corpus
def bug_on_sometimes() -> Any:
    c = S()

    def setter() -> None:
        WRITE_ONCE(c, "x", 1)
        WRITE_ONCE(c, "y", 1)

    def checker() -> int:
        y = READ_ONCE(c, "y")
        x = READ_ONCE(c, "x")
        BUG_ON(y == 1 and x == 1, "saw both")
        return int(x)

    return join(spawn(setter), spawn(checker))[1]


@corpus
def exception_sometimes() -> Any:
    c = S()

    def setter() -> None:
        c.x = 1

    def user() -> int:
        if c.x == 1:
            raise ValueError("x was already set")
        return 0

    join(spawn(setter), spawn(user))
    return c.x


@corpus
def assert_in_thread_sometimes() -> Any:
    c = S()
    m = Mutex("m")

    def first() -> None:
        mutex_lock(m)
        c.flag = 1
        mutex_unlock(m)

    def second() -> None:
        mutex_lock(m)
        assert c.flag == 1, "second ran first"
        mutex_unlock(m)

    join(spawn(first), spawn(second))
    return c.flag


# -- a hard finding in one thread cuts the others short --------------------------------------
@corpus
def independent_bugs() -> Any:
    """Each thread hits its own BUG_ON, independently of the other."""
    c = S()

    def t1() -> None:
        c.x = 1
        BUG_ON(True, "t1")

    def t2() -> None:
        c.y = 1
        BUG_ON(True, "t2")

    join(spawn(t1), spawn(t2))
    return 0


@corpus
def bug_hides_warn() -> Any:
    """t1 always oopses; t2 WARNs, but only if it gets to run before the oops."""
    c = S()

    def t1() -> None:
        c.x = 1
        BUG_ON(True, "t1")

    def t2() -> None:
        c.y = 1
        WARN_ON(True, "t2")

    join(spawn(t1), spawn(t2))
    return 0


@corpus
def bug_hides_a_clean_run() -> Any:
    """t1 oopses if it reads back its own write; main's write in between saves it."""
    c = S()

    def t1() -> None:
        WRITE_ONCE(c, "x", 1)
        BUG_ON(READ_ONCE(c, "x") == 1, "t1 read back its own write")

    t = spawn(t1)
    WRITE_ONCE(c, "x", 2)
    join(t)
    return READ_ONCE(c, "x")


@corpus
def oops_then_join() -> Any:
    """main joins a thread that oopsed (an oops kills the task: join returns) and races t2."""
    c = S()

    def t1() -> None:
        WRITE_ONCE(c, "x", 1)
        BUG_ON(True, "t1")

    def t2() -> None:
        WRITE_ONCE(c, "x", 2)

    a, b = spawn(t1), spawn(t2)
    join(a)
    r = READ_ONCE(c, "x")
    join(b)
    return r


@corpus
def oops_holding_lock() -> Any:
    """t1 may oops holding m: m stays held, and t2 then waits for it forever."""
    c = S()
    m = Mutex("m")

    def t1() -> None:
        mutex_lock(m)
        BUG_ON(READ_ONCE(c, "y") == 1, "t1 saw y")
        mutex_unlock(m)

    def t2() -> None:
        WRITE_ONCE(c, "y", 1)
        mutex_lock(m)
        WRITE_ONCE(c, "x", 1)
        mutex_unlock(m)

    a, _ = spawn(t1), spawn(t2)
    join(a)
    return READ_ONCE(c, "x")


# -- cond_resched() ------------------------------------------------------------------------
@corpus
def yield_once() -> Any:
    """A single cond_resched() before a write: both write orders."""
    c = S()

    def t1() -> None:
        WRITE_ONCE(c, "y", 1)
        WRITE_ONCE(c, "x", 1)

    def t2() -> None:
        cond_resched()
        WRITE_ONCE(c, "x", 2)

    join(spawn(t1), spawn(t2))
    return READ_ONCE(c, "x")


@corpus
def yield_twice() -> Any:
    """Two cond_resched() before a write; t1 writing last is a bug."""
    c = S()

    def t1() -> None:
        WRITE_ONCE(c, "y", 1)
        WRITE_ONCE(c, "x", 1)

    def t2() -> None:
        cond_resched()
        cond_resched()
        WRITE_ONCE(c, "x", 2)

    join(spawn(t1), spawn(t2))
    x = READ_ONCE(c, "x")
    assert x == 2, "t2 wrote before t1"
    return x


@corpus
def spin_wait_relax() -> Any:
    """A spin-wait loop with cpu_relax(): finite in the search, sees the data once the flag is up."""
    c = S()

    def producer() -> None:
        c.x = 1
        WRITE_ONCE(c, "flag", 1)

    def spinner() -> int:
        spins = 0
        while not READ_ONCE(c, "flag"):
            cpu_relax()
            spins += 1
        return min(spins, 1) * 10 + int(READ_ONCE(c, "x"))

    return join(spawn(producer), spawn(spinner))[1]


@corpus
def relax_then_write() -> Any:
    """After cpu_relax() t2 waits for t1 to step; t1 writing x last (after t2) is a bug."""
    c = S()

    def t1() -> None:
        WRITE_ONCE(c, "y", 1)
        WRITE_ONCE(c, "x", 1)

    def t2() -> None:
        cpu_relax()
        WRITE_ONCE(c, "x", 2)

    join(spawn(t1), spawn(t2))
    x = READ_ONCE(c, "x")
    assert x == 2, "t2 wrote before t1"
    return x


@corpus
def bounded_spin() -> Any:
    """Spin on a flag with cpu_relax(), giving up after two tries; main's unrelated write
    is the step that lets the spinner try again."""
    c = S()

    def waiter() -> int:
        n = 0
        while not READ_ONCE(c, "flag") and n < 2:
            cpu_relax()
            n += 1
        return n

    t = spawn(waiter)
    WRITE_ONCE(c, "x", 1)
    WRITE_ONCE(c, "flag", 1)
    return join(t)


@corpus
def spin_until_flag() -> Any:
    """spin_until_cond() on a flag while the producer also writes an unrelated field."""
    c = S()

    def producer() -> None:
        WRITE_ONCE(c, "y", 1)
        c.x = 5
        WRITE_ONCE(c, "flag", 1)
        WRITE_ONCE(c, "y", 2)

    def waiter() -> Any:
        spin_until_cond(c, "flag", lambda v: v == 1)
        return (int(c.x), int(READ_ONCE(c, "y")))

    return join(spawn(producer), spawn(waiter))[1]


@corpus
def spin_until_reset() -> Any:
    """The condition holds, stops holding, holds again: the waiter may pass at either window."""
    c = S()

    def flipper() -> None:
        WRITE_ONCE(c, "flag", 1)
        WRITE_ONCE(c, "flag", 0)
        WRITE_ONCE(c, "x", 7)
        WRITE_ONCE(c, "flag", 1)

    def waiter() -> Any:
        spin_until_cond(c, "flag", lambda v: v == 1)
        return int(READ_ONCE(c, "x"))

    return join(spawn(flipper), spawn(waiter))[1]


@corpus
def spin_until_never() -> Any:
    """Nobody ever sets the flag: the waiter hangs, reported as a deadlock."""
    c = S()

    def waiter() -> None:
        spin_until_cond(c, "flag", lambda v: v == 1)

    def other() -> None:
        WRITE_ONCE(c, "x", 1)

    join(spawn(waiter), spawn(other))


# -- newer primitives: completions, atomics, refcounts, RCU ---------------------------------
@corpus
def completion_handshake() -> Any:
    c = S()
    done = Completion("done")

    def producer() -> None:
        c.x = 1
        complete(done)

    def consumer() -> int:
        wait_for_completion(done)
        return int(c.x)

    return join(spawn(producer), spawn(consumer))[1]


@corpus
def completion_try_wait() -> Any:
    c = S()
    done = Completion("done")

    def producer() -> None:
        WRITE_ONCE(c, "x", 1)
        complete(done)

    def poller() -> tuple[bool, int]:
        got = try_wait_for_completion(done)
        return (got, int(READ_ONCE(c, "x")))

    return join(spawn(producer), spawn(poller))[1]


@corpus
def completion_all_two_waiters() -> Any:
    c = S()
    done = Completion("done")

    def waiter() -> int:
        wait_for_completion(done)
        return int(c.x)

    a, b = spawn(waiter), spawn(waiter)
    c.x = 5
    complete_all(done)
    return join(a, b)


@corpus
def atomic_inc_return_race() -> Any:
    v = Atomic(0)
    return join(spawn(atomic_inc_return, v), spawn(atomic_inc_return, v))


@corpus
def refcount_last_put_frees() -> Any:
    """Two puts; whoever drops the last reference frees, and a late reader is a use-after-free."""
    c = S()
    obj = kmalloc(S, x=7)
    c.ptr = obj
    ref = Refcount(2)

    def put_early() -> None:
        if refcount_dec_and_test(ref):
            kfree(obj)

    def put_then_read() -> int:
        last = refcount_dec_and_test(ref)
        v = int(obj.x)  # the bug: reading after dropping the reference
        if last:
            kfree(obj)
        return v

    join(spawn(put_early), spawn(put_then_read))
    return 0


@corpus
def rcu_reader_vs_free() -> Any:
    """An RCU reader against an updater that unpublishes, waits for a grace period, frees."""
    c = S()
    obj = kmalloc(S, x=7)
    rcu_assign_pointer(c, "ptr", obj)

    def reader() -> int:
        rcu_read_lock()
        p = rcu_dereference(c, "ptr")
        v = int(p.x) if p is not None else -1
        rcu_read_unlock()
        return v

    def updater() -> None:
        rcu_assign_pointer(c, "ptr", None)
        synchronize_rcu()
        kfree(obj)

    return join(spawn(reader), spawn(updater))[0]


@corpus
def rcu_free_without_grace_period() -> Any:
    """The same updater without synchronize_rcu(): a use-after-free in some interleavings."""
    c = S()
    obj = kmalloc(S, x=7)
    rcu_assign_pointer(c, "ptr", obj)

    def reader() -> int:
        rcu_read_lock()
        p = rcu_dereference(c, "ptr")
        v = int(p.x) if p is not None else -1
        rcu_read_unlock()
        return v

    def updater() -> None:
        rcu_assign_pointer(c, "ptr", None)
        kfree(obj)

    return join(spawn(reader), spawn(updater))[0]
