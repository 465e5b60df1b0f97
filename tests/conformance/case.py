"""One record per kernel test case, and the rule every conformance suite follows.

A conformance suite takes the kernel's *own* tests and documentation (lib/locking-selftest.c,
mm/kasan/kasan_test_c.c, the guarantees stated in kernel/workqueue.c, include/linux/seqlock.h,
tools/memory-model/Documentation, ...) and states, one :class:`KernelCase` per kernel case, what the
kernel says and which kvmcheck model answers it.  Each suite module exposes ``CASES`` (a tuple of
``KernelCase``) and parametrises one test over it: the model's verdict must be the kernel's.

Cases kvmcheck cannot express are listed too, with ``model=None`` and the reason in ``why``: the
generated table (``docs/conformance.md``) counts every kernel case, applicable or not, so nothing
is hand-picked away silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kvmcheck import check, scenario

KERNEL_EXPECTS = ("ok", "bug")


@dataclass(frozen=True)
class KernelCase:
    """A kernel test case and the kvmcheck model of it.

    ``suite``     the kernel source it comes from ("lib/locking-selftest.c").
    ``case``      the kernel's own name for the case ("AA_spin", "kmalloc_uaf").
    ``expect``    what the kernel says: "ok" (the selftest's SUCCESS, no report) or "bug"
                  (FAILURE: the kernel reports it), and ``kind`` the finding kind kvmcheck must
                  give for "bug" (e.g. "lockdep", "kasan"), or "" for any.
    ``model``     a scenario-shaped callable (no arguments) kvmcheck checks; None = not applicable.
    ``why``       for a case that is not applicable, why; otherwise a note (optional).
    ``report``    for "bug", a text the kernel's report has (a headline or a detail line), which
                  one of kvmcheck's findings must contain too (optional).
    """

    suite: str
    case: str
    expect: str
    model: Callable[[], Any] | None
    kind: str = ""
    why: str = ""
    report: str = ""

    def __post_init__(self) -> None:
        if self.expect not in KERNEL_EXPECTS:
            raise ValueError(f"{self.suite}:{self.case}: expect must be one of {KERNEL_EXPECTS}")
        if self.model is None and not self.why:
            raise ValueError(f"{self.suite}:{self.case}: a case without a model must say why")

    @property
    def applicable(self) -> bool:
        return self.model is not None

    @property
    def id(self) -> str:
        return f"{self.suite}:{self.case}"


def check_case(c: KernelCase) -> None:
    """The rule of the guarantee suites (workqueue, wait, completion, seqlock).

    "ok": verdict ok and complete, no warning.  "bug": verdict bug, and if the case names a
    kind, that kind among the execution's findings -- the hard one or a WARN-class one (lockdep's
    report comes before the hang it predicts) -- and if it names a ``report`` text, one of those
    findings' headline or details containing it.
    """
    assert c.model is not None, c.id
    r = check(scenario(c.model), keep_going=c.expect == "bug")
    if c.expect == "ok":
        assert r.verdict == "ok", f"{c.id}: {r.finding}"
        assert r.complete, f"{c.id}: {r.coverage}"
        assert r.warnings == [], f"{c.id}: {r.warnings}"
        return
    assert r.verdict == "bug", f"{c.id}: expected a {c.kind or 'finding'}, got {r.verdict}"
    kinds = {w.kind for w in r.warnings} | ({r.finding.kind} if r.finding is not None else set())
    assert not c.kind or c.kind in kinds, f"{c.id}: expected {c.kind}, got {sorted(kinds)}"
    found = [*r.warnings, *([r.finding] if r.finding is not None else [])]
    lines = [line for f in found for line in (f.headline, *f.details)]
    assert any(c.report in line for line in lines), f"{c.id}: no report says {c.report!r}: {lines}"
