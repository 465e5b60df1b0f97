"""herd7's answer for a litmus test, in herd7's layout, and the check against its ``Result:``.

The layout is herd7's (herd/top_herd.ml): ``Test``, ``States``, one line per final
state, ``Ok``/``No``, ``Witnesses``, ``Positive: p Negative: n``, ``Flag ...``,
``Condition ...``, ``Observation NAME Always|Sometimes|Never p n``.  Positive and
negative count consistent executions (not states) where the condition's
proposition holds or not; the verdict is ``Never`` when none holds, ``Always``
when all do.  The kernel's judgelitmus.sh reads ``Result: DEADLOCK`` as "no
execution at all" (``Never 0 0``) and ``DATARACE`` after the verdict as "the
data-race flag is raised".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .domains import value_key
from .explore import Result
from .syntax import Value, show_prop

KIND = {"exists": "Allowed", "~exists": "Forbidden", "forall": "Required"}


def verdict(res: Result) -> str:
    if res.pos == 0:
        return "Never"
    return "Always" if res.neg == 0 else "Sometimes"


def condition_ok(res: Result) -> bool:
    q = res.test.condition.quantifier
    if q == "exists":
        return res.pos > 0
    if q == "~exists":
        return res.pos == 0
    return res.neg == 0


@dataclass(frozen=True)
class Judgement:
    agrees: bool | None  # None: the file states no Result
    expected: str
    got: str
    why: str


def judge(res: Result) -> Judgement:
    """Compare with the file's ``Result:`` line as the kernel's judgelitmus.sh does."""
    exp = res.test.expected
    got = verdict(res)
    race = "data-race" in res.flags
    got_text = got + (" DATARACE" if race else "")
    if exp is None:
        return Judgement(None, "-", got_text, "the file states no Result")
    want_race = any(w.upper() == "DATARACE" for w in exp.flags)
    exp_text = exp.verdict + (" DATARACE" if want_race else "")
    if exp.verdict == "DEADLOCK":
        ok = res.pos == 0 and res.neg == 0
        why = "" if ok else f"expected no execution at all (Never 0 0), got {got} {res.pos} {res.neg}"
        return Judgement(ok, exp_text, f"{got} {res.pos} {res.neg}", why)
    if exp.verdict not in ("Always", "Sometimes", "Never", "Maybe"):
        return Judgement(False, exp_text, got_text, f"unknown Result {exp.verdict!r}")
    if exp.verdict != "Maybe" and exp.verdict != got:
        return Judgement(False, exp_text, got_text, f"expected {exp.verdict}, herd's LKMM says {got}")
    if want_race != race:
        why = (
            "a data race is predicted but not modelled"
            if want_race
            else "an unexpected data race is modelled"
        )
        return Judgement(False, exp_text, got_text, why)
    if exp.flag_lines is not None and set(exp.flag_lines) != res.flags:
        want, have = ", ".join(sorted(exp.flag_lines)), ", ".join(sorted(res.flags)) or "none"
        return Judgement(
            False,
            f"{exp_text} flags {want}",
            f"{got_text} flags {have}",
            f"expected flags {want}, got {have}",
        )
    return Judgement(True, exp_text, got_text, "")


def _show(v: Value) -> str:
    return str(v)


def state_lines(res: Result) -> list[str]:
    rows = sorted(res.states, key=lambda st: [value_key(v) for v in st])
    return [
        "".join(f"{r}={_show(v)}; " for r, v in zip(res.shown, row, strict=True)).rstrip() for row in rows
    ]


def herd_text(res: Result) -> str:
    t = res.test
    q = t.condition.quantifier
    lines = [f"Test {t.name} {KIND[q]}", f"States {len(res.states)}", *state_lines(res)]
    lines.append("Ok" if condition_ok(res) else "No")
    lines.append("Witnesses")
    pos, neg = (res.neg, res.pos) if q == "~exists" else (res.pos, res.neg)
    lines.append(f"Positive: {pos} Negative: {neg}")
    lines.extend(f"Flag {f}" for f in sorted(res.flags))
    lines.append(f"Condition {q} ({show_prop(t.condition.prop)})")
    lines.append(f"Observation {t.name} {verdict(res)} {res.pos} {res.neg}")
    return "\n".join(lines)


def result_json(res: Result, explanation: dict[str, Any] | None = None) -> dict[str, Any]:
    j = judge(res)
    out: dict[str, Any] = {
        "test": res.test.name,
        "condition": f"{res.test.condition.quantifier} ({show_prop(res.test.condition.prop)})",
        "states": [
            {str(r): v for r, v in zip(res.shown, row, strict=True)}
            for row in sorted(res.states, key=lambda st: [value_key(v) for v in st])
        ],
        "verdict": verdict(res),
        "positive": res.pos,
        "negative": res.neg,
        "flags": sorted(res.flags),
        "ok": condition_ok(res),
        "candidates": res.candidates,
        "expected": j.expected,
        "agrees": j.agrees,
    }
    if j.why:
        out["why"] = j.why
    if explanation is not None:
        out["explanation"] = explanation
    return out
