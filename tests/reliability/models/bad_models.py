"""Misbehaving models, one scenario each (the corpus runs them through the CLI)."""
# ruff: noqa: E722, SIM105

import itertools
import random
import sys
import time

from kvmcheck import join, nondet, scenario, spawn
from kvmcheck.kernel import BUG_ON, SpinLock, Struct, spin_lock, spin_unlock


class C(Struct):
    x: int = 0
    y: int = 0
    z: int = 0


def _pair(fn):  # type: ignore[no-untyped-def]
    c = C()
    join(spawn(fn, c), spawn(lambda c: setattr(c, "x", 2), c))


@scenario(kcsan=False)
def sys_exit_thread() -> None:
    def t(c: C) -> None:
        c.x = 1
        sys.exit(0)

    _pair(t)


@scenario(kcsan=False)
def sys_exit_body() -> None:
    C().x = 1
    sys.exit("bye")


@scenario(kcsan=False)
def raise_keyboard_interrupt() -> None:
    def t(c: C) -> None:
        c.x = 1
        raise KeyboardInterrupt

    _pair(t)


@scenario(kcsan=False)
def raise_generator_exit() -> None:
    def t(c: C) -> None:
        c.x = 1
        raise GeneratorExit

    _pair(t)


@scenario(kcsan=False)
def bare_except_loop() -> None:
    lock = SpinLock()

    def holder() -> None:
        spin_lock(lock)
        raise ValueError("oops holding the lock")

    def swallower() -> None:
        while True:
            try:
                spin_lock(lock)
                spin_unlock(lock)
            except:
                pass

    join(spawn(holder), spawn(swallower))


@scenario(kcsan=False)
def bare_except_return() -> None:
    c = C()

    def t() -> None:
        try:
            BUG_ON(c.x == 0)
        except:
            pass
        try:
            c.x = 1
        except:
            pass

    join(spawn(t))


@scenario(kcsan=False)
def pure_python_loop() -> None:
    def t(c: C) -> None:
        c.x = 1
        while True:
            pass

    _pair(t)


@scenario(kcsan=False)
def uses_random() -> None:
    c = C()

    def t() -> None:
        getattr(c, random.choice("xyz"))

    join(spawn(t), spawn(t))


@scenario(kcsan=False)
def uses_time() -> None:
    c = C()

    def t() -> None:
        c.x = 1
        if time.perf_counter_ns() // 1000 % 2:
            c.y = 1
        else:
            c.z = 1

    join(spawn(t), spawn(t), spawn(t))


_ids = itertools.count()


class Tag:
    def __init__(self, field: str) -> None:
        self.field, self.h = field, next(_ids)

    def __hash__(self) -> int:
        return self.h


@scenario(kcsan=False)
def set_order() -> None:
    c = C()
    tags = {Tag("x"), Tag("y"), Tag("z")}

    def t() -> None:
        for tag in tags:
            setattr(c, tag.field, 1)

    join(spawn(t))


@scenario(kcsan=False)
def deep_recursion() -> None:
    def r(n: int) -> int:
        return r(n + 1) + 1

    C().x = r(0)


@scenario(kcsan=False)
def spawn_not_callable() -> None:
    join(spawn(123))  # type: ignore[arg-type]


@scenario(kcsan=False)
def join_not_a_thread() -> None:
    join(42)  # type: ignore[arg-type]


@scenario(kcsan=False)
def nondet_zero() -> None:
    nondet(0)


@scenario(kcsan=False)
def printer() -> None:
    c = C()
    print("body prints")

    def t() -> None:
        print("thread prints")
        c.x = c.x + 1

    join(spawn(t), spawn(t))


@scenario(kcsan=False)
def raises_base_exception_subclass() -> None:
    class Mine(BaseException):
        pass

    C().x = 1
    raise Mine("custom")


@scenario(kcsan=False)
def hot_field() -> None:
    c = C()

    def reader() -> None:
        while c.x == 0:
            pass

    join(spawn(reader))


@scenario(kcsan=False)
def memory_hog_list() -> None:
    C().x = 1
    raise MemoryError("pretend")


@scenario(kcsan=False)
def unhashable_things() -> None:
    C().x = {[]: 1}  # type: ignore[dict-item]
