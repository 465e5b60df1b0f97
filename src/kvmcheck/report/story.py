"""The story of a counterexample: which steps a kernel developer needs to see.

Like lockdep's "Possible unsafe locking scenario", the story keeps only

* the steps that touch an object the finding names (``khva[pfn 1]``, a lock of
  a lockdep chain, the field of a KCSAN report) -- including reads and writes
  of a pointer field that ever held such an object (``gpc->khva``);
* the lock operations of the threads involved, on the locks that order those
  steps (held by two or more threads at touching steps) or that the finding
  names;
* and the failing operation itself, last.  Several checks report *before* the
  operation takes effect (lockdep on an acquisition, might_sleep on a
  ``down_read``); the failing operation is then the thread's next step, or,
  when the report killed the thread, a line made from the report.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kvmcheck._engine.finding import Finding, Step

# Headlines of checks that fire before the operation they are about takes effect.
_BEFORE_OP = (
    "recursive locking",
    "circular locking",
    "sleeping function",
    "inconsistent lock state",
    "lock order detected",
)
_CALL = re.compile(r"^(\w+)\((.*)\)(?:\s.*)?$")
_FIELD = re.compile(r"^(?:read|write) (.+?)->(\w+)$")
_SITE_TEXT = re.compile(r"\S+ \([^()\s]+:\d+\)|\(\S+:\d+\)|by task \S+|\S+\.py:\d+")
_LOCKISH = re.compile(r"(lock|mutex|down_|up_|srcu_read|rcu_read|synchronize_)")


@dataclass
class Failing:
    """The operation that failed: a traced step, or a line made from the report."""

    step: Step | None  # None when the operation never took effect
    thread: str
    text: str  # the operation (for a made-up line)
    note: str  # why it is the last line ("blocked forever", "not performed: the task oopsed")


_THREAD_OPS = ("spawn(", "join(", "exit")


def objects_of(op: str) -> list[str]:
    """Objects an operation names: ``read gpc->khva`` -> gpc->khva, gpc; ``kunmap(khva[pfn 1])`` -> ..."""
    if op.startswith(_THREAD_OPS):
        return []
    m = _FIELD.match(op)
    if m:
        return [f"{m.group(1)}->{m.group(2)}", m.group(1)]
    m = _CALL.match(op)
    if m:
        out: list[str] = []
        for arg in (a.strip() for a in m.group(2).split(",")):
            if arg and not arg.isdigit():
                out.append(arg)
                if "->" in arg:
                    out.append(arg.rsplit("->", 1)[0])
        return out
    return []


def is_lock_op(op: str) -> bool:
    return bool(_LOCKISH.search(op.split("(", 1)[0]))


def _finding_text(f: Finding) -> str:
    text = "\n".join([f.headline, f.message, *f.details])
    return _SITE_TEXT.sub(" ", text)


def _mentions(text: str, name: str) -> bool:
    pat = r"(?<![\w>/.\-])" + re.escape(name) + r"(?![\w\[(])"
    if re.search(pat, text):
        return True
    if "->" in name:  # KCSAN names fields Type.field
        obj, field = name.rsplit("->", 1)
        return (
            re.search(r"(?i)(?<![\w.])" + re.escape(obj) + r"\." + re.escape(field) + r"\b", text) is not None
        )
    return False


def named_objects(f: Finding, steps: Sequence[Step]) -> set[str]:
    """The objects of the trace that the finding's report names."""
    text = _finding_text(f)
    cands: set[str] = set()
    for s in steps:
        cands.update(objects_of(s.op))
    named = {c for c in cands if _mentions(text, c)}
    # a KCSAN-style "Type.field" names the field, not the whole object
    fields = {c for c in named if "->" in c}
    return {c for c in named if not any(x.startswith(c + "->") for x in fields) or _mentions(text, c)}


