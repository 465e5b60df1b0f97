"""Benchmark: kvmcheck against the Python peer frontrun (PyPI frontrun==0.7.0), side by side.

Same machine, same process, same run; every time is time.perf_counter() around one
whole check() / frontrun.explore() call, best of REPEAT. Three workloads:

1. 2 threads x 2 lock-protected appends: distinct final orders explored (6 exist),
   executions, executions/s; and a bug that needs thread 1 to take the lock first
   (invariant: the final list does not start with 1) -- executions until found.
2. Lost update (2 threads, unlocked read-then-write of a counter): executions until
   the bug is found, and time.
3. Lock family 2 threads x k lock-protected increments, k = 3 and 5: executions
   explored (C(2k, k) = 20 and 252 lock-acquisition orders) and executions/s.

frontrun runs two ways: its defaults (preemption_bound=2) and full DPOR
(preemption_bound=None). Both with detect_io=False (the workloads do no I/O) and
reproduce_on_failure=0 (kvmcheck does not replay a counterexample 10 times either);
both favour frontrun's times. Exhaustive runs pass stop_on_first=False.

Run: .venv/bin/python bench/bench_peers.py
Needs: .venv/bin/pip install frontrun==0.7.0
"""

from __future__ import annotations

import os
import platform
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from importlib import metadata
from math import comb
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_lock_family import lock_family

from kvmcheck import __version__ as kvmcheck_version
from kvmcheck import check, join, scenario, spawn
from kvmcheck.kernel import Mutex, Struct, mutex_lock, mutex_unlock

FRONTRUN = "frontrun==0.7.0"
REPEAT = 5
FR_CONFIGS: list[tuple[str, int | None]] = [
    ("frontrun dpor, pb=2 (default)", 2),
    ("frontrun dpor, pb=None (full)", None),
]


def timed(fn: Callable[[], Any]) -> tuple[Any, float, list[Any]]:
    """REPEAT runs of ``fn``: (result of the fastest run, its seconds, every result)."""
    best, best_res = float("inf"), None
    results: list[Any] = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        res = fn()
        dt = time.perf_counter() - t0
        results.append(res)
        if dt < best:
            best, best_res = dt, res
    return best_res, best, results


def counts(ns: list[int]) -> str:
    """An execution count, or its range across the repeats if it varied."""
    lo, hi = min(ns), max(ns)
    return str(lo) if lo == hi else f"{lo}-{hi} (varies)"


def ms(dt: float) -> str:
    return f"{dt * 1e3:.1f}"


def rate(n: int, dt: float) -> str:
    return f"{n / dt:,.0f}" if dt > 0 else "-"


# --- kvmcheck models -----------------------------------------------------------------


class Items(Struct):
    items: tuple[int, ...] = ()


class Counter(Struct):
    value: int = 0


def kvm_appends(seen: set[tuple[int, ...]], bug: bool) -> Any:
    @scenario(name="peers_appends_2x2" + ("_bug" if bug else ""))
    def body() -> None:
        s = Items()
        m = Mutex("list->lock")

        def worker(i: int) -> None:
            for _ in range(2):
                mutex_lock(m)
                s.items = (*s.items, i)
                mutex_unlock(m)

        join(spawn(worker, 0), spawn(worker, 1))
        final = s.items
        seen.add(final)
        if bug:
            assert final[0] != 1, f"final list {final} starts with 1"

    return body


@scenario(name="peers_lost_update")
def kvm_lost_update() -> None:
    c = Counter()

    def deposit() -> None:
        tmp = c.value
        c.value = tmp + 1

    join(spawn(deposit), spawn(deposit))
    assert c.value == 2


def kvm_lock_family(k: int) -> Any:
    """The same scenario make bench times on its own (bench/bench_lock_family.py), 2 threads."""
    return lock_family(2, k)


# --- frontrun models (plain Python: threading.Lock, plain attributes) ---------------


class FrList:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[int] = []


class FrCounter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value = 0


def fr_appender(i: int) -> Callable[[FrList], None]:
    def worker(s: FrList) -> None:
        for _ in range(2):
            with s.lock:
                s.items.append(i)

    return worker


def fr_deposit(s: FrCounter) -> None:
    tmp = s.value
    s.value = tmp + 1


def fr_incrementer(k: int) -> Callable[[FrCounter], None]:
    def worker(s: FrCounter) -> None:
        for _ in range(k):
            with s.lock:
                s.value = s.value + 1

    return worker


def fr_not_thread1_first(s: FrList) -> bool:
    return s.items[0] != 1


def fr_two(s: FrCounter) -> bool:
    return s.value == 2


def fr_total_is(n: int, s: FrCounter) -> bool:
    return s.value == n


def fr_explore(fr: Any, pb: int | None, **kw: Any) -> Any:
    return fr.explore(strategy="dpor", preemption_bound=pb, detect_io=False, reproduce_on_failure=0, **kw)


# --- the table -------------------------------------------------------------------------


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")

    def line(r: list[str]) -> str:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        return "  " + "  ".join(cells).rstrip()

    print(line(header))
    print("  " + "  ".join("-" * w for w in widths))
    for r in rows:
        print(line(r))


def found_cell(found: bool, ns: list[int], dt: float) -> str:
    if found:
        return f"found after {counts(ns)} ({ms(dt)} ms)"
    return f"NOT found: search ended after {counts(ns)}"


