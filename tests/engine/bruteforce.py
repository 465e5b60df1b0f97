"""A brute-force enumerator: the reference the DPOR strategy is checked against.

``BruteForce`` has the interface of the engine's strategies but does no
reduction at all: a plain depth-first search over every enabled thread at
every step.  Each execution re-runs the scenario from the start, replays the
prefix the search chose, and takes the first enabled thread at every new
step; ``next_execution`` then moves the deepest choice point that has an
untried alternative to it, exactly like a tree walk.

``explore`` (and ``outcomes``, its short form) drives any strategy object --
``BruteForce()`` or the engine's ``Dpor()`` -- over one scenario through the
engine's own exploration loop (``kvmcheck._engine.explore``, with
``keep_going``), so it does *not* stop at the first finding: it explores
everything and records what each execution ended with (see ``outcome_of``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kvmcheck._engine.execution import Execution
from kvmcheck._engine.explore import explore as explore_loop
from kvmcheck._engine.explore import run_execution
from kvmcheck._engine.scenario import Scenario
from kvmcheck._engine.session import Session
from kvmcheck._engine.settings import Settings
from kvmcheck._engine.strategy import StrategyBase

if TYPE_CHECKING:
    from kvmcheck._engine.ops import Op

MAX_STEPS = 2_000

# (main's return value or None, sorted (kind, message) of every hard finding or None,
#  sorted kinds of the soft findings reported in this execution); see outcome_of
Hard = tuple[tuple[str, str], ...]
Outcome = tuple[Any, Hard | None, tuple[str, ...]]


class _Choice:
    """A step: one alternative per enabled thread, and per outcome of a thread's nondet() op."""

    __slots__ = ("alts", "enabled", "i")

    def __init__(self, enabled: list[int], alts: list[tuple[int, int]]) -> None:
        self.enabled = enabled
        self.alts = alts  # (thread, choice outcome)
        self.i = 0


class BruteForce(StrategyBase):
    """Every interleaving, no reduction: DFS over all enabled choices at every step."""

    name = "bruteforce"
    exhaustive = True

    def __init__(self) -> None:
        self.stack: list[_Choice] = []
        self.blocked = 0  # never blocks; here for the strategy interface

    def describe(self) -> str:
        return "brute force (every interleaving)"

    def choose(self, ex: Execution, enabled: list[int]) -> int | None:
        depth = len(ex.schedule)
        if depth < len(self.stack):
            node = self.stack[depth]
            if node.enabled != enabled:
                raise AssertionError(
                    f"step {depth}: enabled {enabled}, but {node.enabled} with the same prefix "
                    "before: the scenario is not deterministic"
                )
            return node.alts[node.i][0]
        alts = []
        for t in enabled:
            op = ex.threads[t].pending
            alts.extend((t, v) for v in range(max(1, op.choices if op is not None else 0)))
        node = _Choice(list(enabled), alts)
        self.stack.append(node)
        return node.alts[0][0]

    def choose_value(self, ex: Execution, n: int) -> int:
        node = self.stack[len(ex.schedule)]
        return node.alts[node.i][1]

    def on_event(self, ex: Execution, tid: int, op: Op) -> None:
        pass

    def next_execution(self) -> bool:
        stack = self.stack
        while stack:
            node = stack[-1]
            if node.i + 1 < len(node.alts):
                node.i += 1
                return True
            stack.pop()
        return False


@dataclass
class Exploration:
    """Everything one exploration of a scenario saw."""

    outcomes: set[Outcome] = field(default_factory=set)
    executions: int = 0  # executions not abandoned by the search ("blocked")
    blocked: int = 0
    # one schedule per distinct first hard finding (kind, message) of a run
    counterexamples: dict[tuple[str, str], str] = field(default_factory=dict)
    # the Mazurkiewicz trace (canonical Foata normal form) of each execution
    traces: set[Foata] = field(default_factory=set)
    # every execution's schedule string and main's result
    runs: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def terminal(self) -> set[tuple[Any, Hard | None]]:
        """Terminal states and hard findings, without the per-execution soft kinds."""
        return {(res, hard) for res, hard, _ in self.outcomes}

    @property
    def soft_kinds(self) -> set[str]:
        """Union, over every execution, of the kinds of soft findings reported."""
        return {k for _, _, soft in self.outcomes for k in soft}


def outcome_of(ex: Execution) -> Outcome:
    """What one finished execution ended with.

    * main's return value, if main ran to its end (None if it was killed or blocked);
    * every hard finding of the run, as sorted (kind, message) pairs, or None.  A hard
      finding kills only its own thread and the others run on, so one run may have
      several; the *set* does not depend on which of two independent threads ran
      first, while ``ex.finding`` (the first one) does;
    * the kinds of the soft findings reported in this run.
    """
    main = ex.threads[0]
    result = main.result if main.done and not main.dead else None
    hard = tuple(sorted({(f.kind, f.message) for f in ex.findings})) or None
    # Soft findings (KCSAN data races, lockdep reports, WARN_ON_ONCE) are
    # deduplicated per *check*: the first execution that hits one reports
    # it and every later execution stays quiet (``ex.session``).  Which
    # execution comes first depends on the exploration order, which
    # differs between brute force and DPOR, so per-execution soft tuples
    # are not comparable across strategies; only their union is.
    soft = tuple(sorted({f.kind for f in ex.soft}))
    return (result, hard, soft)


