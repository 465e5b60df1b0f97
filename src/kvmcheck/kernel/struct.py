"""Struct: shared memory the checker sees.

Every annotated field of a ``Struct`` subclass is instrumented: each read and
each write is a visible operation on (object, field), checked by

* KASAN -- an access to a freed object is a use-after-free, reported with its
  allocation and free sites;
* KCSAN -- two accesses to one field, at least one a write, at least one
  plain (not READ_ONCE/WRITE_ONCE/atomic), not ordered by happens-before
  (locks, spawn/join, RCU grace periods, completions) are a data race;
* the locking contract -- ``__locking__ = {"field": "lock_attr"}`` (or a tuple
  of alternatives) says which lock of the same object protects a field; a
  plain read needs one of them held, a plain write needs one held
  exclusively.  ``{"field": {"write": "lock_attr", "read": ()}}`` documents
  a field written under a lock but read locklessly on purpose.

KCSAN and the contract are the *plain-access* checks; a scenario (or
``check(kcsan=False)`` / ``--no-kcsan``) turns both off together.

Plain Python objects (lists, dicts, attributes not annotated) are invisible to
the checker: they are thread-local as far as it is concerned.  Initialising
fields in the constructor is not an access (the object is not shared yet).

Guardrails (each a one-line UsageError, exit status 2 from the CLI):

* a mutable class default -- a list, dict, set, a kernel object (lock,
  refcount, ...) or a Struct -- is rejected when the class is created, as
  ``dataclasses`` does: it would be one object shared by every instance and
  every execution ("a fresh object starts at 5");
* a container stored in an annotated field is frozen: ``s.items.append(x)``
  raises and says to write ``s.items = [*s.items, x]``.  Rejecting rather
  than instrumenting each mutation keeps one rule for all shared state (a
  field is read and written whole, one visible step each, so KCSAN and the
  locking contract see it), costs nothing on reads, and is what the RCU
  list functions already do;
* reading an annotated field that has no default and was never set says so
  (instead of silently reading None).
"""

from __future__ import annotations

from typing import Any, ClassVar

from kvmcheck._engine import runtime
from kvmcheck._engine.finding import UsageError
from kvmcheck._engine.ops import FIELD_SLOTS, WHOLE, Op
from kvmcheck.kernel import kasan, kcsan
from kvmcheck.kernel._core import Primitive, kthread, warn
from kvmcheck.kernel.lockdep import held_by
from kvmcheck.kernel.trace_values import note_access

__all__ = ["READ_ONCE", "WRITE_ONCE", "Struct", "data_race", "struct_init"]


class FieldState:
    """The value a field had before a write: what DPOR records so that a
    spin_until_cond() on the field can tell which writes it could have preceded."""

    __slots__ = ("d", "name")

    def __init__(self, obj: Any, name: str) -> None:
        self.d = obj.__dict__
        self.name = name

    def _kc_state(self) -> Any:
        return self.d.get(self.name)


class Field:
    """Descriptor for one instrumented field."""

    __slots__ = ("index", "name", "rlabel", "wlabel")

    def __init__(self, owner: str, name: str, index: int) -> None:
        self.name = name
        self.index = index
        self.rlabel = f"read {owner}.{name}"
        self.wlabel = f"write {owner}.{name}"

    def __get__(self, obj: Any, cls: Any = None) -> Any:
        if obj is None:
            return self
        ex = runtime.current
        if ex is None or not obj._kc_num:
            try:
                return obj.__dict__[self.name]
            except KeyError:
                unset(obj, self.name)
        assert ex is not None
        d = obj.__dict__
        if not ex.tracing and not ex.k.kcsan_on and ex.k.weak is None:  # access() for a plain read, op built
            op = d["_kc_ops"].get(self.index * 2)
            if op is not None:
                ex.visible(op)
                if obj._kc_freed is not None:
                    kasan.report_freed(obj, self.name, False)
                try:
                    return d[self.name]
                except KeyError:
                    unset(obj, self.name)
        return access(obj, self, False, False)

    def __set__(self, obj: Any, value: Any) -> None:
        if value.__class__ in _MUTABLE:
            value = freeze(value, obj, self.name)
        ex = runtime.current
        if ex is None or not obj._kc_num:
            obj.__dict__[self.name] = value
            return
        d = obj.__dict__
        if not ex.tracing and not ex.k.kcsan_on and ex.k.weak is None:  # a plain write, op built
            op = d["_kc_ops"].get(self.index * 2 + 1)
            if op is not None:
                ex.visible(op)
                if obj._kc_freed is not None:
                    kasan.report_freed(obj, self.name, True)
                d[self.name] = value
                return
        access(obj, self, True, False, value)


