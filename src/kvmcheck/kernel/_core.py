"""What every kernel primitive shares: the running thread's kernel state,
object numbering, and the one place findings are raised from.

The per-thread state is what the kernel keeps in ``current`` and the
per-CPU preempt count: the locks held (lockdep's held_locks), RCU read-side
nesting, whether irqs are off, whether we are a hard-irq handler.  Atomic
context is *derived* from it, never set by hand.
"""

from __future__ import annotations

import linecache
import os
import re
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kvmcheck._engine import runtime
from kvmcheck._engine.execution import model_site
from kvmcheck._engine.finding import Finding, UsageError
from kvmcheck._engine.kinds import WARN, lookup
from kvmcheck._engine.ops import FIELD_SLOTS, WHOLE, Op, object_key
from kvmcheck.kernel.cfunction import c_function_site

if TYPE_CHECKING:
    from kvmcheck._engine.execution import Execution, Thread
    from kvmcheck.kernel.kasan import Freed

__all__ = [
    "Held",
    "KThread",
    "Primitive",
    "bug",
    "creation",
    "current_thread",
    "execution",
    "kthread",
    "report_embedded",
    "site_here",
    "warn",
]


@dataclass(slots=True)
class Held:
    """One entry of a thread's held-lock stack."""

    lock: Any
    shared: bool
    trylock: bool
    subclass: int = 0
    irqsave: bool = False  # this acquisition disabled irqs (_irq / _irqsave)
    read: int = 0  # lockdep's held_lock->read: 0 write, 1 non-recursive read, 2 recursive read


@dataclass
class KThread:
    """Kernel state of one model thread."""

    held: list[Held] = field(default_factory=list)
    rcu_depth: int = 0
    irq_off: int = 0  # nesting of local_irq_disable / *_irq / *_irqsave
    bh_off: int = 0
    hardirq: bool = False  # runs as a hard-irq handler
    softirq: bool = False  # runs as a softirq handler (lockdep's softirq_context)
    srcu: dict[int, int] = field(default_factory=dict)  # srcu number -> nesting
    task: Any = None  # the task's scheduler state (sched.py), made at its first use
    wq_worker: Any = None  # a kworker: the workqueue of the work it is executing (workqueue.py)
    # KCSAN: accesses KCSAN treats as atomic (marked) -- a seqcount writer's section
    # (kcsan_nestable_atomic_begin, nests) and a reader's region (kcsan_atomic_next).
    kcsan_atomic: int = 0
    kcsan_next: int = 0

    def held_names(self) -> list[str]:
        return [h.lock.name + ("(r)" if h.shared else "") for h in self.held]

    def atomic_reason(self) -> str | None:
        """Why this thread may not sleep now, or None."""
        if self.hardirq:
            return "in hard-irq context"
        if self.softirq:
            return "in softirq context"
        for h in self.held:
            if not h.lock.sleeps:
                return f"{h.lock.name} ({h.lock.kind}) held"
        if self.rcu_depth:
            return "inside rcu_read_lock()"
        if self.irq_off:
            return "irqs disabled"
        if self.bh_off:
            return "softirqs disabled"
        return None

    def irqs_enabled(self) -> bool:
        return not (self.irq_off or self.hardirq)

    def softirqs_enabled(self) -> bool:
        """lockdep's curr->softirqs_enabled: no local_bh_disable() in force, not in a softirq."""
        return not (self.bh_off or self.softirq or self.hardirq)

    def in_interrupt(self) -> bool:
        """in_interrupt(): hard irq, softirq, or softirqs disabled (softirq_count() != 0)."""
        return self.hardirq or self.softirq or self.bh_off > 0


def execution() -> Execution | None:
    return runtime.current


def current_thread() -> Thread:
    ex = runtime.current
    if ex is None or ex.current is None:
        raise UsageError("kernel primitive used outside a running check (call it from a scenario)")
    return ex.current


def kthread(t: Thread | None = None) -> KThread:
    t = t or current_thread()
    k = t.k
    if k is None:
        k = t.k = KThread()
    return k  # type: ignore[no-any-return]


def new_number() -> int:
    ex = runtime.current
    return ex.new_number() if ex is not None else 0


def site_here() -> str:
    """'function (file:line)' of the innermost model frame (slow: reports only).

    The walk starts at the caller and skips every engine and kernel frame, so
    the answer does not depend on how deep inside the kernel layer it is asked.
    """
    site, _ = model_site(sys._getframe(1))
    return str(site)


