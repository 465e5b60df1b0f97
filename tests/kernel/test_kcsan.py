"""KCSAN data races and the plain-access locking contract (``__locking__``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from kvmcheck import Result, check, join, scenario, spawn
from kvmcheck.kernel import (
    READ_ONCE,
    WRITE_ONCE,
    Mutex,
    RwLock,
    SpinLock,
    Struct,
    data_race,
    mutex_lock,
    mutex_unlock,
    read_lock,
    read_unlock,
    spin_lock,
    spin_unlock,
    write_lock,
    write_unlock,
)
from tests.kernel.helpers import found, ok, run


class Shared(Struct):
    x: int = 0
    y: int = 0


def _plain_write(s: Shared) -> None:
    s.x = 1


def _plain_read(s: Shared) -> int:
    return s.x


def _once_write(s: Shared) -> None:
    WRITE_ONCE(s, "x", 1)


def _once_read(s: Shared) -> int:
    return int(READ_ONCE(s, "x"))


def _data_race_read(s: Shared) -> int:
    return int(data_race(s, "x"))


def _two(a: Callable[[Shared], Any], b: Callable[[Shared], Any]) -> Callable[[], None]:
    def body() -> None:
        s = Shared()
        join(spawn(a, s, name="a"), spawn(b, s, name="b"))

    return body


# -- races ------------------------------------------------------------------------------------------
def test_two_plain_writes_race() -> None:
    r = run(_two(_plain_write, _plain_write))
    found(r, "data-race", "BUG: KCSAN: data-race on Shared.x")
    msg = r.finding.message  # type: ignore[union-attr]
    assert "write of Shared.x" in msg and "races with write" in msg


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (_plain_write, _plain_read),
        (_plain_write, _once_read),  # one plain side is enough
        (_once_write, _plain_read),
        (_plain_read, _once_write),
    ],
)
def test_one_plain_side_races(a: Callable[[Shared], Any], b: Callable[[Shared], Any]) -> None:
    found(run(_two(a, b)), "data-race", "BUG: KCSAN: data-race on Shared.x")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (_once_write, _once_write),
        (_once_write, _once_read),
        (_plain_read, _plain_read),  # two reads never race
        (_plain_read, _once_read),
        (_once_write, _data_race_read),
    ],
)
def test_marked_or_read_only_accesses_do_not_race(
    a: Callable[[Shared], Any], b: Callable[[Shared], Any]
) -> None:
    ok(run(_two(a, b)))


def test_data_race_read_is_never_reported_even_against_a_plain_write() -> None:
    ok(run(_two(_plain_write, _data_race_read)))


def test_races_on_different_fields_are_independent() -> None:
    def body() -> None:
        s = Shared()

        def wx() -> None:
            s.x = 1

        def wy() -> None:
            s.y = 1

        join(spawn(wx), spawn(wy))

    r = run(body)
    ok(r)
    assert r.executions == 1


# -- happens-before ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["mutex", "spinlock", "rwlock"])
def test_writes_under_a_lock_do_not_race(kind: str) -> None:
    def body() -> None:
        s = Shared()
        lk: Any = {"mutex": Mutex, "spinlock": SpinLock, "rwlock": RwLock}[kind]("s->lock")
        lock, unlock = {
            "mutex": (mutex_lock, mutex_unlock),
            "spinlock": (spin_lock, spin_unlock),
            "rwlock": (write_lock, write_unlock),
        }[kind]

        def inc() -> None:
            lock(lk)
            s.x = s.x + 1
            unlock(lk)

        join(spawn(inc), spawn(inc))

    r = run(body)
    ok(r)
    # rwlock: also whether the second writer queued while the first held it (writer fairness)
    assert r.executions == (4 if kind == "rwlock" else 2)


def test_reader_under_read_lock_and_writer_under_write_lock_do_not_race() -> None:
    def body() -> None:
        s, lk = Shared(), RwLock("s->lock")

        def reader() -> None:
            read_lock(lk)
            _ = s.x
            read_unlock(lk)

        def writer() -> None:
            write_lock(lk)
            s.x = 1
            write_unlock(lk)

        join(spawn(reader), spawn(reader), spawn(writer))

    ok(run(body))


def test_locking_only_one_side_still_races() -> None:
    def body() -> None:
        s, m = Shared(), Mutex("s->lock")

        def locked() -> None:
            mutex_lock(m)
            s.x = 1
            mutex_unlock(m)

        def unlocked() -> None:
            s.x = 2

        join(spawn(locked), spawn(unlocked))

    found(run(body), "data-race", "BUG: KCSAN: data-race on Shared.x")


def test_two_different_locks_do_not_order_accesses() -> None:
    def body() -> None:
        s, m1, m2 = Shared(), Mutex("m1"), Mutex("m2")

        def w(m: Mutex) -> None:
            mutex_lock(m)
            s.x = 1
            mutex_unlock(m)

        join(spawn(w, m1), spawn(w, m2))

    found(run(body), "data-race", "BUG: KCSAN: data-race on Shared.x")


def test_spawn_and_join_order_plain_accesses() -> None:
    def body() -> None:
        s = Shared()
        s.x = 1  # before the spawn: happens-before the child

        def child() -> None:
            s.x = s.x + 1

        join(spawn(child))
        s.x = s.x + 1  # after the join: the child's write happens-before
        join(spawn(child))
        assert s.x == 4

    ok(run(body))


def test_access_after_spawn_before_join_races() -> None:
    def body() -> None:
        s = Shared()

        def child() -> None:
            s.x = 1

        t = spawn(child)
        s.x = 2
        join(t)

    found(run(body), "data-race", "BUG: KCSAN: data-race on Shared.x")


# -- turning it off ---------------------------------------------------------------------------------
def test_check_kcsan_false_silences_races() -> None:
    body = _two(_plain_write, _plain_write)
    r = run(body, kcsan=False)
    ok(r)
    found(run(body), "data-race", "BUG: KCSAN: data-race on Shared.x")


def test_scenario_kcsan_false_silences_races() -> None:
    scn = scenario(kcsan=False)(_two(_plain_write, _plain_write))
    ok(check(scn))
    found(check(scn, kcsan=True), "data-race", "BUG: KCSAN: data-race on Shared.x")


def test_a_race_is_a_warning_and_does_not_hide_a_later_bug() -> None:
    def body() -> None:
        s = Shared()
        join(spawn(_plain_write, s), spawn(_plain_write, s))
        raise AssertionError("after the race")

    r = run(body)
    found(r, "data-race")  # reported first, so it is the headline; the later bug is listed
    assert [w.kind for w in r.warnings] == ["assertion"]


# -- the locking contract ---------------------------------------------------------------------------
class Cache(Struct):
    """``lock`` protects ``pfn``; ``valid`` is written under it but read locklessly on purpose;
    ``gen`` may be accessed under either lock."""

    __locking__: ClassVar[dict[str, Any]] = {
        "pfn": "lock",
        "valid": {"write": "lock", "read": ()},
        "gen": ("lock", "other_lock"),
    }
    pfn: int = 0
    valid: bool = False
    gen: int = 0
    free: int = 0  # no contract

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.lock = RwLock("cache->lock")
        self.other_lock = Mutex("cache->other_lock")


CONTRACT = "WARNING: locking contract violated"


def _contract(fn: Callable[[Cache], Any], **kw: Any) -> Result:
    def body() -> None:
        fn(Cache())

    return run(body, **kw)


def _plain_access_without_lock(c: Cache) -> None:
    c.pfn = 1


def test_contract_plain_write_without_the_lock() -> None:
    r = _contract(_plain_access_without_lock)
    assert r.verdict == "bug"
    assert r.finding is not None
    assert r.finding.kind == "assert-held"
    assert "locking contract" in r.finding.headline
    assert r.finding.headline == CONTRACT
    assert "Cache.pfn" in r.finding.message and "cache->lock" in r.finding.message
    assert "for write" in r.finding.message


def test_contract_plain_read_without_the_lock() -> None:
    r = _contract(lambda c: c.pfn)
    found(r, "assert-held", CONTRACT)
    assert "plain read of Cache.pfn without cache->lock held" in r.finding.message  # type: ignore[union-attr]


def test_contract_satisfied_with_the_lock() -> None:
    def fn(c: Cache) -> None:
        write_lock(c.lock)
        c.pfn = 1
        c.valid = True
        write_unlock(c.lock)
        read_lock(c.lock)
        assert c.pfn == 1
        read_unlock(c.lock)

    ok(_contract(fn))


def test_contract_write_needs_the_lock_exclusively() -> None:
    def fn(c: Cache) -> None:
        read_lock(c.lock)
        c.pfn = 1
        read_unlock(c.lock)

    r = _contract(fn)
    found(r, "assert-held", CONTRACT)
    assert "held for write" in r.finding.message  # type: ignore[union-attr]


def test_contract_lockless_reads_allowed_but_not_unlocked_writes() -> None:
    def lockless_read(c: Cache) -> None:
        assert c.valid is False

    def unlocked_write(c: Cache) -> None:
        c.valid = True

    ok(_contract(lockless_read))
    r = _contract(unlocked_write)
    found(r, "assert-held", CONTRACT)
    assert "Cache.valid" in r.finding.message  # type: ignore[union-attr]


def test_contract_alternatives() -> None:
    def under_other(c: Cache) -> None:
        mutex_lock(c.other_lock)
        c.gen = c.gen + 1
        mutex_unlock(c.other_lock)

    def under_neither(c: Cache) -> None:
        c.gen = 1

    ok(_contract(under_other))
    r = _contract(under_neither)
    found(r, "assert-held", CONTRACT)
    assert "cache->lock or cache->other_lock" in r.finding.message  # type: ignore[union-attr]


def test_contract_ignores_marked_accesses_and_unlisted_fields() -> None:
    def fn(c: Cache) -> None:
        WRITE_ONCE(c, "pfn", 1)
        assert READ_ONCE(c, "pfn") == 1
        c.free = 1

    ok(_contract(fn))


def test_contract_is_checked_by_the_holder_not_by_anyone() -> None:
    """The lock held by *another* thread does not satisfy the contract."""

    def body() -> None:
        c = Cache()
        write_lock(c.lock)
        join(spawn(lambda: c.pfn))
        write_unlock(c.lock)

    found(run(body), "assert-held", CONTRACT)


def test_constructor_is_not_an_access() -> None:
    ok(_contract(lambda c: None))


def test_kcsan_false_turns_the_contract_off_too() -> None:
    ok(_contract(_plain_access_without_lock, kcsan=False))
