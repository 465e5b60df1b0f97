"""The HTML report: one swimlane per thread, the story highlighted, the rest folded.

One self-contained file (inline CSS and a small script, nothing fetched):

* the finding as the kernel prints it, and the warnings seen during the search;
* a table with a lane (column) per thread; a bar down a lane while its
  thread holds a lock (the locks named on hover and where they change);
* the story's steps (``story.py``) shown and highlighted, every other run of
  steps folded into one row -- click it to expand; the failing operation
  marked (``tr.failing``, ``id=failing``);
* a click on an operation shows the model source around its line;
* filters: tick threads on and off, pick an object to see only its steps.

For scripted checks (the test drives headless Chromium), a URL fragment
``#click:ID1,ID2`` clicks those elements once the page has loaded.
"""

from __future__ import annotations

import html
import linecache
import os
from typing import TYPE_CHECKING

from kvmcheck.report.story import objects_of, story
from kvmcheck.report.text import setup_prefix, setup_summary

if TYPE_CHECKING:
    from kvmcheck._engine.check import Result
    from kvmcheck._engine.confirm import Counterexample
    from kvmcheck._engine.finding import Finding

CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em} h2{font-size:1.1em;margin-top:2em}
.verdict-bug{color:#b00020} .verdict-ok{color:#1b5e20} .verdict-bounded{color:#8d6e00}
pre.head{background:#fff3f3;border-left:4px solid #b00020;padding:.6em 1em;white-space:pre-wrap}
ul.warnings{font-size:13px;color:#8a4b00}
.filters{margin:.6em 0;font-size:13px} .filters label{margin-right:1em}
table.lanes{border-collapse:collapse;font-family:ui-monospace,monospace;font-size:12px}
table.lanes th{background:#eee;position:sticky;top:0;padding:4px 8px;text-align:left}
table.lanes td{border-top:1px solid #f0f0f0;padding:2px 8px;vertical-align:top;min-width:16em}
td.n{color:#888;text-align:right;min-width:3em}
td.held{border-left:4px solid #4a7bd0}
td.held2{border-left:8px double #4a7bd0}
td.op{cursor:pointer} td.op .fn{color:#777} .heldnote{color:#8a6d00;font-size:11px}
tr.story td.op{background:#fff6c8}
tr.failing td.op{background:#ffd6d6;font-weight:bold;outline:2px solid #b00020}
tr.fold td{color:#555;font-style:italic;cursor:pointer;background:#f7f7f7}
tr[hidden]{display:none}
pre.src{display:none;margin:.3em 0 0;padding:.3em;background:#f4f4f4;font-size:11px;white-space:pre}
td.op.open pre.src{display:block}
.sched{font-family:ui-monospace,monospace;word-break:break-all;color:#555}
"""

SCRIPT = """
function kcToggleFold(id){
  var rows=document.querySelectorAll('tr[data-fold="'+id+'"]');
  var hide=!rows.length||!rows[0].hidden?true:false;
  rows.forEach(function(r){r.hidden=hide;});
  var f=document.getElementById(id); if(f){f.setAttribute('data-open',hide?'no':'yes');}
}
function kcApply(sec){
  var off={}; sec.querySelectorAll('input.thread').forEach(function(c){if(!c.checked)off[c.value]=1;});
  var obj=sec.querySelector('select.object'); var want=obj?obj.value:'';
  sec.querySelectorAll('tr.step').forEach(function(r){
    var hideT=off[r.getAttribute('data-thread')];
    var objs=(r.getAttribute('data-objects')||'').split('|');
    var hideO=want&&objs.indexOf(want)<0;
    r.classList.toggle('filtered',!!(hideT||hideO));
    if(hideT||hideO){r.hidden=true;}
    else if(want){r.hidden=false;}
    else{r.hidden=r.hasAttribute('data-fold')&&document.getElementById(r.getAttribute('data-fold')).getAttribute('data-open')!=='yes';}
  });
  sec.querySelectorAll('th.lane,td.lane').forEach(function(c){c.hidden=!!off[c.getAttribute('data-thread')];});
}
document.addEventListener('click',function(e){
  var t=e.target.closest?e.target.closest('tr.fold,td.op,input.thread'):null; if(!t)return;
  if(t.matches('tr.fold')){kcToggleFold(t.id);}
  else if(t.matches('td.op')){t.classList.toggle('open');}
  else{kcApply(t.closest('section'));}
});
document.addEventListener('change',function(e){
  if(e.target.matches('select.object,input.thread')){kcApply(e.target.closest('section'));}
});
window.addEventListener('load',function(){
  var h=decodeURIComponent(location.hash||'');
  if(h.indexOf('#click:')===0){h.slice(7).split(',').forEach(function(id){
    var el=document.getElementById(id); if(el){el.click();}
  });}
  if(h.indexOf('#object:')===0){var s=document.querySelector('select.object');
    if(s){s.value=h.slice(8);kcApply(s.closest('section'));}}
});
"""


_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _src(site_file: str, line: int, roots: list[str]) -> str:
    """A few lines of model source around ``line`` (the file found under the package or ``roots``)."""
    cands = []
    if site_file.startswith("kvmcheck/"):  # relative to the directory holding the package
        cands.append(os.path.join(_PACKAGE_PARENT, site_file))
    cands += [os.path.join(r, site_file) for r in roots]
    for path in cands:
        if os.path.exists(path):
            out = []
            for n in range(max(1, line - 2), line + 3):
                text = linecache.getline(path, n).rstrip()
                out.append(f"{'>' if n == line else ' '}{n:5d}  {text}")
            return "\n".join(out)
    return ""


def _held_class(held: tuple[str, ...]) -> str:
    return "" if not held else (" held2" if len(held) > 1 else " held")


def _lanes(f: Finding, sec: int, roots: list[str]) -> str:
    trace = f.trace
    chosen, fail = story(f, trace)
    end = fail.step.index if fail is not None and fail.step is not None else (f.step or len(trace) - 1)
    steps = [s for s in trace if s.index <= end]
    if not steps:
        return "<p>(no trace)</p>"
    keys = {s.index for s in chosen}
    tids = sorted({s.thread for s in steps})
    names = {s.thread: s.thread_name for s in steps}
    head = "".join(f"<th class=lane data-thread={t}>T{t} {html.escape(names[t])}</th>" for t in tids)
    rows = [f"<tr><th>step</th>{head}</tr>"]
    n = setup_prefix(steps)
    if n:
        rows.append(
            f"<tr class=setup><td class=n>0-{n - 1}</td><td colspan={len(tids)}><i>main sets up: "
            f"{html.escape(setup_summary(steps[:n]))}</i></td></tr>"
        )
    held: dict[int, tuple[str, ...]] = dict.fromkeys(tids, ())
    for s in steps[:n]:
        held[s.thread] = s.held
    fold = 0
    pending: list[str] = []  # rows of the current fold

    def close_fold() -> None:
        nonlocal pending
        if pending:
            fid = f"fold-{sec}-{fold}"
            count = len(pending)
            rows.append(
                f"<tr class=fold id={fid} data-open=no><td class=n>+{count}</td>"
                f"<td colspan={len(tids)}>{count} more step(s) folded: click to expand</td></tr>"
            )
            rows.extend(p.replace("data-fold=?", f"data-fold={fid}") for p in pending)
            pending = []

    for s in steps[n:]:
        before = held[s.thread]
        held[s.thread] = s.held
        op = s.op + s.value  # with the value it read or wrote
        note = ""
        if s.held != before:
            note = f"<div class=heldnote>holding {html.escape(', '.join(s.held) or 'nothing')}</div>"
        where = f"{s.site.function} ({s.site.file.rsplit('/', 1)[-1]}:{s.site.line})"
        src = _src(s.site.file, s.site.line, roots)
        cells = []
        for t in tids:
            bar = _held_class(held[t])
            title = f" title='holding {html.escape(', '.join(held[t]))}'" if held[t] else ""
            if t != s.thread:
                cells.append(f"<td class='lane{bar}' data-thread={t}{title}></td>")
                continue
            cells.append(
                f"<td class='lane op{bar}' data-thread={t}{title}>{html.escape(op)} "
                f"<span class=fn>{html.escape(where)}</span>{note}"
                + (f"<pre class=src>{html.escape(src)}</pre>" if src else "")
                + "</td>"
            )
        objs = "|".join(objects_of(s.op))
        cls = "step" + (" story" if s.index in keys else "") + (" failing" if s.index == end else "")
        ident = f" id=failing-{sec}" if s.index == end else f" id=step-{sec}-{s.index}"
        attrs = f"class='{cls}'{ident} data-thread={s.thread} data-objects='{html.escape(objs)}'"
        row = f"<tr {attrs}{{FOLD}}><td class=n>{s.index}</td>{''.join(cells)}</tr>"
        if s.index in keys or s.index == end:
            close_fold()
            fold += 1
            rows.append(row.replace("{FOLD}", ""))
        else:
            pending.append(row.replace("{FOLD}", " data-fold=? hidden"))
    close_fold()
    for thread, text in _tail(f, fail):
        rows.append(
            f"<tr class='step story failing made' data-thread=-1><td class=n>-</td>"
            f"<td colspan={len(tids)}>{html.escape(thread)}: {html.escape(text)}</td></tr>"
        )
    return "<table class=lanes>" + "\n".join(rows) + "</table>"


def _tail(f: Finding, fail: object) -> list[tuple[str, str]]:
    from kvmcheck.report.story import Failing, blocked_lines

    if isinstance(fail, Failing) and fail.step is None:
        return [(fail.thread, f"{fail.text} ({fail.note})")]
    if fail is None:
        return blocked_lines(f)
    return []


def _filters(f: Finding) -> str:
    trace = f.trace
    names = {s.thread: s.thread_name for s in trace}
    boxes = "".join(
        f"<label><input type=checkbox class=thread id=thread-toggle-{t} value={t} checked> "
        f"T{t} {html.escape(n)}</label>"
        for t, n in sorted(names.items())
    )
    objs = sorted({o for s in trace for o in objects_of(s.op)})
    opts = "".join(f"<option>{html.escape(o)}</option>" for o in objs)
    return (
        f"<div class=filters>threads: {boxes} object: <select class=object>"
        f"<option value=''>(all)</option>{opts}</select></div>"
    )


def _result(r: Result, cx: Counterexample | None, sec: int, roots: list[str]) -> str:
    name = html.escape(r.scenario + (f" [{r.variant}]" if r.variant else ""))
    out = [
        f"<section id=result-{sec}>",
        f"<h2>{name}: <span class=verdict-{r.verdict}>{r.verdict}</span></h2>",
        f"<p>{r.executions} executions, {r.steps} steps, {r.elapsed_s:.2f}s, {html.escape(r.strategy)}. "
        f"{html.escape(r.coverage)}</p>",
    ]
    f = cx.finding if cx is not None else r.finding
    if f is not None:
        head = "\n".join([f.headline, f"kind: {f.kind}", f.message, *f.details])
        out.append(f"<pre class=head>{html.escape(head)}</pre>")
    if r.warnings:
        items = "".join(f"<li>{html.escape(w.headline)}: {html.escape(w.message)}</li>" for w in r.warnings)
        out.append(f"<p>Also reported during the search:</p><ul class=warnings>{items}</ul>")
    if f is not None:
        out.append(
            "<p>Highlighted: the story (steps on the finding's objects and the locks that order them); "
            "red: the failing operation; grey rows: folded steps, click to expand; "
            "click an operation for its source.</p>"
        )
        out.append(_filters(f))
        out.append(_lanes(f, sec, roots))
        out.append(f"<p>Replay: <span class=sched>{html.escape(f.schedule)}</span></p>")
    out.append("</section>")
    return "\n".join(out)


def render_html(
    results: list[Result], cxs: list[Counterexample | None] | None = None, roots: list[str] | None = None
) -> str:
    """Results as one page; each finding as its counterexample (``cxs``, from confirm()) shows it."""
    cxs = cxs if cxs is not None else [None] * len(results)
    body = "\n".join(
        _result(r, cx, i, roots or []) for i, (r, cx) in enumerate(zip(results, cxs, strict=True))
    )
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>kvmcheck report</title>"
        f"<style>{CSS}</style></head><body><h1>kvmcheck report</h1>{body}"
        f"<script>{SCRIPT}</script></body></html>"
    )


def write_html(
    path: str,
    results: list[Result],
    cxs: list[Counterexample | None] | None = None,
    roots: list[str] | None = None,
) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(render_html(results, cxs, roots))
