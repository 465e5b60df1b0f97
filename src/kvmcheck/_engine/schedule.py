"""Schedule strings: the thread chosen at each step, run-length encoded.

``"0x5-1x2-0"`` means: thread 0 for five steps, thread 1 for two, thread 0
once.  A step that resolves a nondeterministic choice (``kvmcheck.nondet``)
is written ``TID=VALUE`` and never merged into a run: ``"0x2-1=1-1x3"`` is
thread 0 twice, then thread 1 taking its choice with outcome 1, then thread
1 three times.  Strings without ``=`` mean what they always meant.  Several
executions that must replay in order (a lockdep report needs the run that
recorded the first chain) are joined with ``"|"``.
"""

from __future__ import annotations

import re

from kvmcheck._engine.finding import UsageError

_TOKEN = re.compile(r"^(\d+)(?:x(\d+)|=(\d+))?$")


def encode(tids: list[int], values: dict[int, int] | None = None) -> str:
    """``tids[k]`` is the thread of step k; ``values[k]`` the outcome of a choice step."""
    out: list[str] = []
    i = 0
    vals = values or {}
    while i < len(tids):
        if i in vals:
            out.append(f"{tids[i]}={vals[i]}")
            i += 1
            continue
        j = i
        while j < len(tids) and tids[j] == tids[i] and j not in vals:
            j += 1
        n = j - i
        out.append(f"{tids[i]}x{n}" if n > 1 else str(tids[i]))
        i = j
    return "-".join(out)


MAX_DIGITS = 18  # a count, thread or choice longer than this is no schedule the checker wrote


def decode_steps(text: object, max_steps: int | None = None) -> tuple[list[int], dict[int, int]]:
    """The threads of the steps, and the outcome of each choice step (by step index).

    With ``max_steps``, a schedule longer than that is a UsageError raised before
    anything is allocated (``0x99999999999`` would otherwise take the memory)."""
    if not isinstance(text, str):
        raise UsageError(f"a schedule is a string like '0x5-1x2-0' (got {type(text).__name__} {text!r})")
    text = text.strip()
    if not text:
        return [], {}
    tids: list[int] = []
    values: dict[int, int] = {}
    for tok in text.split("-"):
        m = _TOKEN.match(tok)
        if m is None:
            raise UsageError(
                f"malformed schedule token {tok!r} in {text!r}: expected TID, TIDxCOUNT or "
                "TID=CHOICE joined by '-' (e.g. 0x5-1x2-0=1)"
            )
        if any(g is not None and len(g) > MAX_DIGITS for g in m.groups()):
            raise UsageError(f"schedule token {tok[:40]!r} has a number longer than {MAX_DIGITS} digits")
        count = int(m.group(2) or 1)
        if max_steps is not None and len(tids) + count > max_steps:
            raise UsageError(
                f"schedule has more than max_steps={max_steps} steps (token {tok!r} at step "
                f"{len(tids)}); raise --max-steps if it is really that long"
            )
        if m.group(3) is not None:
            values[len(tids)] = int(m.group(3))
        tids.extend([int(m.group(1))] * count)
    return tids, values


def decode(text: str) -> list[int]:
    """The threads of the steps (choice outcomes dropped; see :func:`decode_steps`)."""
    return decode_steps(text)[0]


def split_runs(text: object, max_steps: int | None = None) -> list[tuple[list[int], dict[int, int]]]:
    """Decode a schedule of one or more executions joined by '|' (each at most ``max_steps`` long).

    ``text`` is typed ``object``, not ``str``: a user's schedule comes here unchecked, and the
    compiled hot path (mypyc) would reject a non-string with a TypeError before the UsageError."""
    if not isinstance(text, str):
        raise UsageError(f"a schedule is a string like '0x5-1x2-0' (got {type(text).__name__} {text!r})")
    return [decode_steps(part, max_steps) for part in text.split("|")]