def access(
    obj: Any,
    f: Field,
    write: bool,
    marked: bool,
    value: Any = None,
    what: str | None = None,
    update: Any = None,
    racy: bool = False,
) -> Any:
    """One visible access to ``obj.<f>`` with every check applied.

    ``racy``: a ``data_race()`` access, which KCSAN ignores entirely.

    With ``update`` (a function), the access is an atomic read-modify-write:
    it stores ``update(old)`` and returns ``old``.
    """
    ex = runtime.current
    assert ex is not None
    if ex.tracing or what is not None or update is not None:
        num = obj._kc_num
        whole = num * FIELD_SLOTS + WHOLE if obj._kc_freeable else -1
        label = (
            _traced_label(obj, f.name, write, what)
            if ex.tracing
            else what or (f.wlabel if write else f.rlabel)
        )
        st = FieldState(obj, f.name) if write else None
        op = Op(num * FIELD_SLOTS + f.index, write, label, None, None, whole, st)
    else:  # plain read/write: the op is immutable, build it once per object and field
        cache = obj.__dict__["_kc_ops"]
        slot = f.index * 2 + write
        op = cache.get(slot)
        if op is None:
            num = obj._kc_num
            whole = num * FIELD_SLOTS + WHOLE if obj._kc_freeable else -1
            st = FieldState(obj, f.name) if write else None
            op = cache[slot] = Op(
                num * FIELD_SLOTS + f.index, write, f.wlabel if write else f.rlabel, None, None, whole, st
            )
    key = op.key
    ex.visible(op)
    if ex.tracing and (ex.k.weak is None or write or update is not None):  # the value, for the report
        note_access(ex, obj, f.name, write, value, update)  # (under LKMM a read's is barrier.py's to say)
    if obj._kc_freed is not None:
        kasan.report_freed(obj, f.name, write)
    t = ex.current
    assert t is not None
    if ex.k.kcsan_on and not racy:  # the plain-access checks: KCSAN and the locking contract
        k = t.k
        if k is not None and (k.kcsan_atomic or k.kcsan_next):
            marked = True  # inside a seqcount section: KCSAN treats the access as atomic
            if k.kcsan_next:
                k.kcsan_next -= 1  # kcsan_atomic_next(n): only the next n accesses
        kcsan.on_access(ex, t, key, obj, f.name, write, marked)
        if not marked and obj._kc_contract:
            _check_contract(obj, f.name, write)
    weak = ex.k.weak
    if weak is not None:  # LKMM exploration (kernel/barrier.py): the access is a graph event
        got = weak.access(ex, t, obj, f.name, key, write or update is not None, what, update, value)
        if update is not None:
            old = obj.__dict__.get(f.name)
            new = update(old)
            new = freeze(new, obj, f.name) if new.__class__ in _MUTABLE else new
            obj.__dict__[f.name] = new
            weak.rmw_stored(ex, got, new)
            return old
        if write:  # stored by the graph: in the field only when co-last
            return None
        if got is not weak.NOTHING:
            return got
    if update is not None:
        old = obj.__dict__.get(f.name)
        new = update(old)
        obj.__dict__[f.name] = freeze(new, obj, f.name) if new.__class__ in _MUTABLE else new
        return old
    if write:
        obj.__dict__[f.name] = value
        return None
    try:
        return obj.__dict__[f.name]
    except KeyError:
        unset(obj, f.name)


def _traced_label(obj: Any, field: str, write: bool, what: str | None) -> str:
    name = f"{obj._kc_label()}->{field}"
    if what is not None:
        return what.split("(", 1)[0] + f"({name})" if "(" in what else what
    return f"{'write' if write else 'read'} {name}"


