"""refcount_t and kref: the kernel's saturation WARNs, release ordering, kref_put."""

from __future__ import annotations

from typing import Any

import pytest

from kvmcheck import Result, join, spawn
from kvmcheck.kernel import (
    REFCOUNT_MAX,
    REFCOUNT_SATURATED,
    Atomic,
    Kref,
    Refcount,
    Struct,
    atomic_dec,
    atomic_dec_and_test,
    kfree,
    kfree_rcu,
    kmalloc,
    kref_get,
    kref_get_unless_zero,
    kref_init,
    kref_put,
    kref_read,
    rcu_assign_pointer,
    rcu_dereference,
    rcu_read_lock,
    rcu_read_unlock,
    refcount_add,
    refcount_add_not_zero,
    refcount_dec,
    refcount_dec_and_test,
    refcount_inc,
    refcount_inc_not_zero,
    refcount_read,
    refcount_set,
    refcount_sub_and_test,
)
from tests.kernel.helpers import ok, run


class Obj(Struct):
    ref: Any = None
    data: int = 0


class Global(Struct):
    ptr: Any = None
    released: int = 0


def refcount_warning(r: Result, what: str) -> None:
    assert r.verdict == "bug"
    assert r.finding is not None
    assert r.finding.kind == "refcount", r.finding
    assert f"refcount_t: {what}." in r.finding.message
    assert r.finding.headline.startswith("WARNING: refcount bug in ")


@pytest.mark.parametrize("start", [0, 1])
def test_inc_on_zero(start: int) -> None:
    def body() -> None:
        r = Refcount(start)
        refcount_inc(r)
        expect = REFCOUNT_SATURATED if start == 0 else 2
        assert refcount_read(r) == expect, hex(refcount_read(r))

    res = run(body)
    if start == 0:
        refcount_warning(res, "addition on 0; use-after-free")
    else:
        ok(res)


@pytest.mark.parametrize("start", [0, 2])
def test_add_on_zero(start: int) -> None:
    def body() -> None:
        r = Refcount(start)
        refcount_add(2, r)
        if start:
            assert refcount_sub_and_test(3, r) is False
            assert refcount_sub_and_test(1, r) is True
        else:
            assert refcount_read(r) == REFCOUNT_SATURATED

    res = run(body)
    if start == 0:
        refcount_warning(res, "addition on 0; use-after-free")
    else:
        ok(res)


@pytest.mark.parametrize("start", [0, 1])
def test_dec_and_test_underflow(start: int) -> None:
    def body() -> None:
        r = Refcount(start)
        hit_zero = refcount_dec_and_test(r)
        assert hit_zero == (start == 1)
        assert refcount_read(r) == (REFCOUNT_SATURATED if start == 0 else 0)

    res = run(body)
    if start == 0:
        refcount_warning(res, "underflow; use-after-free")
    else:
        ok(res)


@pytest.mark.parametrize("start", [1, 2])
def test_refcount_dec_hits_zero(start: int) -> None:
    def body() -> None:
        r = Refcount(start)
        refcount_dec(r)
        assert refcount_read(r) == (REFCOUNT_SATURATED if start == 1 else 1)

    res = run(body)
    if start == 1:
        refcount_warning(res, "decrement hit 0; leaking memory")
    else:
        ok(res)


@pytest.mark.parametrize("start", [REFCOUNT_MAX, REFCOUNT_MAX - 1])
def test_saturation(start: int) -> None:
    def body() -> None:
        r = Refcount()
        refcount_set(r, start)
        refcount_inc(r)
        if start == REFCOUNT_MAX:
            assert refcount_read(r) == REFCOUNT_SATURATED
            refcount_inc(r)  # a saturated refcount stays saturated
            assert refcount_read(r) == REFCOUNT_SATURATED
            assert refcount_inc_not_zero(r)
            assert refcount_dec_and_test(r) is False
            assert refcount_read(r) == REFCOUNT_SATURATED
        else:
            assert refcount_read(r) == REFCOUNT_MAX

    res = run(body)
    if start == REFCOUNT_MAX:
        refcount_warning(res, "saturated; leaking memory")
    else:
        ok(res)


def test_inc_not_zero() -> None:
    def body() -> None:
        r = Refcount(0)
        assert not refcount_inc_not_zero(r)
        assert not refcount_add_not_zero(2, r)
        assert refcount_read(r) == 0
        refcount_set(r, 1)
        assert refcount_inc_not_zero(r)
        assert refcount_add_not_zero(2, r)
        assert refcount_read(r) == 4

    ok(run(body))


