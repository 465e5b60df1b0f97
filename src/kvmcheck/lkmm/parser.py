"""Read a C litmus test in herd7's LKMM dialect into :mod:`.syntax` records.

The file is: a ``C name`` line; comments ``(* ... *)`` (where the ``Result:`` line
lives), ``/* */`` and ``//``; an optional init block ``{ int x = 1; int *y = &x;
x=1; atomic_t v = ATOMIC_INIT(1); spinlock_t l; 0:r1=2; }``; the threads
``P0(int *x, spinlock_t *l) { ... }``; then ``locations [x;0:r0]``, ``filter
(...)`` and one of ``exists`` / ``~exists`` / ``forall`` with ``/\\``, ``\\/``,
``~``/``not``, ``0:r0=1``, ``x=2``, ``[x]=2``, ``0:r0=x``.  Anything else is one
:class:`LitmusError` naming the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .syntax import (
    AddrOf,
    And,
    Assign,
    Atom,
    BinOp,
    Call,
    Condition,
    Const,
    Deref,
    Expected,
    Expr,
    If,
    LitmusError,
    LitmusTest,
    LocRef,
    Not,
    Or,
    Prop,
    Ref,
    RegRef,
    Stmt,
    Store,
    Thread,
    Truth,
    UnOp,
    Value,
    Var,
)

_TOKEN = re.compile(
    r"""(?P<ws>[ \t\r]+)|(?P<nl>\n)
    |(?P<num>0x[0-9a-fA-F]+|\d+)
    |(?P<id>[A-Za-z_][A-Za-z_0-9.]*)
    |(?P<op>/\\|\\/|==|!=|<=|>=|&&|\|\||<<|>>|->|[-+*/%&|^!~<>=(){}\[\];,:?])""",
    re.VERBOSE,
)

TYPES = {"int", "long", "unsigned", "atomic_t", "atomic_long_t", "spinlock_t", "void", "char", "short"}
_STRUCT_TYPES = {"srcu_struct"}
_RESULT = re.compile(r"^[ \t(]*\*?\s*Result:\s*(\S+)([^\n]*)$", re.MULTILINE)
_FLAG = re.compile(r"^[ \t]*\*[ \t]*Flag[ \t]+([a-z][\w-]*)[ \t]*$", re.MULTILINE)


@dataclass
class Tok:
    kind: str
    text: str
    line: int


def _number(text: str) -> int:
    """A C integer literal: decimal (leading zeros allowed, as herd7 reads them) or 0x hex."""
    return int(text, 16) if text.lower().startswith("0x") else int(text, 10)


def strip_comments(src: str) -> str:
    """Blank out comments, keeping newlines so that line numbers stay right."""
    out: list[str] = []
    i, n = 0, len(src)
    while i < n:
        if src.startswith("(*", i) and (i + 2 >= n or src[i + 2] in " \t\n*"):
            j = src.find("*)", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        else:
            out.append(src[i])
            i += 1
    return "".join(out)


def tokenize(src: str, first_line: int = 1) -> list[Tok]:
    toks: list[Tok] = []
    line, pos = first_line, 0
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if m is None:
            raise LitmusError(f"line {line}: unexpected character {src[pos]!r}")
        kind = m.lastgroup or ""
        if kind == "nl":
            line += 1
        elif kind != "ws":
            toks.append(Tok(kind, m.group(), line))
        pos = m.end()
    toks.append(Tok("eof", "", line))
    return toks


def expected_result(src: str) -> Expected | None:
    """The first ``Result:`` line of the file's comments (as the kernel's judgelitmus.sh reads it)."""
    m = _RESULT.search(src)
    if m is None:
        return None
    rest = tuple(w for w in re.split(r"[\s,*)]+", m.group(2)) if w)
    flag_lines = tuple(_FLAG.findall(src))
    return Expected(m.group(1), rest, flag_lines or None)


class Parser:
    def __init__(self, toks: list[Tok]) -> None:
        self.toks = toks
        self.i = 0

    # ------------------------------------------------------------ helpers
    @property
    def tok(self) -> Tok:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def error(self, what: str) -> LitmusError:
        t = self.tok
        found = repr(t.text) if t.kind != "eof" else "end of file"
        return LitmusError(f"line {t.line}: {what}, found {found}")

    def at(self, text: str) -> bool:
        return self.tok.text == text and self.tok.kind in ("op", "id")

    def eat(self, text: str) -> bool:
        if self.at(text):
            self.i += 1
            return True
        return False

    def expect(self, text: str) -> Tok:
        if not self.at(text):
            raise self.error(f"expected {text!r}")
        t = self.tok
        self.i += 1
        return t

    def ident(self) -> str:
        if self.tok.kind != "id":
            raise self.error("expected a name")
        t = self.tok
        self.i += 1
        return t.text

    def skip_type(self) -> int:
        """Skip a C type (``int``, ``struct srcu_struct``, ``atomic_t``), return the pointer depth."""
        if self.eat("struct"):
            self.ident()
        elif self.tok.kind == "id" and (self.tok.text in TYPES or self.tok.text in _STRUCT_TYPES):
            while self.tok.kind == "id" and self.tok.text in TYPES | {"volatile", "const"}:
                self.i += 1
            if self.tok.text in _STRUCT_TYPES:
                self.i += 1
        else:
            raise self.error("expected a type")
        depth = 0
        while self.eat("*"):
            depth += 1
        return depth

    def at_type(self) -> bool:
        return self.tok.kind == "id" and (self.tok.text in TYPES or self.tok.text in ("struct", "const"))


def parse_litmus(src: str) -> LitmusTest:
    """Parse a whole C litmus file; raise LitmusError (one line) when it is malformed."""
    lines = src.split("\n", 1)
    head = lines[0].split()
    if len(head) < 2 or head[0] != "C":
        raise LitmusError("line 1: a C litmus test starts with 'C <name>'")
    name = head[1]
    body = strip_comments(lines[1] if len(lines) > 1 else "")
    p = Parser(tokenize(body, 2))
    init: dict[str, Value] = {}
    reg_init: list[tuple[RegRef, Value]] = []
    locks: set[str] = set()
    if p.at("{"):
        _init_block(p, init, reg_init, locks)
    threads: list[Thread] = []
    while p.tok.kind == "id" and re.fullmatch(r"P\d+", p.tok.text):
        threads.append(_thread(p, locks))
    if not threads:
        raise p.error("expected a thread P0(...) { ... }")
    for k, t in enumerate(threads):
        if t.proc != k:
            raise LitmusError(f"test {name}: threads must be P0, P1, ... in order (found P{t.proc})")
        for prm in t.params:
            init.setdefault(prm, 0)
    for v in list(init.values()):  # `p=y;`: a location named only as a pointer's initial value
        if isinstance(v, str):
            init.setdefault(v, 0)
    locations: list[Ref] = []
    filt: Prop | None = None
    cond: Condition | None = None
    while p.tok.kind != "eof":
        if p.eat("locations"):
            p.expect("[")
            while not p.at("]"):
                locations.append(_ref(p))
                if not p.eat(";"):
                    break
            p.expect("]")
        elif p.eat("filter"):
            filt = _prop(p)
        elif p.at("exists") or p.at("forall") or p.at("~"):
            q = "~exists" if p.eat("~") else ""
            word = p.ident()
            if word not in ("exists", "forall") or (q and word != "exists"):
                raise p.error("expected exists, ~exists or forall")
            cond = Condition(q or word, _prop(p))
        else:
            raise p.error("expected locations, filter, exists, ~exists or forall")
    if cond is None:
        raise LitmusError(f"test {name}: no final condition (exists / ~exists / forall)")
    known = set(init)
    for r in [*locations, *_cond_refs(cond, filt)]:
        if isinstance(r, LocRef) and r.name not in known:
            raise LitmusError(f"test {name}: the condition names {r.name}, which no thread or init declares")
    return LitmusTest(
        name=name,
        init=tuple(sorted(init.items())),
        reg_init=tuple(reg_init),
        threads=tuple(threads),
        locations=tuple(locations),
        filter=filt,
        condition=cond,
        expected=expected_result(src),
        lock_locations=frozenset(locks),
    )


def _cond_refs(cond: Condition, filt: Prop | None) -> list[Ref]:
    from .syntax import refs_of

    return refs_of(cond.prop) + refs_of(filt)


# ------------------------------------------------------------------ init block


def _init_block(
    p: Parser, init: dict[str, Value], reg_init: list[tuple[RegRef, Value]], locks: set[str]
) -> None:
    p.expect("{")
    while not p.eat("}"):
        if p.eat(";"):
            continue
        if p.tok.kind == "num" and p.peek().text == ":":
            proc = int(p.tok.text)
            p.i += 2
            reg = p.ident()
            p.expect("=")
            reg_init.append((RegRef(proc, reg), _init_value(p)))
            p.expect(";")
            continue
        is_lock = p.tok.text == "spinlock_t"
        if p.at_type():
            p.skip_type()
            if p.tok.kind == "num" and p.peek().text == ":":  # `int *1:r1;`: a register's type
                p.i += 2
                typed = RegRef(int(p.toks[p.i - 2].text), p.ident())
                if p.eat("="):
                    reg_init.append((typed, _init_value(p)))
                p.expect(";")
                continue
        name = p.ident()
        if is_lock:
            locks.add(name)
        value: Value = 0
        if p.eat("="):
            value = _init_value(p)
        init[name] = value
        p.expect(";")


def _init_value(p: Parser) -> Value:
    if p.eat("&"):
        return p.ident()
    if p.at("ATOMIC_INIT"):
        p.i += 1
        p.expect("(")
        v = _init_value(p)
        p.expect(")")
        return v
    neg = p.eat("-")
    if p.tok.kind == "num":
        v = _number(p.tok.text)
        p.i += 1
        return -v if neg else v
    if p.tok.kind == "id" and not neg:
        return p.ident()
    raise p.error("expected an initial value")


# ------------------------------------------------------------------ threads


def _thread(p: Parser, locks: set[str]) -> Thread:
    proc = int(p.ident()[1:])
    p.expect("(")
    params: list[str] = []
    while not p.at(")"):
        is_lock = p.tok.text == "spinlock_t"
        p.skip_type()
        params.append(p.ident())
        if is_lock:
            locks.add(params[-1])
        if not p.eat(","):
            break
    p.expect(")")
    p.expect("{")
    local: list[str] = []
    body = _stmts(p, local)
    p.expect("}")
    return Thread(proc, tuple(params), tuple(body), tuple(local))


def _stmts(p: Parser, local: list[str]) -> list[Stmt]:
    out: list[Stmt] = []
    while not p.at("}") and p.tok.kind != "eof":
        out.extend(_stmt(p, local))
    return out


def _block_or_stmt(p: Parser, local: list[str]) -> tuple[Stmt, ...]:
    if p.eat("{"):
        body = _stmts(p, local)
        p.expect("}")
        return tuple(body)
    return tuple(_stmt(p, local))


def _stmt(p: Parser, local: list[str]) -> list[Stmt]:
    if p.eat(";"):
        return []
    if p.at("{"):
        return list(_block_or_stmt(p, local))
    if p.eat("if"):
        p.expect("(")
        cond = _expr(p)
        p.expect(")")
        then = _block_or_stmt(p, local)
        orelse: tuple[Stmt, ...] = ()
        if p.eat("else"):
            orelse = _block_or_stmt(p, local)
        return [If(cond, then, orelse)]
    if p.at_type():
        out: list[Stmt] = []
        p.skip_type()
        while True:
            while p.eat("*"):
                pass
            name = p.ident()
            local.append(name)
            if p.eat("="):
                out.append(Assign(name, _expr(p)))
            if not p.eat(","):
                break
        p.expect(";")
        return out
    if p.at("(") and p.peek().text == "void" and p.peek(2).text == ")":
        p.i += 3
        e = _expr(p)
        p.expect(";")
        return [Assign(None, e)]
    if p.at("*"):
        line = p.tok.line
        p.i += 1
        addr = _unary(p)
        p.expect("=")
        value = _expr(p)
        p.expect(";")
        return [Store(addr, value, line)]
    if p.tok.kind == "id" and p.peek().text == "=":
        name = p.ident()
        p.expect("=")
        e = _expr(p)
        p.expect(";")
        return [Assign(name, e)]
    e = _expr(p)
    p.expect(";")
    return [Assign(None, e)]


_BINARY = [
    ("||",),
    ("&&",),
    ("|",),
    ("^",),
    ("&",),
    ("==", "!="),
    ("<", ">", "<=", ">="),
    ("<<", ">>"),
    ("+", "-"),
    ("*", "/", "%"),
]


def _expr(p: Parser, level: int = 0) -> Expr:
    if level == len(_BINARY):
        return _unary(p)
    left = _expr(p, level + 1)
    while p.tok.kind == "op" and p.tok.text in _BINARY[level]:
        op = p.tok.text
        p.i += 1
        left = BinOp(op, left, _expr(p, level + 1))
    return left


def _unary(p: Parser) -> Expr:
    t = p.tok
    if t.kind == "op" and t.text in ("-", "!", "~"):
        p.i += 1
        return UnOp(t.text, _unary(p))
    if p.at("*"):
        p.i += 1
        return Deref(_unary(p), t.line)
    if p.eat("&"):
        return AddrOf(p.ident())
    if p.eat("("):
        if p.at_type():  # a cast: (int *)e
            p.skip_type()
            p.expect(")")
            return _unary(p)
        e = _expr(p)
        p.expect(")")
        return e
    if t.kind == "num":
        p.i += 1
        return Const(_number(t.text))
    if t.kind == "id":
        p.i += 1
        if p.eat("("):
            args: list[Expr] = []
            while not p.at(")"):
                args.append(_expr(p))
                if not p.eat(","):
                    break
            p.expect(")")
            return Call(t.text, tuple(args), t.line)
        return Var(t.text)
    raise p.error("expected an expression")


# ------------------------------------------------------------------ conditions


def _ref(p: Parser) -> Ref:
    if p.tok.kind == "num" and p.peek().text == ":":
        proc = int(p.tok.text)
        p.i += 2
        return RegRef(proc, p.ident())
    if p.eat("["):
        name = p.ident()
        p.expect("]")
        return LocRef(name)
    return LocRef(p.ident())


def _prop(p: Parser) -> Prop:
    left = _conj(p)
    while p.eat("\\/"):
        left = Or(left, _conj(p))
    return left


def _conj(p: Parser) -> Prop:
    left = _atom(p)
    while p.eat("/\\"):
        left = And(left, _atom(p))
    return left


def _atom(p: Parser) -> Prop:
    if p.eat("~") or p.eat("not"):
        return Not(_atom(p))
    if p.eat("("):
        inner = _prop(p)
        p.expect(")")
        return inner
    if p.eat("true"):
        return Truth(True)
    if p.eat("false"):
        return Truth(False)
    ref = _ref(p)
    negated = False
    if p.eat("!="):
        negated = True
    elif not (p.eat("=") or p.eat("==")):
        raise p.error("expected '=' in the condition")
    if (p.tok.kind == "num" and p.peek().text == ":") or p.at("["):
        return Atom(ref, _ref(p), negated)
    return Atom(ref, _init_value(p), negated)
