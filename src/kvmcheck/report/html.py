"""The HTML report: a swimlane per thread, the finding on top, setup folded away.

One self-contained file (inline CSS, no scripts), readable at a glance: the
headline and KASAN/lockdep details first, then the interleaving with each
step's operation, model function and line, and the locks its thread held.
"""

from __future__ import annotations

import html
import os
from typing import TYPE_CHECKING

from kvmcheck.report.text import key_steps, setup_prefix, setup_summary, shown

if TYPE_CHECKING:
    from kvmcheck._engine.check import Result
    from kvmcheck._engine.finding import Step

CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em} h2{font-size:1.1em;margin-top:2em}
.verdict-bug{color:#b00020} .verdict-ok{color:#1b5e20} .verdict-bounded{color:#8d6e00}
pre.head{background:#fff3f3;border-left:4px solid #b00020;padding:.6em 1em;white-space:pre-wrap}
table.lanes{border-collapse:collapse;font-family:ui-monospace,monospace;font-size:12px}
table.lanes th{background:#eee;position:sticky;top:0;padding:4px 8px;text-align:left}
table.lanes td{border-top:1px solid #eee;padding:2px 8px;vertical-align:top;min-width:18em}
td.n{color:#888;text-align:right;min-width:3em}
td.op .fn{color:#777} td.op .held{color:#8a6d00;font-size:11px}
tr.key td.op{background:#fff6c8} tr.last td.op{background:#ffe0e0;font-weight:bold}
ol.keys{font-family:ui-monospace,monospace;font-size:12px}
td.lock{color:#0b4f9c} td.acc{color:#222}
.sched{font-family:ui-monospace,monospace;word-break:break-all;color:#555}
"""


def _op_class(op: str) -> str:
    return "lock" if ("lock" in op or op.startswith(("mutex", "down_", "up_"))) else "acc"


def _lanes(steps: list[Step], keys: set[int]) -> str:
    if not steps:
        return "<p>(no trace)</p>"
    tids = sorted({s.thread for s in steps})
    names = {s.thread: s.thread_name for s in steps}
    rows = ["<tr><th>step</th>" + "".join(f"<th>T{t} {html.escape(names[t])}</th>" for t in tids) + "</tr>"]
    n = setup_prefix(steps)
    if n:
        rows.append(
            f"<tr><td class=n>0-{n - 1}</td><td colspan={len(tids)}><i>main sets up: "
            f"{html.escape(setup_summary(steps[:n]))}</i></td></tr>"
        )
    last = steps[-1].index
    held: dict[int, tuple[str, ...]] = {s.thread: s.held for s in steps[:n]}
    for s in steps[n:]:
        cells = []
        for t in tids:
            if t != s.thread:
                cells.append("<td></td>")
                continue
            extra = ""
            if s.held != held.get(t, ()):
                extra = f"<div class=held>holding {html.escape(', '.join(s.held) or 'nothing')}</div>"
                held[t] = s.held
            where = f"{s.site.function} ({s.site.file.rsplit('/', 1)[-1]}:{s.site.line})"
            cells.append(
                f"<td class='op {_op_class(s.op)}' title='{html.escape(s.site.file)}:{s.site.line}'>"
                f"{html.escape(s.op)} <span class=fn>{html.escape(where)}</span>{extra}</td>"
            )
        cls = " class=last" if s.index == last else (" class=key" if s.index in keys else "")
        rows.append(f"<tr{cls}><td class=n>{s.index}</td>{''.join(cells)}</tr>")
    return "<table class=lanes>" + "\n".join(rows) + "</table>"


def _result(r: Result) -> str:
    name = html.escape(r.scenario + (f" [{r.variant}]" if r.variant else ""))
    out = [
        f"<h2>{name}: <span class=verdict-{r.verdict}>{r.verdict}</span></h2>",
        f"<p>{r.executions} executions, {r.steps} steps, {r.elapsed_s:.2f}s, {html.escape(r.strategy)}. "
        f"{html.escape(r.coverage)}</p>",
    ]
    f = r.finding
    if f is not None:
        head = "\n".join([f.headline, f"kind: {f.kind}", f.message, *f.details])
        out.append(f"<pre class=head>{html.escape(head)}</pre>")
        keys = key_steps(f)
        if keys:
            items = "".join(
                f"<li value={k.index}>T{k.thread} {html.escape(k.thread_name)}: {html.escape(k.op)} "
                f"<span class=fn>{html.escape(k.site.function)}:{k.site.line}</span></li>"
                for k in keys
            )
            out.append(f"<p>Key steps:</p><ol class=keys>{items}</ol>")
        trace = shown(f)
        out.append(_lanes(trace, {k.index for k in keys}))
        if len(trace) < len(f.trace):
            out.append(f"<p><i>The run went on for {len(f.trace) - len(trace)} more steps.</i></p>")
        out.append(f"<p>Replay: <span class=sched>{html.escape(f.schedule)}</span></p>")
    return "\n".join(out)


def render_html(results: list[Result]) -> str:
    body = "\n".join(_result(r) for r in results)
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>kvmcheck report</title>"
        f"<style>{CSS}</style></head><body><h1>kvmcheck report</h1>{body}</body></html>"
    )


def write_html(path: str, results: list[Result]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(render_html(results))
