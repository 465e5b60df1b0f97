"""The text report: kernel-style headline, then the interleaving, one column per thread."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kvmcheck._engine.check import Result
    from kvmcheck._engine.finding import Finding, Step

WIDTH = 44
RULE = "=" * 78


def _cell(step: Step) -> list[str]:
    lines = [step.op, f"  {step.site.function} {step.site.file.rsplit('/', 1)[-1]}:{step.site.line}"]
    if step.held:
        lines.append("  [" + ", ".join(step.held) + "]")
    return [ln if len(ln) <= WIDTH else ln[: WIDTH - 1] + "~" for ln in lines]


def render_trace(steps: list[Step]) -> list[str]:
    if not steps:
        return ["(no trace)"]
    tids = sorted({s.thread for s in steps})
    names = {s.thread: s.thread_name for s in steps}
    col = {t: i for i, t in enumerate(tids)}
    header = "step | " + " | ".join(f"T{t} {names[t]}"[:WIDTH].ljust(WIDTH) for t in tids)
    out = [header, "-" * len(header)]
    for s in steps:
        cell = _cell(s)
        for n, line in enumerate(cell):
            cols = [" " * WIDTH] * len(tids)
            cols[col[s.thread]] = line.ljust(WIDTH)
            num = f"{s.index:4d}" if n == 0 else "    "
            out.append(f"{num} | " + " | ".join(cols).rstrip())
    return out


def render_finding(f: Finding) -> str:
    out = [RULE, f.headline or f.kind, RULE]
    out.append(f"kind: {f.kind}" + (f"    scenario: {f.scenario}" if f.scenario else ""))
    out.append(f.message)
    out.extend(f.details)
    out.append("")
    out.extend(render_trace(f.trace))
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
        lines.append(str(r.finding))
    return "\n".join(lines)
