"""TDP MMU roots: arch/x86/kvm/mmu/tdp_mmu.c, with the mmu.c callers that changed with it.

Modelled after Linux v5.11-rc2 (tdp_mmu.c as before a889ea54b3da: the "-"
lines of "[PATCH 2/3] kvm: x86/mmu: Ensure TDP MMU roots are freed after
yield", 2021-01-05, and the post-fix file for everything that patch did not
touch).  Later versions are variants (tdp_mmu_variants.py), each a subclass
overriding what its patch changed: a889ea54b3da, v5.13, v6.9, and the
proposals and mutants of the thread.

The ``TdpMmu`` subsystem carries the root-lifetime code of one kernel
version: tdp_mmu.c, the root helpers of mmu_internal.h, and the parts of
mmu.c that take ``mmu_lock`` around them (``kvm_mmu_zap_all_fast``,
``kvm_mmu_free_roots``, ``mmu_alloc_direct_roots``, the dirty-log caller),
because those changed in the same series (the rwlock, the read-lock root
load).  The C-style entry points are in mmu.py.

What is modelled of a root: its role (a word, plus ``invalid``), its
reference count, its ``link`` on ``kvm->arch.tdp_mmu_roots`` and two
top-level SPTEs.  The walkers modelled are the ones of Maciej's trace and
Sean's mail: the zap of every root (``kvm_tdp_mmu_zap_all``, reached from a
memslot DELETE/MOVE) and the dirty-log write-protect walk
(``kvm_tdp_mmu_wrprot_slot``); both yield ``mmu_lock`` between SPTEs
(``tdp_mmu_iter_cond_resched``: it yields only after forward progress, and
only if the lock is contended or a reschedule is due -- the model always
yields there, which covers not yielding too).

Lock order (v5.11): kvm->slots_lock (mutex) -> kvm->mmu_lock (spinlock).
Since v5.13: kvm->slots_lock -> kvm->mmu_lock (rwlock) ->
kvm->arch.tdp_mmu_pages_lock (spinlock) ; rcu_read_lock nests inside
mmu_lock.  kvm->arch.tdp_mmu_roots is protected by mmu_lock (v5.11), by
mmu_lock for write or tdp_mmu_pages_lock for its writers and RCU for its
lockless readers (v5.13+).  Per-root fields: see mmu_internal.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from kvmcheck.kernel import (
    READ_ONCE,
    WARN_ON,
    WRITE_ONCE,
    ListHead,
    SpinLock,
    Struct,
    cond_resched_lock,
    kfree,
    kmalloc,
    list_add,
    list_del,
    list_empty,
    list_for_each_entry,
    lockdep_assert_held,
    spin_lock,
    spin_unlock,
)
from kvmcheck.models.arch.x86.kvm.mmu.mmu_internal import (
    N_SPTES,
    SPTE_PRESENT,
    SPTE_WRITABLE,
    KvmMmuPage,
    kvm_mmu_get_root,
    kvm_mmu_put_root,
)
from kvmcheck.models.build import Subsystem

KVM_REQ_MMU_RELOAD = 1 << 1  # v5.11..v5.17
KVM_REQ_MMU_FREE_OBSOLETE_ROOTS = 1 << 2  # v5.18+ (the model uses it from v6.9)


class KvmArch(Struct):
    """The TDP MMU fields of ``struct kvm_arch`` (part of ``struct kvm``, freed with it)."""

    __locking__ = {"mmu_valid_gen": (lambda a: a.kvm.mmu_lock,)}

    mmu_valid_gen: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.kvm: Any = None
        self.tdp_mmu_roots = ListHead(self, "arch.tdp_mmu_roots")
        self.tdp_mmu_pages_lock = SpinLock("kvm->arch.tdp_mmu_pages_lock")

    def _kc_label(self) -> str:
        return "kvm"


class VcpuArch(Struct):
    """The MMU fields of ``struct kvm_vcpu_arch`` (and ``vcpu->requests``).

    ``root_hpa`` (mmu->root_hpa, a root or None) is the vCPU thread's own;
    ``requests`` is set by other threads with atomic bit operations.
    """

    requests: int = 0
    root_hpa: Any = None

    def __init__(self, role_word: int = 0) -> None:
        super().__init__()
        self.role_word = role_word  # mmu->root_role: fixed for the scenarios here
        self.shutdown_pending = False  # KVM_REQ_TRIPLE_FAULT: exit to userspace after the requests

    def _kc_label(self) -> str:
        return "vcpu->arch"


def spte_field(i: int) -> str:
    return f"spte{i}"


class TdpMmu(Subsystem):
    """tdp_mmu.c (+ root code of mmu_internal.h and mmu.c) at v5.11-rc2."""

    subsystem = "tdp_mmu"
    version = "v5.11-rc2"
    mmu_lock_type: ClassVar[type] = SpinLock  # spinlock_t until 531810caa9f4 (v5.12)
    reload_request: ClassVar[int] = KVM_REQ_MMU_RELOAD
    page_track_flush_hop: ClassVar[bool] = True  # memslot flush via page-track (until v6.6)

    # -- roots -------------------------------------------------------------------------------------
    def role_matches(self, root: KvmMmuPage, role_word: int) -> bool:
        """``root->role.word == role.word`` (an invalid root's word never matches a vCPU's role)."""
        return root.role_word == role_word and not root.role_invalid

    def alloc_tdp_mmu_page(self, vcpu: Any) -> KvmMmuPage:
        """alloc_tdp_mmu_page() (tdp_mmu.c, v5.11-rc2): header and spt from the vCPU's caches."""
        return kmalloc(KvmMmuPage, kvm=vcpu.kvm, role_word=vcpu.arch.role_word)

    def kvm_tdp_mmu_free_root(self, kvm: Any, root: KvmMmuPage) -> None:
        """kvm_tdp_mmu_free_root() (tdp_mmu.c, v5.11-rc2): unlink, zap without yielding, free."""
        lockdep_assert_held(kvm.mmu_lock)
        WARN_ON(root.root_count, "kvm_tdp_mmu_free_root: WARN_ON(root->root_count)")
        list_del(root.link)
        self.zap_gfn_range(kvm, root, can_yield=False)
        kfree(root)  # free_page(root->spt); kmem_cache_free(mmu_page_header_cache, root)

    def get_tdp_mmu_vcpu_root(self, vcpu: Any) -> KvmMmuPage:
        """get_tdp_mmu_vcpu_root() (tdp_mmu.c, v5.11-rc2): reuse a root of this role, or add one."""
        kvm = vcpu.kvm
        spin_lock(kvm.mmu_lock)
        for root in list_for_each_entry(kvm.arch.tdp_mmu_roots):  # for_each_tdp_mmu_root
            if self.role_matches(root, vcpu.arch.role_word):
                kvm_mmu_get_root(kvm, root)
                spin_unlock(kvm.mmu_lock)
                return root  # type: ignore[no-any-return]
        root = self.alloc_tdp_mmu_page(vcpu)
        root.root_count = 1
        list_add(root.link, kvm.arch.tdp_mmu_roots)
        spin_unlock(kvm.mmu_lock)
        return root

    def kvm_tdp_mmu_get_vcpu_root_hpa(self, vcpu: Any) -> KvmMmuPage:
        """kvm_tdp_mmu_get_vcpu_root_hpa() (tdp_mmu.c, v5.11-rc2): __pa(root->spt)."""
        return self.get_tdp_mmu_vcpu_root(vcpu)

    def kvm_mmu_uninit_tdp_mmu(self, kvm: Any) -> None:
        """kvm_mmu_uninit_tdp_mmu() (tdp_mmu.c, v5.11-rc2): every root must be gone."""
        WARN_ON(
            not list_empty(kvm.arch.tdp_mmu_roots),
            "kvm_mmu_uninit_tdp_mmu: WARN_ON(!list_empty(&kvm->arch.tdp_mmu_roots)): a root was leaked",
        )

    # -- yielding walkers ----------------------------------------------------------------------------
    def tdp_mmu_iter_cond_resched(self, kvm: Any, shared: bool = False) -> bool:
        """tdp_mmu_iter_cond_resched() (tdp_mmu.c, v5.11-rc2): cond_resched_lock(&kvm->mmu_lock)."""
        return cond_resched_lock(kvm.mmu_lock)

    def set_spte(self, kvm: Any, root: KvmMmuPage, i: int, old: int, new: int, shared: bool) -> bool:
        """tdp_mmu_set_spte(): WRITE_ONCE(*sptep, new) with mmu_lock held exclusively."""
        WRITE_ONCE(root, spte_field(i), new)
        return True

    def zap_gfn_range(self, kvm: Any, root: KvmMmuPage, can_yield: bool, shared: bool = False) -> bool:
        """zap_gfn_range() (tdp_mmu.c, v5.11-rc2): clear every SPTE of ``root``, maybe yielding."""
        flush = False
        for i in range(N_SPTES):
            if can_yield and i > 0 and self.tdp_mmu_iter_cond_resched(kvm, shared):
                flush = False
            old = READ_ONCE(root, spte_field(i))
            if not old & SPTE_PRESENT:
                continue
            if self.set_spte(kvm, root, i, old, 0, shared):
                flush = True
        return flush

    def wrprot_gfn_range(self, kvm: Any, root: KvmMmuPage, shared: bool = False) -> bool:
        """wrprot_gfn_range() (tdp_mmu.c, v5.11-rc2): clear PT_WRITABLE_MASK, yielding between SPTEs."""
        spte_set = False
        for i in range(N_SPTES):
            if i > 0:
                self.tdp_mmu_iter_cond_resched(kvm, shared)
            old = READ_ONCE(root, spte_field(i))
            if not old & SPTE_PRESENT or not old & SPTE_WRITABLE:
                continue
            spte_set |= self.set_spte(kvm, root, i, old, old & ~SPTE_WRITABLE, shared)
        return spte_set

    def for_each_tdp_mmu_root_yield_safe(
        self, kvm: Any, shared: bool = False, only_valid: bool = True
    ) -> Iterator[KvmMmuPage]:
        """The loop every yielding walker of v5.11-rc2 repeats (kvm_tdp_mmu_zap_gfn_range ...).

        ``for_each_tdp_mmu_root`` (plain list_for_each_entry), a reference
        taken with kvm_mmu_get_root() so the body may yield, and
        kvm_mmu_put_root() whose result is ignored: a root whose count it
        takes to zero stays on the list.
        """
        for root in list_for_each_entry(kvm.arch.tdp_mmu_roots):
            kvm_mmu_get_root(kvm, root)
            yield root
            kvm_mmu_put_root(kvm, root)

    def kvm_tdp_mmu_zap_gfn_range(self, kvm: Any) -> bool:
        """kvm_tdp_mmu_zap_gfn_range() (tdp_mmu.c, v5.11-rc2): zap the range in every root."""
        flush = False
        for root in self.for_each_tdp_mmu_root_yield_safe(kvm):
            flush |= self.zap_gfn_range(kvm, root, can_yield=True)
        return flush

    def kvm_tdp_mmu_zap_all(self, kvm: Any) -> None:
        """kvm_tdp_mmu_zap_all() (tdp_mmu.c, v5.11-rc2): kvm_tdp_mmu_zap_gfn_range(0, max_gfn)."""
        self.kvm_tdp_mmu_zap_gfn_range(kvm)

    def kvm_tdp_mmu_wrprot_slot(self, kvm: Any) -> bool:
        """kvm_tdp_mmu_wrprot_slot() (tdp_mmu.c, v5.11-rc2): write-protect the slot in every root."""
        spte_set = False
        for root in self.for_each_tdp_mmu_root_yield_safe(kvm, shared=False):
            spte_set |= self.wrprot_gfn_range(kvm, root)
        return spte_set

    # -- mmu.c, v5.11-rc2 ---------------------------------------------------------------------------
    def kvm_mmu_zap_all_fast(self, kvm: Any) -> None:
        """kvm_mmu_zap_all_fast() (mmu.c, v5.11-rc2): new generation, reload request, zap all roots."""
        from kvmcheck.models.arch.x86.kvm.mmu.mmu import kvm_reload_remote_mmus

        lockdep_assert_held(kvm.slots_lock)
        spin_lock(kvm.mmu_lock)
        kvm.arch.mmu_valid_gen = 1 - kvm.arch.mmu_valid_gen
        kvm_reload_remote_mmus(kvm)
        # kvm_zap_obsolete_pages(): shadow pages only, none in a TDP-only VM
        self.kvm_tdp_mmu_zap_all(kvm)
        spin_unlock(kvm.mmu_lock)

    def mmu_free_root_page(self, kvm: Any, vcpu: Any) -> None:
        """mmu_free_root_page() (mmu.c, v5.10..v5.12): put; at zero free a TDP MMU root."""
        sp = vcpu.arch.root_hpa
        if sp is None:
            return
        if kvm_mmu_put_root(kvm, sp) and sp.tdp_mmu_page:
            self.kvm_tdp_mmu_free_root(kvm, sp)
        vcpu.arch.root_hpa = None

    def kvm_mmu_free_roots(self, vcpu: Any) -> None:
        """kvm_mmu_free_roots() (mmu.c, v5.11-rc2): under spin_lock(&kvm->mmu_lock)."""
        kvm = vcpu.kvm
        spin_lock(kvm.mmu_lock)
        self.mmu_free_root_page(kvm, vcpu)
        spin_unlock(kvm.mmu_lock)

    def mmu_alloc_direct_roots(self, vcpu: Any) -> int:
        """mmu_alloc_direct_roots() (mmu.c, v5.11-rc2): the TDP MMU takes mmu_lock itself."""
        vcpu.arch.root_hpa = self.kvm_tdp_mmu_get_vcpu_root_hpa(vcpu)
        return 0

    def kvm_mmu_slot_remove_write_access(self, kvm: Any) -> None:
        """kvm_mmu_slot_remove_write_access() (mmu.c, v5.11-rc2): wrprot under spin_lock."""
        spin_lock(kvm.mmu_lock)
        self.kvm_tdp_mmu_wrprot_slot(kvm)
        spin_unlock(kvm.mmu_lock)

    def service_mmu_requests(self, vcpu: Any) -> None:
        """vcpu_enter_guest()'s MMU request (x86.c, v5.11-rc2): KVM_REQ_MMU_RELOAD -> kvm_mmu_unload."""
        from kvmcheck.models.arch.x86.kvm.mmu.mmu import kvm_check_request, kvm_mmu_unload

        if kvm_check_request(KVM_REQ_MMU_RELOAD, vcpu):
            kvm_mmu_unload(vcpu)
