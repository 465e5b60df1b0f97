"""The abstract syntax of a C litmus test (herd7's LKMM subset), frozen once parsed.

A value is an ``int`` or a ``str``: the name of a shared location, which is what a
pointer holds (``int *y = &x;`` makes ``y`` hold ``"x"``; ``0:r0=x`` compares with it).
"""

from __future__ import annotations

from dataclasses import dataclass

Value = int | str


class LitmusError(Exception):
    """A malformed or unsupported litmus file: the CLI prints one line and exits 2."""


# ----------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Const:
    value: Value


@dataclass(frozen=True)
class Var:
    """A local register or a parameter (a register holding a location)."""

    name: str


@dataclass(frozen=True)
class Deref:
    """``*e``: a plain load from the location ``e`` evaluates to."""

    addr: Expr
    line: int = 0


@dataclass(frozen=True)
class AddrOf:
    name: str


@dataclass(frozen=True)
class BinOp:
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class UnOp:
    op: str
    arg: Expr


@dataclass(frozen=True)
class Call:
    """A kernel primitive (``READ_ONCE``, ``cmpxchg``, ``smp_mb`` ...)."""

    name: str
    args: tuple[Expr, ...]
    line: int


Expr = Const | Var | Deref | AddrOf | BinOp | UnOp | Call

# ----------------------------------------------------------------- statements


@dataclass(frozen=True)
class Assign:
    """``r = e;`` (also ``int r = e;``); ``name`` is None for ``(void)e;`` / ``e;``."""

    name: str | None
    expr: Expr


@dataclass(frozen=True)
class Store:
    """``*a = v;``: a plain store."""

    addr: Expr
    value: Expr
    line: int = 0


@dataclass(frozen=True)
class If:
    cond: Expr
    then: tuple[Stmt, ...]
    orelse: tuple[Stmt, ...]


Stmt = Assign | Store | If

# ----------------------------------------------------------------- the test


@dataclass(frozen=True)
class Thread:
    proc: int
    params: tuple[str, ...]
    body: tuple[Stmt, ...]
    locals: tuple[str, ...]


@dataclass(frozen=True)
class RegRef:
    proc: int
    name: str

    def __str__(self) -> str:
        return f"{self.proc}:{self.name}"


@dataclass(frozen=True)
class LocRef:
    name: str

    def __str__(self) -> str:
        return f"[{self.name}]"


Ref = RegRef | LocRef


@dataclass(frozen=True)
class Atom:
    """``ref=value``; the right side may itself be a register or ``[location]`` (``0:r1=1:r1``)."""

    ref: Ref
    value: Value | RegRef | LocRef
    negated: bool = False


@dataclass(frozen=True)
class Not:
    arg: Prop


@dataclass(frozen=True)
class And:
    left: Prop
    right: Prop


@dataclass(frozen=True)
class Or:
    left: Prop
    right: Prop


@dataclass(frozen=True)
class Truth:
    value: bool


Prop = Atom | Not | And | Or | Truth


@dataclass(frozen=True)
class Condition:
    quantifier: str  # "exists", "~exists" or "forall"
    prop: Prop


@dataclass(frozen=True)
class Expected:
    """The file's ``Result:`` comment: herd's verdict and the flag words after it."""

    verdict: str  # Always / Sometimes / Never / DEADLOCK / Maybe
    flags: tuple[str, ...]  # the words after the verdict (judgelitmus.sh reads DATARACE there)
    flag_lines: tuple[str, ...] | None = None  # ` * Flag NAME` lines: herd's flags, exactly


@dataclass(frozen=True)
class LitmusTest:
    name: str
    init: tuple[tuple[str, Value], ...]  # every shared location, with its initial value
    reg_init: tuple[tuple[RegRef, Value], ...]
    threads: tuple[Thread, ...]
    locations: tuple[Ref, ...]
    filter: Prop | None
    condition: Condition
    expected: Expected | None
    lock_locations: frozenset[str]


def refs_of(prop: Prop | None) -> list[Ref]:
    """The registers and locations a proposition mentions, in order of appearance."""
    if prop is None or isinstance(prop, Truth):
        return []
    if isinstance(prop, Atom):
        return [prop.ref, *([prop.value] if isinstance(prop.value, RegRef | LocRef) else [])]
    if isinstance(prop, Not):
        return refs_of(prop.arg)
    return refs_of(prop.left) + refs_of(prop.right)


def show_value(v: Value) -> str:
    return str(v)


def show_prop(p: Prop) -> str:
    """herd's spelling of a proposition (``1:r0=1 /\\ [x]=0``)."""
    if isinstance(p, Truth):
        return "true" if p.value else "false"
    if isinstance(p, Atom):
        rhs = str(p.value) if isinstance(p.value, RegRef | LocRef) else show_value(p.value)
        return f"{p.ref}{'!=' if p.negated else '='}{rhs}"
    if isinstance(p, Not):
        return f"not ({show_prop(p.arg)})"
    op = "/\\" if isinstance(p, And) else "\\/"
    return f"{_paren(p.left, type(p))} {op} {_paren(p.right, type(p))}"


def _paren(p: Prop, parent: type) -> str:
    s = show_prop(p)
    return f"({s})" if isinstance(p, And | Or) and not isinstance(p, parent) else s
