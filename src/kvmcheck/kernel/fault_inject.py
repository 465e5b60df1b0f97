"""Fault injection in the kernel's words: "this allocation may fail".

``may_fail("kzalloc(kvm_gfn_to_pfn_cache)")`` returns True on the failure
branch and False on the normal one; the search explores both (it is a
``kvmcheck.nondet(2)`` choice, recorded in the schedule string, so replay
reproduces it).  The normal branch (False) is explored first.  The kernel
does this with its fault-injection framework (``should_failslab()``,
``should_fail_alloc_page()`` in mm/failslab.c and mm/page_alloc.c); here
every marked call site may fail in every execution, so a model checks each
error path against each interleaving.
"""

from __future__ import annotations

from kvmcheck._engine import runtime as _runtime
from kvmcheck._engine.finding import UsageError


def may_fail(what: str) -> bool:
    """True when the allocation (or other fallible call) ``what`` fails in this execution."""
    ex = _runtime.current
    if ex is None:
        raise UsageError("may_fail() called outside a check: call it from a scenario")
    return ex.nondet(2, f"may_fail({what})") == 1


__all__ = ["may_fail"]
