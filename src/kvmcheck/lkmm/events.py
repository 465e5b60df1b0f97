"""The events of a candidate execution, as herd7 builds them for the LKMM (lkmmv1).

Kinds: ``R`` / ``W`` (memory accesses), ``F`` (fences), the lock events of
lock.cat (``LKR LKW UL LF RL RU``) and ``SRCU`` events.  ``tags`` holds the
annotation of linux-kernel.def (``once acquire release noreturn``; for a fence its
kind: ``mb rmb wmb rcu-lock ...``; for SRCU ``srcu-lock srcu-unlock sync-srcu``).
A plain access has no tag.  ``atomic`` marks the accesses of an atomic RMW
instruction (herd's ``RMW`` set, a failed ``cmpxchg()``'s read included).

herd7 (herd/CSem.ml, lkmmv1 -- the dialect of the linux-kernel.def read here)
turns a fully ordered RMW (``xchg()``, ``cmpxchg()`` that succeeds,
``atomic_*_return()``, ``atomic_add_unless()`` that adds) into ``F[mb] ; R[once] ;
W[once] ; F[mb]``; ``_acquire`` tags the read, ``_release`` the write; a non-value
returning ``atomic_inc()`` is ``R[noreturn] ; W[once]``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .syntax import Value


@dataclass(frozen=True)
class Event:
    kind: str
    loc: str | None
    value: Value
    tags: frozenset[str]
    thread: int  # -1 for an initial write
    atomic: bool = False
    rmw_read: int | None = None  # for the W of an RMW: the thread-local index of its R
    addr: frozenset[int] = frozenset()  # thread-local indices of the reads it depends on
    data: frozenset[int] = frozenset()
    ctrl: frozenset[int] = frozenset()
    line: int = 0
    text: str = ""

    @property
    def is_init(self) -> bool:
        return self.thread < 0

    def label(self) -> str:
        """Short herd-like label: ``W[once]x=1``, ``R[acquire]y=0``, ``F[mb]``, ``LKW(l)``."""
        tag = ",".join(sorted(self.tags - {"IW"}))
        if self.kind == "F":
            return f"F[{tag}]"
        if self.kind in ("R", "W"):
            ann = f"[{tag}]" if tag else "[plain]"
            if self.is_init:
                ann = "[init]"
            return f"{self.kind}{ann}{self.loc}={self.value}"
        if self.kind == "SRCU":
            return f"SRCU[{tag}]({self.loc})"
        return f"{self.kind}({self.loc})"