def failing(f: Finding, trace: Sequence[Step]) -> Failing | None:
    """The operation the finding is about (see the module docstring)."""
    if f.kind == "deadlock" and f.message.startswith("wait-for cycle"):
        return None  # every blocked thread's pending operation: see blocked_lines()
    upto = f.step if f.step is not None else (trace[-1].index if trace else -1)
    me = f.thread
    if any(h in f.headline for h in _BEFORE_OP):
        nxt = next((s for s in trace if s.index > upto and s.thread == me), None)
        if nxt is not None:
            return Failing(nxt, nxt.thread_name, nxt.op, "")
        name = next((s.thread_name for s in trace if s.thread == me), f"T{me}")
        return Failing(None, name, _op_from_message(f), "not performed: the report stopped the task")
    here = next((s for s in trace if s.index == upto), None)
    if here is not None and here.thread == me:
        return Failing(here, here.thread_name, here.op, "")
    last = [s for s in trace if s.index <= upto and s.thread == me]
    if last:
        return Failing(last[-1], last[-1].thread_name, last[-1].op, "")
    if me is None:
        return None
    name = next((s.thread_name for s in trace if s.thread == me), f"T{me}")
    return Failing(None, name, f.message, "reported before the thread's first step")


def _op_from_message(f: Finding) -> str:
    m = re.search(r"\b(\w+)\(([^)]*)\)", f.message)
    if m:
        return m.group(0)
    m = re.match(r"(\w+): (\S+) is already held", f.message)
    if m:
        return f"{m.group(1)}({m.group(2)})"
    return f.message.split(";")[0]


def blocked_lines(f: Finding) -> list[tuple[str, str]]:
    """For a wait-for deadlock: (thread, "blocks on X, held by Y") for each waiting thread."""
    cycle = set(re.findall(r"(\S+) \[", f.message))
    out = []
    for d in f.details:
        m = re.match(r"\s*(\S+) waits for (.+)$", d)
        if m and (not cycle or m.group(1) in cycle):
            out.append((m.group(1), f"waits for {m.group(2)}: blocked forever"))
    return out


def story(f: Finding, trace: Sequence[Step]) -> tuple[list[Step], Failing | None]:
    """The steps of the story (ending with the failing one, when it was traced) and the failing op.

    The values the steps read or wrote (``Step.value``) tell which pointer fields held a
    named object, and which reads tell nothing new."""
    fail = failing(f, trace)
    end = (
        fail.step.index
        if fail is not None and fail.step is not None
        else (f.step if f.step is not None else -1)
    )
    steps = [s for s in trace if s.index <= end]
    # main's setup, before any other thread ran, is not the story -- unless the failure is in it
    steps = steps[min(_setup_len(steps), max(0, len(steps) - 1)) :]
    named = named_objects(f, steps)
    if fail is not None and fail.step is not None:  # what the failing operation works on
        objs = objects_of(fail.step.op)
        # a freed object is wholly the story; otherwise the field alone (a race, a WARN's test)
        named.update(objs if f.kind in LIFETIME_KINDS else objs[:1])
    named.update(_tested_at_warning(f, steps))
    race_story = f.kind in RACE_STORY_KINDS
    if race_story:  # the report names no step: the threads' race that led to it is the story
        named.update(shared_written([s for s in steps if s.thread != 0]))
    # pointer fields that ever held a named object (gpc->khva holding khva[pfn 1])
    for s in steps:
        v = s.value
        if v and any(v.endswith(f" {n}") for n in named):
            objs = objects_of(s.op)
            if objs and "->" in objs[0]:
                named.add(objs[0])
    touching = [s for s in steps if _touches(s, named)]
    if race_story:  # main's teardown after the join only finds what the threads left behind
        touching = [s for s in touching if s.thread != 0]
    threads = {s.thread for s in touching}
    if fail is not None and fail.step is not None:
        threads.add(fail.step.thread)
    locks = _story_locks(touching, named, everyone=f.kind == "data-race")
    keep = {s.index for s in touching}
    for s in steps:
        if race_story and s.thread == 0:
            continue
        if s.thread in threads and is_lock_op(s.op) and set(objects_of(s.op)) & locks:
            keep.add(s.index)
    if fail is not None and fail.step is not None:
        keep.add(fail.step.index)
    kept = _drop_rereads([s for s in steps if s.index in keep], fail)
    while _lines(kept) > MAX_LINES:  # too long to read at a glance: the earliest go (--full has them)
        kept.pop(0)
    return kept, fail


