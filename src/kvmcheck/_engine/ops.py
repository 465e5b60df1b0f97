"""Visible operations: what a thread announces before it takes a step.

Every step of a model thread is one visible operation on one object.  The
engine needs three facts about it and nothing else:

* ``key`` -- which object it touches (an int, unique within one execution and
  stable across executions because objects are numbered in creation order);
* ``excl`` -- its mode.  Two operations on one key are *dependent* (their order
  may matter) unless both are shared.  A plain read is shared, a write is
  exclusive; a read_lock is shared, a write_lock exclusive; and so on;
* ``obj`` -- for operations that can block, the object that decides whether the
  operation is enabled now, and whether it would have been enabled in an
  earlier state (that is what makes a race reversible).

The kernel layer builds these; the engine never looks inside ``obj`` beyond
the :class:`Blocker` protocol below.
"""

from __future__ import annotations

from typing import Any, Protocol


class Blocker(Protocol):
    """An object whose operations may be disabled (a lock, a thread to join)."""

    def _kc_state(self) -> Any:
        """A snapshot of the state that decides enabledness (cheap, immutable)."""

    def _kc_enabled(self, op: Op, tid: int, state: Any) -> bool:
        """Would ``op`` by thread ``tid`` be enabled in ``state``?"""


class Op:
    """One visible operation announced by a thread."""

    __slots__ = ("arg", "choices", "excl", "key", "key2", "name", "obj", "st", "value")

    def __init__(
        self,
        key: int,
        excl: bool,
        name: str,
        obj: Blocker | None = None,
        arg: Any = None,
        key2: int = -1,
        st: Any = None,
    ) -> None:
        self.key = key
        self.excl = excl
        # A second key the op touches in *shared* mode: an access to a field of a
        # freeable object also touches the whole object, so that freeing it
        # (exclusive on the whole object) is dependent with every access.
        self.key2 = key2
        self.name = name  # what the trace shows, e.g. "mutex_lock(kvm->lock)"
        # Where DPOR reads the state before a non-blocking op on a key that some
        # blocking op may wait on (a field write, for spin_until_cond): an object
        # with _kc_state().  Kept apart from ``obj`` so the scheduler's per-step
        # enabledness test never looks at it.
        self.st = st
        # The object deciding enabledness.  Invariant: every op on the key of an
        # object that has blocking ops names that object (even if this op never
        # blocks), so DPOR can record the object's state before each of them.
        self.obj = obj
        self.arg = arg  # free for the kernel layer (e.g. read/write flavour)
        # A nondeterministic choice (kvmcheck.nondet): the op has ``choices`` outcomes
        # and the strategy picks ``value`` when it grants the op.  0 for every other op.
        self.choices = 0
        self.value = 0

    def dependent(self, other: Op) -> bool:
        if self.arg == "relax" or other.arg == "relax":
            return True  # cpu_relax(): waits for any other thread, so it depends on all of them
        if self.key == other.key:
            return self.excl or other.excl
        return (self.key2 == other.key and other.excl) or (other.key2 == self.key and self.excl)

    def __repr__(self) -> str:
        return f"Op({self.name})"


# Object keys: each object gets a creation number; a Struct field is
# number * FIELD_SLOTS + field index, a whole object (lock, thread) uses the
# last slot.  64 fields per Struct is far above any kernel struct we model.
FIELD_SLOTS = 64
WHOLE = FIELD_SLOTS - 1


def object_key(number: int, field_index: int = WHOLE) -> int:
    return number * FIELD_SLOTS + field_index


# The key of every nondet() choice: no object has it, and a choice is shared
# (non-exclusive) on it, so a choice is independent of every other operation.
CHOICE_KEY = -2


# An *open* choice: outcomes 0..n-1 are known when the step is first made, and a
# strategy may be given more (Strategy.add_outcome) while its subtree is explored --
# a weak memory model's read learning of a write performed later (kernel/barrier.py).
OPEN = "nondet-open"


def choice_op(n: int, name: str, open_: bool = False) -> Op:
    """The visible operation of a choice among ``n`` outcomes; ``name`` is what the trace shows."""
    op = Op(CHOICE_KEY, False, name, None, OPEN if open_ else "nondet")
    op.choices = n
    return op