def bug(kind: str, message: str, headline: str, details: list[str] | None = None) -> None:
    """A hard finding (oops, KASAN, BUG): the thread stops here."""
    # Any registered kind: a kind's class is how it is usually reported, but a check the
    # kernel makes fatal (VM_BUG_ON_PAGE on a refcount, bad_page under the model's
    # "stop here") may report a WARN-class kind as an oops.
    lookup(kind)
    ex = runtime.current
    f = Finding(kind, message, headline=headline, details=tuple(details or ()))
    if ex is None:
        raise AssertionError(f"{headline}: {message}")
    ex.report(f)


def warn(
    kind: str,
    message: str,
    headline: str,
    details: list[str] | None = None,
    needs: list[str] | None = None,
) -> None:
    """A WARN-class finding (lockdep, KCSAN, WARN_ON): reported, the thread goes on."""
    if lookup(kind).cls != WARN:
        raise AssertionError(f"warn() with the oops-class kind {kind!r} (see _engine/kinds.py)")
    ex = runtime.current
    f = Finding(kind, message, headline=headline, details=tuple(details or ()), needs=tuple(needs or ()))
    if ex is None:
        raise AssertionError(f"{headline}: {message}")
    ex.warn(f)


# -- where a primitive is created: its lock class, its name, the object it is embedded in -----------
_KERNEL_DIRS: tuple[str, ...] = ()


def _kernel_dirs() -> tuple[str, ...]:
    global _KERNEL_DIRS
    if not _KERNEL_DIRS:
        pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        _KERNEL_DIRS = (os.path.join(pkg, "kernel") + os.sep, os.path.join(pkg, "_engine") + os.sep)
    return _KERNEL_DIRS


@dataclass(frozen=True, slots=True)
class Creation:
    """Where model code constructed a primitive.

    ``site`` is ``file:line:col`` of the constructor call: each call site is its
    own lockdep class, as each ``spin_lock_init()`` in C has its own static key
    (two locks built on one line are two classes).  ``target`` names the class
    after the expression the primitive is assigned to, the way lockdep names a
    class after the ``&kvm->mmu_lock`` it was initialised with:
    ``self.lock = SpinLock()`` in a method of ``Foo`` gives ``Foo.lock``,
    ``gpc.lock = RwLock()`` gives ``gpc->lock``, ``lock = Mutex()`` gives
    ``lock``; no simple assignment target gives None.
    """

    site: str
    target: str | None


_CREATIONS: dict[tuple[Any, int], Creation] = {}
_TARGET = None


def creation() -> tuple[Creation, Any]:
    """The Creation of the primitive being built, and the ``self`` of the model frame building it."""
    skip = _kernel_dirs()
    f: Any = sys._getframe(1)
    while f is not None and f.f_code.co_filename.startswith(skip):
        f = f.f_back
    if f is None:
        return Creation("?", None), None
    code = f.f_code
    c = _CREATIONS.get((code, f.f_lasti))
    if c is None:
        c = _CREATIONS[(code, f.f_lasti)] = _creation(f)
    owner = f.f_locals.get("self") if "self" in code.co_varnames else None
    return c, owner


def _creation(f: Any) -> Creation:
    global _TARGET
    if _TARGET is None:
        _TARGET = re.compile(r"^\s*(?:[\w.]+\s*=\s*)*([A-Za-z_][\w.]*)\s*(?::[^=]*)?=\s*$")
    code = f.f_code
    line, col = f.f_lineno, 0
    for i, pos in enumerate(code.co_positions()):
        if i == f.f_lasti // 2:
            line, col = pos[0] or line, pos[2] or 0
            break
    site = model_site(f)[0]
    text = linecache.getline(code.co_filename, line)[:col]
    m = _TARGET.search(text)
    target = None
    if m is not None:
        expr = m.group(1)
        if expr.startswith("self.") and "." in code.co_qualname:
            cls = code.co_qualname.split(".<locals>.")[-1].rsplit(".", 1)[0]
            target = f"{cls}.{expr[5:]}"
        else:
            target = expr.replace(".", "->")
    return Creation(f"{site.file}:{line}:{col}", target)