def _check_contract(obj: Any, name: str, write: bool) -> None:
    rule = obj._kc_contract.get(name)
    if rule is None:
        return
    guards = rule[1] if write else rule[0]
    if not guards:
        return
    kt = kthread()
    locks = [
        lk for lk in (getattr(obj, g) if isinstance(g, str) else g(obj) for g in guards) if lk is not None
    ]
    for lk in locks:
        h = held_by(kt, lk)
        if h is not None and (not write or not h.shared):
            return
    need = " or ".join(lk.name for lk in locks)
    verb = "write to" if write else "read of"
    warn(
        "assert-held",
        f"plain {verb} {type(obj).__name__}.{name} without {need} held"
        f"{' for write' if write else ''} (locking contract of {type(obj).__name__})",
        headline="WARNING: locking contract violated",
    )


class Struct:
    """Base class for instrumented kernel structs (annotated fields are shared memory)."""

    __locking__: ClassVar[dict[str, Any]] = {}
    _kc_fields: ClassVar[dict[str, Field]] = {}
    _kc_contract: ClassVar[dict[str, tuple[tuple[Any, ...], tuple[Any, ...]]]] = {}

    _kc_num: int
    _kc_freed: Any
    # Objects that can be freed (kmalloc'ed, kernel mappings, struct page): every
    # access also touches the whole object, so a free is ordered against it.
    _kc_freeable: bool = False

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        fields = dict(cls._kc_fields)
        defaults: dict[str, Any] = dict(getattr(cls, "_kc_defaults", {}))
        for name in cls.__dict__.get("__annotations__", {}):  # noqa: RUF063 - own annotations only
            if name.startswith("_") or name in fields:
                continue
            if len(fields) >= FIELD_SLOTS - 1:
                raise TypeError(f"{cls.__name__}: too many instrumented fields")
            if name in cls.__dict__:
                defaults[name] = _check_default(cls, name, cls.__dict__[name])
            fields[name] = Field(cls.__name__, name, len(fields))
            setattr(cls, name, fields[name])
        cls._kc_fields = fields
        cls._kc_defaults = defaults  # type: ignore[attr-defined]
        contract: dict[str, tuple[tuple[Any, ...], tuple[Any, ...]]] = {}
        for name, guard in cls.__locking__.items():
            if isinstance(guard, dict):
                contract[name] = (_guards(guard.get("read", ())), _guards(guard.get("write", ())))
            else:
                contract[name] = (_guards(guard), _guards(guard))
        cls._kc_contract = contract

    def __init__(self, **values: Any) -> None:
        d = self.__dict__
        d.update(type(self)._kc_defaults)  # type: ignore[attr-defined]
        for name, value in values.items():
            if name not in type(self)._kc_fields:
                raise TypeError(f"{type(self).__name__} has no field {name!r}")
            d[name] = freeze(value, self, name) if value.__class__ in _MUTABLE else value
        ex = runtime.current
        d["_kc_num"] = ex.new_number() if ex is not None else 0
        d["_kc_freed"] = None
        d["_kc_ops"] = {}
        if ex is not None:
            kasan.on_create(ex, self)

    def _kc_label(self) -> str:
        """How reports name this object (override: e.g. a cache's own name)."""
        return type(self).__name__.lower()

    def __repr__(self) -> str:  # deterministic: no memory addresses in reports
        return f"<{self._kc_label()}>"


def _guards(g: Any) -> tuple[Any, ...]:
    return g if isinstance(g, tuple) else (g,)


def _check_default(cls: type, name: str, default: Any) -> Any:
    """A class default is shared by every instance: only immutable values may be one."""
    if isinstance(default, (list, dict, set, bytearray, Primitive, Struct)):
        raise UsageError(
            f"{cls.__name__}.{name}: mutable default {type(default).__name__} would be shared by every "
            f"instance and every execution; default to None (or a tuple) and build it in __init__"
        )
    return default


def unset(obj: Any, name: str) -> Any:
    raise UsageError(
        f"{type(obj).__name__}.{name} read before it was ever set: the annotated field has no default; "
        f"give it one ({name}: T = ...) or set it when the object is built"
    )


class _Frozen:
    """Mixin of the frozen containers: every in-place mutation says how to replace instead."""

    __slots__ = ()
    _where: str

    def _mutate(self, how: str) -> Any:
        raise UsageError(
            f"{self._where}.{how}(): a container in an annotated field is shared memory, read and "
            f"written whole; replace it (e.g. obj.field = [*obj.field, x]) instead of changing it in place"
        )


