"""One execution of a scenario under a controlled scheduler.

Model threads are greenlets.  A thread runs ordinary Python until it reaches
a visible operation; it then *announces* the operation (``visible``) and
switches to the scheduler.  The scheduler knows every thread's pending
operation, so it knows which threads are enabled; it asks the strategy which
one goes next and switches to it, and only then does that thread perform the
operation's effect and run on to its next announcement.  Everything between
two announcements is therefore atomic.

Invariant: exactly one greenlet runs at a time, and while a model thread runs,
``Execution.current`` is that thread.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import greenlet

from kvmcheck._engine import determinism, guard, runtime
from kvmcheck._engine.clock import Clock, vc_join, vc_tick
from kvmcheck._engine.finding import Abort, Finding, Nondeterminism, Site, Step, UsageError
from kvmcheck._engine.ops import Op, choice_op, object_key
from kvmcheck._engine.schedule import encode

if TYPE_CHECKING:
    from kvmcheck._engine.session import Session
    from kvmcheck._engine.strategy import Strategy


class Thread:
    """A model thread (the scenario body is thread 0, named "main")."""

    __slots__ = ("dead", "done", "fn", "glet", "k", "key", "name", "pending", "result", "tid", "vc")

    def __init__(self, tid: int, name: str, key: int) -> None:
        self.tid = tid
        self.name = name
        self.key = key  # object key of the thread itself (exit / join)
        self.glet: greenlet.greenlet | None = None
        self.pending: Op | None = None  # announced, not yet granted
        self.done = False
        self.dead = False  # killed by a hard finding (an oops kills the task, not the machine)
        self.result: Any = None
        self.vc: Clock = []  # synchronisation clock (kernel memory model)
        self.k: Any = None  # per-thread kernel state, owned by the kernel layer
        self.fn: Any = None  # the thread's function (names its exit step)

    # Blocker protocol: join waits for exit.
    def _kc_state(self) -> bool:
        return self.done

    def _kc_enabled(self, op: Op, tid: int, state: Any) -> bool:
        if op.arg != "join":
            return True
        return bool(self.done if state is None else state)


Hook = Callable[["Execution"], None]
ThreadHook = Callable[["Execution", Thread], None]


class Execution:
    """One run of a scenario body, step by step, under a strategy."""

    def __init__(
        self,
        body: Callable[[], Any],
        strategy: Strategy,
        session: Session,
        max_steps: int,
        tracing: bool = False,
    ) -> None:
        self.body = body
        self.strategy = strategy
        self.session = session  # state kept across executions of one check
        self.max_steps = max_steps
        self.tracing = tracing
        self.threads: list[Thread] = []
        self.schedule: list[int] = []  # tid of each step
        self.values: dict[int, int] = {}  # step -> outcome, for the steps that are nondet() choices
        self.ops: list[Op] = []  # op of each step
        self.steps: list[Step] = []  # filled only when tracing
        # tracing only: values known once their step has taken effect (asked at the next
        # announcement or the end of the run), and the names the trace shows for raw labels
        self._later: list[tuple[int, Callable[[], str]]] = []
        self.renames: dict[str, str] = {}
        self.current: Thread | None = None
        self.finding: Finding | None = None  # the first hard finding
        self.findings: list[Finding] = []  # every hard finding: each kills its thread, the run goes on
        self.soft: list[Finding] = []  # WARN-class reports; the thread goes on, as the kernel's does
        self.outcome = "running"  # complete | blocked | finding
        self.aborting = False
        self.k: Any = None  # per-execution kernel state, owned by the kernel layer
        self.exit_hooks: list[ThreadHook] = []
        self.end_hooks: list[Hook] = []
        # Asked once the run is over (blocked or not), before its end checks: False drops the
        # run as not an execution of the model, with its reports (a weak memory model's
        # validation, kernel/barrier.py).
        self.accept: Callable[[Execution], bool] | None = None
        self._numbers = 0
        # Spin waits (CHESS's "good samaritan" assumption, taken only where the
        # model says so with cpu_relax()): a thread that relaxes cannot progress
        # until another thread does, so it is not runnable while another thread
        # is enabled and has not taken a step since.  cond_resched() is a plain
        # scheduling point and restricts nothing.
        self._relaxed: int | None = None
        self._unstarted: list[tuple[Thread, Callable[..., Any], tuple[Any, ...]]] = []
        self._last_traced: dict[int, int] = {}  # tid -> index of its last traced step
        self._over = False  # the run has ended (a decision returned None)
        self._crash: BaseException | None = None  # a checker error raised inside a thread's greenlet
        self._starting = False  # a new thread is running up to its first announcement
        self._starter: Any = None  # the greenlet that started it
        self._sched = greenlet.getcurrent()
        # The prefix the strategy replays from an earlier execution: those steps skip the
        # enabledness scan and the strategy's callbacks (see Strategy.prefix).
        self._prefix, self._prefix_values = strategy.prefix()
        self._plen = len(self._prefix)

    # -- object identity ---------------------------------------------------
    def new_number(self) -> int:
        """Creation number for a new object (deterministic across executions)."""
        self._numbers += 1
        return self._numbers

    # -- called from model threads -------------------------------------------
    def visible(self, op: Op) -> None:
        """Announce ``op`` and wait until the scheduler grants it.

        The scheduling decision runs right here, in the announcing thread's
        greenlet: when the same thread is chosen again (the common case) it just
        goes on, and a greenlet switch happens only when another thread runs.
        """
        t = self.current
        assert t is not None
        if self.aborting or t.dead:
            guard.stopping(self, t, op)  # raises Abort (or stops a thread that swallows it)
        if self.tracing:
            self._settle_held(t)
            if self._later:
                self._values_known()
        step = len(self.schedule)
        if (
            step < self._plen
            and self._prefix[step] == t.tid
            and not op.choices
            and not self._unstarted
            and not self._starting
            and (op.obj is None or op.obj._kc_enabled(op, t.tid, None))
        ):  # a replayed step by the thread running now: grant it in place (as _next would)
            if t.tid != self._relaxed:
                self._relaxed = None
            if op.arg == "relax":
                self._relaxed = t.tid
            self.schedule.append(t.tid)
            self.ops.append(op)
            if self.tracing:
                self._trace(t, op)
            return
        t.pending = op
        if self._starting:  # a new thread announcing its first op: back to whoever started it
            self._starter.switch()
        else:
            try:
                nxt = self._next()
            except BaseException as e:  # noqa: BLE001 - a checker error: raise it from run(), not the model
                self._crash = e
                nxt = None
            if nxt is None:
                self._sched.switch()  # the run is over; run() cleans up
            elif nxt is not t:
                nxt.glet.switch()  # type: ignore[union-attr]
        if self.aborting:
            guard.stopping(self, t, op)
        if self.tracing:
            self._trace(t, op)

    def spawn(self, fn: Callable[..., Any], args: tuple[Any, ...], name: str | None) -> Thread:
        parent = self.current
        assert parent is not None
        tid = len(self.threads)
        t = Thread(tid, name or f"{getattr(fn, '__name__', 'thread')}#{tid}", 0)
        t.key = object_key(self.new_number())
        self.threads.append(t)
        self.visible(Op(t.key, True, f"spawn({t.name})", t, "spawn"))
        t.vc = parent.vc[:]
        vc_tick(t.vc, tid)  # the child's own epoch starts at 1
        vc_tick(parent.vc, parent.tid)
        self._unstarted.append((t, fn, args))
        return t

    def nondet(self, n: int, name: str, open_: bool = False) -> int:
        """A choice among ``n`` outcomes that the search explores every way (a step of its own).

        ``name`` is the operation the trace shows, e.g. ``nondet(color)``.  ``open_``: the
        search may later be given more outcomes of this step (:meth:`add_outcome`), so the
        value returned may be ``n`` or more."""
        op = choice_op(n, name, open_)
        self.visible(op)
        return op.value

    def add_outcome(self, step: int, value: int) -> bool:
        """Ask the search to explore outcome ``value`` of the open choice made at ``step`` of
        this execution too (a weak memory model's revisit); False if it cannot (a strategy
        that does not enumerate, or a step above a parallel job's floor)."""
        return bool(self.strategy.add_outcome(self, step, value))

    def _drop(self) -> None:
        """Not an execution of the model after all (``accept`` said so): blocked, reports dropped."""
        self.outcome = "blocked"
        self.finding = None
        self.findings = []
        self.soft = []

    def schedule_string(self) -> str:
        """This execution's schedule in the run-length format (see ``schedule.py``)."""
        return encode(self.schedule, self.values)

    def join(self, t: Thread) -> Any:
        me = self.current
        assert me is not None
        self.visible(Op(t.key, False, f"join({t.name})", t, "join"))
        me.vc = vc_join(me.vc, t.vc)
        return t.result

    def report(self, finding: Finding) -> None:
        """Record a hard finding and kill the running thread; the other threads go on.

        As an oops kills the task and not the machine: locks the thread holds
        stay held, its pending work never happens.  Letting the others run on
        means every finding of an execution is seen, whichever thread DPOR
        happens to run first in a trace.
        """
        t = self.current
        if not self.aborting and (t is None or not t.dead):
            if finding.thread is None and t is not None:
                finding = replace(finding, thread=t.tid)
            self._record(finding)
            if t is not None:
                t.dead = True
        raise Abort

    def _record(self, finding: Finding) -> None:
        if finding.step is None:
            finding = replace(finding, step=len(self.schedule) - 1)
        self.findings.append(finding)
        if self.finding is None:
            self.finding = finding

    def warn(self, finding: Finding) -> None:
        """Record a WARN-class finding (lockdep, KCSAN, WARN_ON); the thread goes on."""
        if self.aborting or (self.current is not None and self.current.dead):
            raise Abort
        thread = finding.thread
        if thread is None and self.current is not None:
            thread = self.current.tid
        self.soft.append(replace(finding, thread=thread, step=len(self.schedule) - 1))

    # -- the scheduler -------------------------------------------------------
    def run(self) -> None:
        prev = runtime.current
        runtime.current = self
        watch = guard.enter(self)
        self._det = determinism.begin(self)  # compares each step with the previous execution
        try:
            main = Thread(0, "main", object_key(self.new_number()))
            main.vc = [1]
            self.threads.append(main)
            self._unstarted.append((main, self.body, ()))
            self._start_new()
            self._loop()
            if self._crash is not None:  # a UsageError in a thread the loop never switched back from
                raise self._crash
            if self.accept is not None and not self.accept(self):  # blocked runs too: their reports count
                self._drop()
            if self.outcome == "complete":
                self._end_checks()
            determinism.end(self)
        except (guard.Stop, guard.StepTimeout):  # the search is stopping (guard.py): abandon this run
            self.outcome = "stopped"
        finally:
            self._kill()
            if self.tracing:
                self._finish_trace()
            runtime.current = prev
            guard.leave(watch, self)

    def _loop(self) -> None:
        """Drive the run from the scheduler greenlet: it gets control back when a
        thread finishes (its greenlet ends) or when a decision ended the run."""
        while not self._over:
            nxt = self._next()
            if nxt is None:
                break
            nxt.glet.switch()  # type: ignore[union-attr]
            if self._crash is not None:
                raise self._crash

    def _next(self) -> Thread | None:
        """Decide the next step: start new threads, pick one, record it.  None ends the run."""
        if self._unstarted:
            self._start_new()
        threads = self.threads
        schedule = self.schedule
        step = len(schedule)
        if step < self._plen:  # a step of the prefix the strategy replays: no scan, no questions
            # _replay_step inlined for its common case (the hot path: most steps are replayed)
            ptid = self._prefix[step]
            t = threads[ptid] if ptid < len(threads) else None
            op = t.pending if t is not None else None
            if op is None or op.choices or (op.obj is not None and not op.obj._kc_enabled(op, ptid, None)):
                return self._replay_step(step)  # a choice, or the Nondeterminism report
            if ptid != self._relaxed:
                self._relaxed = None
            if op.arg == "relax":
                self._relaxed = ptid
            schedule.append(ptid)
            self.ops.append(op)
            t.pending = None  # type: ignore[union-attr]
            self.current = t
            return t
        max_steps = self.max_steps
        enabled = []
        live = False
        for t in threads:
            op = t.pending
            if op is not None:
                live = True
                obj = op.obj
                if obj is None or obj._kc_enabled(op, t.tid, None):
                    enabled.append(t.tid)
        r = self._relaxed
        if r is not None and len(enabled) > 1 and r in enabled:
            enabled.remove(r)
        if not enabled:
            if live:
                self._blocked_at_end()
            self.outcome = "finding" if self.finding is not None else "complete"
            self._over = True
            return None
        if step >= max_steps:
            self._record(
                Finding(
                    "step-limit",
                    f"execution exceeded {max_steps} steps (livelock or unbounded loop?)",
                    headline="step limit reached",
                )
            )
            self.outcome = "finding"
            self._over = True
            return None
        tid = self.strategy.choose(self, enabled)
        if tid is None:
            self.outcome = "blocked"
            self._over = True
            return None
        t = threads[tid]
        op = t.pending
        assert op is not None
        if op.choices:
            v = self.strategy.choose_value(self, op.choices)
            op.value = v
            op.name = f"{op.name} = {v}"
            self.values[step] = v
        self.strategy.on_event(self, tid, op)
        if tid != r:
            self._relaxed = None
        if op.arg == "relax":
            self._relaxed = tid
        schedule.append(tid)
        self.ops.append(op)
        d = self._det
        if d is not None and not d.step(self, step, tid, op):
            self._det = None  # off the previous execution's path: nothing more to compare
        t.pending = None
        self.current = t
        return t

    def _replay_step(self, step: int) -> Thread:
        """Grant the prefix's step ``step`` (the strategy recorded it in an earlier execution)."""
        tid = self._prefix[step]
        t = self.threads[tid] if tid < len(self.threads) else None
        op = t.pending if t is not None else None
        if t is None or op is None or (op.obj is not None and not op.obj._kc_enabled(op, tid, None)):
            raise Nondeterminism(
                f"step {step}: thread {tid} was enabled in an earlier run with the same prefix "
                "but is not now; the model is not deterministic"
            )
        if op.choices:
            v = self._prefix_values[step]
            op.value = v
            op.name = f"{op.name} = {v}"
            self.values[step] = v
        if tid != self._relaxed:
            self._relaxed = None
        if op.arg == "relax":
            self._relaxed = tid
        self.schedule.append(tid)
        self.ops.append(op)
        t.pending = None
        self.current = t
        return t

    def _blocked_at_end(self) -> None:
        """Live threads, none enabled: let the strategy see their pending ops; a deadlock
        unless a finding already explains it (a dead thread's locks are never released)."""
        blocked = [t.tid for t in self.threads if t.pending is not None]
        self.strategy.on_blocked(self, blocked)
        if self.finding is None:
            from kvmcheck._engine.deadlock import deadlock_finding

            self._record(deadlock_finding(self))

    def _start_new(self) -> None:
        """Run each new thread up to its first announcement, then come back here."""
        cur = self.current
        self._starting = True
        self._starter = greenlet.getcurrent()
        try:
            while self._unstarted:
                t, fn, args = self._unstarted.pop(0)
                t.fn = fn
                # Parented to the starter until its first announcement, so a thread
                # that dies before announcing anything comes back here too.
                t.glet = greenlet.greenlet(self._thread_main, parent=self._starter)
                self.current = t
                t.glet.switch(t, fn, args)
                if not t.glet.dead:
                    t.glet.parent = self._sched
        finally:
            self._starting = False
            self.current = cur

    def _thread_main(self, t: Thread, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            t.result = fn(*args)
            for hook in self.exit_hooks:
                hook(self, t)
            self.visible(Op(t.key, True, "exit", t, "exit"))
        except Abort:
            if t.dead and not self.aborting:
                t.done = True  # killed by an oops: whoever joins it goes on
            return
        except UsageError as e:  # a misuse of the API (one line, exit 2), not a finding
            if not self.aborting and self._crash is None:
                self._crash = e
            t.dead = t.done = True
            return
        except Exception as e:  # noqa: BLE001 - any exception in model code is an oops
            if not self.aborting and not t.dead:
                self._record(exception_finding(e, t))
                t.dead = t.done = True
            return
        except BaseException as e:  # noqa: BLE001 - SystemExit & co. from the model, the watchdog's
            guard.thread_died(self, t, e)
            return
        t.done = True

    def _end_checks(self) -> None:
        self.current = self.threads[0]
        try:
            for hook in self.end_hooks:
                hook(self)
        except Abort:
            self.outcome = "finding"
        self.current = None

    def _kill(self) -> None:
        if self.tracing:
            for t in self.threads:
                self._settle_held(t)
        self.aborting = True
        for t in self.threads:
            g = t.glet
            if g is not None and not g.dead:
                self.current = t
                g.throw(Abort)
        self.current = None

    # -- tracing ---------------------------------------------------------------
    def _settle_held(self, t: Thread) -> None:
        """Give ``t``'s previous step the locks held after it took effect."""
        idx = self._last_traced.get(t.tid)
        if idx is not None:
            held = tuple(t.k.held_names()) if t.k is not None else ()
            if self.steps[idx].held != held:
                self.steps[idx] = replace(self.steps[idx], held=held)

    def note_value(self, value: str | Callable[[], str]) -> None:
        """What the running thread's last step read or wrote, as the report appends it to the
        operation (``" = NULL"``).  A callable is asked once the step has taken effect (at the
        next announcement or the end of the run), for an old->new.  Tracing only."""
        t = self.current
        idx = self._last_traced.get(t.tid) if t is not None else None
        if idx is None:
            return
        if callable(value):
            self._later.append((idx, value))
        else:
            self.steps[idx] = replace(self.steps[idx], value=value)

    def rename(self, raw: str, shown: str) -> None:
        """Show ``raw`` as ``shown`` in every operation of the trace (the first name given wins):
        a refcount_t named by the field that holds it.  Tracing only."""
        self.renames.setdefault(raw, shown)

    def _values_known(self) -> None:
        later, self._later = self._later, []
        for idx, value in later:
            self.steps[idx] = replace(self.steps[idx], value=value())

    def _finish_trace(self) -> None:
        self._values_known()
        if self.renames:
            for i, s in enumerate(self.steps):
                op = s.op
                for raw, shown in self.renames.items():
                    op = op.replace(raw, shown)
                if op != s.op:
                    self.steps[i] = replace(s, op=op)

    def _trace(self, t: Thread, op: Op) -> None:
        site, stack = model_site(sys._getframe(2))
        if site.line == 0 and t.fn is not None:  # exit: no model frame left on the stack
            code = getattr(getattr(t.fn, "func", t.fn), "__code__", None)
            if code is not None:
                site = Site(code.co_name, _short(code.co_filename), code.co_firstlineno)
        held = tuple(t.k.held_names()) if t.k is not None else ()
        self._last_traced[t.tid] = len(self.steps)
        self.steps.append(Step(len(self.steps), t.tid, t.name, op.name, site, held, stack))


def exception_finding(e: BaseException, t: Thread) -> Finding:
    tb = e.__traceback__
    frame = None
    while tb is not None:
        frame = tb.tb_frame
        tb = tb.tb_next
    site, _ = model_site(frame) if frame is not None else (Site("?", "?", 0), ())
    if isinstance(e, AssertionError):
        msg = str(e)
        if not msg and frame is not None:  # a bare assert: quote its source line
            import linecache

            line = linecache.getline(frame.f_code.co_filename, site.line).strip()
            msg = f"{line} failed" if line.startswith("assert") else "assert failed"
        return Finding(
            "assertion", f"{msg or 'assert failed'} at {site}", headline="assertion failed", thread=t.tid
        )
    for translate in exception_translators:
        f = translate(e, site, t.tid)
        if f is not None:
            return f
    msg = f"{type(e).__name__}: {e} at {site}"
    return Finding("exception", msg, headline="Oops: exception in model code", thread=t.tid)


# Where library code lives: frames from files under these paths are not the
# model's (a trace step names the innermost model frame).  The engine lists
# itself, the standard library and greenlet; each layer above registers its
# own directory (or file) at import with :func:`skip_frames_under`.
_SKIP: tuple[str, ...] = (
    os.path.dirname(os.path.abspath(__file__)) + os.sep,
    os.path.dirname(os.__file__) + os.sep,  # stdlib (contextlib, functools)
    os.path.dirname(os.path.abspath(greenlet.__file__)) + os.sep,
)


def skip_frames_under(path: str) -> None:
    """Treat frames from ``path`` (a directory, or a single file) as library code, not model code."""
    global _SKIP
    path = os.path.abspath(path)
    if os.path.isdir(path):
        path = path.rstrip(os.sep) + os.sep
    if path not in _SKIP:
        _SKIP = (*_SKIP, path)


# Upper layers append here: (exception, model site, thread) -> the Finding it stands for, or
# None (the kernel layer turns an attribute of None into "BUG: kernel NULL pointer dereference").
exception_translators: list[Callable[[BaseException, Site, int], Finding | None]] = []


def _engine_dirs() -> tuple[str, ...]:
    return _SKIP


def model_site(frame: Any) -> tuple[Site, tuple[str, ...]]:
    """The innermost model frame (outside engine and kernel layers) and its stack."""
    skip = _engine_dirs()
    site: Site | None = None
    stack: list[str] = []
    f = frame
    while f is not None:
        fn = f.f_code.co_filename
        if not fn.startswith(skip):
            if site is None:
                site = Site(f.f_code.co_name, _short(fn), f.f_lineno)
            stack.append(f.f_code.co_name)
        f = f.f_back
    if site is None:
        site = Site("?", "?", 0)
    stack.reverse()
    return site, tuple(s for s in stack if s not in ("_thread_main", "<module>"))


# The directory holding the package this engine is part of: files under it are
# shown relative to it ("kvmcheck/models/..."), any other file by its base name.
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))) + os.sep


def _short(path: str) -> str:
    if path.startswith(_PACKAGE_PARENT):
        return path[len(_PACKAGE_PARENT) :].replace(os.sep, "/")
    return os.path.basename(path)
