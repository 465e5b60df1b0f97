"""Findings, the steps of a counterexample, and the engine's exceptions.

Every detector -- deadlock, KASAN, lockdep, a failed assert -- builds its
report through :class:`Finding`; the text and JSON reports render it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kvmcheck._engine.kinds import lookup


@dataclass(frozen=True)
class Site:
    """Where in the model something happened: function, file and line."""

    function: str
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.function} ({self.file}:{self.line})"

    def as_dict(self) -> dict[str, Any]:
        return {"function": self.function, "file": self.file, "line": self.line}


@dataclass(frozen=True)
class Step:
    """One visible operation of a counterexample."""

    index: int
    thread: int
    thread_name: str
    op: str
    site: Site
    held: tuple[str, ...]  # locks the thread holds once the step has taken effect
    stack: tuple[str, ...] = ()  # model functions, outermost first
    # what it read or wrote, as the report appends it to the operation (" = NULL", " 0→1");
    # put there by the kernel layer while the traced run goes (Execution.note_value)
    value: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.index,
            "thread": self.thread,
            "thread_name": self.thread_name,
            "op": self.op,
            **self.site.as_dict(),
            "held": list(self.held),
            "stack": list(self.stack),
        }


@dataclass(frozen=True)
class Finding:
    """A bug found in one execution.

    ``kind`` uses the names of DESIGN.md (deadlock, use-after-free, ...);
    ``headline`` is the kernel's own report headline for that kind;
    ``details`` are extra report lines (allocation and free sites, the two
    lockdep chains, the wait-for cycle).

    Frozen: a detector builds it whole; what the engine learns later (the thread and step
    that reported it, its schedule, its traced replay) makes a new one (``dataclasses.replace``).
    """

    kind: str
    message: str
    headline: str = ""
    thread: int | None = None
    details: tuple[str, ...] = ()
    schedule: str = ""
    trace: tuple[Step, ...] = ()
    scenario: str = ""
    needs: tuple[str, ...] = ()  # earlier runs' schedules replay must run first
    step: int | None = None  # the step at which it was reported (the run may go on after it)

    def __post_init__(self) -> None:
        lookup(self.kind)  # every kind is one of the registry's (kinds.py); a typo is an error

    def __str__(self) -> str:
        """A plain rendering (the report layer renders the full report with its trace table)."""
        lines = [
            self.headline or self.kind,
            f"kind: {self.kind}" + (f"    scenario: {self.scenario}" if self.scenario else ""),
        ]
        lines.append(self.message)
        lines.extend(self.details)
        if self.trace:
            lines.append("trace:")
            lines.extend(f"  {s.index:4}  T{s.thread} {s.thread_name}: {s.op}  {s.site}" for s in self.trace)
        if self.schedule:
            lines.append(f"schedule: {self.schedule}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "headline": self.headline,
            "message": self.message,
            "thread": self.thread,
            "details": list(self.details),
            "schedule": self.schedule,
            "step": self.step,
            "trace": [s.as_dict() for s in self.trace],
        }


class Abort(BaseException):
    """Unwinds a model thread once its execution has stopped (finding or kill).

    A BaseException so that model code's ``except Exception`` cannot swallow it.
    """


class UsageError(Exception):
    """A user's mistake: bad model file, unknown scenario, bad schedule.

    The CLI prints it as one line and exits with status 2.
    """


class ScheduleMismatch(UsageError):
    """A schedule that does not fit the model (it diverged at a step)."""


class Nondeterminism(UsageError):
    """The model did something different when re-run with the same schedule
    (it depends on something the checker does not control: time, randomness, set order)."""
