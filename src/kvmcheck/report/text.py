"""The text report: the kernel's headline and sites, then the story, then (with --full) every step.

Layout, top to bottom: the result line; the report as the kernel prints it
(headline, message, allocation/free sites, lockdep chains, both KCSAN
accesses); the *scenario* -- the story of the bug in lockdep's manner (see
``story.py``), one line per step: step number, thread, operation with the
value it read or wrote, and where; the failing operation last, marked ``>``;
then the schedule that replays it.  ``full=True`` adds every step.

Everything fits ``width`` columns (the terminal's, or 120 when not a TTY).
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import TYPE_CHECKING

from kvmcheck.report.story import Failing, blocked_lines, failing, objects_of, racing_steps, story

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kvmcheck._engine.check import Result
    from kvmcheck._engine.confirm import Counterexample
    from kvmcheck._engine.finding import Finding, Step

MAX_WIDTH = 120  # when stdout is not a terminal
MIN_WIDTH = 60


def terminal_width(stream: object = None) -> int:
    """Columns to fit: the terminal's when ``stream`` is a TTY, else 120 (``COLUMNS`` wins)."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return max(MIN_WIDTH, int(env))
    s = stream if stream is not None else sys.stdout
    isatty = getattr(s, "isatty", None)
    if callable(isatty) and isatty():
        return max(MIN_WIDTH, shutil.get_terminal_size((MAX_WIDTH, 24)).columns)
    return MAX_WIDTH


def setup_prefix(steps: list[Step]) -> int:
    """Number of leading steps taken before any thread but main ran (main's spawns excluded)."""
    for i, s in enumerate(steps):
        if s.thread != 0:
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


def shown(f: Finding) -> list[Step]:
    """The trace up to the failing operation (the run may have gone on after the report)."""
    fail = failing(f, f.trace)
    end = fail.step.index if fail is not None and fail.step is not None else f.step
    if end is None:
        return list(f.trace)
    return [s for s in f.trace if s.index <= end]


def key_steps(f: Finding) -> list[Step]:
    """The story's steps: what the HTML report highlights."""
    steps, _ = story(f, f.trace)
    return steps


def where(s: Step) -> str:
    return f"{s.site.function} {s.site.file.rsplit('/', 1)[-1]}:{s.site.line}"


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: max(1, n - 1)] + "~"


class _Lines:
    """Step lines in columns: mark, step, thread, operation, where -- fitted to ``width``."""

    def __init__(self, width: int, threads: list[str], ops: list[str], sites: list[str]) -> None:
        self.width = width
        self.tw = min(max([len(t) for t in threads] + [6]), 14)
        fixed = 1 + 5 + 2 + self.tw + 2
        site_w = min(max([len(s) for s in sites] + [0]), 44)
        self.ow = max(24, min(max([len(o) for o in ops] + [9]), width - fixed - 2 - site_w))

    def header(self) -> str:
        return _clip(f"  step  {'thread':<{self.tw}}  {'operation':<{self.ow}}  where", self.width).rstrip()

    def step(self, mark: str, idx: str, thread: str, op: str, site: str) -> str:
        body = f"{_clip(op, self.ow):<{self.ow}}  {site}" if site else op  # a made-up line has no site
        line = f"{mark}{idx:>5}  {_clip(thread, self.tw):<{self.tw}}  {body}"
        return _clip(line.rstrip(), self.width)

    def note(self, text: str) -> str:
        return _clip(" " * (8 + self.tw) + text, self.width)


def _op(s: Step) -> str:
    """The step's operation with the value it read or wrote (``read gpc->valid = true``)."""
    return s.op + s.value


def _tail_text(text: str, note: str) -> str:
    if text and note:
        return f"{text}  ({note})"
    return text or note


def render_story(f: Finding, width: int) -> list[str]:
    """The scenario section: the story steps, context switches, the failing operation last."""
    trace = f.trace
    steps, fail = story(f, trace)
    tail: list[tuple[str, str, str]] = []  # made-up last lines: (thread, text, note)
    if fail is not None and fail.step is None:
        tail.append((fail.thread, fail.text, fail.note))
    if fail is None:
        tail.extend((t, "", note) for t, note in blocked_lines(f))
    if not steps and not tail:
        return []
    lines = _Lines(
        width,
        [s.thread_name for s in steps] + [t for t, _, _ in tail],
        [_op(s) for s in steps] + [_tail_text(x, n) for _, x, n in tail],
        [where(s) for s in steps],
    )
    first, last = (steps[0].index, steps[-1].index) if steps else (0, 0)
    out = [
        f"Scenario: {len(steps)} of the {last - first + 1} steps {first}-{last} "
        "(> fails; --full: every step)",
        lines.header(),
    ]
    if first > 0:
        # only main's own setup is "setup": steps the threads took before the story starts
        # are said to be left out, not folded into main's line
        pre = [s for s in trace if s.index < first]
        n = setup_prefix(pre) if any(s.thread != 0 for s in pre) else len(pre)
        if n:
            span = f"0-{n - 1}" if n > 1 else "0"
            out.append(_clip(f"{span:>6}  main sets up and starts the threads", width))
        if n < first:
            span = f"{n}-{first - 1}" if first - 1 > n else str(n)
            out.append(_clip(f"{span:>6}  (steps not in the story: --full shows them)", width))
    prev: int | None = None
    fail_idx = fail.step.index if fail is not None and fail.step is not None else None
    for s in steps:
        if prev is not None and s.thread != prev:
            out.append(lines.note(f"-- switch to {s.thread_name} --"))
        prev = s.thread
        mark = ">" if s.index == fail_idx else " "
        out.append(lines.step(mark, str(s.index), s.thread_name, _op(s), where(s)))
    for thread, text, note in tail:
        out.append(lines.step(">", "-", thread, _tail_text(text, note), ""))
    return out


