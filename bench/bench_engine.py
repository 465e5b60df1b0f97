"""Engine benchmark: old engine vs new, side by side in one run (issue 15).

1. executions/s on 2 threads x 10 lock-protected increments (the first
   ``SECONDS`` of the search, best of ``ROUNDS`` alternating rounds) under
   - the old engine: this repository at ``OLD_COMMIT`` (before issue 15),
     extracted with ``git archive`` and run in a subprocess;
   - main before issue 24's house work (``HOUSE_COMMIT``), the same way;
   - the new engine's default ``dpor`` (optimal DPOR, wakeup trees), compiled (the hot path
     that ``pip install -e .`` builds with mypyc, when it did) and pure Python
     (``KVMCHECK_PURE=1``): issue 19 asks the compiled one for >= x2 of the pure one;
   - the new engine's ``dpor-source`` (the old algorithm on the new engine);
2. complete counts on 2x6 (924 traces) under all three;
3. lastzero(8): executions and sleep-set-blocked executions, dpor vs dpor-source;
4. the complete 2 x 8 search (12,870 traces) on 1 and 2 worker processes, alternating,
   best of ``ROUNDS``: the speed-up (and the whole 2 x 10 with BENCH_FULL=1);
5. peak RSS of a one-worker search at 10 % and 100 % of BENCH_RSS_EXECUTIONS executions
   (default 100,000; the issue's 10^6 takes ~10 minutes here) of the 2 x 10 search.

The machine is shared: absolute figures are noisy, the ratios measured in one
run are what to quote.  Run: .venv/bin/python bench/bench_engine.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
OLD_COMMIT = "b1ec38f"  # main before the engine work of issue 15
# main before issue 24's front door, frozen counterexample and one driver: the house work must
# stay within 10 % of it (same run, same machine)
HOUSE_COMMIT = os.environ.get("BENCH_HOUSE_COMMIT", "ce61ce5")
SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))

RUNNER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
from bench_lock_family import lock_family
from kvmcheck import check
n, k, strategy, seconds = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], float(sys.argv[6])
kw = {"max_seconds": seconds} if seconds > 0 else {}
t0 = time.perf_counter()
r = check(lock_family(n, k), strategy=strategy, **kw)
dt = time.perf_counter() - t0
print(json.dumps({"executions": r.executions, "blocked": r.blocked, "steps": r.steps,
                  "seconds": dt, "complete": r.complete, "verdict": r.verdict}))
"""