def _blocked(how: str) -> Any:
    def method(self: _Frozen, *a: Any, **k: Any) -> Any:
        return self._mutate(how)

    method.__name__ = how
    return method


class FrozenList(_Frozen, list):  # type: ignore[type-arg]
    """A list held in a Struct field (read-only; replace the field to change it)."""

    __slots__ = ("_where",)


class FrozenDict(_Frozen, dict):  # type: ignore[type-arg]
    """A dict held in a Struct field (read-only; replace the field to change it)."""

    __slots__ = ("_where",)


class FrozenSet(_Frozen, set):  # type: ignore[type-arg]
    """A set held in a Struct field (read-only; replace the field to change it)."""

    __slots__ = ("_where",)


for _cls, _names in (
    (
        FrozenList,
        "append extend insert remove pop clear sort reverse __setitem__ __delitem__ __iadd__ __imul__",
    ),
    (FrozenDict, "__setitem__ __delitem__ pop popitem clear update setdefault __ior__"),
    (
        FrozenSet,
        "add discard remove pop clear update intersection_update difference_update "
        "symmetric_difference_update __ior__ __iand__ __isub__ __ixor__",
    ),
):
    for _n in _names.split():
        setattr(_cls, _n, _blocked(_n))

_MUTABLE: dict[type, type] = {list: FrozenList, dict: FrozenDict, set: FrozenSet}


def freeze(value: Any, obj: Any, name: str) -> Any:
    """``value`` (a list, dict or set) as the frozen container a Struct field holds."""
    frozen = _MUTABLE[value.__class__](value)
    frozen._where = f"{type(obj).__name__}.{name}"
    return frozen


def field_of(obj: Any, name: str) -> Field:
    try:
        return type(obj)._kc_fields[name]  # type: ignore[no-any-return]
    except (AttributeError, KeyError):
        raise TypeError(f"{type(obj).__name__} has no instrumented field {name!r}") from None


def struct_init(obj: Any, **values: Any) -> None:
    """Initialise fields of an object that is not shared yet (a C initialiser, as in kvm_gpc_init).

    Not an access: no visible step, no contract check.  Using it on an object
    other threads can already see hides real races -- do not.
    """
    fields = type(obj)._kc_fields
    for name, value in values.items():
        if name not in fields:
            raise TypeError(f"{type(obj).__name__} has no field {name!r}")
        obj.__dict__[name] = freeze(value, obj, name) if value.__class__ in _MUTABLE else value


def READ_ONCE(obj: Any, name: str) -> Any:
    """READ_ONCE(obj->name): a marked read (never a KCSAN data race with another marked access)."""
    if runtime.current is None or not obj._kc_num:
        return getattr(obj, name)
    return access(obj, field_of(obj, name), False, True, what=f"READ_ONCE({type(obj).__name__}.{name})")


def WRITE_ONCE(obj: Any, name: str, value: Any) -> None:
    """WRITE_ONCE(obj->name, value): a marked write."""
    if runtime.current is None or not obj._kc_num:
        setattr(obj, name, value)
        return
    access(obj, field_of(obj, name), True, True, value, what=f"WRITE_ONCE({type(obj).__name__}.{name})")


def data_race(obj: Any, name: str) -> Any:
    """``data_race(obj->name)``: a read the model declares racy on purpose; KCSAN ignores it."""
    if runtime.current is None or not obj._kc_num:
        return getattr(obj, name)
    return access(
        obj, field_of(obj, name), False, True, what=f"data_race({type(obj).__name__}.{name})", racy=True
    )


def rmw(obj: Any, name: str, fn: Any, what: str) -> tuple[Any, Any]:
    """One atomic read-modify-write of ``obj.<name>`` (a marked access): returns (old, new)."""
    if runtime.current is None or not obj._kc_num:
        old = obj.__dict__.get(name)
        new = fn(old)
        obj.__dict__[name] = freeze(new, obj, name) if new.__class__ in _MUTABLE else new
        return old, new
    old = access(obj, field_of(obj, name), True, True, what=what, update=fn)
    return old, obj.__dict__[name]
