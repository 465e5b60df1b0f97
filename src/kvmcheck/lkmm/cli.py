"""The body of ``kvmcheck litmus FILE.litmus ...``: herd7's answer under the LKMM, per file.

Every file is read first: a missing or malformed one is one line and exit 2.
Then, per file, herd7's block (states, Ok/No, witnesses, flags, observation),
the explanation (the witnessing execution, or the axiom and cycle that forbid the
outcome) unless ``brief``, and the comparison with the file's ``Result:`` line.
Exit 1 when any file's answer differs from its ``Result:``, else 0.
"""

from __future__ import annotations

import json
import sys
from typing import TextIO

from kvmcheck._engine.finding import UsageError

from .explain import explain, explain_text
from .explore import explore
from .parser import parse_litmus
from .report import herd_text, judge, result_json
from .syntax import LitmusError, LitmusTest


def load(path: str) -> LitmusTest:
    try:
        with open(path, encoding="utf-8") as f:
            src = f.read()
    except OSError as e:
        raise UsageError(f"{path}: cannot read the litmus file ({e.strerror})") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a text file") from None
    try:
        return parse_litmus(src)
    except LitmusError as e:
        raise UsageError(f"{path}: {e}") from None
    except RecursionError:
        raise UsageError(f"{path}: nesting too deep to parse") from None


def litmus_main(
    paths: list[str], as_json: bool = False, brief: bool = False, out: TextIO | None = None
) -> int:
    out = out if out is not None else sys.stdout
    tests = [load(p) for p in paths]
    differ = 0
    rows = []
    for path, test in zip(paths, tests, strict=True):
        try:
            res = explore(test)
        except LitmusError as e:
            raise UsageError(f"{path}: {e}") from None
        j = judge(res)
        differ += j.agrees is False
        if as_json:
            rows.append({"file": path, **result_json(res, None if brief else explain(res))})
            continue
        print(herd_text(res), file=out)
        if not brief:
            print(explain_text(res), file=out)
        if j.agrees is None:
            print(f"Result: {j.got} (the file states no Result: line)", file=out)
        elif j.agrees:
            print(f"Result: {j.got}, as the file says", file=out)
        else:
            print(f"Result: DIFFERS -- {j.why} ({path})", file=out)
        print(file=out)
    if as_json:
        print(json.dumps(rows, indent=2), file=out)
    return 1 if differ else 0
