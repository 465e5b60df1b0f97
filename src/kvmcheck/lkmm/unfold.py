"""Run one thread of a litmus test for every value its reads may return.

A thread's run is a function of the values its reads return.  Each read picks a
value from the location's *domain* (the values some write may store there); each
``spin_trylock()`` / ``spin_is_locked()`` picks an outcome.  Every sequence of
picks is one *path*: the events herd7 would build for that control flow, with
their dependencies (herd's ``addr`` / ``data`` / ``ctrl``: the reads whose value
flows, through registers, into an address, a stored value, or an ``if``
condition that encloses the event).  Whether a path is real is decided later,
when reads are given writes to read from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .events import Event
from .syntax import (
    AddrOf,
    Assign,
    BinOp,
    Const,
    Deref,
    Expr,
    If,
    LitmusError,
    Stmt,
    Store,
    Thread,
    UnOp,
    Value,
    Var,
)

Taint = frozenset[int]
NOTAINT: Taint = frozenset()


class _NeedChoice(Exception):
    def __init__(self, n: int) -> None:
        self.n = n


class _Infeasible(Exception):
    """This sequence of picks cannot happen (a pointer to nowhere)."""


@dataclass(frozen=True)
class Path:
    thread: int
    events: tuple[Event, ...]
    regs: tuple[tuple[str, Value], ...]


class Runner:
    """One run of a thread along a given sequence of picks."""

    def __init__(self, thread: Thread, domains: dict[str, list[Value]], picks: list[int], locs: set[str]):
        self.thread = thread
        self.domains = domains
        self.picks = picks
        self.npick = 0
        self.locs = locs
        self.events: list[Event] = []
        self.ctrl: list[Taint] = []
        self.regs: dict[str, tuple[Value, Taint]] = {p: (p, NOTAINT) for p in thread.params}
        for name in thread.locals:
            self.regs.setdefault(name, (0, NOTAINT))
        self.line = 0
        self.text = ""

    # ------------------------------------------------------------ choices
    def pick(self, n: int) -> int:
        if self.npick < len(self.picks):
            k = self.picks[self.npick]
        else:
            raise _NeedChoice(n)
        self.npick += 1
        return k

    # ------------------------------------------------------------ events
    def emit(self, kind: str, loc: str | None, value: Value, tags: tuple[str, ...] = (), **kw: object) -> int:
        ctrl: Taint = frozenset().union(*self.ctrl) if self.ctrl else NOTAINT
        ev = Event(
            kind=kind,
            loc=loc,
            value=value,
            tags=frozenset(tags),
            thread=self.thread.proc,
            ctrl=ctrl,
            line=self.line,
            text=self.text,
            **kw,  # type: ignore[arg-type]
        )
        self.events.append(ev)
        return len(self.events) - 1

    def location(self, v: Value) -> str:
        if not isinstance(v, str) or v not in self.locs:
            raise _Infeasible
        return v

    def values(self, loc: str) -> list[Value]:
        """What a read of ``loc`` may return: its domain, and what this run stored there before."""
        dom = self.domains.get(loc, [0])
        own = [e.value for e in self.events if e.kind == "W" and e.loc == loc and e.value not in dom]
        return dom + sorted(set(own), key=lambda v: (isinstance(v, str), str(v)))

    def read(self, loc: str, tags: tuple[str, ...], addr: Taint, atomic: bool = False) -> tuple[Value, int]:
        dom = self.values(loc)
        v = dom[self.pick(len(dom))]
        return v, self.emit("R", loc, v, tags, addr=addr, atomic=atomic)

    def write(self, loc: str, v: Value, tags: tuple[str, ...], addr: Taint, data: Taint, **kw: object) -> int:
        return self.emit("W", loc, v, tags, addr=addr, data=data, **kw)

    # ------------------------------------------------------------ statements
    def run(self, body: tuple[Stmt, ...]) -> None:
        for s in body:
            if isinstance(s, Assign):
                val = self.eval(s.expr)
                if s.name is not None:
                    self.regs[s.name] = val
            elif isinstance(s, Store):
                a, ta = self.eval(s.addr)
                v, tv = self.eval(s.value)
                self.line, self.text = s.line, "plain store"
                self.write(self.location(a), v, (), ta, tv)
            elif isinstance(s, If):
                c, tc = self.eval(s.cond)
                self.ctrl.append(tc)
                self.run(s.then if truthy(c) else s.orelse)
                self.ctrl.pop()

    # ------------------------------------------------------------ expressions
    def eval(self, e: Expr) -> tuple[Value, Taint]:
        if isinstance(e, Const):
            return e.value, NOTAINT
        if isinstance(e, Var):
            if e.name in self.regs:
                return self.regs[e.name]
            raise LitmusError(f"P{self.thread.proc}: {e.name} is neither a parameter nor a declared local")
        if isinstance(e, AddrOf):
            return e.name, NOTAINT
        if isinstance(e, Deref):
            a, ta = self.eval(e.addr)
            self.line, self.text = e.line, "plain load"
            v, i = self.read(self.location(a), (), ta)
            return v, frozenset({i})
        if isinstance(e, UnOp):
            v, t = self.eval(e.arg)
            return unop(e.op, v), t
        if isinstance(e, BinOp):
            lv, lt = self.eval(e.left)
            rv, rt = self.eval(e.right)
            return binop(e.op, lv, rv), lt | rt
        from .primitives import PRIMITIVES

        handler = PRIMITIVES.get(e.name)
        if handler is None:
            raise LitmusError(f"line {e.line}: unknown or unsupported primitive {e.name}()")
        self.line, self.text = e.line, e.name
        return handler(self, e)


def truthy(v: Value) -> bool:
    return v != 0


def unop(op: str, v: Value) -> Value:
    if op == "!":
        return int(not truthy(v))
    if isinstance(v, str):
        raise _Infeasible
    return -v if op == "-" else ~v


_ARITH: dict[str, Callable[[int, int], int]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: int(a / b) if b else 0,
    "%": lambda a, b: a % b if b else 0,
    "&": lambda a, b: a & b,
    "|": lambda a, b: a | b,
    "^": lambda a, b: a ^ b,
    "<<": lambda a, b: a << b,
    ">>": lambda a, b: a >> b,
    "<": lambda a, b: int(a < b),
    ">": lambda a, b: int(a > b),
    "<=": lambda a, b: int(a <= b),
    ">=": lambda a, b: int(a >= b),
}


def binop(op: str, a: Value, b: Value) -> Value:
    if op == "==":
        return int(a == b)
    if op == "!=":
        return int(a != b)
    if op == "&&":
        return int(truthy(a) and truthy(b))
    if op == "||":
        return int(truthy(a) or truthy(b))
    if isinstance(a, str) and op in ("+", "-") and b == 0:
        return a  # `y + (r1 ^ r1)`: a pointer plus a (dependent) zero
    if isinstance(b, str) and op == "+" and a == 0:
        return b
    if isinstance(a, str) or isinstance(b, str):
        raise _Infeasible  # other arithmetic on a pointer: not in this dialect
    return _ARITH[op](a, b)


def paths_of(
    thread: Thread, domains: dict[str, list[Value]], locs: set[str], partial: bool = False
) -> list[Path]:
    """Every path of ``thread`` when each read may return any value of its domain.

    With ``partial``, a run cut short (a pointer to nowhere, read before the domains are
    complete) still counts with the events it made: the domains need its stores.
    """
    out: list[Path] = []
    stack: list[list[int]] = [[]]
    while stack:
        picks = stack.pop()
        r = Runner(thread, domains, picks, locs)
        try:
            r.run(thread.body)
        except _NeedChoice as nc:
            stack.extend([*picks, k] for k in reversed(range(nc.n)))
            continue
        except _Infeasible:
            if partial:
                out.append(Path(thread.proc, tuple(r.events), ()))
            continue
        regs = tuple(sorted((k, v) for k, (v, _) in r.regs.items() if k not in thread.params))
        out.append(Path(thread.proc, tuple(r.events), regs))
    return out
