"""Finding kinds: the one registry of what a checker report can be.

Every :class:`~kvmcheck._engine.finding.Finding` names one of these kinds; an
unknown kind is an error (a typo would otherwise silently make a new kind
that no test, report or ``expect=`` knows).  Each kind has a *class*:

* ``oops`` -- a hard finding: the task that hit it stops there (as an oops,
  a KASAN report with panic_on_warn, or a hang does), the others run on;
* ``WARN`` -- reported, and the task goes on, as the kernel's WARN, lockdep,
  KCSAN and refcount_t warnings do.

The names are those of DESIGN.md ("Verdicts and bug kinds"), plus the few
the kernel layer reports that DESIGN.md does not list (suspicious-rcu,
list-corruption, null-deref, general-protection, exception).
"""

from __future__ import annotations

from dataclasses import dataclass

OOPS = "oops"
WARN = "WARN"


@dataclass(frozen=True)
class Kind:
    name: str
    cls: str  # OOPS or WARN
    doc: str  # one line


_ALL = (
    Kind("deadlock", OOPS, "tasks wait for each other forever (a wait-for cycle, or all live tasks blocked)"),
    Kind("lock-order", WARN, "lockdep: circular dependency, recursive locking, or irq-unsafe lock usage"),
    Kind("use-after-free", OOPS, "KASAN: an access to a freed object or to anything embedded in it"),
    Kind("use-after-unmap", OOPS, "a page fault: an access through a kunmap'ed or memunmap'ed mapping"),
    Kind("double-free", OOPS, "KASAN: a second free or unmap, or a free of something never allocated"),
    Kind("leak", OOPS, "kmemleak: an allocation unreachable and never freed at the end of a run"),
    Kind("refcount", WARN, "refcount_t: underflow, increment on zero, saturation, decrement hit zero"),
    Kind("sleep-in-atomic", WARN, "might_sleep: a sleeping call in atomic context"),
    Kind("data-race", WARN, "KCSAN: two unordered accesses to one field, one a plain write"),
    Kind("bug-on", OOPS, "BUG() or BUG_ON(): kernel BUG at file:line"),
    Kind("warn", WARN, "WARN_ON() and friends fired"),
    Kind("assert-held", WARN, "lockdep_assert_held() failed, or a plain access broke a __locking__ contract"),
    Kind("unlock-unheld", WARN, "bad unlock balance: releasing a lock (or RCU/SRCU section) not held"),
    Kind("assertion", OOPS, "a Python assert (a user invariant) failed"),
    Kind("step-limit", OOPS, "an execution exceeded its step limit (livelock or unbounded loop)"),
    Kind("suspicious-rcu", WARN, "lockdep-RCU: an RCU pointer or list used outside its protection"),
    Kind("list-corruption", WARN, "CONFIG_DEBUG_LIST: list_add/list_del on an inconsistent list"),
    Kind("null-deref", OOPS, "BUG: kernel NULL pointer dereference (an attribute of None in model code)"),
    Kind("general-protection", OOPS, "general protection fault: a dereference of a poisoned pointer"),
    Kind("exception", OOPS, "any other Python exception raised by model code"),
)

KINDS: dict[str, Kind] = {k.name: k for k in _ALL}


def kind_class(name: str) -> str:
    """OOPS or WARN for the kind ``name`` (raises ValueError for an unknown kind)."""
    return lookup(name).cls


def lookup(name: str) -> Kind:
    k = KINDS.get(name)
    if k is None:
        raise ValueError(f"unknown finding kind {name!r}; known kinds: {', '.join(KINDS)}")
    return k
