"""lockdep: lock classes, the dependency graph, and its reports.

As in kernel/locking/lockdep.c: every lock belongs to a *class* (its
initialisation site, or an explicit name); acquiring B while holding A
records the dependency A -> B, with the site of each acquisition.  The graph
lives for the whole check, across every explored execution, so a cycle is
reported ("possible circular locking dependency detected") even if no
explored execution deadlocked.  Trylocks do not add a dependency on the
trylocked lock (they cannot wait), as in lockdep.  ``*_nested`` acquisitions
use a subclass, so two locks of one class taken in a fixed order are fine.

Readers (kernel/locking/lockdep.c since v5.10, Documentation/locking/lockdep-design.rst):
each acquisition is a writer (held_lock->read 0), a non-recursive reader (1: down_read, and
read_lock in process context with queued rwlocks) or a recursive reader (2: read_lock when
read_lock_is_recursive() -- in_interrupt(), or the selftest's force_read_lock_recursive).  A
dependency prev -> next records its type -(SR)-> / -(ER)-> / -(SN)-> / -(EN)-> (prev shared or
exclusive, next recursive or not), several types per pair.  check_deadlock(): taking a class
already held is "possible recursive locking" unless the new one is a recursive reader and the
held one a reader.  check_noncircular(): a cycle counts only if it is *strong* -- no -(*R)->
followed by -(S*)-> -- and closes on prev as hlock_conflict() says; a pair seen again with a new
type is checked again (the chain cache keys on the read state too).

Irq usage (mark_usage, mark_lock_irq, check_irq_usage): every lock acquisition marks its class
IN-HARDIRQ / IN-SOFTIRQ (in a handler, not for a trylock) and HARDIRQ-ON / SOFTIRQ-ON (taken
with irqs, resp. softirqs too, enabled), each -R or -W; enabling irqs (softirqs) with locks held
marks them ON too (mark_held_locks).  A read usage conflicts only with the opposite write usage
of the same class, a write usage with both ("inconsistent lock state").  Across classes, an
IN-* class must not reach an ON-* class of the same irq by a strong path ("irq lock inversion",
"X-safe -> X-unsafe lock order"), read usages not counting past a recursive-read step.

Reports follow kernel/locking/lockdep.c: print_circular_bug() (the lock the
task is trying to acquire, the lock it holds, "which lock already depends on
the new lock.", the existing dependency chain in reverse order with the
stack of each acquisition, "Chain exists of:" for chains longer than two,
and print_circular_lock_scenario()'s CPU0/CPU1 table ending "*** DEADLOCK
***") and print_deadlock_bug() for recursive locking.  As check_prevs_add()
does, a dependency is recorded from the most recent held lock (and from the
trylocked ones above the first lock that was not trylocked), so the chain a
report prints is the kernel's: every lock that links the two.

debug_check_no_locks_freed(): freeing memory that contains a lock the task
still holds is "WARNING: held lock freed!".
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from kvmcheck._engine import runtime
from kvmcheck._engine.execution import _engine_dirs, _short
from kvmcheck.kernel._core import Held, KThread, bug, current_thread, kthread, site_here, warn

__all__ = [
    "Graph",
    "check_no_held_locks",
    "debug_check_no_locks_freed",
    "force_read_lock_recursive",
    "hardirqs_on",
    "held_by",
    "on_acquire",
    "recursive_details",
    "softirqs_on",
]


@dataclass(frozen=True)
class Edge:
    before: str
    after: str
    task: str  # the task that took ``after`` while holding ``before``
    site: str  # where the second was taken while holding the first
    run: int  # index of the execution that first recorded it
    stack: tuple[str, ...] = ()  # that acquisition's model stack, innermost first


# -- dependency types (lockdep-design.rst, "Recursive read locks") ----------------------------------
# A dependency prev -> next is one or more of -(SR)->, -(ER)->, -(SN)->, -(EN)->: E if prev was
# held exclusively (a writer), S if shared (any reader); R if next is a recursive reader, N if a
# writer or a non-recursive reader.  The bit numbers are __calc_dep_bit()'s.
DEP_SR, DEP_ER, DEP_SN, DEP_EN = 1, 2, 4, 8
_PREV_E = DEP_ER | DEP_EN
_NEXT_N = DEP_SN | DEP_EN


def dep_bit(prev_read: int, next_read: int) -> int:
    """__calc_dep_bit(): the type of the dependency prev -> next."""
    return 1 << ((prev_read == 0) + ((next_read != 2) << 1))


def _stack_here() -> tuple[str, ...]:
    """The model call stack, innermost first, as 'function (file:line)' (reports only: slow)."""
    skip = _engine_dirs()
    out: list[str] = []
    f: Any = sys._getframe(1)
    while f is not None:
        name = f.f_code.co_filename
        if not name.startswith(skip) and f.f_code.co_name not in ("_thread_main", "<module>"):
            out.append(f"{f.f_code.co_name} ({_short(name)}:{f.f_lineno})")
        f = f.f_back
    return tuple(out)


class Graph:
    """Check-wide lockdep state (kept in the session)."""

    def __init__(self) -> None:
        self.edges: dict[str, dict[str, Edge]] = {}  # locks_after, first observation of each
        self.deps: dict[tuple[str, str], int] = {}  # (prev, next) -> DEP_* bits seen so far
        self.before: dict[str, list[str]] = {}  # locks_before (the backward lists)
        self.reported: set[frozenset[str]] = set()
        self.usage: dict[str, dict[str, str]] = {}  # class -> usage bit -> first site
        self.force_read_lock_recursive = False
        self.dep_runs: dict[tuple[str, str], set[int]] = {}  # runs that added a type to a pair
        self.usage_runs: set[int] = set()  # runs that set a usage bit


def graph() -> Graph:
    ex = runtime.current
    assert ex is not None
    g: Graph | None = ex.session.get("lockdep")
    if g is None:
        g = ex.session["lockdep"] = Graph()
    return g


def force_read_lock_recursive(on: bool = True) -> None:
    """lib/locking-selftest.c's ``force_read_lock_recursive``: treat every read_lock() as a
    recursive reader, as a kernel without queued rwlocks does (read_lock_is_recursive())."""
    graph().force_read_lock_recursive = on


def lock_class(held: Held) -> str:
    c: str = held.lock.cls
    return f"{c}/{held.subclass}" if held.subclass else c


def read_mode(kt: KThread, held: Held) -> int:
    """lockdep's held_lock->read for this acquisition: 0 writer, 1 non-recursive reader, 2 recursive.

    down_read() is a non-recursive reader (rwsem_acquire_read); read_lock() is recursive when
    read_lock_is_recursive(): force_read_lock_recursive, or in_interrupt() (with qrwlocks a
    process-context reader queues behind a waiting writer, so it is not).
    """
    if not held.shared:
        return 0
    if held.lock.kind == "rwlock_t" and (kt.in_interrupt() or graph().force_read_lock_recursive):
        return 2
    return 1


def _path(g: Graph, src: str, dst: str) -> list[Edge] | None:
    """Any dependency path src -> ... -> dst, by depth-first search in insertion order."""
    stack: list[tuple[str, list[Edge]]] = [(src, [])]
    seen = {src}
    while stack:
        node, path = stack.pop()
        for nxt, e in reversed(list(g.edges.get(node, {}).items())):
            if nxt == dst:
                return [*path, e]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, e]))
    return None


def _bfs(
    g: Graph, root: str, only_xr: bool, forward: bool, match: Any
) -> tuple[str, bool, list[Edge]] | None:
    """__bfs() over *strong* dependency paths from ``root``; the first (class, only_xr, path) matched.

    A path is strong when no -(*R)-> is followed by -(S*)-> (a recursive reader's class is not
    then held as a reader for the next step).  ``only_xr`` says the path so far reaches the
    node only through -(*R)-> (forwards), or leaves it only through -(S*)-> (backwards); the
    root's is the caller's (bfs_init_root / bfs_init_rootb).  Unlike the kernel's BFS, a class
    reached first on a weak path is visited again on a stronger one, so no strong path is missed.
    """
    queue: list[tuple[str, bool, list[Edge]]] = [(root, only_xr, [])]
    seen: dict[str, bool] = {root: only_xr}
    i = 0
    while i < len(queue):
        node, xr, path = queue[i]
        i += 1
        if match(node, xr):
            return node, xr, path
        nexts = g.edges.get(node, {}) if forward else g.before.get(node, [])
        for other in list(nexts):
            a, b = (node, other) if forward else (other, node)
            dep = g.deps[(a, b)]
            if xr:  # forwards: mask -(S*)-> after -(*R)->; backwards: mask -(*R)-> before -(S*)->
                dep &= _PREV_E if forward else _NEXT_N
            if not dep:
                continue
            nxr = not (dep & _NEXT_N) if forward else not (dep & _PREV_E)
            if other in seen and (seen[other] is False or nxr):
                continue
            seen[other] = nxr
            queue.append((other, nxr, [*path, g.edges[a][b]]))
    return None


def on_acquire(kt: KThread, new: Held) -> None:
    """lock_acquire(): check_deadlock(), check_prevs_add() and mark_usage() for ``new``."""
    new.read = read_mode(kt, new)
    if kt.held and not new.trylock:  # validate_chain(): trylocks add no dependency
        if not _check_deadlock(kt, new):
            return
        g = graph()
        for i in range(_first_prev(kt), len(kt.held)):
            _check_prev_add(g, kt, kt.held[i], new)
    mark_usage(kt, new)


def _check_deadlock(kt: KThread, new: Held) -> bool:
    """check_deadlock(): ``new`` is of a class the task already holds.  False: stop here."""
    cls = lock_class(new)
    for h in kt.held:
        if h.lock is new.lock and not (h.shared and new.shared and new.lock.recursive_read):
            return False  # the lock itself reports it (the task would hang on it)
        if lock_class(h) != cls:
            continue
        if new.read == 2 and h.read:
            continue  # read-after-read recursion of a class, allowed for a recursive reader
        warn(
            "lock-order",
            f"possible recursive locking: {new.lock.name} while holding {h.lock.name} "
            f"(same class {cls}); use a *_nested() annotation if the order is fixed",
            headline="WARNING: possible recursive locking detected",
            details=recursive_details(kt, new, h),
        )
    return True


def _check_prev_add(g: Graph, kt: KThread, prev: Held, new: Held) -> None:
    """check_prev_add(): record prev -> new with its type, after check_noncircular() and
    check_irq_usage().  A type already recorded for the pair adds nothing (the chain cache)."""
    pc, nc = lock_class(prev), lock_class(new)
    bit = dep_bit(prev.read, new.read)
    old = g.deps.get((pc, nc), 0)
    if old & bit:
        return
    # check_noncircular(): a strong path new -> ... -> prev closes a strong cycle with prev -> new
    # unless prev is a reader and the path reaches it only through -(*R)-> (hlock_conflict()).
    hit = _bfs(g, nc, new.read == 2, True, lambda c, xr: c == pc and (prev.read == 0 or not xr))
    edge = g.edges.get(pc, {}).get(nc)
    if edge is None:
        edge = Edge(pc, nc, _task(), site_here(), _run_index(), _stack_here())
        g.edges.setdefault(pc, {})[nc] = edge
        g.before.setdefault(nc, []).append(pc)
    g.deps[(pc, nc)] = old | bit
    g.dep_runs.setdefault((pc, nc), set()).add(_run_index())
    if hit is not None and nc != pc:
        _report_cycle(g, edge, hit[2], kt, (prev.read != 0, new.read != 0))
    _check_irq_usage(g, kt, prev, new)


def _first_prev(kt: KThread) -> int:
    """check_prevs_add(): the dependency is recorded from the most recent held lock -- and,
    past trylocked ones, down to the first lock that was not trylocked -- only."""
    i = len(kt.held) - 1
    while i > 0 and kt.held[i].trylock:
        i -= 1
    return i


def _task() -> str:
    ex = runtime.current
    return ex.current.name if ex is not None and ex.current is not None else "?"


def _held_lines(kt: KThread) -> list[str]:
    """lockdep_print_held_locks(): 'N locks held by task:' and one line per lock."""
    n = len(kt.held)
    lines = [f"{n} lock{'s' if n != 1 else ''} held by {_task()}:"]
    lines += [f" #{i}: ({lock_class(h)}){'(read)' if h.shared else ''}" for i, h in enumerate(kt.held)]
    return lines


def recursive_details(kt: KThread, new: Held, held: Held) -> list[str]:
    """print_deadlock_bug() (kernel/locking/lockdep.c): the report of a possible recursive locking."""
    return [
        f"{_task()} is trying to acquire lock:",
        f" ({lock_class(new)}), at: {site_here()}",
        "",
        "but task is already holding lock:",
        f" ({lock_class(held)})",
        "",
        "other info that might help us debug this:",
        " Possible unsafe locking scenario:",
        "",
        "       CPU0",
        "       ----",
        f"  lock({lock_class(held)});",
        f"  lock({lock_class(new)});",
        "",
        " *** DEADLOCK ***",
        "",
        " May be due to missing lock nesting notation",
        "",
        *_held_lines(kt),
    ]


def _run_index() -> int:
    ex = runtime.current
    assert ex is not None
    ex.session["keep_run"] = True  # the check keeps this run's schedule for replay
    return int(ex.session["run"])


def _report_cycle(
    g: Graph, edge: Edge, back: list[Edge], kt: KThread, read: tuple[bool, bool] = (False, False)
) -> None:
    """print_circular_bug() (kernel/locking/lockdep.c) for: ``edge.before`` is held, ``edge.after`` wanted.

    ``back`` is the existing path new -> ... -> held; ``read`` says whether the held
    and the new acquisitions are reads (print_circular_lock_scenario then says
    ``rlock``).  As in the kernel, entry #0 is the new lock with the current
    stack, entry #i the i-th lock of the path with the stack that took it,
    printed from the highest number down.
    """
    key = frozenset([edge.before, edge.after, *(e.after for e in back)])
    if key in g.reported:
        return
    g.reported.add(key)
    new, held = edge.after, edge.before
    depth = len(back)
    details = [
        f"{edge.task} is trying to acquire lock:",
        f" ({new}), at: {edge.site}",
        "",
        "but task is already holding lock:",
        f" ({held})",
        "",
        "which lock already depends on the new lock.",
        "",
        "",
        "the existing dependency chain (in reverse order) is:",
    ]
    for n in range(depth, 0, -1):
        e = back[n - 1]
        details += ["", f"-> #{n} ({e.after}):"]
        details += [f"       {fr}" for fr in e.stack or (e.site,)]
        details.append(f"       [taken by {e.task} while holding {e.before}]")
    details += ["", f"-> #0 ({new}):"]
    details += [f"       {fr}" for fr in edge.stack or (edge.site,)]
    details += ["", "other info that might help us debug this:", ""]
    parent = back[-1].before  # the lock the chain takes just before the held one
    if parent != new:
        details += ["Chain exists of:", f"  {new} --> {parent} --> {held}", ""]
    details += [
        " Possible unsafe locking scenario:",
        "",
        "       CPU0                    CPU1",
        "       ----                    ----",
        f"  {'rlock' if read[0] else 'lock'}({held});",
        f"                               lock({parent});",
        f"                               lock({held});",
        f"  {'rlock' if read[1] else 'lock'}({new});",
        "",
        " *** DEADLOCK ***",
        "",
        *_held_lines(kt),
    ]
    warn(
        "lock-order",
        f"{held} -> {new} here, but {new} -> ... -> {held} was recorded before",
        headline="WARNING: possible circular locking dependency detected",
        details=details,
        needs=_earlier_runs(back),
    )


def _earlier_runs(back: list[Edge], usage: bool = False) -> list[str]:
    """Schedules of the earlier runs that taught lockdep the chain (every type of each of its
    dependencies, and the irq usages): replay needs them first."""
    ex = runtime.current
    assert ex is not None
    me = ex.session["run"]
    scheds = ex.session.get("schedules", {})
    g = graph()
    runs = {e.run for e in back} | {r for e in back for r in g.dep_runs.get((e.before, e.after), ())}
    if usage:
        runs |= g.usage_runs
    return [scheds[r] for r in sorted(runs - {me}) if r in scheds]


# -- irq usage (mark_usage, mark_lock_irq, check_irq_usage) ------------------------------------------
# usage_str[]: IN-HARDIRQ-W (used in hard-irq context, written), HARDIRQ-ON-R (read with hard irqs
# enabled), and the same for SOFTIRQ.
STATES = ("HARDIRQ", "SOFTIRQ")


def _rw(h: Held) -> str:
    return "R" if h.read else "W"


def mark_usage(kt: KThread, h: Held) -> None:
    """mark_usage(): the irq-usage bits of this acquisition (a trylock is never marked IN-*)."""
    if h.lock.kind == "lockdep_map":
        return
    rw = _rw(h)
    if not h.trylock:
        if kt.hardirq:
            mark_lock(kt, h, f"IN-HARDIRQ-{rw}")
        if kt.softirq:
            mark_lock(kt, h, f"IN-SOFTIRQ-{rw}")
    if kt.irqs_enabled() and not h.irqsave:
        mark_lock(kt, h, f"HARDIRQ-ON-{rw}")
        if kt.softirqs_enabled():
            mark_lock(kt, h, f"SOFTIRQ-ON-{rw}")


def hardirqs_on(kt: KThread) -> None:
    """lockdep_hardirqs_on(): irqs are enabled again with locks held -- they are now HARDIRQ-ON
    (and SOFTIRQ-ON if softirqs are enabled too)."""
    for h in list(kt.held):
        if h.lock.kind != "lockdep_map":
            mark_lock(kt, h, f"HARDIRQ-ON-{_rw(h)}")
            if kt.softirqs_enabled():
                mark_lock(kt, h, f"SOFTIRQ-ON-{_rw(h)}")


def softirqs_on(kt: KThread) -> None:
    """lockdep_softirqs_on(): softirqs are enabled again; with hard irqs on, held locks are SOFTIRQ-ON."""
    if kt.irqs_enabled():
        for h in list(kt.held):
            if h.lock.kind != "lockdep_map":
                mark_lock(kt, h, f"SOFTIRQ-ON-{_rw(h)}")


def _irq_state(kt: KThread) -> str:
    """[HC0[0]:SC0[0]:HE1:SE1]: in hard irq / softirq (and their counts), irqs / softirqs enabled."""
    sc = int(kt.softirq) + kt.bh_off
    return (
        f"[HC{int(kt.hardirq)}[{int(kt.hardirq)}]:SC{int(kt.softirq)}[{sc}]:"
        f"HE{int(kt.irqs_enabled())}:SE{int(kt.softirqs_enabled())}]"
    )


def _excl(bit: str) -> str:
    """exclusive_bit(): the same state, the other direction, the write bit."""
    state = bit.split("-")[1] if bit.startswith("IN-") else bit.split("-")[0]
    return f"{state}-ON-W" if bit.startswith("IN-") else f"IN-{state}-W"


def _usage_match(g: Graph, mask: set[str]) -> Any:
    """usage_match(): the class has a bit of ``mask`` (only write bits, past -(*R)-> / -(S*)->)."""

    def match(c: str, xr: bool) -> bool:
        return any(b in mask and not (xr and b.endswith("-R")) for b in g.usage.get(c, {}))

    return match


def mark_lock(kt: KThread, h: Held, bit: str) -> None:
    """mark_lock() + mark_lock_irq(): a new usage bit, checked against the class and its chains."""
    g = graph()
    cls = lock_class(h)
    bits = g.usage.setdefault(cls, {})
    if bit in bits:
        return
    bits[bit] = site_here()
    g.usage_runs.add(_run_index())  # keep this run: a replay needs what taught lockdep something
    excl = _excl(bit)
    excl_r = excl[:-1] + "R"
    for other in (excl,) if bit.endswith("-R") else (excl, excl_r):  # valid_state()
        if other in bits:
            _print_usage_bug(kt, h, cls, other, bit)
            return
    used_in = bit.startswith("IN-")
    # mark USED_IN looks forwards for an ENABLED class, mark ENABLED backwards for a USED_IN one
    root_xr = h.read == 2 if used_in else h.read != 0
    hit = _bfs(g, cls, root_xr, used_in, _usage_match(g, {excl, excl_r}))
    if hit is not None and hit[0] != cls:
        _print_irq_inversion_bug(kt, g, h, cls, hit, used_in, excl.split("-")[0 if not used_in else 1])


def _check_irq_usage(g: Graph, kt: KThread, prev: Held, new: Held) -> None:
    """check_irq_usage(): prev -> new must not connect an irq-safe class to an irq-unsafe one."""
    acc: set[str] = set()

    def accumulate(c: str, xr: bool) -> bool:
        acc.update(b for b in g.usage.get(c, {}) if b.startswith("IN-") and not (xr and b.endswith("-R")))
        return False

    pc, nc = lock_class(prev), lock_class(new)
    _bfs(g, pc, prev.read != 0, False, accumulate)
    if not acc:
        return
    states = sorted({b.split("-")[1] for b in acc})
    fmask = {f"{st}-ON-{rw}" for st in states for rw in "WR"}  # exclusive_mask()
    hit1 = _bfs(g, nc, new.read == 2, True, _usage_match(g, fmask))
    if hit1 is None:
        return
    on = {b for b in g.usage[hit1[0]] if b in fmask and not (hit1[1] and b.endswith("-R"))}
    state = sorted(on)[0].split("-")[0]
    hit0 = _bfs(g, pc, prev.read != 0, False, _usage_match(g, {f"IN-{state}-W", f"IN-{state}-R"}))
    if hit0 is None:  # a read usage matched only through the accumulated mask: any safe class
        hit0 = (pc, False, [])
    _print_bad_irq_dependency(kt, g, prev, new, hit0[0], hit1[0], state, hit0[2], hit1[2])


def _print_usage_bug(kt: KThread, h: Held, cls: str, prev_bit: str, new_bit: str) -> None:
    """print_usage_bug(): one class used both in an irq and with that irq enabled."""
    g = graph()
    key = frozenset([f"usage:{cls}", prev_bit.split("-")[0] + prev_bit.split("-")[1]])
    if key in g.reported:
        return
    g.reported.add(key)
    state = "HARDIRQ" if "HARDIRQ" in new_bit else "SOFTIRQ"
    warn(
        "lock-order",
        f"{h.lock.name}: {{{prev_bit}}} usage at {g.usage[cls][prev_bit]} and {{{new_bit}}} usage "
        f"at {g.usage[cls][new_bit]}; an irq taking this lock can interrupt a holder on the same CPU",
        headline="WARNING: inconsistent lock state",
        details=[
            f"inconsistent {{{prev_bit}}} -> {{{new_bit}}} usage.",
            f"{_task()} {_irq_state(kt)} takes:",
            f" ({cls}){'(read)' if h.read else ''}, at: {site_here()}",
            f"{{{prev_bit}}} state was registered at:",
            f"  {g.usage[cls][prev_bit]}",
            "",
            "other info that might help us debug this:",
            " Possible unsafe locking scenario:",
            "",
            "       CPU0",
            "       ----",
            f"  lock({cls});",
            "  <Interrupt>" if state == "HARDIRQ" else "  <SoftIRQ>",
            f"    lock({cls});",
            "",
            " *** DEADLOCK ***",
            "",
            *_held_lines(kt),
        ],
    )


def _print_irq_inversion_bug(
    kt: KThread, g: Graph, h: Held, cls: str, hit: tuple[str, bool, list[Edge]], forwards: bool, state: str
) -> None:
    """print_irq_inversion_bug(): a class just became irq-safe (-unsafe) and reaches (is reached
    from) an irq-unsafe (-safe) class."""
    other, _, chain = hit
    key = frozenset([f"irq:{cls}", f"irq:{other}"])
    if key in g.reported:
        return
    g.reported.add(key)
    safe, unsafe = (cls, other) if forwards else (other, cls)
    warn(
        "lock-order",
        f"{safe} is taken in {state.lower()} context and is held while {unsafe} is taken, "
        f"which is also taken with {state.lower()}s enabled",
        headline="WARNING: possible irq lock inversion dependency detected",
        details=[
            f"{_task()} just changed the state of lock:",
            f" ({cls}){'(read)' if h.read else ''}, at: {site_here()}",
            f"but this lock took another, {state}-unsafe lock in the past:"
            if forwards
            else f"but this lock was taken by another, {state}-safe lock in the past:",
            f" ({other})",
            "",
            "",
            "and interrupts could create inverse lock ordering between them.",
            "",
            *_irq_scenario(safe, unsafe, chain[0].after if len(chain) > 1 else unsafe, unsafe, state),
            *_held_lines(kt),
            "",
            "the shortest dependencies between 2nd lock and 1st lock:",
            *[f"  {e.before} -> {e.after} at {e.site}" for e in chain],
        ],
        needs=_earlier_runs(chain, usage=True),
    )


def _irq_scenario(safe: str, unsafe: str, middle: str, new: str, state: str) -> list[str]:
    """print_irq_lock_scenario()."""
    lines = ["other info that might help us debug this:", ""]
    if middle != unsafe:
        lines += ["Chain exists of:", f"  {safe} --> {middle} --> {unsafe}", ""]
    return [
        *lines,
        " Possible interrupt unsafe locking scenario:",
        "",
        "       CPU0                    CPU1",
        "       ----                    ----",
        f"  lock({unsafe});",
        " " * 31 + ("local_irq_disable();" if state == "HARDIRQ" else "local_bh_disable();"),
        f"                               lock({safe});",
        f"                               lock({middle});",
        "  <Interrupt>" if state == "HARDIRQ" else "  <SoftIRQ>",
        f"    lock({safe});",
        "",
        " *** DEADLOCK ***",
        "",
    ]


def _print_bad_irq_dependency(
    kt: KThread,
    g: Graph,
    prev: Held,
    new: Held,
    safe: str,
    unsafe: str,
    state: str,
    back: list[Edge],
    fwd: list[Edge],
) -> None:
    """print_bad_irq_dependency(): the new dependency prev -> new connects an irq-safe class to
    an irq-unsafe one."""
    pc, nc = lock_class(prev), lock_class(new)
    key = frozenset([f"irq:{safe}", f"irq:{unsafe}"])
    if key in g.reported:
        return
    g.reported.add(key)
    in_bits = [b for b in g.usage.get(safe, {}) if b.startswith(f"IN-{state}")]
    on_bits = [b for b in g.usage.get(unsafe, {}) if b.startswith(f"{state}-ON")]
    safe_at = g.usage[safe][in_bits[0]] if in_bits else "?"
    unsafe_at = g.usage[unsafe][on_bits[0]] if on_bits else "?"
    warn(
        "lock-order",
        f"{safe} is taken in {state.lower()} context ({safe_at}) and is held while {unsafe} is "
        f"taken, which is also taken with {state.lower()}s enabled ({unsafe_at})",
        headline=f"WARNING: {state}-safe -> {state}-unsafe lock order detected",
        details=[
            f"{_task()} {_irq_state(kt)} is trying to acquire:",
            f" ({nc}){'(read)' if new.read else ''}, at: {site_here()}",
            "",
            "and this task is already holding:",
            f" ({pc}){'(read)' if prev.read else ''}",
            "which would create a new lock dependency:",
            f" ({pc}) -> ({nc})",
            "",
            f"but this new dependency connects a {state}-irq-safe lock:",
            f" ({safe})",
            "",
            f"... which became {state}-irq-safe at:",
            f"  {safe_at}",
            "",
            f"to a {state}-irq-unsafe lock:",
            f" ({unsafe})",
            "",
            f"... which became {state}-irq-unsafe at:",
            f"  {unsafe_at}",
            "",
            *_irq_scenario(safe, unsafe, pc if pc != safe else nc, nc, state),
            *_held_lines(kt),
        ],
        needs=_earlier_runs([*back, *fwd], usage=True),
    )


def held_by(kt: KThread, lock: Any) -> Held | None:
    for h in reversed(kt.held):
        if h.lock is lock:
            return h
    return None


def debug_check_no_locks_freed(obj: Any) -> None:
    """debug_check_no_locks_freed() (kernel/locking/lockdep.c): the task frees ``obj`` holding its lock.

    The locks embedded in ``obj`` are its plain attributes that are locks; if
    the current task holds one, the free is "WARNING: held lock freed!" -- the
    unlock it will do next writes freed memory.
    """
    check_no_held_locks(obj, list(vars(obj).values()), f"freeing {obj!r}")


def check_no_held_locks(obj: Any, inside: list[Any], what: str) -> None:
    """print_freed_lock_bug() if the task holds one of ``inside`` (the locks in memory being
    freed or initialised).  Reported as the use-after-free it leads to: the thread stops."""
    kt = kthread(current_thread())
    ids = {id(v) for v in inside}
    for h in kt.held:
        if id(h.lock) in ids:
            bug(
                "use-after-free",
                f"{_task()}: {what} while holding {h.lock.name}, which lives in it",
                headline="WARNING: held lock freed!",
                details=[
                    "-------------------------",
                    f"{_task()} is freeing memory {obj!r}, with a lock still held there!",
                    f" ({lock_class(h)}){'(read)' if h.read else ''}, at: {site_here()}",
                    *_held_lines(kt),
                ],
            )
