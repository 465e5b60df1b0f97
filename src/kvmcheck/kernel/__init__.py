"""The kernel's vocabulary over the engine: locks, RCU, refcounts, memory, checks.

Names are the kernel's own, so a model reads beside the C source:
``spin_lock(gpc.lock)`` for ``spin_lock(&gpc->lock)``.

Each module below owns its part of the vocabulary: its ``__all__``, which this package
re-exports whole.  A name a module keeps out of its ``__all__`` is for the kernel layer's own
use, or imported from that module by name (``kvmcheck.kernel.list``'s ``ListHead`` forms of the
RCU list functions, whose names here are ``rculist``'s); _core, _setup, lockdep, kasan, kcsan,
gp and barrier add no vocabulary, and their ``__all__`` is what other modules take from them
(tests/kernel/test_module_all.py, tests/test_public_api.py).
"""

import os as _os

import kvmcheck.kernel.atomic as _atomic
import kvmcheck.kernel.bug as _bug
import kvmcheck.kernel.cfunction as _cfunction
import kvmcheck.kernel.completion as _completion
import kvmcheck.kernel.context as _context
import kvmcheck.kernel.fault_inject as _fault_inject
import kvmcheck.kernel.list as _list
import kvmcheck.kernel.locking as _locking
import kvmcheck.kernel.memory as _memory
import kvmcheck.kernel.rcu as _rcu
import kvmcheck.kernel.rculist as _rculist
import kvmcheck.kernel.refcount as _refcount
import kvmcheck.kernel.sched as _sched
import kvmcheck.kernel.seqlock as _seqlock
import kvmcheck.kernel.srcu as _srcu
import kvmcheck.kernel.struct as _struct
import kvmcheck.kernel.timer as _timer
import kvmcheck.kernel.wait as _wait
import kvmcheck.kernel.workqueue as _workqueue
import kvmcheck.kernel.xarray as _xarray
from kvmcheck._engine.check import runtime_setup_hooks as _hooks
from kvmcheck._engine.execution import exception_translators as _translators
from kvmcheck._engine.execution import skip_frames_under as _skip_frames_under
from kvmcheck.kernel._setup import setup as _setup
from kvmcheck.kernel.atomic import *  # noqa: F403
from kvmcheck.kernel.bug import *  # noqa: F403
from kvmcheck.kernel.bug import null_deref_finding as _null_deref
from kvmcheck.kernel.cfunction import *  # noqa: F403
from kvmcheck.kernel.completion import *  # noqa: F403
from kvmcheck.kernel.context import *  # noqa: F403
from kvmcheck.kernel.fault_inject import *  # noqa: F403
from kvmcheck.kernel.list import *  # noqa: F403
from kvmcheck.kernel.locking import *  # noqa: F403
from kvmcheck.kernel.memory import *  # noqa: F403
from kvmcheck.kernel.rcu import *  # noqa: F403
from kvmcheck.kernel.rculist import *  # noqa: F403
from kvmcheck.kernel.refcount import *  # noqa: F403
from kvmcheck.kernel.sched import *  # noqa: F403
from kvmcheck.kernel.seqlock import *  # noqa: F403
from kvmcheck.kernel.srcu import *  # noqa: F403
from kvmcheck.kernel.struct import *  # noqa: F403
from kvmcheck.kernel.timer import *  # noqa: F403
from kvmcheck.kernel.wait import *  # noqa: F403
from kvmcheck.kernel.workqueue import *  # noqa: F403
from kvmcheck.kernel.xarray import *  # noqa: F403

if _setup not in _hooks:
    _hooks.append(_setup)
_skip_frames_under(_os.path.dirname(__file__))  # kernel primitives are library frames in a trace
if _null_deref not in _translators:
    _translators.append(_null_deref)

__all__ = []  # each module's own, whole:
__all__ += _atomic.__all__
__all__ += _bug.__all__
__all__ += _cfunction.__all__
__all__ += _completion.__all__
__all__ += _context.__all__
__all__ += _fault_inject.__all__
__all__ += _list.__all__
__all__ += _locking.__all__
__all__ += _memory.__all__
__all__ += _rcu.__all__
__all__ += _rculist.__all__
__all__ += _refcount.__all__
__all__ += _sched.__all__
__all__ += _seqlock.__all__
__all__ += _srcu.__all__
__all__ += _struct.__all__
__all__ += _timer.__all__
__all__ += _wait.__all__
__all__ += _workqueue.__all__
__all__ += _xarray.__all__