def _drop_rereads(kept: list[Step], fail: Failing | None) -> list[Step]:
    """A thread reading again what it last read or wrote there tells nothing new: drop it."""
    last: dict[tuple[int, str], str] = {}
    out = []
    for s in kept:
        m = _FIELD.match(s.op)
        v = s.value
        if m and v:
            key = (s.thread, f"{m.group(1)}->{m.group(2)}")
            seen = last.get(key)
            last[key] = v
            failing_step = fail is not None and fail.step is s
            if s.op.startswith("read ") and seen == v and not failing_step:
                continue
        out.append(s)
    return out


def _lines(kept: list[Step]) -> int:
    """Lines the story takes: one per step, one per context switch."""
    return len(kept) + sum(1 for a, b in itertools.pairwise(kept) if a.thread != b.thread)


MAX_LINES = 21  # story lines (steps and context switches), headers not counted


LIFETIME_KINDS = ("use-after-free", "use-after-unmap", "double-free", "invalid-free")
# Reports made at the end of the run about what the threads left behind (kmemleak): nothing in
# them names a step, so the story is the threads' racing steps -- see shared_written().
RACE_STORY_KINDS = ("leak",)
_READ_OPS = (
    "read ",
    "READ_ONCE",
    "list_for_each",
    "data_race",
    "spin_until_cond",
    "refcount_read",
    "atomic_read",
)


def shared_written(steps: list[Step]) -> set[str]:
    """Fields that two or more threads wrote: where the threads raced (a leak's story).

    A leak is reported by main once every thread is done (kmemleak), about an object
    the threads' interleaving left unfreed; its report names an allocation site, not a
    step.  The steps that matter are the threads' writes to state they share -- the
    root_count one thread puts while another holds it, say -- with the reads of it.
    """
    writers: dict[str, set[int]] = {}
    for s in steps:
        if s.op.startswith(_THREAD_OPS) or s.op.startswith(_READ_OPS) or is_lock_op(s.op):
            continue
        objs = objects_of(s.op)
        if objs:  # a field (root0->root_count) or a counter (KvmMmuPage.tdp_mmu_root_count)
            writers.setdefault(objs[0], set()).add(s.thread)
    return {o for o, ts in writers.items() if len(ts) > 1}


_WARN_AT = re.compile(r"\bat (\w+) \(([^()\s]+):(\d+)\)")


def _tested_at_warning(f: Finding, steps: list[Step]) -> set[str]:
    """For a WARN_ON(cond) / KVM_BUG_ON: the fields its thread read on the warning's line."""
    m = _WARN_AT.search(f.headline)
    if m is None:
        return set()
    fn, line = m.group(1), int(m.group(3))
    out: set[str] = set()
    for s in steps:
        if s.thread == f.thread and s.site.function == fn and s.site.line == line:
            out.update(objects_of(s.op)[:1])
    return out


def _touches(s: Step, named: set[str]) -> bool:
    if set(objects_of(s.op)) & named:
        return True
    v = s.value
    return any(v.endswith(f" {n}") for n in named)


def _story_locks(touching: list[Step], named: set[str], everyone: bool = False) -> set[str]:
    """Locks that order the touching steps (held at them by two or more threads), and named locks.

    For a data race (``everyone``), every lock held at a racing access: who held what matters.
    """
    by_lock: dict[str, set[int]] = {}
    for s in touching:
        for h in s.held:
            by_lock.setdefault(h.split("(", 1)[0], set()).add(s.thread)
    return {lk for lk, ts in by_lock.items() if everyone or len(ts) > 1} | named


def _setup_len(steps: list[Step]) -> int:
    """Leading steps of main taken before any other thread ran (its spawns included)."""
    for i, s in enumerate(steps):
        if s.thread != 0:
            j = i
            while j > 0 and steps[j - 1].op.startswith("spawn("):
                j -= 1
            return j
    return 0


def racing_steps(f: Finding, trace: Sequence[Step]) -> list[Step]:
    """A data race's two accesses: the reported one, then the other thread's last one to that field."""
    if f.kind != "data-race" or f.step is None:
        return []
    here = next((s for s in trace if s.index == f.step), None)
    if here is None or not objects_of(here.op):
        return []
    obj = objects_of(here.op)[0]
    other = next(
        (
            s
            for s in reversed(trace)
            if s.index < here.index and s.thread != here.thread and obj in objects_of(s.op)
        ),
        None,
    )
    return [here] if other is None else [here, other]
