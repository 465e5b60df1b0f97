"""A sequentially consistent reference for litmus tests: an independent cross-check of the LKMM oracle.

Every interleaving of the threads' shared-memory operations over one memory, as
an explicit-state search: a state is the memory and, per thread, the values its
operations returned so far (a thread is re-run from its start along that history
to find its next operation).  Fences are no-ops; a lock is a location that
spin_lock() takes when it holds 0.  Under SC every execution is one the LKMM
allows, so ``sc_states(t) <= lkmm states``; with smp_mb() between every two
accesses the two sets are equal.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from kvmcheck.lkmm.syntax import (
    AddrOf,
    Assign,
    BinOp,
    Call,
    Const,
    Deref,
    Expr,
    If,
    LitmusTest,
    LocRef,
    RegRef,
    Store,
    Thread,
    UnOp,
    Value,
    Var,
)

Op = tuple[Any, ...]
Gen = Generator[Op, Value, Value]

NOOPS = {
    "smp_mb",
    "smp_rmb",
    "smp_wmb",
    "smp_mb__before_atomic",
    "smp_mb__after_atomic",
    "barrier",
    "smp_mb__after_spinlock",
    "rcu_read_lock",
    "rcu_read_unlock",
}


def _arith(op: str, a: Value, b: Value) -> Value:
    if isinstance(a, str) and op in "+-" and b == 0:
        return a  # a pointer plus zero
    table: dict[str, Callable[[Any, Any], Any]] = {
        "+": lambda p, q: p + q,
        "-": lambda p, q: p - q,
        "*": lambda p, q: p * q,
        "==": lambda p, q: int(p == q),
        "!=": lambda p, q: int(p != q),
        "&": lambda p, q: p & q,
        "|": lambda p, q: p | q,
        "^": lambda p, q: p ^ q,
        "<": lambda p, q: int(p < q),
        ">": lambda p, q: int(p > q),
        "&&": lambda p, q: int(bool(p) and bool(q)),
        "||": lambda p, q: int(bool(p) or bool(q)),
    }
    return table[op](a, b)


class Interp:
    def __init__(self, thread: Thread) -> None:
        self.regs: dict[str, Value] = {p: p for p in thread.params}
        for name in thread.locals:
            self.regs.setdefault(name, 0)

    def body(self, stmts: tuple[Any, ...]) -> Generator[Op, Value, None]:
        for s in stmts:
            if isinstance(s, Assign):
                v = yield from self.eval(s.expr)
                if s.name:
                    self.regs[s.name] = v
            elif isinstance(s, Store):
                a = yield from self.eval(s.addr)
                v = yield from self.eval(s.value)
                yield ("store", a, v)
            elif isinstance(s, If):
                c = yield from self.eval(s.cond)
                yield from self.body(s.then if c != 0 else s.orelse)

    def eval(self, e: Expr) -> Gen:
        if isinstance(e, Const):
            return e.value
        if isinstance(e, Var):
            return self.regs[e.name]
        if isinstance(e, AddrOf):
            return e.name
        if isinstance(e, Deref):
            a = yield from self.eval(e.addr)
            return (yield ("load", a))
        if isinstance(e, UnOp):
            v = yield from self.eval(e.arg)
            return int(v == 0) if e.op == "!" else -v  # type: ignore[operator]
        if isinstance(e, BinOp):
            left = yield from self.eval(e.left)
            right = yield from self.eval(e.right)
            return _arith(e.op, left, right)
        assert isinstance(e, Call)
        return (yield from self.call(e))

    def call(self, c: Call) -> Gen:
        n, args = c.name, c.args
        if n in NOOPS:
            return 0
        if n in ("READ_ONCE", "rcu_dereference"):
            assert isinstance(args[0], Deref)
            a = yield from self.eval(args[0].addr)
            return (yield ("load", a))
        if n in ("WRITE_ONCE", "rcu_assign_pointer", "smp_store_mb"):
            assert isinstance(args[0], Deref)
            a = yield from self.eval(args[0].addr)
            v = yield from self.eval(args[1])
            yield ("store", a, v)
            return 0
        if n in ("smp_load_acquire", "atomic_read", "atomic_read_acquire"):
            a = yield from self.eval(args[0])
            return (yield ("load", a))
        if n in ("smp_store_release", "atomic_set", "atomic_set_release"):
            a = yield from self.eval(args[0])
            v = yield from self.eval(args[1])
            yield ("store", a, v)
            return 0
        if n.startswith(("xchg", "atomic_xchg")):
            a = yield from self.eval(args[0])
            v = yield from self.eval(args[1])
            return (yield ("rmw", a, lambda old: (v, old)))
        if n.startswith(("cmpxchg", "atomic_cmpxchg")):
            a = yield from self.eval(args[0])
            exp = yield from self.eval(args[1])
            v = yield from self.eval(args[2])
            return (yield ("rmw", a, lambda old: (v if old == exp else None, old)))
        if n in ("atomic_inc", "atomic_dec"):
            a = yield from self.eval(args[0])
            d = 1 if n == "atomic_inc" else -1
            yield ("rmw", a, lambda old: (old + d, 0))
            return 0
        if n.startswith(("atomic_add_return", "atomic_fetch_add")):
            v = yield from self.eval(args[0])
            a = yield from self.eval(args[1])
            fetch = n.startswith("atomic_fetch")
            return (yield ("rmw", a, lambda old: (old + v, old if fetch else old + v)))
        if n == "spin_lock":
            a = yield from self.eval(args[0])
            yield ("lock", a)
            return 0
        if n == "spin_unlock":
            a = yield from self.eval(args[0])
            yield ("store", a, 0)
            return 0
        if n == "spin_trylock":
            a = yield from self.eval(args[0])
            return (yield ("rmw", a, lambda old: (1, 1) if old == 0 else (None, 0)))
        raise NotImplementedError(n)


def supported(test: LitmusTest) -> bool:
    text = repr(test.threads)
    return not any(
        w in text for w in ("synchronize", "srcu", "is_locked", "add_unless", "_and_test", "sub", "negative")
    )


def _next(thread: Thread, history: tuple[Value, ...]) -> tuple[Op | None, dict[str, Value]]:
    it = Interp(thread)
    g = it.body(thread.body)
    try:
        op = next(g)
        for v in history:
            op = g.send(v)
    except StopIteration:
        return None, it.regs
    return op, it.regs


def _apply(op: Op, mem: dict[str, Value]) -> tuple[Value, dict[str, Value]] | None:
    kind, loc = op[0], op[1]
    m = dict(mem)
    if kind == "load":
        return m[loc], m
    if kind == "store":
        m[loc] = op[2]
        return 0, m
    if kind == "lock":
        if m[loc] != 0:
            return None  # blocked
        m[loc] = 1
        return 0, m
    new, result = op[2](m[loc])
    if new is not None:
        m[loc] = new
    return result, m


def sc_states(test: LitmusTest, shown: list[Any]) -> set[tuple[Value, ...]]:
    """The final states of every SC interleaving (that passes the filter), projected on ``shown``."""
    from kvmcheck.lkmm.explore import holds

    init = dict(test.init)
    n = len(test.threads)
    start = (tuple(sorted(init.items())), tuple(() for _ in range(n)))
    seen = {start}
    stack = [start]
    out: set[tuple[Value, ...]] = set()
    while stack:
        mem_items, hist = stack.pop()
        mem = dict(mem_items)
        moved = False
        finals: dict[Any, Value] = {}
        for t, thread in enumerate(test.threads):
            op, regs = _next(thread, hist[t])
            if op is None:
                for k, v in regs.items():
                    if k not in thread.params:
                        finals[RegRef(t, k)] = v
                continue
            step = _apply(op, mem)
            if step is None:
                continue
            moved = True
            result, m2 = step
            h2 = list(hist)
            h2[t] = (*hist[t], result)
            nxt = (tuple(sorted(m2.items())), tuple(h2))
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
        done = all(_next(th, hist[t])[0] is None for t, th in enumerate(test.threads))
        if done and not moved:
            for k, v in mem.items():
                finals[LocRef(k)] = v
            for r, v in test.reg_init:
                finals.setdefault(r, v)
            val = {r: finals.get(r, 0) for r in set(shown) | set(finals)}
            if test.filter is not None:
                from kvmcheck.lkmm.syntax import refs_of

                for r in refs_of(test.filter):
                    val.setdefault(r, 0)
                if not holds(test.filter, val):
                    continue
            out.add(tuple(val.get(r, 0) for r in shown))
    return out
