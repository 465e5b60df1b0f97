"""Relations over the events of one candidate execution, as bit-matrix rows.

Event ``i``'s successors are the set bits of ``rows[i]``; a set of events is an
``int`` mask.  The operators are the cat language's: ``|`` union, ``&``
intersection, ``-`` difference (cat ``\\``), :meth:`seq` (cat ``;``),
:meth:`inv` (``^-1``), :meth:`plus` / :meth:`star` / :meth:`opt` (``+ * ?``),
:func:`ident` (``[S]``) and :func:`cross` (``S * T``).
"""

from __future__ import annotations

from collections.abc import Iterator


def bits(mask: int) -> Iterator[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


class Rel:
    __slots__ = ("n", "rows")

    def __init__(self, n: int, rows: list[int] | None = None) -> None:
        self.n = n
        self.rows = rows if rows is not None else [0] * n

    @classmethod
    def of_pairs(cls, n: int, pairs: list[tuple[int, int]] | set[tuple[int, int]]) -> Rel:
        r = cls(n)
        for a, b in pairs:
            r.rows[a] |= 1 << b
        return r

    def pairs(self) -> list[tuple[int, int]]:
        return [(i, j) for i in range(self.n) for j in bits(self.rows[i])]

    def has(self, a: int, b: int) -> bool:
        return bool(self.rows[a] >> b & 1)

    def __or__(self, o: Rel) -> Rel:
        return Rel(self.n, [a | b for a, b in zip(self.rows, o.rows, strict=True)])

    def __and__(self, o: Rel) -> Rel:
        return Rel(self.n, [a & b for a, b in zip(self.rows, o.rows, strict=True)])

    def __sub__(self, o: Rel) -> Rel:
        return Rel(self.n, [a & ~b for a, b in zip(self.rows, o.rows, strict=True)])

    def seq(self, *others: Rel) -> Rel:
        cur = self
        for o in others:
            out = [0] * self.n
            orow = o.rows
            for i, row in enumerate(cur.rows):
                acc = 0
                while row:  # the set bits of row, inlined: this loop is the checker's hot spot
                    low = row & -row
                    acc |= orow[low.bit_length() - 1]
                    row ^= low
                out[i] = acc
            cur = Rel(self.n, out)
        return cur

    def inv(self) -> Rel:
        out = [0] * self.n
        for i, row in enumerate(self.rows):
            for j in bits(row):
                out[j] |= 1 << i
        return Rel(self.n, out)

    def plus(self) -> Rel:
        rows = list(self.rows)
        for k in range(self.n):
            bk = 1 << k
            rk = rows[k]
            if not rk:
                continue
            for i in range(self.n):
                if rows[i] & bk:
                    rows[i] |= rk
        return Rel(self.n, rows)

    def star(self) -> Rel:
        return self.plus().opt()

    def opt(self) -> Rel:
        return Rel(self.n, [row | (1 << i) for i, row in enumerate(self.rows)])

    def restrict(self, dom: int, rng: int) -> Rel:
        """``[dom] ; self ; [rng]``."""
        return Rel(self.n, [(row & rng) if dom >> i & 1 else 0 for i, row in enumerate(self.rows)])

    def domain(self) -> int:
        m = 0
        for i, row in enumerate(self.rows):
            if row:
                m |= 1 << i
        return m

    def range(self) -> int:
        m = 0
        for row in self.rows:
            m |= row
        return m

    def is_empty(self) -> bool:
        return not any(self.rows)

    def irreflexive(self) -> bool:
        return not any(row >> i & 1 for i, row in enumerate(self.rows))

    def acyclic(self) -> bool:
        return self.plus().irreflexive()

    def reflexive_points(self) -> list[int]:
        return [i for i, row in enumerate(self.rows) if row >> i & 1]

    def cycle(self) -> list[int]:
        """A shortest cycle (its events in order), or [] when acyclic."""
        best: list[int] = []
        for start in range(self.n):
            path = self._path(start, start)
            if path and (not best or len(path) < len(best)):
                best = path
        return best

    def _path(self, src: int, dst: int) -> list[int]:
        prev: dict[int, int] = {}
        frontier = [src]
        seen = 0
        while frontier:
            nxt: list[int] = []
            for u in frontier:
                for v in bits(self.rows[u]):
                    if v == dst:
                        out = [u]
                        while out[-1] != src:
                            out.append(prev[out[-1]])
                        return out[::-1]
                    if not seen >> v & 1:
                        seen |= 1 << v
                        prev[v] = u
                        nxt.append(v)
            frontier = nxt
        return []


def ident(n: int, mask: int) -> Rel:
    """``[S]``: the identity on the events of ``mask``."""
    return Rel(n, [(1 << i) if mask >> i & 1 else 0 for i in range(n)])


def cross(n: int, a: int, b: int) -> Rel:
    """``A * B``."""
    return Rel(n, [b if a >> i & 1 else 0 for i in range(n)])


def empty(n: int) -> Rel:
    return Rel(n)
