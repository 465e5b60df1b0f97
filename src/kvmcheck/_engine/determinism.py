"""Nondeterministic models: detected during a check, reported as :class:`Nondeterminism`.

The search assumes that a model run under the same schedule prefix takes the same
steps.  A model that reads ``random``, the clock, the order of a set of objects or
any state left over from an earlier execution breaks that assumption, and then a
verdict -- "ok, complete" above all -- means nothing.

Two checks, both cheap:

* **Same prefix, same operation.**  Each execution is compared, step by step, with
  the execution before it for as long as both took the same threads (and choice
  outcomes): the operation at each such step must be the same (object, mode, name).
  Exhaustive searches replay a prefix of the previous execution every time, so a
  model that diverges is caught at the step where it does.  Once the two
  executions part, the comparison stops (one ``if`` per step after that).
* **Probe before "complete".**  A search about to say "ok, complete" re-runs its
  first execution's schedule :data:`PROBES` times and compares every step (a
  one-execution search has nothing else to compare with); a re-run that draws from
  the global ``random`` module is nondeterministic whatever it drew, and so is one
  that reports anything (the search reported nothing, its first run included).  (Another
  Python thread drawing from it during those few executions would be blamed too.)

The error names the step, the thread and both operations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kvmcheck._engine.finding import Nondeterminism, ScheduleMismatch

if TYPE_CHECKING:
    from kvmcheck._engine.execution import Execution
    from kvmcheck._engine.ops import Op

PROBES = 3
_PREV = "_engine.determinism.prev"  # session layer: (schedule, values, ops) of the previous execution
_FIRST = "_engine.determinism.first"  # ... and of the first one (for the probe)
_HINT = (
    "the model is nondeterministic: it depends on something the checker does not control "
    "(random, time, the order of a set or dict of objects, id(), state kept across executions)"
)


class Witness:
    """Compares one execution with the previous one while they share a prefix."""

    __slots__ = ("ops", "tids", "values")

    def __init__(self, tids: list[int], values: dict[int, int], ops: list[Op]) -> None:
        self.tids = tids
        self.values = values
        self.ops = ops

    def step(self, ex: Execution, step: int, tid: int, op: Op) -> bool:
        """False once ``ex`` has left the previous execution's path (stop calling)."""
        if step >= len(self.tids) or self.tids[step] != tid:
            return False
        p = self.ops[step]
        if op.key != p.key or op.excl != p.excl or bool(op.choices) != bool(p.choices):
            raise _error(ex, step, tid, op, p)
        if op.choices:
            if op.choices != p.choices:
                raise _error(ex, step, tid, op, p)
            return ex.values.get(step) == self.values.get(step)
        if op.name != p.name:
            raise _error(ex, step, tid, op, p)
        return True


def _error(ex: Execution, step: int, tid: int, op: Op, p: Op) -> Nondeterminism:
    name = ex.threads[tid].name if tid < len(ex.threads) else f"T{tid}"
    return Nondeterminism(
        f"{_HINT}: after the same {step} steps, step {step} of thread {name!r} is "
        f"{op.name!r} now but was {p.name!r} in an earlier execution"
    )


def begin(ex: Execution) -> Witness | None:
    """The witness for a new execution (None for the first of a check)."""
    prev = ex.session.layers.get(_PREV)
    return None if prev is None else Witness(*prev)


def end(ex: Execution) -> None:
    """Remember this execution for the next one (and the first one for the probe)."""
    rec = (ex.schedule, ex.values, ex.ops)
    layers = ex.session.layers
    layers[_PREV] = rec
    layers.setdefault(_FIRST, rec)


def probe(first: Any, run: Callable[[list[int], dict[int, int], Any], Execution]) -> None:
    """Re-run the first execution's schedule PROBES times; any difference is Nondeterminism.

    ``first`` is :func:`first_of` the check's session; ``run(tids, values, prev)`` runs
    one execution replaying ``tids`` in a fresh session whose previous execution is ``prev``."""
    if first is None:
        return
    import random

    tids, values, _ = first
    for _ in range(PROBES):
        state = random.getstate()
        try:
            ex = run(list(tids), dict(values), first)
        except ScheduleMismatch as e:
            if isinstance(e, Nondeterminism):
                raise
            raise Nondeterminism(f"{_HINT}: re-running its first execution, {e}") from None
        if ex.outcome == "stopped":  # the check's time is up (or a signal): no verdict on this
            return
        again = ex.finding if ex.finding is not None else (ex.soft[0] if ex.soft else None)
        if again is not None:  # the search saw no report at all, so its first execution had none
            raise Nondeterminism(
                f"{_HINT}: re-running its first execution reported {again.kind} "
                f"({again.message}), which the search's own run of it did not"
            )
        if random.getstate() != state:  # checked by value: cheap, and certain where a coin flip is not
            raise Nondeterminism(
                f"{_HINT}: re-running its first execution drew from the global random module"
            )
        if len(ex.schedule) != len(tids):
            raise Nondeterminism(
                f"{_HINT}: its first execution took {len(tids)} steps, re-run with the same "
                f"schedule it took {len(ex.schedule)}"
            )


def with_previous(session: Any, prev: Any) -> Any:
    """``session`` with ``prev`` as its previous execution (for a probe)."""
    session.layers[_PREV] = prev
    return session


def first_of(session: Any) -> Any:
    return session.layers.get(_FIRST)
