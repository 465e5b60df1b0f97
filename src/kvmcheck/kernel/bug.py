"""BUG_ON, WARN_ON and friends, with the kernel's report headlines.

BUG_ON is an oops: the thread stops, and so does the execution.  WARN_ON is
reported and the thread goes on (it returns the condition, as in C), which
is why a WARN does not hide a worse bug later in the same run.
"""

from __future__ import annotations

from kvmcheck._engine import runtime
from kvmcheck._engine.finding import Finding, Site
from kvmcheck.kernel._core import bug, site_here, warn

__all__ = ["BUG", "BUG_ON", "KVM_BUG_ON", "WARN_ON", "WARN_ON_ONCE"]


def BUG_ON(cond: object, msg: str = "") -> None:
    """BUG_ON(cond): an oops if ``cond`` holds (kind bug-on)."""
    if cond:
        bug("bug-on", msg or "BUG_ON condition true", f"kernel BUG at {site_here()}!")


def BUG(msg: str = "") -> None:
    """BUG(): an oops -- the task stops here (kind bug-on)."""
    bug("bug-on", msg or "BUG()", f"kernel BUG at {site_here()}!")


def WARN_ON(cond: object, msg: str = "") -> bool:
    """WARN_ON(cond): a WARN if ``cond`` holds; returns ``cond``, the task goes on."""
    if cond:
        warn("warn", msg or "WARN_ON condition true", f"WARNING: at {site_here()}")
    return bool(cond)


def _first_time(site: str) -> bool:
    """True the first time a *_ONCE site fires in this check (its static 'warned' flag)."""
    ex = runtime.current
    key = f"warn-once:{site}"
    if ex is None:
        return True
    if key in ex.session:
        return False
    ex.session[key] = True
    return True


def WARN_ON_ONCE(cond: object, msg: str = "") -> bool:
    """WARN_ON_ONCE(cond): WARN_ON, reported once per call site per check."""
    if cond:
        site = site_here()
        if _first_time(site):
            warn("warn", msg or "WARN_ON_ONCE condition true", f"WARNING: at {site}")
    return bool(cond)


_NO_FIELD = object()


def KVM_BUG_ON(cond: object, kvm: object = None, msg: str = "") -> bool:
    """WARN_ON_ONCE and mark the VM bugged (``kvm->vm_bugged``); returns the condition.

    As in kvm_host.h, a VM that is already bugged does not warn again.
    """
    if cond:
        site = site_here()
        bugged = getattr(kvm, "vm_bugged", _NO_FIELD) if kvm is not None else _NO_FIELD
        has_field = bugged is not _NO_FIELD
        if not (has_field and bugged) and _first_time(site):
            warn("warn", msg or "KVM_BUG_ON condition true", f"WARNING: KVM_BUG_ON at {site}")
        if has_field and not bugged:
            kvm.vm_bugged = True  # type: ignore[attr-defined]
    return bool(cond)


def null_deref_finding(e: BaseException, site: Site, tid: int) -> Finding | None:
    """An attribute of (or an index into) None in model code: the kernel's NULL dereference oops.

    Registered with the engine's exception translators when kvmcheck.kernel is imported.
    """
    write = False
    msg = str(e)
    if isinstance(e, AttributeError) and getattr(e, "obj", 0) is None and e.name:
        what = f"->{e.name}"
    elif isinstance(e, AttributeError) and e.name is None and msg.startswith(_NONE_ATTR):
        # A store (``v.field = 1``, ``del v.field``): Python sets neither ``obj`` nor ``name``.
        what, write = f"->{msg[len(_NONE_ATTR) :].rstrip(chr(39))}", True
    elif isinstance(e, TypeError) and msg.startswith("'NoneType' object is not subscriptable"):
        what = "[...]"
    elif isinstance(e, TypeError) and msg.startswith("'NoneType' object does not support item"):
        what, write = "[...]", True
    else:
        return None
    return Finding(
        "null-deref",
        f"NULL pointer dereference: {'store to' if write else 'load of'} NULL{what} at {site}",
        headline="BUG: kernel NULL pointer dereference",
        thread=tid,
        details=(
            f"#PF: supervisor {'write' if write else 'read'} access in kernel mode",
            f"RIP: {site.function}",
            f"access: NULL{what} in {site}",
        ),
    )


_NONE_ATTR = "'NoneType' object has no attribute '"
