"""Independent searches side by side: ``check --all`` over every core.

The bundled scenario x variant pairs are independent searches, so ``check --all`` runs them in
forked child processes, at most ``jobs`` at a time, one pair each, and hands the results back in
the pairs' order as soon as each is known -- the table streams in a stable order whatever finishes
first.  Forking lets each child inherit the loaded scenarios: nothing goes down but the pair's
index, and only its pickled result (or the exception it raised) comes back through a pipe.

One child per pair, not a pool of long-lived workers, so that a child that dies (killed, a crash
in C code) is known exactly: the error names its pair.  Children die with their parent
(``PR_SET_PDEATHSIG`` on Linux, as the search's own workers do), and the ones still running are
killed when the caller stops reading (an interrupt, an error).
"""

from __future__ import annotations

import os
import pickle
import selectors
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from kvmcheck._engine.finding import UsageError
from kvmcheck._engine.workerproc import die_with_parent

T = TypeVar("T")


def map_ordered(task: Callable[[int], T], n: int, jobs: int, name: Callable[[int], str]) -> Iterator[T]:
    """``task(0) .. task(n - 1)`` in order, each computed in a forked child, ``jobs`` at a time.

    With one job (or one task) everything runs here, in this process.  An exception a task
    raises is raised here, in its turn; a child that dies is a :class:`UsageError` naming
    ``name(i)``.
    """
    if jobs <= 1 or n <= 1:
        for i in range(n):
            yield task(i)
        return
    running: dict[int, tuple[int, int]] = {}  # index -> (pid, read end of its pipe)
    data: dict[int, list[bytes]] = {}
    done: dict[int, tuple[str, Any]] = {}
    sel = selectors.DefaultSelector()
    nxt = 0
    try:
        for want in range(n):
            while want not in done:
                while len(running) < jobs and nxt < n:
                    pid, fd = _fork(task, nxt)
                    running[nxt] = (pid, fd)
                    data[nxt] = []
                    sel.register(fd, selectors.EVENT_READ, nxt)
                    nxt += 1
                for key, _ in sel.select():
                    i = key.data
                    chunk = os.read(key.fd, 1 << 16)
                    if chunk:
                        data[i].append(chunk)
                        continue
                    sel.unregister(key.fd)
                    os.close(key.fd)
                    pid, _ = running.pop(i)
                    _, status = os.waitpid(pid, 0)
                    done[i] = _outcome(b"".join(data.pop(i)), status, name(i))
            how, value = done.pop(want)
            if how == "raise":
                raise value
            yield value
    finally:
        for pid, fd in running.values():
            _kill(pid)
            sel.unregister(fd)
            os.close(fd)
        sel.close()


def _fork(task: Callable[[int], Any], i: int) -> tuple[int, int]:
    r, w = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid:
        os.close(w)
        return pid, r
    # the child: compute, send, and leave without running the parent's exit handlers
    code = 0
    try:
        os.close(r)
        die_with_parent(parent)
        try:
            out: tuple[str, Any] = ("return", task(i))
        except BaseException as e:  # noqa: BLE001 - carried to the parent, raised there in its turn
            out = ("raise", e)
        try:
            payload = pickle.dumps(out)
        except Exception as e:  # noqa: BLE001 - an unpicklable result or exception
            payload = pickle.dumps(("raise", RuntimeError(f"result of task {i} cannot be sent back: {e}")))
        with os.fdopen(w, "wb") as f:
            f.write(payload)
    except BaseException:  # noqa: BLE001 - never return into the parent's code from a child
        code = 70
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _outcome(payload: bytes, status: int, name: str) -> tuple[str, Any]:
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and payload:
        how, value = pickle.loads(payload)
        return how, value
    why = (
        f"killed by signal {os.WTERMSIG(status)}"
        if os.WIFSIGNALED(status)
        else f"exit status {os.WEXITSTATUS(status)}"
    )
    return "raise", UsageError(
        f"the process checking {name} died ({why}: killed, or a crash in C code); "
        "check that pair alone to see why"
    )


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