def old_tree(commit: str = OLD_COMMIT) -> str | None:
    """The sources of an earlier commit, extracted from git (None if git cannot)."""
    out = os.path.join(tempfile.gettempdir(), f"kvmcheck-{commit}")
    if os.path.isdir(os.path.join(out, "src", "kvmcheck")):
        return out
    os.makedirs(out, exist_ok=True)
    try:
        archive = subprocess.run(
            ["git", "-C", REPO, "archive", commit, "src", "bench"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", out], input=archive, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out


def run(
    src: str, bench: str, n: int, k: int, strategy: str, seconds: float, pure: bool = False
) -> dict[str, Any]:
    env = dict(os.environ, KVMCHECK_PURE="1" if pure else "")
    p = subprocess.run(
        [sys.executable, "-c", RUNNER, src, bench, str(n), str(k), strategy, str(seconds)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return dict(json.loads(p.stdout.strip().splitlines()[-1]))


COMPILED = "new engine, dpor (optimal), compiled"
PURE = "new engine, dpor (optimal), pure Python"


def compiled_state(src: str) -> str:
    """The hot path's line (kvmcheck/_hotpath.py): compiled or pure, in a fresh interpreter."""
    code = f"import sys; sys.path.insert(0, {src!r}); from kvmcheck import _hotpath as h; print(h.describe())"
    env = dict(os.environ, KVMCHECK_PURE="")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return p.stdout.strip()


def main() -> None:
    new_src = os.path.join(REPO, "src")
    engines: list[tuple[str, str, str, str, bool]] = []
    for label, commit in (("old engine", OLD_COMMIT), ("before the house", HOUSE_COMMIT)):
        tree = old_tree(commit)
        if tree is not None:
            src, bench = os.path.join(tree, "src"), os.path.join(tree, "bench")
            engines.append((f"{label} ({commit}), dpor", src, bench, "dpor", True))
    built = compiled_state(new_src)
    print(built)
    engines.append((COMPILED, new_src, HERE, "dpor", False))
    engines.append((PURE, new_src, HERE, "dpor", True))
    engines.append(("new engine, dpor-source", new_src, HERE, "dpor-source", False))

    print(f"2 threads x 10 lock-protected increments: first {SECONDS:g} s of the search, best of {ROUNDS}")
    best: dict[str, float] = {}
    for _ in range(ROUNDS):
        for name, src, bench, strat, pure in engines:
            r = run(src, bench, 2, 10, strat, SECONDS, pure)
            rate = r["executions"] / r["seconds"]
            best[name] = max(best.get(name, 0.0), rate)
    base = best.get(engines[0][0], 0.0) or 1.0
    for name, *_ in engines:
        print(f"  {name:38} {best[name]:8,.0f} executions/s   x{best[name] / base:.2f}")
    before = next((n for n, *_ in engines if n.startswith("before the house")), None)
    if before is not None:
        now = best[PURE] / (best[before] or 1.0)
        print(f"  pure new / before the house: x{now:.2f} (issue 24: within 10 %, i.e. >= x0.90)")
        now = best[COMPILED] / (best[before] or 1.0)
        print(f"  compiled new / before the house: x{now:.2f} (issue 19: >= x2)")
    print(f"  compiled / pure: x{best[COMPILED] / (best[PURE] or 1.0):.2f}")

    print("complete run, 2 threads x 6 increments (924 traces):")
    for name, src, bench, strat, pure in engines:
        r = run(src, bench, 2, 6, strat, 0, pure)
        print(
            f"  {name:34} executions {r['executions']:,}  blocked {r['blocked']}  "
            f"complete {r['complete']}  {r['executions'] / r['seconds']:,.0f}/s"
        )

    sys.path.insert(0, REPO)
    from tests.engine.test_optimal import lastzero

    from kvmcheck import check

    print("lastzero(8) (704 traces):")
    for strat in ("dpor", "dpor-source"):
        t0 = time.perf_counter()
        r = check(lastzero(8), strategy=strat)
        dt = time.perf_counter() - t0
        print(f"  {strat:12} executions {r.executions:,}  sleep-set blocked {r.blocked:,}  {dt:.2f} s")

    workers_speedup()
    peak_rss()


WORKERS_RUNNER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from bench_lock_family import lock_family
from kvmcheck import check
n, k, w = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
t0 = time.perf_counter()
r = check(lock_family(n, k), workers=w)
print(json.dumps({"executions": r.executions, "complete": r.complete, "seconds": time.perf_counter() - t0,
                  "coverage": r.coverage}))
"""


def workers_speedup() -> None:
    n, k = (2, 10) if os.environ.get("BENCH_FULL") else (2, 8)
    print(f"complete run, {n} threads x {k} increments, 1 vs 2 worker processes (best of {ROUNDS}):")
    best: dict[int, dict[str, Any]] = {}
    for _ in range(ROUNDS):
        for w in (1, 2):
            p = subprocess.run(
                [sys.executable, "-c", WORKERS_RUNNER, HERE, str(n), str(k), str(w)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            r = json.loads(p.stdout.strip().splitlines()[-1])
            if w not in best or r["seconds"] < best[w]["seconds"]:
                best[w] = r
    for w, r in best.items():
        print(
            f"  {w} worker(s)  executions {r['executions']:,}  complete {r['complete']}  "
            f"{r['seconds']:.2f} s  {r['executions'] / r['seconds']:,.0f}/s"
        )
    print(f"  speed-up on 2 workers: x{best[1]['seconds'] / best[2]['seconds']:.2f}")


RSS_RUNNER = r"""
import json, resource, sys
sys.path.insert(0, sys.argv[1])
from bench_lock_family import lock_family
from kvmcheck import check
total = int(sys.argv[2])
marks = {}
def progress(p):
    if p.executions >= total // 10 and "10%" not in marks:
        marks["10%"] = (p.executions, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
r = check(lock_family(2, 10), max_executions=total, on_progress=progress)
marks["100%"] = (r.executions, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
print(json.dumps(marks))
"""


def peak_rss() -> None:
    total = int(os.environ.get("BENCH_RSS_EXECUTIONS", "100000"))
    p = subprocess.run(
        [sys.executable, "-c", RSS_RUNNER, HERE, str(total)], capture_output=True, text=True, check=True
    )
    marks = json.loads(p.stdout.strip().splitlines()[-1])
    print(f"peak RSS over a {total:,}-execution run of 2 x 10 (one worker):")
    for at, (ex, kib) in marks.items():
        print(f"  at {at:>4} ({ex:,} executions): {kib / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
