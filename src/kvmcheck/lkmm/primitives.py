"""The kernel primitives of linux-kernel.def, as the events herd7 (lkmmv1) makes of them.

Each entry maps a primitive's name to a handler that emits its events on a
:class:`~.unfold.Runner` and returns the C value (with the reads it depends on).
Macros of linux-kernel.def that take an lvalue (``READ_ONCE(*x)``,
``rcu_dereference(*p)``, ``WRITE_ONCE(*x, v)``, ``rcu_assign_pointer(*p, v)``)
get ``*e``; the others (``smp_load_acquire(x)``, ``atomic_*``, ``xchg``,
``cmpxchg``, ``spin_*``, ``srcu_*``) get the pointer.  ``atomic_add_unless()``,
``atomic_inc_not_zero()`` and ``barrier()``
come from later versions of linux-kernel.def (herd7 >= 7.56) that the kernel's
Documentation/litmus-tests use.
"""

from __future__ import annotations

from collections.abc import Callable

from .syntax import Call, Deref, Expr, LitmusError, Value
from .unfold import NOTAINT, Runner, Taint, binop

Handler = Callable[[Runner, Call], tuple[Value, Taint]]
PRIMITIVES: dict[str, Handler] = {}

FLAVOURS = {"": "mb", "_relaxed": "once", "_acquire": "acquire", "_release": "release"}


def _nargs(c: Call, n: int) -> None:
    if len(c.args) != n:
        raise LitmusError(f"line {c.line}: {c.name}() takes {n} argument(s), got {len(c.args)}")


def _lvalue(r: Runner, c: Call, e: Expr) -> tuple[str, Taint]:
    if not isinstance(e, Deref):
        raise LitmusError(f"line {c.line}: {c.name}() takes an lvalue such as *x")
    a, t = r.eval(e.addr)
    return r.location(a), t


def _pointer(r: Runner, e: Expr) -> tuple[str, Taint]:
    a, t = r.eval(e)
    return r.location(a), t


# ------------------------------------------------------------------ plain loads and stores


def _load(tag: str, lvalue: bool) -> Handler:
    def h(r: Runner, c: Call) -> tuple[Value, Taint]:
        if c.name.startswith("srcu_dereference"):
            _nargs(c, 2)
        else:
            _nargs(c, 1)
        loc, ta = _lvalue(r, c, c.args[0]) if lvalue else _pointer(r, c.args[0])
        v, i = r.read(loc, (tag,), ta)
        return v, frozenset({i})

    return h


def _store(tag: str, lvalue: bool, mb_after: bool = False) -> Handler:
    def h(r: Runner, c: Call) -> tuple[Value, Taint]:
        _nargs(c, 2)
        loc, ta = _lvalue(r, c, c.args[0]) if lvalue else _pointer(r, c.args[0])
        v, tv = r.eval(c.args[1])
        r.write(loc, v, (tag,), ta, tv)
        if mb_after:
            r.emit("F", None, 0, ("mb",))
        return 0, NOTAINT

    return h


for _n in ("READ_ONCE", "rcu_dereference", "srcu_dereference", "rcu_access_pointer", "rcu_dereference_raw"):
    PRIMITIVES[_n] = _load("once", True)
PRIMITIVES["smp_load_acquire"] = _load("acquire", False)
PRIMITIVES["atomic_read"] = _load("once", False)
PRIMITIVES["atomic_read_acquire"] = _load("acquire", False)
PRIMITIVES["WRITE_ONCE"] = _store("once", True)
PRIMITIVES["rcu_assign_pointer"] = _store("release", True)
PRIMITIVES["smp_store_mb"] = _store("once", True, mb_after=True)
PRIMITIVES["smp_store_release"] = _store("release", False)
PRIMITIVES["atomic_set"] = _store("once", False)
PRIMITIVES["atomic_set_release"] = _store("release", False)

# ------------------------------------------------------------------ fences


def _fence(*kinds: str) -> Handler:
    def h(r: Runner, c: Call) -> tuple[Value, Taint]:
        _nargs(c, 0)
        for k in kinds:
            r.emit("F", None, 0, (k,))
        return 0, NOTAINT

    return h


for _n, _k in {
    "smp_mb": "mb",
    "smp_rmb": "rmb",
    "smp_wmb": "wmb",
    "smp_mb__before_atomic": "before-atomic",
    "smp_mb__after_atomic": "after-atomic",
    "smp_mb__after_spinlock": "after-spinlock",
    "smp_mb__after_unlock_lock": "after-unlock-lock",
    "barrier": "barrier",
    "rcu_read_lock": "rcu-lock",
    "rcu_read_unlock": "rcu-unlock",
    "synchronize_rcu": "sync-rcu",
    "synchronize_rcu_expedited": "sync-rcu",
}.items():
    PRIMITIVES[_n] = _fence(_k)

# ------------------------------------------------------------------ atomic RMWs


def _rmw_tags(flavour: str) -> tuple[str, str]:
    """(read tag, write tag) of an RMW of this ordering, in lkmmv1."""
    return ("acquire" if flavour == "acquire" else "once", "release" if flavour == "release" else "once")