def all_orders() -> set[tuple[int, ...]]:
    out: set[tuple[int, ...]] = set()
    for first in range(4):
        for second in range(first + 1, 4):
            order = [1, 1, 1, 1]
            order[first] = order[second] = 0
            out.add(tuple(order))
    return out


def part1(fr: Any) -> None:
    rows: list[list[str]] = []
    seen: set[tuple[int, ...]] = set()
    r, dt, rs = timed(lambda: check(kvm_appends(seen, bug=False), strategy="dpor"))
    _, dtb, rbs = timed(lambda: check(kvm_appends(set(), bug=True), strategy="dpor"))
    rows.append(
        [
            "kvmcheck dpor",
            counts([x.executions for x in rs]),
            f"{len(seen)}/{len(all_orders())}",
            ms(dt),
            rate(r.executions, dt),
            found_cell(all(x.verdict == "bug" for x in rbs), [x.executions for x in rbs], dtb),
        ]
    )
    for label, pb in FR_CONFIGS:
        fseen: set[tuple[int, ...]] = set()

        def record(s: FrList, fseen: set[tuple[int, ...]] = fseen) -> bool:
            fseen.add(tuple(s.items))
            return True

        workers = [fr_appender(0), fr_appender(1)]
        fr_r, dt, frs = timed(
            partial(fr_explore, fr, pb, setup=FrList, workers=workers, invariant=record, stop_on_first=False)
        )
        _, dtb, fbs = timed(
            partial(fr_explore, fr, pb, setup=FrList, workers=workers, invariant=fr_not_thread1_first)
        )
        rows.append(
            [
                label,
                counts([x.num_explored for x in frs]),
                f"{len(fseen)}/{len(all_orders())}",
                ms(dt),
                rate(fr_r.num_explored, dt),
                found_cell(all(x.property_holds is False for x in fbs), [x.num_explored for x in fbs], dtb),
            ]
        )
        missing = sorted(all_orders() - fseen)
        if missing:
            rows.append(["  final orders never explored:", "", "", "", "", " ".join(map(str, missing))])
    table(
        "1. 2 threads x 2 lock-protected appends (6 final orders exist); bug: final list starts with 1",
        ["tool", "execs", "orders", "time ms", "execs/s", "bug needing thread 1 first (execs)"],
        rows,
    )


def part2(fr: Any) -> None:
    rows: list[list[str]] = []
    _, dt, rs = timed(lambda: check(kvm_lost_update, strategy="dpor"))
    found = all(x.verdict == "bug" for x in rs)
    rows.append(["kvmcheck dpor", "yes" if found else "no", counts([x.executions for x in rs]), ms(dt)])
    for label, pb in FR_CONFIGS:
        _, dt, frs = timed(
            partial(fr_explore, fr, pb, setup=FrCounter, workers=fr_deposit, count=2, invariant=fr_two)
        )
        found = all(x.property_holds is False for x in frs)
        rows.append([label, "yes" if found else "no", counts([x.num_explored for x in frs]), ms(dt)])
    table(
        "2. Lost update (2 threads, unlocked read-then-write of a counter)",
        ["tool", "found", "execs until found", "time ms"],
        rows,
    )


def part3(fr: Any) -> None:
    rows: list[list[str]] = []
    for k in (3, 5):
        expected = comb(2 * k, k)
        r, dt, rs = timed(partial(check, kvm_lock_family(k), strategy="dpor"))
        rows.append(
            [
                "kvmcheck dpor",
                str(k),
                counts([x.executions for x in rs]),
                str(expected),
                f"{r.verdict}{'' if r.complete else ' (incomplete)'}",
                ms(dt),
                rate(r.executions, dt),
            ]
        )
        for label, pb in FR_CONFIGS:
            fr_r, dt, frs = timed(
                partial(
                    fr_explore,
                    fr,
                    pb,
                    setup=FrCounter,
                    workers=fr_incrementer(k),
                    count=2,
                    invariant=partial(fr_total_is, 2 * k),
                    stop_on_first=False,
                )
            )
            verdict = {True: "ok", False: "bug", None: "inconclusive"}[fr_r.property_holds]
            rows.append(
                [
                    label,
                    str(k),
                    counts([x.num_explored for x in frs]),
                    str(expected),
                    verdict,
                    ms(dt),
                    rate(fr_r.num_explored, dt),
                ]
            )
    table(
        "3. Lock family: 2 threads x k lock-protected increments (expected = C(2k,k) lock orders)",
        ["tool", "k", "execs", "expected", "verdict", "time ms", "execs/s"],
        rows,
    )


def main() -> int:
    # frontrun.explore() refuses to run outside its CLI wrapper (`frontrun python ...`),
    # whose only other effect is an LD_PRELOAD I/O interceptor these workloads do not need.
    os.environ.setdefault("FRONTRUN_ACTIVE", "1")
    try:
        import frontrun

        fr_version = metadata.version("frontrun")
    except (ImportError, metadata.PackageNotFoundError):
        print(f"frontrun is not installed; install it with: .venv/bin/pip install {FRONTRUN}")
        return 0

    print(
        f"kvmcheck {kvmcheck_version} vs frontrun {fr_version}"
        f"{'' if fr_version == '0.7.0' else ' (benchmark written against 0.7.0)'}"
        f" -- Python {platform.python_version()}, same process, best of {REPEAT}"
    )
    print("frontrun options: detect_io=False, reproduce_on_failure=0; pb = preemption_bound")
    part1(frontrun)
    part2(frontrun)
    part3(frontrun)
    return 0


if __name__ == "__main__":
    sys.exit(main())
