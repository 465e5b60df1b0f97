"""Benchmark: every bundled scenario x variant, timed (the "every ok under 10 s" target).

Speed is a benchmark here, never a timed unit test.  Prints one row per pair
(verdict, executions, complete, seconds, headline) and, at the end, every `ok`
that took 10 s or more.  ``--markdown FILE`` also writes the rows as the
verdict table of docs/models/verdicts.md.

Run: make bench   (or: .venv/bin/python bench/bench_models.py [PREFIX] [--markdown FILE])
"""

from __future__ import annotations

import sys
import time

from kvmcheck import _hotpath, check
from kvmcheck._loader import bundled

LIMIT_S = 10.0


def main(prefix: str = "", markdown: str | None = None) -> None:
    slow: list[str] = []
    rows: list[str] = []
    slowest: tuple[float, str, int] = (0.0, "", 0)  # the slowest ok pair: seconds, name, executions
    total = 0.0
    for s in bundled():
        if not s.name.startswith(prefix):
            continue
        for v in s.variants or [None]:
            t0 = time.perf_counter()
            r = check(s, variant=v)
            dt = time.perf_counter() - t0
            total += dt
            head = r.finding.headline if r.finding else ""
            row = f"{s.name:32} {v or '-':26} {r.verdict:4} {r.executions:7}"
            print(f"{row} complete={r.complete!s:5} {dt:6.2f}s {head}", flush=True)
            state = "complete" if r.complete else "stopped at the finding"
            rows.append(
                f"| `{s.name}` | `{v}` | {r.verdict} | {r.executions} ({state}) | {dt:.2f} | {head} |"
            )
            if r.verdict == "ok" and dt > slowest[0]:
                slowest = (dt, f"{s.name} --variant {v}", r.executions)
            if r.verdict == "ok" and dt >= LIMIT_S:
                slow.append(f"{s.name} --variant {v}: {dt:.1f}s")
    print(_hotpath.describe())
    print(f"slowest ok pair: {slowest[1]}: {slowest[0]:.1f}s ({slowest[2]:,} executions)")
    print(f"total {total:.1f}s; ok runs at or over {LIMIT_S:.0f}s: {len(slow)}")
    for line in slow:
        print("  " + line)
    if markdown:
        head = (
            "| scenario | variant | verdict | executions | seconds | headline |\n|---|---|---|---|---|---|\n"
        )
        with open(markdown, "w", encoding="utf-8") as f:
            f.write(head + "\n".join(rows) + "\n")


if __name__ == "__main__":
    args = sys.argv[1:]
    md = None
    if "--markdown" in args:
        i = args.index("--markdown")
        md = args[i + 1]
        del args[i : i + 2]
    main(args[0] if args else "", md)
