"""Models that make the checker's own machinery misbehave: workers, probes, the watchdog."""

import os
import signal
import socket
import sys
import threading
import time

from kvmcheck import join, nondet, scenario, spawn
from kvmcheck.kernel import BUG_ON, Mutex, Struct, mutex_lock, mutex_unlock

PARENT = os.getpid()  # the process that imported the model (the CLI); workers are forked from it


class C(Struct):
    a: int = 0
    b: int = 0


_runs = [0]


@scenario(kcsan=False)
def first_run_oopses() -> None:
    """Its first execution in a process oopses, no later one does: state the checker does not
    control (a module global).  Whichever run sees the oops, the check must not say "ok"."""
    _runs[0] += 1
    BUG_ON(_runs[0] == 1)
    c = C()
    join(spawn(lambda: setattr(c, "a", 1)), spawn(lambda: setattr(c, "b", 1)))


def _locked_pair(on_second: object) -> None:
    """Three threads at one mutex: the search splits into several jobs."""
    m, c = Mutex("m"), C()

    def t() -> None:
        mutex_lock(m)
        c.a = c.a + 1
        mutex_unlock(m)

    def odd() -> None:
        mutex_lock(m)
        if nondet(2, "die?") == 1:
            on_second()  # type: ignore[operator]
        c.b = 1
        mutex_unlock(m)

    join(spawn(t), spawn(odd), spawn(t))


def _die_in_worker(how: str) -> None:
    if os.getpid() == PARENT:
        return  # only a forked worker dies: the command line lives to report it
    if how == "exit":
        os._exit(9)
    os.kill(os.getpid(), signal.SIGSEGV)


@scenario(kcsan=False)
def worker_exits() -> None:
    _locked_pair(lambda: _die_in_worker("exit"))


@scenario(kcsan=False)
def worker_segfaults() -> None:
    _locked_pair(lambda: _die_in_worker("segv"))


def _lockers(threads: int, rounds: int) -> None:
    m, c = Mutex("m"), C()

    def t() -> None:
        for _ in range(rounds):
            mutex_lock(m)
            c.a = c.a + 1
            mutex_unlock(m)

    join(*[spawn(t) for _ in range(threads)])


@scenario(kcsan=False)
def splits() -> None:
    """A small correct model whose search splits into jobs (for worker counts)."""
    _lockers(3, 1)


@scenario(kcsan=False)
def splits_forever() -> None:
    """A correct model whose split search is far too big to finish (for kill -9)."""
    print("search started", file=sys.stderr, flush=True)
    _lockers(4, 3)


@scenario(kcsan=False)
def loops_in_probe() -> None:
    """Pure Python looping before the first choice: the split's probe run runs it too."""
    c = C()
    c.a = 1
    while True:
        pass


# -- stuck in a C call -----------------------------------------------------------------------
@scenario(kcsan=False)
def sleeps() -> None:
    c = C()

    def t() -> None:
        c.a = 1
        print("search started", file=sys.stderr, flush=True)
        time.sleep(1000)

    join(spawn(t))


@scenario(kcsan=False)
def blocking_recv() -> None:
    c = C()
    a, b = socket.socketpair()

    def t() -> None:
        c.a = 1
        print("search started", file=sys.stderr, flush=True)
        a.recv(1)  # nobody ever sends

    try:
        join(spawn(t))
    finally:
        a.close()
        b.close()


@scenario(kcsan=False)
def lock_taken_twice() -> None:
    c = C()
    lock = threading.Lock()

    def t() -> None:
        c.a = 1
        print("search started", file=sys.stderr, flush=True)
        lock.acquire()
        lock.acquire()  # a Python lock is not recursive: blocked for ever

    join(spawn(t))
