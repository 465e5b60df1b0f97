"""Schedule strings: the thread chosen at each step, run-length encoded.

``"0x5-1x2-0"`` means: thread 0 for five steps, thread 1 for two, thread 0
once.  Several executions that must replay in order (a lockdep report needs
the run that recorded the first chain) are joined with ``"|"``.
"""

from __future__ import annotations

import re

from kvmcheck._engine.finding import UsageError

_TOKEN = re.compile(r"^(\d+)(?:x(\d+))?$")


def encode(tids: list[int]) -> str:
    out: list[str] = []
    i = 0
    while i < len(tids):
        j = i
        while j < len(tids) and tids[j] == tids[i]:
            j += 1
        n = j - i
        out.append(f"{tids[i]}x{n}" if n > 1 else str(tids[i]))
        i = j
    return "-".join(out)


def decode(text: str) -> list[int]:
    text = text.strip()
    if not text:
        return []
    tids: list[int] = []
    for tok in text.split("-"):
        m = _TOKEN.match(tok)
        if m is None:
            raise UsageError(
                f"malformed schedule token {tok!r} in {text!r}: expected TID or TIDxCOUNT "
                "joined by '-' (e.g. 0x5-1x2-0)"
            )
        tids.extend([int(m.group(1))] * int(m.group(2) or 1))
    return tids


def split_runs(text: str) -> list[list[int]]:
    """Decode a schedule of one or more executions joined by '|'."""
    return [decode(part) for part in text.split("|")]