# An event: (thread, its index among the thread's steps, op name incl. a choice's outcome).
Event = tuple[int, int, str]
Foata = tuple[tuple[Event, ...], ...]


def foata(ex: Execution) -> Foata:
    """The Foata normal form of ``ex``'s trace: a canonical name of its Mazurkiewicz class.

    Computed independently of any strategy from the dependency relation alone
    (``Op.dependent``, program order, and spawn-before-child): each event's
    level is one more than the highest level of an earlier event it depends
    on; the form lists each level's events, sorted.  Two executions have the
    same form iff one is the other with adjacent independent steps swapped.
    """
    levels: list[int] = []
    thread_level: dict[int, int] = {}
    count: dict[int, int] = {}
    events: list[Event] = []
    ops = ex.ops
    for j, tid in enumerate(ex.schedule):
        op = ops[j]
        lvl = thread_level.get(tid, 0)
        for i in range(j):
            if levels[i] >= lvl and ex.schedule[i] != tid and op.dependent(ops[i]):
                lvl = levels[i] + 1 if levels[i] + 1 > lvl else lvl
        if op.arg == "join":  # after every step of the joined thread (also one an oops killed)
            lvl = max(lvl, thread_level.get(op.obj.tid, 0))  # type: ignore[union-attr]
        levels.append(lvl)
        thread_level[tid] = lvl + 1
        if op.arg == "spawn":
            child = op.obj.tid  # type: ignore[union-attr]
            thread_level[child] = max(thread_level.get(child, 0), lvl + 1)
        k = count.get(tid, 0)
        count[tid] = k + 1
        events.append((tid, k, op.name))
    out: dict[int, list[Event]] = {}
    for e, lvl in zip(events, levels, strict=True):
        out.setdefault(lvl, []).append(e)
    return tuple(tuple(sorted(out[k])) for k in sorted(out))


def explore(scn: Scenario, strategy: Any, variant: str | None = None) -> Exploration:
    """Run ``strategy`` over ``scn`` until it has nothing left to explore."""
    out = Exploration()

    def seen(ex: Execution) -> None:
        if ex.outcome == "blocked":
            out.blocked += 1
            return
        out.executions += 1
        out.outcomes.add(outcome_of(ex))
        out.traces.add(foata(ex))
        out.runs.append((ex.schedule_string(), outcome_of(ex)[0]))
        first = ex.finding
        if first is not None and (first.kind, first.message) not in out.counterexamples:
            out.counterexamples[(first.kind, first.message)] = ex.schedule_string()

    settings = Settings(max_steps=MAX_STEPS, keep_going=True)
    explore_loop(scn.body(variant), strategy, settings, Session(), on_execution=seen)
    return out


def outcomes(scn: Scenario, strategy_obj: Any, variant: str | None = None) -> tuple[set[Outcome], int]:
    """The set of outcomes of every execution ``strategy_obj`` explores, and how many there were."""
    e = explore(scn, strategy_obj, variant)
    return e.outcomes, e.executions


class _Recorder(StrategyBase):
    """Follows a fixed schedule and records the enabled set at every step."""

    name = "recorder"
    exhaustive = False

    def __init__(self, tids: list[int]) -> None:
        self.tids = tids
        self.enabled: list[list[int]] = []
        self.blocked = 0

    def describe(self) -> str:
        return "recorder"

    def choose(self, ex: Execution, enabled: list[int]) -> int | None:
        step = len(ex.schedule)
        if step >= len(self.tids):
            return None
        self.enabled.append(list(enabled))
        t = self.tids[step]
        assert t in enabled, f"step {step}: thread {t} not enabled ({enabled})"
        return t

    def choose_value(self, ex: Execution, n: int) -> int:
        return 0

    def on_event(self, ex: Execution, tid: int, op: Op) -> None:
        pass

    def next_execution(self) -> bool:
        return False


def enabled_sets(scn: Scenario, tids: list[int], variant: str | None = None) -> list[list[int]]:
    """Replay ``tids`` (one execution) and return the enabled threads before each step."""
    rec = _Recorder(tids)
    run_execution(scn.body(variant), rec, Session(), MAX_STEPS)
    return rec.enabled


def preemptions(tids: list[int], enabled: list[list[int]]) -> int:
    """Switches away from a thread that could have gone on (the bounded strategy's measure)."""
    n = 0
    for k in range(1, len(tids)):
        prev = tids[k - 1]
        if tids[k] != prev and prev in enabled[k]:
            n += 1
    return n
