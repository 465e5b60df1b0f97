"""struct kvm_mmu_page and the v5.11 root refcount helpers (arch/x86/kvm/mmu/mmu_internal.h).

Modelled after Linux v5.11-rc2 (``kvm_mmu_get_root``/``kvm_mmu_put_root``,
mmu_internal.h lines 98-110) and, for the fields added later, v5.13
(``refcount_t tdp_mmu_root_count``, ``struct rcu_head``, ``role.invalid``)
and v6.9 (``tdp_mmu_scheduled_root_to_zap``).

A root is a ``struct kvm_mmu_page`` whose ``spt`` page holds the top-level
SPTEs.  The model keeps two SPTEs per root (``spte0``/``spte1``): enough for
a walk to make progress, yield, and go on.

Locking contract (what protects what, v5.11 / v5.13 / v6.9):
  sp->root_count (int, v5.11)           kvm->mmu_lock (spinlock); the helpers assert it.
  sp->tdp_mmu_root_count (refcount_t)   atomic; since v5.13 taken with refcount_inc_not_zero
                                        under mmu_lock held for read or write.
  sp->role.invalid (v5.13+)             written under mmu_lock held for write, read under
                                        either mode (and locklessly by is_obsolete_root()).
  sp->link                              on kvm->arch.tdp_mmu_roots: mmu_lock (v5.11); since
                                        v5.13 writers also hold kvm->arch.tdp_mmu_pages_lock
                                        and readers may walk it under rcu_read_lock().
  sp->spte*                             changed with WRITE_ONCE under mmu_lock held for write,
                                        or with cmpxchg under mmu_lock held for read (v5.13+).
  sp->tdp_mmu_scheduled_root_to_zap     set under mmu_lock for write, cleared by the zapper
                                        under mmu_lock for read (v6.9).
Lifetime: a root is freed when its count reaches zero -- at once (v5.11,
kvm_tdp_mmu_free_root) or after an RCU grace period (v5.13+, call_rcu).
"""

from __future__ import annotations

import sys
from typing import Any

from kvmcheck.kernel import ListHead, Refcount, Struct, lockdep_assert_held
from kvmcheck.kernel._core import bug

SPTE_PRESENT = 1  # shadow-present
SPTE_WRITABLE = 2  # PT_WRITABLE_MASK
N_SPTES = 2  # SPTEs modelled per root

# Functions the compiler inlines (static inline in a header, or static with one caller):
# they never show up as RIP or in the call trace, as in the kernel's oops.
INLINE = frozenset(
    {
        "kvm_mmu_get_root",
        "kvm_mmu_put_root",
        "get_tdp_mmu_vcpu_root",
        "mmu_alloc_roots",
        "mmu_alloc_direct_roots",
        "kvm_mmu_reload",
        "kvm_tdp_mmu_get_root",
        "tdp_mmu_next_root",
        "tdp_mmu_next_root_valid",
        "tdp_mmu_put_root",
        "tdp_mmu_iter_cond_resched",
        "for_each_tdp_mmu_root_yield_safe",
        "mmu_free_root_page",
    }
)


class KvmMmuPage(Struct):
    """``struct kvm_mmu_page`` of a TDP MMU root."""

    # role.invalid is left to KCSAN: v6.9's kvm_mmu_uninit_tdp_mmu() writes it without
    # mmu_lock once the VM has no users (the kernel waives its lockdep assertion there).
    __locking__ = {"root_count": (lambda sp: sp.kvm.mmu_lock,)}

    root_count: int = 0  # v5.11: int root_count, under mmu_lock
    role_invalid: bool = False  # role.invalid (v5.13+)
    tdp_mmu_scheduled_root_to_zap: bool = False  # v6.9
    spte0: int = 0
    spte1: int = 0

    def __init__(self, kvm: Any = None, role_word: int = 0) -> None:
        super().__init__()
        self.kvm = kvm
        self.role_word = role_word  # role.word minus .invalid: fixed when the root is made
        self.tdp_mmu_page = True
        self.link = ListHead(self, "link")  # on kvm->arch.tdp_mmu_roots
        self.tdp_mmu_root_count = Refcount(0)  # v5.13+: refcount_t tdp_mmu_root_count

    def _kc_label(self) -> str:
        return f"root{self.role_word}"


def call_trace() -> tuple[str, list[str]]:
    """RIP and call trace of the model stack, as an oops prints them (inlined frames folded)."""
    names: list[str] = []
    f: Any = sys._getframe(1)
    while f is not None:
        if (
            "kvmcheck/models/" in f.f_code.co_filename.replace("\\", "/")
            or "scenarios" in f.f_code.co_filename
        ):
            names.append(f.f_code.co_name)
        f = f.f_back
    real = [
        n for n in names if n not in INLINE and not n.startswith("_") and n not in ("call_trace", "BUG_ON_AT")
    ]
    rip = real[0] if real else "?"
    return rip, real[1:]


def BUG_ON_AT(cond: object, where: str, msg: str) -> None:
    """``BUG_ON(cond)`` at a kernel source line ``where`` (file:line), with RIP and call trace."""
    if cond:
        rip, trace = call_trace()
        bug(
            "bug-on",
            msg,
            f"kernel BUG at {where}!",
            [f"RIP: 0010:{rip}", "Call Trace:", *(f" {fn}" for fn in trace)],
        )


def kvm_mmu_get_root(kvm: Any, sp: KvmMmuPage) -> None:
    """kvm_mmu_get_root() (arch/x86/kvm/mmu/mmu_internal.h, v5.11-rc2): BUG if the count is 0."""
    BUG_ON_AT(
        not sp.root_count,
        "arch/x86/kvm/mmu/mmu_internal.h:100",
        f"kvm_mmu_get_root: BUG_ON(!sp->root_count) on {sp._kc_label()}",
    )
    lockdep_assert_held(kvm.mmu_lock)
    sp.root_count = sp.root_count + 1


def kvm_mmu_put_root(kvm: Any, sp: KvmMmuPage) -> bool:
    """kvm_mmu_put_root() (mmu_internal.h, v5.11-rc2): drop one; True when it reached 0."""
    lockdep_assert_held(kvm.mmu_lock)
    sp.root_count = sp.root_count - 1
    return not sp.root_count