@pytest.mark.parametrize("extra_put", [True, False])
def test_racing_puts(extra_put: bool) -> None:
    """One put too many: whichever thread comes second underflows."""

    def body() -> None:
        g = Global()
        r = Refcount(1 if extra_put else 2)

        def put() -> None:
            if refcount_dec_and_test(r):
                g.released = g.released + 1

        join(spawn(put), spawn(put))
        assert g.released == 1

    res = run(body)
    if extra_put:
        refcount_warning(res, "underflow; use-after-free")
    else:
        ok(res)


# -- ordering ------------------------------------------------------------------------------
@pytest.mark.parametrize("counter", ["refcount", "atomic"])
def test_put_releases_to_the_last_put(counter: str) -> None:
    """refcount_dec_and_test releases, so the last put sees every earlier user's writes;
    a relaxed atomic_dec does not."""

    def body() -> None:
        o = Obj(data=0)
        r = Refcount(2)
        a = Atomic(2)

        def writer() -> None:
            o.data = 1  # plain, before dropping the reference
            if counter == "refcount":
                if refcount_dec_and_test(r):
                    _ = o.data
            else:
                atomic_dec(a)

        def other() -> None:
            last = refcount_dec_and_test(r) if counter == "refcount" else atomic_dec_and_test(a)
            if last:
                _ = o.data  # the release path reads the object

        join(spawn(writer), spawn(other))

    res = run(body)
    if counter == "refcount":
        ok(res)
    else:
        assert res.finding is not None
        assert res.finding.kind == "data-race"


# -- kref ----------------------------------------------------------------------------------
def _release(g: Global, o: Obj) -> Any:
    def release(kref: Kref) -> None:
        assert kref is o.ref
        g.released = g.released + 1
        kfree(o)

    return release


def test_kref_put_calls_release_once() -> None:
    def body() -> None:
        g = Global()
        o = kmalloc(Obj, ref=Kref())
        kref_init(o.ref)
        kref_get(o.ref)
        assert kref_read(o.ref) == 2
        release = _release(g, o)
        ref = o.ref

        def put() -> int:
            return kref_put(ref, release)

        a, b = join(spawn(put), spawn(put))
        assert sorted((a, b)) == [0, 1]
        assert g.released == 1

    ok(run(body))


@pytest.mark.parametrize("use_after_put", [True, False])
def test_kref_use_after_put(use_after_put: bool) -> None:
    def body() -> None:
        g = Global()
        o = kmalloc(Obj, ref=Kref(2))
        release = _release(g, o)

        def user() -> None:
            if not use_after_put:
                o.data = 1
            kref_put(o.ref, release)
            if use_after_put:
                o.data = 1

        def owner() -> None:
            kref_put(o.ref, release)

        join(spawn(user), spawn(owner))

    res = run(body)
    if use_after_put:
        assert res.finding is not None
        assert res.finding.kind == "use-after-free"
    else:
        ok(res)


@pytest.mark.parametrize("unless_zero", [True, False])
def test_kref_get_unless_zero_under_rcu(unless_zero: bool) -> None:
    """An RCU lookup must use kref_get_unless_zero(): the object may be on its way out."""

    def body() -> None:
        g = Global()
        o = kmalloc(Obj, ref=Kref(1))
        rcu_assign_pointer(g, "ptr", o)

        def release(kref: Kref) -> None:
            kfree_rcu(o)

        def lookup() -> None:
            rcu_read_lock()
            p = rcu_dereference(g, "ptr")
            got = False
            if p is not None:
                ref = p.ref
                if unless_zero:
                    got = bool(kref_get_unless_zero(ref))
                else:
                    kref_get(ref)
                    got = True
            rcu_read_unlock()
            if got:
                kref_put(ref, release)

        def owner() -> None:
            rcu_assign_pointer(g, "ptr", None)
            kref_put(o.ref, release)

        join(spawn(lookup), spawn(owner))

    res = run(body, keep_going=True)  # past the WARN of kref_get() on 0, to what follows it
    if unless_zero:
        ok(res)
    else:
        # kref_get() on 0 warns (and saturates); the lookup's later kref_put() then runs on
        # memory the RCU callback already freed: KASAN on the embedded kref, the worse finding.
        assert res.finding is not None
        assert res.finding.kind == "use-after-free", res.finding
        assert "on freed object" in res.finding.message
        warned = [w.message for w in res.warnings if w.kind == "refcount"]
        assert any("addition on 0; use-after-free" in m for m in warned), res.warnings
