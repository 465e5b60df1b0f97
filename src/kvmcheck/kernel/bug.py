"""BUG_ON, WARN_ON and friends, with the kernel's report headlines.

BUG_ON is an oops: the thread stops, and so does the execution.  WARN_ON is
reported and the thread goes on (it returns the condition, as in C), which
is why a WARN does not hide a worse bug later in the same run.
"""

from __future__ import annotations

from kvmcheck._engine import runtime
from kvmcheck.kernel._core import bug, site_here, warn


def BUG_ON(cond: object, msg: str = "") -> None:
    if cond:
        bug("bug-on", msg or "BUG_ON condition true", f"kernel BUG at {site_here(3)}!")


def BUG(msg: str = "") -> None:
    bug("bug-on", msg or "BUG()", f"kernel BUG at {site_here(3)}!")


def WARN_ON(cond: object, msg: str = "") -> bool:
    if cond:
        warn("warn", msg or "WARN_ON condition true", f"WARNING: at {site_here(3)}")
    return bool(cond)


def WARN_ON_ONCE(cond: object, msg: str = "") -> bool:
    if cond:
        ex = runtime.current
        key = f"warn-once:{site_here(3)}"
        if ex is not None and key in ex.session:
            return True
        if ex is not None:
            ex.session[key] = True
        warn("warn", msg or "WARN_ON_ONCE condition true", f"WARNING: at {site_here(3)}")
    return bool(cond)


def KVM_BUG_ON(cond: object, kvm: object = None, msg: str = "") -> bool:
    """WARN_ON_ONCE and mark the VM bugged (``kvm->vm_bugged``); returns the condition."""
    if cond:
        warn("warn", msg or "KVM_BUG_ON condition true", f"WARNING: KVM_BUG_ON at {site_here(3)}")
        if kvm is not None and hasattr(kvm, "vm_bugged"):
            kvm.vm_bugged = True
    return bool(cond)
