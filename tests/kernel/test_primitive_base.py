"""One base for kernel primitives: every operation on a primitive names the primitive.

DPOR records the state of an operation's object before each step; an operation on a
blocking primitive's key that names no object would let it read the wrong state (ops.py).
Primitive.op() is the only way a primitive builds an operation, so every primitive class
must derive from it, and no other kernel module may build an Op of its own except for what
is not a primitive (Struct fields, frees, the thread-level scheduling points).
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import kvmcheck.kernel as k
from kvmcheck.kernel._core import Primitive

KERNEL = Path(k.__file__).parent
# Where an Op is built directly, and why that is not a primitive's operation.
OP_BUILDERS = {
    "_core.py": "Primitive.op() itself",
    "struct.py": "field accesses (an object's fields, not a primitive)",
    "kasan.py": "kfree/kunmap: exclusive on the whole freed object",
    "context.py": "cond_resched/cpu_relax (the thread) and spin_until_cond (a field)",
    "list.py": "list_head pointer fields (Struct fields, as struct.py)",
    "sched.py": "a task's __state: a key of the thread's own, as context.py's scheduling points",
}


def test_every_primitive_class_derives_from_the_base() -> None:
    classes = {
        name: obj
        for name, obj in vars(k).items()
        if inspect.isclass(obj) and not issubclass(obj, k.Struct) and obj.__module__.startswith("kvmcheck")
    }
    assert classes  # Mutex, Refcount, Completion, Work, XArray, ...
    for name, cls in classes.items():
        assert issubclass(cls, Primitive), name


def test_only_the_base_builds_operations_of_primitives() -> None:
    builders = {p.name for p in KERNEL.glob("*.py") if re.search(r"\bOp\(", p.read_text(encoding="utf-8"))}
    assert builders <= set(OP_BUILDERS), builders - set(OP_BUILDERS)


def test_an_operation_names_its_primitive() -> None:
    m = k.Mutex("m")
    op = m.op(True, "mutex_lock(m)")
    assert op.obj is m and op.key == m.key