def render_full(f: Finding, width: int) -> list[str]:
    """Every step up to the failing one, setup folded into one line."""
    trace = f.trace
    fail = failing(f, trace)
    end = fail.step.index if fail is not None and fail.step is not None else f.step
    steps = [s for s in trace if end is None or s.index <= end]
    if not steps:
        return ["(no trace)"]
    n = setup_prefix(steps)
    body = steps[n:]
    lines = _Lines(width, [s.thread_name for s in body], [_op(s) for s in body], [where(s) for s in body])
    out = ["Every step:", lines.header()]
    if n:
        out.append(_clip(f"    0-{n - 1}  main sets up: {setup_summary(steps[:n])}", width))
    held: dict[int, tuple[str, ...]] = {s.thread: s.held for s in steps[:n]}
    for s in body:
        mark = ">" if s.index == end else " "
        out.append(lines.step(mark, str(s.index), s.thread_name, _op(s), where(s)))
        if s.held != held.get(s.thread, ()):
            out.append(lines.note("holding: " + (", ".join(s.held) or "nothing")))
            held[s.thread] = s.held
    if len(steps) < len(trace):
        out.append(f"   ... the run went on for {len(trace) - len(steps)} more steps (replay shows them)")
    return out


def race_sites(f: Finding, trace: Sequence[Step]) -> list[str]:
    """KCSAN: both racing accesses with their sites, as the kernel's report gives them."""
    out = []
    for s in racing_steps(f, trace):
        obj = objects_of(s.op)[0]
        out.append(f"  {s.op.split(' ', 1)[0]} to {obj} by task {s.thread_name} at {where(s)}")
    return out


def render_finding(f: Finding, *, full: bool = False, width: int = MAX_WIDTH) -> str:
    """A finding's report: headline, message, the story; every step with ``full``.  The steps
    are the finding's traced run, each with the value it read or wrote."""
    trace = f.trace
    rule = "=" * min(width, 78)
    out = [rule, _clip(f.headline or f.kind, width), rule]
    out.append(_clip(f"kind: {f.kind}" + (f"    scenario: {f.scenario}" if f.scenario else ""), width))
    out.extend(_clip(x, width) for x in [f.message, *f.details])
    out.extend(_clip(x, width) for x in race_sites(f, trace))
    story_lines = render_story(f, width)
    if story_lines:
        out.append("")
        out.extend(story_lines)
    if full:
        out.append("")
        out.extend(render_full(f, width))
    out.append("")
    out.append(f"schedule: {f.schedule}")
    return "\n".join(out)


def render_result(
    r: Result, cx: Counterexample | None = None, *, full: bool = False, width: int = MAX_WIDTH
) -> str:
    """A check's result; its finding as the counterexample ``cx`` (confirm()) shows it, when given."""
    name = r.scenario + (f" [{r.variant}]" if r.variant else "")
    head = (
        f"{name}: {r.verdict}  ({r.executions} executions"
        + (f", {r.blocked} blocked" if r.blocked else "")
        + f", {r.steps} steps, {r.elapsed_s:.2f}s, {r.strategy})"
    )
    lines = [_clip(head, width), _clip(f"  {r.coverage}", width)]
    if cx is not None and cx.shrink is not None:
        lines.append(_clip(f"  {cx.shrink.describe()}", width))
    f = cx.finding if cx is not None else r.finding
    if f is not None:
        lines.append(render_finding(f, full=full, width=width))
    if r.warnings:
        lines.append("also reported during the search:")
        lines.extend(_clip(f"  {w.headline}: {w.message}", width) for w in r.warnings)
    return "\n".join(lines)


__all__ = [
    "Failing",
    "key_steps",
    "render_finding",
    "render_full",
    "render_result",
    "render_story",
    "setup_prefix",
    "setup_summary",
    "shown",
    "terminal_width",
]
