"""The JSON report: always a list of results, each of one shape, with a schema version.

Each result: the engine's fields (scenario, variant, strategy, verdict,
complete, executions, blocked, steps, elapsed_s, coverage, finding, warnings),
plus ``schema``, ``expected``, ``as_expected``, ``replay`` (the command that
replays the counterexample, or null), ``minimised`` (sizes before and after,
or null) and ``from_db``.  A finding adds ``sites`` -- every site its report
names, as ``{"role", "function", "file", "line"}`` -- and ``failing_step``: the step of the
operation the report is about (the acquisition a lockdep WARN is printed before, the access
KASAN caught), or -- when that operation never ran (the report stopped the task) or is every
blocked thread's (a wait-for deadlock) -- the step at which the report was made; never null.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from kvmcheck.report.story import failing, racing_steps

if TYPE_CHECKING:
    from kvmcheck._engine.finding import Finding
    from kvmcheck.report.checked import Checked

SCHEMA = "kvmcheck.result/1"
_SITE = re.compile(r"(?P<fn>[\w.<>]+) \((?P<file>[^()\s]+):(?P<line>\d+)\)")


def sites(f: Finding) -> list[dict[str, Any]]:
    """Every ``function (file:line)`` the report names, with the words before it as its role."""
    out: list[dict[str, Any]] = []
    for text in [f.message, *f.details]:
        for m in _SITE.finditer(text):
            role = text[: m.start()].strip().rstrip(":").strip()
            role = re.sub(r"\s+at$", "", role) or "at"
            out.append({"role": role, "function": m["fn"], "file": m["file"], "line": int(m["line"])})
    return out


def finding_json(f: Finding) -> dict[str, Any]:
    d = f.as_dict()
    d["sites"] = sites(f) + [
        {
            "role": f"{s.op.split(' ', 1)[0]} by {s.thread_name}",
            "function": s.site.function,
            "file": s.site.file,
            "line": s.site.line,
        }
        for s in racing_steps(f, f.trace)
    ]
    fail = failing(f, f.trace)
    d["failing_step"] = fail.step.index if fail is not None and fail.step is not None else f.step
    return d


def result_json(c: Checked) -> dict[str, Any]:
    r = c.result
    d: dict[str, Any] = {"schema": SCHEMA, **r.as_dict()}
    d["finding"] = finding_json(r.finding) if r.finding is not None else None
    d["expected"] = c.expected
    d["as_expected"] = c.as_expected
    d["replay"] = c.replay_command()
    cx = c.counterexample
    d["minimised"] = cx.shrink.as_dict() if cx is not None and cx.shrink is not None else None
    d["from_db"] = c.from_db
    return d
