"""Guardrails for model writers: each mistake is one clear line (exit 2), or the kernel's report.

Every test here failed before its fix: a class-level ``Refcount(1)`` was one object shared by
every instance and execution; ``s.items.append(x)`` was invisible (an unlocked reader against
a locked writer was "ok"); an unset field read None; ``spin_lock(mutex)`` went through; a
NULL dereference was a Python exception; two locks built on one line were one lock class.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kvmcheck import check, join, scenario, spawn
from kvmcheck._engine.finding import UsageError
from kvmcheck.kernel import (
    Mutex,
    Refcount,
    RwLock,
    SpinLock,
    Struct,
    mutex_lock,
    mutex_unlock,
    read_lock,
    spin_lock,
    spin_unlock,
)
from tests.kernel.helpers import found, ok, run


# -- mutable class defaults ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "default", [[], {}, set(), "Refcount(1)", "SpinLock('x')", "Box()"], ids=lambda d: str(d)
)
def test_mutable_class_default_is_rejected_at_class_creation(default: Any) -> None:
    value = eval(default) if isinstance(default, str) else default
    with pytest.raises(UsageError) as e:
        type("Bad", (Struct,), {"__annotations__": {"x": Any}, "x": value})
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("Bad.x: mutable default ")
    assert "shared by every instance" in msg


def test_immutable_defaults_are_fine() -> None:
    class Fine(Struct):
        a: int = 0
        b: tuple[int, ...] = ()
        c: Any = None
        d: str = "x"

    assert Fine().b == ()


# -- containers in fields are replaced, not mutated ----------------------------------------------
class Box(Struct):
    items: Any = None
    table: Any = None


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.items.append(1),
        lambda b: b.items.__setitem__(0, 9),
        lambda b: b.items.extend([1]),
        lambda b: b.table.update(a=1),
        lambda b: b.table.__setitem__("k", 1),
    ],
    ids=["append", "setitem", "extend", "dict-update", "dict-setitem"],
)
def test_in_place_mutation_of_a_field_container_is_an_error(mutate: Any) -> None:
    def body() -> None:
        b = Box(items=[0], table={})
        mutate(b)

    with pytest.raises(UsageError) as e:
        check(scenario(body))
    msg = str(e.value)
    assert msg.startswith(("Box.items.", "Box.table.")), msg
    assert "replace it" in msg and "\n" not in msg


def test_replacing_the_container_is_visible_to_kcsan() -> None:
    """The mended model: the unlocked reader now races with the locked writer."""

    def body() -> None:
        b = Box(items=[])
        lk = Mutex("box->lock")

        def writer() -> None:
            mutex_lock(lk)
            b.items = [*b.items, 1]
            mutex_unlock(lk)

        def reader() -> int:
            return len(b.items)

        join(spawn(writer), spawn(reader))

    found(run(body), "data-race")


def test_frozen_containers_still_read_like_lists() -> None:
    def body() -> None:
        b = Box(items=[1, 2])
        b.items = b.items + [3]  # noqa: RUF005 - the concatenation a model would write
        assert b.items == [1, 2, 3] and list(b.items) == [1, 2, 3]
        assert isinstance(b.items, list)

    ok(run(body))


# -- a field with no default ----------------------------------------------------------------------
class NoDefault(Struct):
    pfn: int


def test_reading_a_field_never_set_says_so() -> None:
    def body() -> None:
        n = NoDefault()
        _ = n.pfn

    with pytest.raises(UsageError, match=r"NoDefault\.pfn read before it was ever set"):
        check(scenario(body))


def test_a_field_with_no_default_set_in_the_constructor_is_fine() -> None:
    def body() -> None:
        n = NoDefault(pfn=3)
        assert n.pfn == 3

    ok(run(body))


# -- lock API misuse ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "use"),
    [(Mutex, spin_lock), (SpinLock, mutex_lock), (SpinLock, read_lock), (RwLock, spin_unlock)],
    ids=["spin_lock-on-mutex", "mutex_lock-on-spinlock", "read_lock-on-spinlock", "spin_unlock-rwlock"],
)
def test_lock_used_with_the_wrong_api_is_an_error(make: Any, use: Any) -> None:
    def body() -> None:
        use(make("lk"))

    with pytest.raises(UsageError) as e:
        check(scenario(body))
    assert f"{use.__name__}() takes a " in str(e.value)


def test_spin_lock_on_null_is_a_null_dereference() -> None:
    def body() -> None:
        spin_lock(None)  # type: ignore[arg-type]

    found(run(body), "null-deref", "BUG: kernel NULL pointer dereference")


# -- NULL dereference in model code ---------------------------------------------------------------
class Gpc(Struct):
    khva: Any = None


def test_attribute_of_none_is_the_kernels_null_dereference() -> None:
    def body() -> None:
        g = Gpc()

        def user() -> None:
            p = g.khva
            _ = p.mem

        join(spawn(user))

    r = run(body)
    found(r, "null-deref", "BUG: kernel NULL pointer dereference")
    assert "NULL->mem at user (test_guardrails.py:" in r.finding.message  # type: ignore[union-attr]


def test_a_store_through_none_is_the_kernels_null_dereference_too() -> None:
    """``v->field = 1`` with v NULL: before, "exception in model code (AttributeError)"."""

    def body() -> None:
        g = Gpc()

        def user() -> None:
            p = g.khva
            p.mem = 1

        join(spawn(user))

    r = run(body)
    found(r, "null-deref", "BUG: kernel NULL pointer dereference")
    assert "store to NULL->mem at user (test_guardrails.py:" in r.finding.message  # type: ignore[union-attr]
    assert "#PF: supervisor write access in kernel mode" in r.finding.details  # type: ignore[union-attr]


def test_an_item_store_through_none_is_a_null_dereference() -> None:
    def body() -> None:
        p: Any = None
        p[0] = 1

    found(run(body), "null-deref", "BUG: kernel NULL pointer dereference")


# -- lock classes -------------------------------------------------------------------------------
def _ab(a: SpinLock, b: SpinLock) -> None:
    spin_lock(a)
    spin_lock(b)
    spin_unlock(b)
    spin_unlock(a)


def test_two_locks_built_on_one_line_are_two_classes() -> None:
    def body() -> None:
        a, b = SpinLock(), SpinLock()
        _ab(a, b)

    ok(run(body))


class Vcpu(Struct):
    mode: int = 0

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.mutex = Mutex()
        self.lock, self.other = SpinLock(), SpinLock()


def test_lock_class_is_named_after_the_expression_it_is_assigned_to() -> None:
    names: list[Any] = []

    def body() -> None:
        v = Vcpu()
        gpc = Gpc()
        gpc.lock = RwLock()  # type: ignore[attr-defined]
        lock = SpinLock()
        names.append((v.mutex.name, gpc.lock.name, lock.name, v.lock.name))  # type: ignore[attr-defined]

    check(scenario(body))
    # No simple target (a tuple assignment): the kind and the line, as before.
    assert names[0][:3] == ("Vcpu.mutex", "gpc->lock", "lock")
    assert names[0][3].startswith("spinlock_t@test_guardrails.py:")


def test_refcount_as_class_default_used_to_leak_across_executions() -> None:
    """The motivating bug: a fresh object started where the last execution left the shared one."""
    with pytest.raises(UsageError):

        class Obj(Struct):
            ref: Any = Refcount(1)


# -- the CLI: one line, exit 2 ------------------------------------------------------------------
MISUSE = """
from kvmcheck import scenario
from kvmcheck.kernel import Mutex, spin_lock

@scenario
def misuse():
    spin_lock(Mutex("m"))
"""

BAD_DEFAULT = """
from kvmcheck import scenario
from kvmcheck.kernel import Struct

class S(Struct):
    items: list = []

@scenario
def s():
    S()
"""


@pytest.mark.parametrize("src", [MISUSE, BAD_DEFAULT], ids=["wrong-api", "mutable-default"])
def test_cli_reports_misuse_in_one_line_with_exit_2(tmp_path: Path, src: str) -> None:
    f = tmp_path / "model.py"
    f.write_text(src)
    p = subprocess.run(
        [str(Path(sys.executable).parent / "kvmcheck"), "check", str(f)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
