"""Benchmark: 2 threads x 10 lock-protected increments under dpor (184,756 executions).

Prints executions/s and visible steps/s, and whether the search completed.
Run: make bench   (the engines side by side: bench_engine.py)
     .venv/bin/python bench/bench_lock_family.py --full | N K   (the whole search)
"""

from __future__ import annotations

import cProfile
import os
import pstats
import sys
import time
from math import factorial

from kvmcheck import check, join, scenario, spawn
from kvmcheck.kernel import Mutex, Struct, mutex_lock, mutex_unlock


class Counter(Struct):
    value: int = 0


def lock_family(n: int, k: int):  # type: ignore[no-untyped-def]
    @scenario(name=f"lock_family_{n}x{k}")
    def body() -> None:
        c = Counter()
        m = Mutex("m")

        def worker() -> None:
            for _ in range(k):
                mutex_lock(m)
                c.value = c.value + 1
                mutex_unlock(m)

        join(*[spawn(worker) for _ in range(n)])
        assert c.value == n * k

    return body


def main() -> None:
    if "--full" not in sys.argv and len(sys.argv) <= 2:
        # make bench: the old and new engines side by side (bench_engine.py), then where the
        # time goes; --full (or N K) runs the whole 2x10 search as before (minutes here).
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import bench_engine

        bench_engine.main()
        where_the_time_goes()
        return
    n, k = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) > 2 else (2, 10)
    expected = factorial(n * k) // factorial(k) ** n
    t0 = time.perf_counter()
    r = check(lock_family(n, k), strategy="dpor")
    dt = time.perf_counter() - t0
    print(f"lock family {n} threads x {k} sections, dpor")
    print(f"  executions   {r.executions:,} (expected {expected:,}; sleep-set blocked {r.blocked})")
    print(f"  complete     {r.complete}   verdict {r.verdict}")
    print(f"  steps        {r.steps:,}")
    print(f"  time         {dt:.2f} s")
    print(f"  executions/s {r.executions / dt:,.0f}")
    print(f"  steps/s      {r.steps / dt:,.0f}")
    where_the_time_goes()
    if "--profile" in sys.argv:
        prof = cProfile.Profile()
        prof.enable()
        check(lock_family(2, 6))
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(12)


LAYERS = (
    ("dpor search (clocks, races, sleep sets, wakeup trees)", "_engine/strategies/"),
    ("scheduler + greenlet switches", "_engine/"),
    ("kernel primitives (locks, lockdep, KCSAN)", "kernel/"),
    ("model code (the scenario)", "bench_lock_family.py"),
)


def where_the_time_goes() -> None:
    """Profile a 2x6 run and split its self time by layer (profiling inflates all of them)."""
    prof = cProfile.Profile()
    prof.enable()
    check(lock_family(2, 6))
    prof.disable()
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    totals: dict[str, float] = {}
    for (path, _, func), (_, _, tottime, _, _) in stats.items():
        layer = "python builtins / other"
        if "greenlet" in func:
            layer = "scheduler + greenlet switches"
        else:
            for name, marker in LAYERS:
                if marker in path:
                    layer = name
                    break
        totals[layer] = totals.get(layer, 0.0) + tottime
    whole = sum(totals.values()) or 1.0
    print("  where the time goes (self time under cProfile, 2x6 run):")
    for layer, t in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"    {100 * t / whole:5.1f}%  {layer}")


if __name__ == "__main__":
    main()
