"""A search far too big to finish: for stopping it with a signal."""

import sys

from kvmcheck import join, scenario, spawn
from kvmcheck.kernel import Struct


class C(Struct):
    a: int = 0
    b: int = 0


_started = []


def _say_started() -> None:
    """One line on stderr once the search runs: the signal tests wait for it."""
    if not _started:
        _started.append(1)
        print("search started", file=sys.stderr, flush=True)


@scenario(kcsan=False)
def big() -> None:
    _say_started()
    c = C()

    def t() -> None:
        for _ in range(6):
            c.a = c.a + 1
            c.b = c.b + 1

    join(*[spawn(t) for _ in range(4)])


@scenario(kcsan=False)
def spin() -> None:
    """A thread looping in pure Python: stopped inside the execution."""
    _say_started()
    c = C()

    def t() -> None:
        c.a = 1
        while True:
            pass

    join(spawn(t))
