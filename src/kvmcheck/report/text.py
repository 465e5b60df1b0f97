"""The text report: kernel-style headline, then the interleaving, one column per thread.

Steps taken while only the scenario's main thread existed (its setup) are
folded into one line naming what they called; every other step is one line,
"operation  function:line", in its thread's column.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kvmcheck._engine.check import Result
    from kvmcheck._engine.finding import Finding, Step

WIDTH = 72
RULE = "=" * 78


def setup_prefix(steps: list[Step]) -> int:
    """Number of leading steps taken before any thread but main ran."""
    for i, s in enumerate(steps):
        if s.thread != 0:
            # keep main's spawn steps visible: fold only up to the first spawn
            j = i
            while j > 0 and steps[j - 1].op.startswith("spawn("):
                j -= 1
            return j
    return 0


def setup_summary(steps: list[Step]) -> str:
    calls: list[str] = []
    for s in steps:
        name = s.stack[2] if len(s.stack) > 2 else s.site.function
        if name not in calls:
            calls.append(name)
    return ", ".join(calls)


def key_steps(f: Finding) -> list[Step]:
    """The steps that touch an object the finding names (e.g. ``khva[pfn 1]``), and the last one."""
    import re

    trace = shown(f)
    names = set(re.findall(r"\w+\[[^\]]+\]", f"{f.headline} {f.message}"))
    steps = [s for s in trace if any(n in s.op for n in names)] if names else []
    if trace and (not steps or steps[-1] is not trace[-1]):
        steps.append(trace[-1])
    return steps


def shown(f: Finding) -> list[Step]:
    """The trace up to the step that reported the finding (the run may have gone on)."""
    if f.step is None:
        return f.trace
    return [s for s in f.trace if s.index <= f.step]


def cell(step: Step) -> str:
    """ "operation  function (file:line)", the operation shortened if the cell is too narrow."""
    where = f"{step.site.function} ({step.site.file.rsplit('/', 1)[-1]}:{step.site.line})"
    text = f"{step.op}  {where}"
    return text if len(text) <= WIDTH else step.op[: max(8, WIDTH - len(where) - 3)] + "~  " + where


def render_trace(steps: list[Step]) -> list[str]:
    if not steps:
        return ["(no trace)"]
    tids = sorted({s.thread for s in steps})
    names = {s.thread: s.thread_name for s in steps}
    col = {t: i for i, t in enumerate(tids)}
    header = "step | " + " | ".join(f"T{t} {names[t]}"[:WIDTH].ljust(WIDTH) for t in tids)
    out = [header, "-" * len(header)]
    n = setup_prefix(steps)
    if n:
        out.append(f"   0 | ... steps 0-{n - 1}: main sets up ({setup_summary(steps[:n])})")
    held: dict[int, tuple[str, ...]] = {}
    for s in steps[:n]:
        held[s.thread] = s.held
    for s in steps[n:]:
        lines = [cell(s)]
        if s.held != held.get(s.thread, ()):  # show the locks held whenever they change
            lines.append("  holding: " + (", ".join(s.held) or "nothing"))
            held[s.thread] = s.held
        for k, text in enumerate(lines):
            cols = [" " * WIDTH] * len(tids)
            cols[col[s.thread]] = text[:WIDTH].ljust(WIDTH)
            num = f"{s.index:4d}" if k == 0 else "    "
            out.append(f"{num} | " + " | ".join(cols).rstrip())
    return out


def render_finding(f: Finding) -> str:
    out = [RULE, f.headline or f.kind, RULE]
    out.append(f"kind: {f.kind}" + (f"    scenario: {f.scenario}" if f.scenario else ""))
    out.append(f.message)
    out.extend(f.details)
    keys = key_steps(f)
    if keys:
        out.append("key steps:")
        out.extend(f"  {s.index:4d}  T{s.thread} {s.thread_name}: {cell(s)}" for s in keys)
    out.append("")
    trace = shown(f)
    out.extend(render_trace(trace))
    if len(trace) < len(f.trace):
        out.append(f"     ... the run went on for {len(f.trace) - len(trace)} more steps (replay shows them)")
    out.append("")
    out.append(f"schedule: {f.schedule}")
    return "\n".join(out)


def render_result(r: Result) -> str:
    name = r.scenario + (f" [{r.variant}]" if r.variant else "")
    head = (
        f"{name}: {r.verdict}  ({r.executions} executions"
        + (f", {r.blocked} blocked" if r.blocked else "")
        + f", {r.steps} steps, {r.elapsed_s:.2f}s, {r.strategy})"
    )
    lines = [head, f"  {r.coverage}"]
    if r.finding is not None:
        lines.append(render_finding(r.finding))
    if r.warnings:
        lines.append("also reported during the search:")
        lines.extend(f"  {w.headline}: {w.message}" for w in r.warnings)
    return "\n".join(lines)
