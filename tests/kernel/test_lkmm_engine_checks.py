"""Under memory_model="lkmm" the kernel layer's checks still report, and nothing new is invented.

Each scenario runs under SC and under the LKMM: KASAN, lockdep, KCSAN and refcount_t
give the same verdict and kind both ways; RCU-protected freeing stays free of false
use-after-free reports although the reader's marked loads may now read older values;
and a publication through a pointer is ordered by the reader's address dependency
(``p = READ_ONCE(g->p); READ_ONCE(p->x)``), as the LKMM says, but not without the
writer's release.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kvmcheck import check, join, scenario, spawn
from kvmcheck.kernel import (
    READ_ONCE,
    WRITE_ONCE,
    Mutex,
    Refcount,
    Struct,
    kfree,
    kmalloc,
    mutex_lock,
    mutex_unlock,
    rcu_assign_pointer,
    rcu_dereference,
    rcu_read_lock,
    rcu_read_unlock,
    refcount_dec,
    smp_store_release,
    synchronize_rcu,
)


class Obj(Struct):
    x: int = 0


class Glob(Struct):
    p: object = None
    n: int = 0


def rcu_free(grace: bool) -> Callable[[], None]:
    def body() -> None:
        g = Glob()
        first = kmalloc(Obj, x=1)
        rcu_assign_pointer(g, "p", first)

        def reader() -> None:
            rcu_read_lock()
            p = rcu_dereference(g, "p")
            if p is not None:
                READ_ONCE(p, "x")
            rcu_read_unlock()

        def updater() -> None:
            new = kmalloc(Obj, x=2)
            rcu_assign_pointer(g, "p", new)
            if grace:
                synchronize_rcu()
            kfree(first)

        join(spawn(reader), spawn(updater))
        kfree(g.p)

    return body


def abba() -> None:
    a, b = Mutex("a"), Mutex("b")

    def one() -> None:
        mutex_lock(a)
        mutex_lock(b)
        mutex_unlock(b)
        mutex_unlock(a)

    def two() -> None:
        mutex_lock(b)
        mutex_lock(a)
        mutex_unlock(a)
        mutex_unlock(b)

    join(spawn(one), spawn(two))


def plain_race() -> None:
    g = Glob()

    def inc() -> None:
        g.n = g.n + 1

    join(spawn(inc), spawn(inc))


def underflow() -> None:
    r = Refcount(1)
    join(spawn(refcount_dec, r), spawn(refcount_dec, r))


CASES = {
    "rcu-free": (rcu_free(True), "ok", None),
    "rcu-free-no-grace-period": (rcu_free(False), "bug", "use-after-free"),
    "lockdep-abba": (abba, "bug", "lock-order"),
    "kcsan-plain-race": (plain_race, "bug", "data-race"),
    "refcount-underflow": (underflow, "bug", "refcount"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_kernel_checks_agree_under_both_models(name: str) -> None:
    body, verdict, kind = CASES[name]
    s = scenario(name=name)(body)
    for mm in ("sc", "lkmm"):
        r = check(s, memory_model=mm)
        assert r.verdict == verdict, (mm, r)
        assert (r.finding.kind if r.finding is not None else None) == kind, (mm, r.finding)


def publish(release: bool) -> Callable[[], None]:
    def body() -> None:
        g = Glob()

        def writer() -> None:
            o = kmalloc(Obj, x=0)
            WRITE_ONCE(o, "x", 1)
            (smp_store_release if release else WRITE_ONCE)(g, "p", o)

        def reader() -> None:
            p = READ_ONCE(g, "p")
            if p is not None:
                assert READ_ONCE(p, "x") == 1, "saw the object before its initialisation"

        join(spawn(writer), spawn(reader))
        kfree(g.p)

    return body


def test_address_dependency_orders_the_pointer_chase() -> None:
    ok = scenario(name="publish-release")(publish(True))
    bad = scenario(name="publish-once")(publish(False))
    assert check(ok, memory_model="lkmm").verdict == "ok"
    assert check(ok, memory_model="sc").verdict == "ok"
    r = check(bad, memory_model="lkmm")
    assert r.verdict == "bug" and r.finding is not None and r.finding.kind == "assertion"
    assert check(bad, memory_model="sc").verdict == "ok"


def test_sc_runs_the_body_itself() -> None:
    """Under SC the scenario body is not wrapped: the engine runs exactly what it ran before."""
    s = scenario(name="plain")(plain_race)
    assert s.memory_model == "sc" and s.body() is plain_race
    assert s.under("lkmm").body() is not plain_race and s.under("sc") is s


def test_plain_accesses_keep_their_sc_ordering() -> None:
    """A harness that reads a plain flag and then a marked value (page_track.fast_path's shape).

    The LKMM gives the racing plain flag no meaning; LKMM exploration makes plain writes
    releases and plain reads acquires, so the model's shortcut does not become a report
    (before, the READ_ONCE could read the old value after the flag was seen).
    """

    @scenario(name="plain-flag")
    def plain_flag() -> None:
        g = Glob()
        o = Obj()

        def writer() -> None:
            WRITE_ONCE(o, "x", 1)
            g.n = 1  # plain

        def reader() -> None:
            if g.n:  # plain
                assert READ_ONCE(o, "x") == 1, "saw the flag but not the value"

        join(spawn(writer), spawn(reader))

    assert check(plain_flag, memory_model="lkmm", kcsan=False).verdict == "ok"
    assert check(plain_flag, memory_model="sc", kcsan=False).verdict == "ok"
