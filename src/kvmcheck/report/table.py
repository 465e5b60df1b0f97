"""The --all summary table: one row per scenario x variant."""

from __future__ import annotations

from typing import Any


def render_table(rows: list[dict[str, Any]]) -> str:
    head = ("scenario", "variant", "expected", "verdict", "executions", "time")
    body = [
        (
            r["scenario"],
            r["variant"] or "-",
            r["expect"] or "-",
            r["verdict"] + ("" if r["as_expected"] else "  <-- UNEXPECTED"),
            str(r["executions"]) + (" (complete)" if r["complete"] else ""),
            f"{r['elapsed_s']:.2f}s",
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=False)]

    def line(cells: tuple[str, ...] | list[str]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=False)).rstrip()

    out = [line(head), line(["-" * w for w in widths])]
    out.extend(line(b) for b in body)
    return "\n".join(out)