class Primitive:
    """One base for every kernel primitive that is an object of its own (a lock, a counter,
    a completion, a wait queue, a work item, ...).

    Invariant: every visible operation on a primitive is built by :meth:`op`,
    which names the primitive as the operation's object -- so DPOR records
    the primitive's state before every operation on its key, which is what
    its reversibility test for a blocking operation needs (ops.py).  A
    primitive that can block overrides the Blocker methods below.

    A primitive built inside a method of a ``Struct`` (``self.lock =
    SpinLock()``) is *embedded* in that object, as a C field is: every
    operation on it also touches the object (so a ``kfree`` of it is ordered
    against the operation), and one after the object was freed or unmapped
    is reported by KASAN, naming the operation.
    """

    kind = "primitive"
    prefix = ""  # how an unnamed one is called: prefix@file:line (default: its kind)
    embeddable = True  # False: always allocated on its own, held by pointer (a workqueue)

    def __init__(self, name: str | None = None) -> None:
        self.key = object_key(new_number())
        c, owner = creation()
        self.cls = name or (f"{c.target}@{c.site}" if c.target else c.site)
        self.name = name or c.target or f"{self.prefix or self.kind}@{c.site.rsplit(':', 1)[0]}"
        # The Struct this primitive is embedded in (None: a global or a local).  Invariant:
        # set once -- here (built in a method of that Struct: ``self.lock = SpinLock()``), or
        # when the object holding it is kmalloc'ed (kasan.embed) -- and never moved.
        self._kc_home: Any = owner if self.embeddable and hasattr(type(owner), "_kc_fields") else None

    def op(self, excl: bool, label: str, arg: Any = None, touch: bool = True) -> Op:
        """The visible operation ``label`` on this primitive (the only way to build one).

        ``touch=False``: the operation does not read or write the primitive's own
        memory (a kworker's bookkeeping after the work function returned, which
        lives in the worker pool), so it is not ordered against a free of the
        object the primitive is embedded in.
        """
        home = self._kc_home
        whole = home._kc_num * FIELD_SLOTS + WHOLE if touch and home is not None and home._kc_freeable else -1
        return Op(self.key, excl, label, self, arg, whole)

    def step(self, excl: bool, label: str, arg: Any = None) -> Thread | None:
        """Announce ``op(...)``; the running thread once it is granted (None outside a check).

        After the step, an operation on a primitive inside a freed object is a
        use-after-free (the report names the operation).
        """
        ex = runtime.current
        if ex is None or ex.current is None:
            return None
        ex.visible(self.op(excl, label, arg))
        if ex.tracing:  # the value the step saw, for the report
            self._kc_traced(ex, label)
        home = self._kc_home
        if home is not None and home._kc_freed is not None:
            report_embedded(home, self, label)
        return ex.current

    def _kc_traced(self, ex: Execution, label: str) -> None:
        """A traced run announced ``label`` on this primitive: put its value on the step (a
        counter's before->after); most primitives have none."""

    # -- the engine's Blocker protocol: by default, never blocks ----------------------------
    def _kc_state(self) -> Any:
        return None

    def _kc_enabled(self, op: Op, tid: int, state: Any) -> bool:
        return True

    def _kc_holders(self) -> list[int]:
        return []

    def _kc_label(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<{self.kind} {self.name}>"


# -- KASAN on an operation of a primitive embedded in a freed object (Primitive.step) ------------
# Here, not in kasan.py, so that _core needs nothing above it: kasan.py builds on _core.
def report_embedded(home: Any, prim: Any, label: str) -> None:
    """KASAN: ``label`` (e.g. "refcount_inc(vfio_group.users)") on a primitive inside a freed object."""
    fr: Freed = home._kc_freed
    op = label.split("(", 1)[0]
    unmap = fr.how in ("kunmap", "memunmap", "vunmap")
    kind = "use-after-unmap" if unmap else "use-after-free"
    where = _where()
    what = f"{op} on {'unmapped' if unmap else 'freed'} object"
    headline = (
        f"BUG: unable to handle page fault for address: {home._kc_label()} (unmapped by {fr.how})"
        if unmap
        else f"BUG: KASAN: use-after-free in {where.split(' ')[0] or op}"
    )
    details = [
        f"{what}: {label} ({prim.kind} {prim.name} inside {home._kc_label()}) by task {_task()}"
        + (f" at {where}" if where else ""),
        f"Allocated at: {home.__dict__.get('_kc_kmalloc') or home.__dict__.get('_kc_alloc_site', '?')}",
        f"{'Unmapped' if unmap else 'Freed'} by task {fr.thread} ({fr.how}) at: {fr.site}",
    ]
    bug(kind, f"{what}: {label}", headline, details)


def _where() -> str:
    """The C function the access is in (cfunction.py: macro and iterator frames skipped), while tracing."""
    ex = runtime.current
    if ex is None or not ex.tracing:
        return ""
    return c_function_site(2)


def _task() -> str:
    ex = runtime.current
    return ex.current.name if ex is not None and ex.current is not None else "?"
