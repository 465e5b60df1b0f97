"""The execution that is running now (None outside a check), one per OS thread.

Kept in its own module so that primitives reach it with one attribute load:
``runtime.current``.  The module object is replaced, at import, by an
instance of a ``threading.local`` subclass, so ``runtime.current`` is that
same single attribute load but gives each OS thread its own execution:
``check()`` called from several Python threads at once runs one independent
search per thread (model threads are greenlets, all inside the OS thread of
their ``check()``).  Assigning ``runtime.current = ex`` sets it for the
calling OS thread only.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kvmcheck._engine.execution import Execution

    current: Execution | None = None
else:

    class _PerThread(threading.local):
        """This module, as seen by one OS thread: ``current`` starts as None in each."""

        current = None
        __name__ = __name__
        __doc__ = __doc__

    sys.modules[__name__] = _PerThread()