def _rmw(
    r: Runner, loc: str, ta: Taint, flavour: str, new: Callable[[Value], tuple[Value, Taint, bool] | None]
) -> tuple[Value, int, int | None]:
    """One RMW: full barriers around it when mb; ``new`` gives the stored value (None: it fails).

    A failed ``cmpxchg()`` / ``atomic_add_unless()`` is a lone atomic read, with no barrier
    (herd's ``linux_cmpexch_no``).  ``new``'s flag says the stored value is computed from the
    value read (herd's internal data dependency of an RMW, ``iico_rmw``).
    """
    dom = r.values(loc)
    old = dom[r.pick(len(dom))]
    nv = new(old)
    rtag, wtag = _rmw_tags(flavour)
    if nv is None:
        return old, r.emit("R", loc, old, ("once",), addr=ta, atomic=True), None
    v, tv, from_read = nv
    if flavour == "mb":
        r.emit("F", None, 0, ("mb",))
    ri = r.emit("R", loc, old, (rtag,), addr=ta, atomic=True)
    data = tv | frozenset({ri}) if from_read else tv
    wi = r.write(loc, v, (wtag,), ta, data, atomic=True, rmw_read=ri)
    if flavour == "mb":
        r.emit("F", None, 0, ("mb",))
    return old, ri, wi


def _xchg(flavour: str) -> Handler:
    def h(r: Runner, c: Call) -> tuple[Value, Taint]:
        _nargs(c, 2)
        loc, ta = _pointer(r, c.args[0])
        v, tv = r.eval(c.args[1])
        old, ri, _ = _rmw(r, loc, ta, flavour, lambda _o: (v, tv, False))
        return old, frozenset({ri})

    return h


def _cmpxchg(flavour: str) -> Handler:
    def h(r: Runner, c: Call) -> tuple[Value, Taint]:
        _nargs(c, 3)
        loc, ta = _pointer(r, c.args[0])
        expect, _ = r.eval(c.args[1])
        v, tv = r.eval(c.args[2])
        old, ri, _ = _rmw(r, loc, ta, flavour, lambda o: (v, tv, False) if o == expect else None)
        return old, frozenset({ri})

    return h


def _op_return(
    op: str, flavour: str, fetch: bool, arg_first: bool, const: int | None, test: str = ""
) -> Handler:
    def h(r: Runner, c: Call) -> tuple[Value, Taint]:
        _nargs(c, 1 if const is not None else 2)
        v: Value
        if const is not None:
            loc, ta = _pointer(r, c.args[0])
            v, tv = const, NOTAINT
        else:
            ve, pe = (c.args[0], c.args[1]) if arg_first else (c.args[1], c.args[0])
            v, tv = r.eval(ve)
            loc, ta = _pointer(r, pe)
        box: list[Value] = []

        def new(o: Value) -> tuple[Value, Taint, bool]:
            box.append(binop(op, o, v))
            return box[0], tv, True

        old, ri, _ = _rmw(r, loc, ta, flavour, new)
        res: Value = old if fetch else box[0]
        if test == "zero":
            res = int(res == 0)
        elif test == "negative":
            res = int(isinstance(res, int) and res < 0)
        return res, frozenset({ri}) | tv

    return h


def _op_noreturn(op: str, const: int | None) -> Handler:
    def h(r: Runner, c: Call) -> tuple[Value, Taint]:
        _nargs(c, 1 if const is not None else 2)
        v: Value
        if const is not None:
            loc, ta = _pointer(r, c.args[0])
            v, tv = const, NOTAINT
        else:
            v, tv = r.eval(c.args[0])
            loc, ta = _pointer(r, c.args[1])
        old, ri = r.read(loc, ("noreturn",), ta, atomic=True)
        r.write(loc, binop(op, old, v), ("once",), ta, tv | frozenset({ri}), atomic=True, rmw_read=ri)
        return 0, NOTAINT

    return h


def _add_unless(ret: str, const: tuple[int, int] | None = None) -> Handler:
    def h(r: Runner, c: Call) -> tuple[Value, Taint]:
        _nargs(c, 1 if const else 3)
        loc, ta = _pointer(r, c.args[0])
        a: Value
        u: Value
        if const:
            a, ta2, u = const[0], NOTAINT, const[1]
        else:
            a, ta2 = r.eval(c.args[1])
            u, _ = r.eval(c.args[2])

        def new(o: Value) -> tuple[Value, Taint, bool] | None:
            if o == u:
                return None
            return binop("+", o, a), ta2, True

        old, ri, wi = _rmw(r, loc, ta, "mb", new)
        if ret == "bool":
            return int(wi is not None), frozenset({ri})
        return old, frozenset({ri})

    return h


