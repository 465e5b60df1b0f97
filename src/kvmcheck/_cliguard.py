"""What the command line does so that a finished run is never lost (issue 14).

* :func:`begin` -- called first by ``kvmcheck check``: every output path is validated
  before the search starts (a one-line UsageError, exit 2); while ``--json`` is on,
  ``sys.stdout`` is the terminal's stderr, so a model's ``print()`` cannot break the
  JSON (which :func:`stdout` still reaches); SIGINT and SIGTERM stop the search at a
  clean point (between executions; inside one after ``guard.GRACE_S``) instead of
  killing the process: the partial result is printed, ``--html`` written.  A second
  signal exits at once.
* :func:`write_atomic` -- a report file is written to a temporary file in its own
  directory, then renamed over the target: a reader (or a second kvmcheck writing the
  same file) sees the old file or the new one, never a mix.
* :func:`exit_code` -- 0 no bug, 1 bug (or a verdict not as expected), 2 a usage error
  (or a search that could not finish: a worker process died), 3 a model stuck in a C call
  (guard.EXIT_STUCK), 130 stopped by SIGINT, 143 stopped by SIGTERM (128 + the signal's
  number) -- also with ``--checkpoint``, which still saves the search.
* In the main thread, :func:`begin` also lets the watchdog end the process when model
  code is stuck in a call it cannot interrupt (guard.set_escalation): after printing the
  stuck thread's stack, never silently.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from typing import Any, TextIO

from kvmcheck._engine import guard
from kvmcheck._engine.finding import UsageError

_state: dict[str, Any] = {"signal": None, "stdout": None}
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


def validate_output(path: str, what: str) -> None:
    """A one-line UsageError unless ``path`` can be written as a file."""
    if not path or not path.strip():
        raise UsageError(f"{what}: empty path")
    if "\0" in path:
        raise UsageError(f"{what} {path!r}: a path cannot hold a NUL byte")
    full = os.path.abspath(path)
    if os.path.isdir(full):
        raise UsageError(f"{what} {path!r} is a directory; give a file name")
    if os.path.exists(full) and not os.access(full, os.W_OK):
        raise UsageError(f"{what} {path!r} is not writable")
    parent = os.path.dirname(full)
    try:  # the real test, also for root: create the directory and a file in it
        os.makedirs(parent, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".kvmcheck-probe.", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UsageError(f"{what} {path!r} cannot be written: {e.strerror or e}") from None


def write_atomic(write: Callable[..., None], path: str, *args: Any) -> None:
    """``write(tmp, *args)`` to a temporary file next to ``path``, then rename it onto ``path``."""
    full = os.path.abspath(path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(full)}.", suffix=".tmp", dir=os.path.dirname(full))
    os.close(fd)
    try:
        write(tmp, *args)
        os.chmod(tmp, 0o644)
        os.replace(tmp, full)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def begin(as_json: bool, outputs: dict[str, str | None]) -> None:
    """Validate ``outputs`` (option name -> path), route model output, take SIGINT/SIGTERM."""
    for what, path in outputs.items():
        if path is not None:
            validate_output(path, what)
    _state["signal"] = None
    guard.clear_stop()
    _state["stdout"] = None
    if as_json:
        _state["stdout"] = sys.stdout
        sys.stdout = sys.stderr
    if threading.current_thread() is threading.main_thread():
        for sig in EXIT_SIGNAL:
            signal.signal(sig, _on_signal)
        guard.set_escalation(True)  # this process is the checker's: a stuck model ends it
    import click

    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.call_on_close(end)


def _on_signal(signum: int, frame: Any) -> None:
    if _state["signal"] is not None:  # the second one: stop now
        signal.signal(signum, signal.SIG_DFL)
        os._exit(EXIT_SIGNAL.get(signal.Signals(signum), 128 + signum))
    _state["signal"] = signal.Signals(signum)
    guard.request_stop(signal.Signals(signum).name)


def stdout() -> TextIO:
    """The real standard output (while ``--json`` sends ``sys.stdout`` to stderr)."""
    out = _state["stdout"]
    return out if out is not None else sys.stdout


def interrupted() -> bool:
    """Has SIGINT or SIGTERM asked the command to stop?"""
    return _state["signal"] is not None


def exit_code(code: int) -> int:
    """``code``, or 130/143 when a signal stopped the search (the partial result is out)."""
    sig = _state["signal"]
    if sig is None:
        return code
    print(f"kvmcheck: stopped by {sig.name}: the result above is partial (bounded)", file=sys.stderr)
    return EXIT_SIGNAL[sig]


def end() -> None:
    """Undo :func:`begin` (for callers that run several commands in one process, as tests do)."""
    if _state["stdout"] is not None:
        sys.stdout = _state["stdout"]
        _state["stdout"] = None
    if threading.current_thread() is threading.main_thread():
        for sig in EXIT_SIGNAL:
            signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
        guard.set_escalation(False)
    guard.clear_stop()