for _suffix, _fl in FLAVOURS.items():
    for _pre in ("", "atomic_", "atomic_long_"):
        PRIMITIVES[f"{_pre}xchg{_suffix}"] = _xchg(_fl)
        PRIMITIVES[f"{_pre}cmpxchg{_suffix}"] = _cmpxchg(_fl)
    for _opn, _sym in (("add", "+"), ("sub", "-"), ("and", "&"), ("or", "|"), ("xor", "^")):
        PRIMITIVES[f"atomic_{_opn}_return{_suffix}"] = _op_return(_sym, _fl, False, True, None)
        PRIMITIVES[f"atomic_fetch_{_opn}{_suffix}"] = _op_return(_sym, _fl, True, True, None)
    for _opn, _sym in (("inc", "+"), ("dec", "-")):
        PRIMITIVES[f"atomic_{_opn}_return{_suffix}"] = _op_return(_sym, _fl, False, True, 1)
        PRIMITIVES[f"atomic_fetch_{_opn}{_suffix}"] = _op_return(_sym, _fl, True, True, 1)
for _opn, _sym in (("add", "+"), ("sub", "-"), ("and", "&"), ("or", "|"), ("xor", "^")):
    PRIMITIVES[f"atomic_{_opn}"] = _op_noreturn(_sym, None)
PRIMITIVES["atomic_inc"] = _op_noreturn("+", 1)
PRIMITIVES["atomic_dec"] = _op_noreturn("-", 1)
PRIMITIVES["atomic_sub_and_test"] = _op_return("-", "mb", False, True, None, "zero")
PRIMITIVES["atomic_dec_and_test"] = _op_return("-", "mb", False, True, 1, "zero")
PRIMITIVES["atomic_inc_and_test"] = _op_return("+", "mb", False, True, 1, "zero")
PRIMITIVES["atomic_add_negative"] = _op_return("+", "mb", False, True, None, "negative")
PRIMITIVES["atomic_add_unless"] = _add_unless("bool")
PRIMITIVES["atomic_fetch_add_unless"] = _add_unless("old")
PRIMITIVES["atomic_inc_not_zero"] = _add_unless("bool", (1, 0))

# ------------------------------------------------------------------ spinlocks (lock.cat)


def _spin_lock(r: Runner, c: Call) -> tuple[Value, Taint]:
    _nargs(c, 1)
    loc, ta = _pointer(r, c.args[0])
    r.emit("LKR", loc, 0, (), addr=ta)
    r.emit("LKW", loc, 1, (), addr=ta)
    return 0, NOTAINT


def _spin_unlock(r: Runner, c: Call) -> tuple[Value, Taint]:
    _nargs(c, 1)
    loc, ta = _pointer(r, c.args[0])
    r.emit("UL", loc, 0, (), addr=ta)
    return 0, NOTAINT


def _spin_trylock(r: Runner, c: Call) -> tuple[Value, Taint]:
    _nargs(c, 1)
    loc, ta = _pointer(r, c.args[0])
    if r.pick(2) == 0:
        r.emit("LKR", loc, 0, (), addr=ta)
        r.emit("LKW", loc, 1, (), addr=ta)
        return 1, NOTAINT
    r.emit("LF", loc, 1, (), addr=ta)
    return 0, NOTAINT


def _spin_is_locked(r: Runner, c: Call) -> tuple[Value, Taint]:
    _nargs(c, 1)
    loc, ta = _pointer(r, c.args[0])
    if r.pick(2) == 0:
        r.emit("RL", loc, 1, (), addr=ta)
        return 1, NOTAINT
    r.emit("RU", loc, 0, (), addr=ta)
    return 0, NOTAINT


PRIMITIVES["spin_lock"] = _spin_lock
PRIMITIVES["spin_unlock"] = _spin_unlock
PRIMITIVES["spin_trylock"] = _spin_trylock
PRIMITIVES["spin_is_locked"] = _spin_is_locked

# ------------------------------------------------------------------ SRCU


def _srcu_read_lock(r: Runner, c: Call) -> tuple[Value, Taint]:
    _nargs(c, 1)
    loc, ta = _pointer(r, c.args[0])
    value = (r.thread.proc + 1) * 307 + (len(r.events) + 1) * 599  # herd's token: unique per call
    r.emit("SRCU", loc, value, ("srcu-lock",), addr=ta)
    return value, NOTAINT


def _srcu_read_unlock(r: Runner, c: Call) -> tuple[Value, Taint]:
    _nargs(c, 2)
    loc, ta = _pointer(r, c.args[0])
    v, _ = r.eval(c.args[1])
    r.emit("SRCU", loc, v, ("srcu-unlock",), addr=ta)
    return 0, NOTAINT


def _synchronize_srcu(r: Runner, c: Call) -> tuple[Value, Taint]:
    _nargs(c, 1)
    loc, ta = _pointer(r, c.args[0])
    r.emit("SRCU", loc, 0, ("sync-srcu",), addr=ta)
    return 0, NOTAINT


PRIMITIVES["srcu_read_lock"] = _srcu_read_lock
PRIMITIVES["srcu_read_unlock"] = _srcu_read_unlock
PRIMITIVES["synchronize_srcu"] = _synchronize_srcu
PRIMITIVES["synchronize_srcu_expedited"] = _synchronize_srcu
