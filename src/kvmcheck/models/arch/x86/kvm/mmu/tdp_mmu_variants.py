"""Every version of the TDP MMU root code seed 002 argues about, each a patch on the one before.

v5.11-rc2      -- the base model (tdp_mmu.py): get / yield / put, put's result ignored.
ben-v1         -- "[PATCH 2/3] kvm: x86/mmu: Ensure TDP MMU roots are freed after yield"
                  (Ben Gardon, 2021-01-05): ``tdp_mmu_put_root()`` (put, free at zero)
                  inside the unchanged ``list_for_each_entry`` loop.  Maciej tested it:
                  GPF at 0xdead000000000100 in kvm_tdp_mmu_zap_gfn_range.
list-safe      -- Sean's hypothetical in the seed mail: the same with
                  ``list_for_each_entry_safe`` ("would dereference a deleted entry in
                  the 'next entry is deleted' scenario").
a889ea54b3da   -- what landed (v5.11-rc4-ish): ``for_each_tdp_mmu_root_yield_safe``,
                  which takes the reference in the loop condition and reads the next
                  entry *before* the put that may free the current one.
list-add-tail  -- Sean's other hypothetical on a889ea54b3da: ``list_add_tail()`` in
                  get_tdp_mmu_vcpu_root(), so a walk visits a root added after it began.
v5.13          -- 531810caa9f4 (rwlock), 2bdb3d84cebc, cfc109979b3c, 11cccf5c0472
                  (refcount_t), fb10129335ca, c0e64238ac53 (RCU list), 6103bc074048,
                  b7cccd397f31 + 4c6654bd160d (fast invalidation: roots marked invalid
                  under the write lock, zapped under the read lock before the memslot
                  update returns): put = dec_and_test -> list_del_rcu under
                  tdp_mmu_pages_lock -> zap (no yield) -> call_rcu; root load and
                  unload under the write lock.
v6.9           -- edbdb43fc96b (v6.4: roots made with refcount 2, the TDP MMU's own
                  reference put by the zapper), 0df9dab891ff (v6.6: no zap worker;
                  ``tdp_mmu_scheduled_root_to_zap``), 04dc4e6ce274 (v5.18: invalid test
                  moved to the iterator), KVM_REQ_MMU_FREE_OBSOLETE_ROOTS (v5.18),
                  576a15de8d29 / dab285e4ec73 (v6.9: root free and alloc under the
                  read lock, alloc rechecked under tdp_mmu_pages_lock); no page-track
                  hop on the memslot flush (v6.6).
v6.9-plain-get -- mutant (digest V3-mutant): v6.9 with kvm_tdp_mmu_get_root() a plain
                  increment guarded by BUG_ON(!count), under the read lock: why
                  refcount_inc_not_zero() is required.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from kvmcheck import Source
from kvmcheck.kernel import (
    KVM_BUG_ON,
    WARN_ON,
    WARN_ON_ONCE,
    RwLock,
    call_rcu,
    cond_resched_rwlock_read,
    cond_resched_rwlock_write,
    kfree,
    list_add_tail,
    list_empty,
    list_entry_is_head,
    list_first_entry,
    list_for_each_entry,
    list_for_each_entry_safe,
    list_next_entry,
    lockdep_assert_held,
    lockdep_assert_held_read,
    lockdep_assert_held_write,
    rcu_barrier,
    rcu_read_lock,
    rcu_read_unlock,
    read_lock,
    read_unlock,
    refcount_dec_and_test,
    refcount_inc_not_zero,
    refcount_read,
    refcount_set,
    spin_lock,
    spin_unlock,
    write_lock,
    write_unlock,
)
from kvmcheck.kernel.list import (
    list_add_rcu,
    list_del_rcu,
    list_first_or_null_rcu,
    list_for_each_entry_rcu,
    list_next_or_null_rcu,
)
from kvmcheck.kernel.struct import data_race, rmw
from kvmcheck.models.arch.x86.kvm.mmu.mmu_internal import (
    BUG_ON_AT,
    KvmMmuPage,
    kvm_mmu_get_root,
    kvm_mmu_put_root,
)
from kvmcheck.models.arch.x86.kvm.mmu.tdp_mmu import (
    KVM_REQ_MMU_FREE_OBSOLETE_ROOTS,
    TdpMmu,
    spte_field,
)
from kvmcheck.models.build import Build


class BenV1(TdpMmu):
    """Ben's v1 2/3: every walker's put frees at zero, inside the plain list_for_each_entry."""

    version = "ben-v1"

    def tdp_mmu_put_root(self, kvm: Any, root: KvmMmuPage) -> None:
        """tdp_mmu_put_root() (tdp_mmu.c, ben-v1 and a889ea54b3da): put, and free at zero."""
        if kvm_mmu_put_root(kvm, root):
            self.kvm_tdp_mmu_free_root(kvm, root)

    def for_each_tdp_mmu_root_yield_safe(
        self, kvm: Any, shared: bool = False, only_valid: bool = True
    ) -> Iterator[KvmMmuPage]:
        for root in list_for_each_entry(kvm.arch.tdp_mmu_roots):
            kvm_mmu_get_root(kvm, root)
            yield root
            self.tdp_mmu_put_root(kvm, root)  # may free root; the loop then reads root->link.next


class ListSafe(BenV1):
    """ben-v1 with list_for_each_entry_safe: next is cached before the body yields the lock."""

    version = "list-safe"

    def for_each_tdp_mmu_root_yield_safe(
        self, kvm: Any, shared: bool = False, only_valid: bool = True
    ) -> Iterator[KvmMmuPage]:
        for root in list_for_each_entry_safe(kvm.arch.tdp_mmu_roots):
            kvm_mmu_get_root(kvm, root)
            yield root
            self.tdp_mmu_put_root(kvm, root)


class Fix_a889ea54b3da(BenV1):  # noqa: N801 - named after the commit
    """a889ea54b3da "KVM: x86/mmu: Ensure TDP MMU roots are freed after yield"."""

    version = "a889ea54b3da"

    def tdp_mmu_next_root_valid(self, kvm: Any, root: Any) -> bool:
        """tdp_mmu_next_root_valid() (tdp_mmu.c, a889ea54b3da): at the head, stop; else get it."""
        lockdep_assert_held(kvm.mmu_lock)
        if list_entry_is_head(root, kvm.arch.tdp_mmu_roots):
            return False
        kvm_mmu_get_root(kvm, root)
        return True

    def tdp_mmu_next_root(self, kvm: Any, root: KvmMmuPage) -> Any:
        """tdp_mmu_next_root() (tdp_mmu.c, a889ea54b3da): read next, *then* put (maybe free) root."""
        next_root = list_next_entry(root, "link")
        self.tdp_mmu_put_root(kvm, root)
        return next_root

    def for_each_tdp_mmu_root_yield_safe(
        self, kvm: Any, shared: bool = False, only_valid: bool = True
    ) -> Iterator[KvmMmuPage]:
        """for_each_tdp_mmu_root_yield_safe() (tdp_mmu.c, a889ea54b3da)."""
        root = list_first_entry(kvm.arch.tdp_mmu_roots)
        while self.tdp_mmu_next_root_valid(kvm, root):
            yield root
            root = self.tdp_mmu_next_root(kvm, root)


class ListAddTail(Fix_a889ea54b3da):
    """a889ea54b3da with list_add_tail() in get_tdp_mmu_vcpu_root() (Sean's hypothetical)."""

    version = "list-add-tail"

    def get_tdp_mmu_vcpu_root(self, vcpu: Any) -> KvmMmuPage:
        kvm = vcpu.kvm
        spin_lock(kvm.mmu_lock)
        for root in list_for_each_entry(kvm.arch.tdp_mmu_roots):
            if self.role_matches(root, vcpu.arch.role_word):
                kvm_mmu_get_root(kvm, root)
                spin_unlock(kvm.mmu_lock)
                return root  # type: ignore[no-any-return]
        root = self.alloc_tdp_mmu_page(vcpu)
        root.root_count = 1
        list_add_tail(root.link, kvm.arch.tdp_mmu_roots)  # was list_add()
        spin_unlock(kvm.mmu_lock)
        return root


class V5_13(Fix_a889ea54b3da):  # noqa: N801 - a version name
    """tdp_mmu.c and the mmu.c root code at v5.13 (rwlock, refcount_t, RCU list, fast invalidation)."""

    version = "v5.13"
    mmu_lock_type: ClassVar[type] = RwLock

    # -- locking helpers of v5.13 ---------------------------------------------------------------------
    def kvm_lockdep_assert_mmu_lock_held(self, kvm: Any, shared: bool) -> None:
        """kvm_lockdep_assert_mmu_lock_held() (tdp_mmu.c, v5.13)."""
        if shared:
            lockdep_assert_held_read(kvm.mmu_lock)
        else:
            lockdep_assert_held_write(kvm.mmu_lock)

    def tdp_mmu_iter_cond_resched(self, kvm: Any, shared: bool = False) -> bool:
        """tdp_mmu_iter_cond_resched() (v5.13): leave the RCU section, yield mmu_lock in its mode."""
        rcu_read_unlock()
        if shared:
            cond_resched_rwlock_read(kvm.mmu_lock)
        else:
            cond_resched_rwlock_write(kvm.mmu_lock)
        rcu_read_lock()
        return True

    def set_spte(self, kvm: Any, root: KvmMmuPage, i: int, old: int, new: int, shared: bool) -> bool:
        """tdp_mmu_set_spte_atomic() (cmpxchg) under the read lock, tdp_mmu_set_spte() otherwise."""
        if not shared:
            return super().set_spte(kvm, root, i, old, new, shared)
        prev, _ = rmw(root, spte_field(i), lambda v: new if v == old else v, "cmpxchg64(sptep)")
        return bool(prev == old)

    def zap_gfn_range(self, kvm: Any, root: KvmMmuPage, can_yield: bool, shared: bool = False) -> bool:
        """zap_gfn_range() (tdp_mmu.c, v5.13): the walk is inside rcu_read_lock()."""
        rcu_read_lock()
        flush = super().zap_gfn_range(kvm, root, can_yield, shared)
        rcu_read_unlock()
        return flush

    def wrprot_gfn_range(self, kvm: Any, root: KvmMmuPage, shared: bool = True) -> bool:
        """wrprot_gfn_range() (tdp_mmu.c, v5.13): under the read lock and rcu_read_lock()."""
        rcu_read_lock()
        spte_set = super().wrprot_gfn_range(kvm, root, shared=True)
        rcu_read_unlock()
        return spte_set

    # -- roots ------------------------------------------------------------------------------------------
    def kvm_tdp_mmu_get_root(self, kvm: Any, root: KvmMmuPage) -> bool:
        """kvm_tdp_mmu_get_root() (tdp_mmu.h, v5.13): not for invalid roots; refcount_inc_not_zero."""
        if root.role_invalid:
            return False
        return refcount_inc_not_zero(root.tdp_mmu_root_count)

    def tdp_mmu_free_sp_rcu_callback(self, root: KvmMmuPage) -> None:
        """tdp_mmu_free_sp_rcu_callback() (tdp_mmu.c, v5.13): free_page(spt), kmem_cache_free()."""
        kfree(root)

    def kvm_tdp_mmu_put_root(self, kvm: Any, root: KvmMmuPage, shared: bool) -> None:
        """kvm_tdp_mmu_put_root() (tdp_mmu.c, v5.13): at zero unlink (RCU), zap, free after a GP."""
        self.kvm_lockdep_assert_mmu_lock_held(kvm, shared)
        if not refcount_dec_and_test(root.tdp_mmu_root_count):
            return
        WARN_ON(not root.tdp_mmu_page)
        spin_lock(kvm.arch.tdp_mmu_pages_lock)
        list_del_rcu(root.link)
        spin_unlock(kvm.arch.tdp_mmu_pages_lock)
        self.zap_gfn_range(kvm, root, can_yield=False, shared=shared)
        call_rcu(root, self.tdp_mmu_free_sp_rcu_callback)

    def tdp_mmu_next_root(self, kvm: Any, prev_root: Any, shared: bool = False) -> Any:  # type: ignore[override]
        """tdp_mmu_next_root() (tdp_mmu.c, v5.13): the next root we could get a reference on."""
        head = kvm.arch.tdp_mmu_roots
        rcu_read_lock()
        if prev_root is not None:
            next_root = list_next_or_null_rcu(head, prev_root.link)
        else:
            next_root = list_first_or_null_rcu(head)
        while next_root is not None and not self.kvm_tdp_mmu_get_root(kvm, next_root):
            next_root = list_next_or_null_rcu(head, next_root.link)
        rcu_read_unlock()
        if prev_root is not None:
            self.kvm_tdp_mmu_put_root(kvm, prev_root, shared)
        return next_root

    def for_each_tdp_mmu_root_yield_safe(
        self, kvm: Any, shared: bool = False, only_valid: bool = True
    ) -> Iterator[KvmMmuPage]:
        """for_each_tdp_mmu_root_yield_safe(kvm, root, as_id, shared) (tdp_mmu.c, v5.13)."""
        root = self.tdp_mmu_next_root(kvm, None, shared)
        while root is not None:
            yield root
            root = self.tdp_mmu_next_root(kvm, root, shared)

    def kvm_tdp_mmu_get_vcpu_root_hpa(self, vcpu: Any) -> KvmMmuPage:
        """kvm_tdp_mmu_get_vcpu_root_hpa() (tdp_mmu.c, v5.13): mmu_lock held for write."""
        kvm = vcpu.kvm
        lockdep_assert_held_write(kvm.mmu_lock)
        for root in list_for_each_entry_rcu(kvm.arch.tdp_mmu_roots, cond=True):  # for_each_tdp_mmu_root
            if self.role_matches(root, vcpu.arch.role_word) and self.kvm_tdp_mmu_get_root(kvm, root):
                return root  # type: ignore[no-any-return]
        root = self.alloc_tdp_mmu_page(vcpu)
        refcount_set(root.tdp_mmu_root_count, 1)
        spin_lock(kvm.arch.tdp_mmu_pages_lock)
        list_add_rcu(root.link, kvm.arch.tdp_mmu_roots)
        spin_unlock(kvm.arch.tdp_mmu_pages_lock)
        return root

    def kvm_mmu_uninit_tdp_mmu(self, kvm: Any) -> None:
        """kvm_mmu_uninit_tdp_mmu() (tdp_mmu.c, v5.13): no root left; wait for the RCU frees."""
        super().kvm_mmu_uninit_tdp_mmu(kvm)
        rcu_barrier()

    # -- walkers ---------------------------------------------------------------------------------------
    def kvm_tdp_mmu_wrprot_slot(self, kvm: Any) -> bool:
        """kvm_tdp_mmu_wrprot_slot() (tdp_mmu.c, v5.13): mmu_lock held for read."""
        lockdep_assert_held_read(kvm.mmu_lock)
        spte_set = False
        for root in self.for_each_tdp_mmu_root_yield_safe(kvm, shared=True):
            spte_set |= self.wrprot_gfn_range(kvm, root)
        return spte_set

    def kvm_tdp_mmu_invalidate_all_roots(self, kvm: Any) -> None:
        """kvm_tdp_mmu_invalidate_all_roots() (tdp_mmu.c, v5.13): a reference, then role.invalid."""
        lockdep_assert_held_write(kvm.mmu_lock)
        for root in list_for_each_entry(kvm.arch.tdp_mmu_roots):
            if refcount_inc_not_zero(root.tdp_mmu_root_count):
                root.role_invalid = True

    def next_invalidated_root(self, kvm: Any, prev_root: Any) -> Any:
        """next_invalidated_root() (tdp_mmu.c, v5.13): the next invalid root with a live count."""
        head = kvm.arch.tdp_mmu_roots
        if prev_root is not None:
            next_root = list_next_or_null_rcu(head, prev_root.link)
        else:
            next_root = list_first_or_null_rcu(head)
        while next_root is not None and not (
            next_root.role_invalid and refcount_read(next_root.tdp_mmu_root_count)
        ):
            next_root = list_next_or_null_rcu(head, next_root.link)
        return next_root

    def kvm_tdp_mmu_zap_invalidated_roots(self, kvm: Any) -> None:
        """kvm_tdp_mmu_zap_invalidated_roots() (tdp_mmu.c, v5.13): zap, then put the invalidation ref."""
        lockdep_assert_held_read(kvm.mmu_lock)
        rcu_read_lock()
        root = self.next_invalidated_root(kvm, None)
        while root is not None:
            next_root = self.next_invalidated_root(kvm, root)
            rcu_read_unlock()
            self.zap_gfn_range(kvm, root, can_yield=True, shared=True)
            self.kvm_tdp_mmu_put_root(kvm, root, True)  # the reference of invalidate_all_roots
            root = next_root
            rcu_read_lock()
        rcu_read_unlock()

    # -- mmu.c, v5.13 ----------------------------------------------------------------------------------
    def kvm_mmu_zap_all_fast(self, kvm: Any) -> None:
        """kvm_mmu_zap_all_fast() (mmu.c, v5.13): invalidate under the write lock, zap under read."""
        from kvmcheck.models.arch.x86.kvm.mmu.mmu import kvm_reload_remote_mmus

        lockdep_assert_held(kvm.slots_lock)
        write_lock(kvm.mmu_lock)
        self.kvm_tdp_mmu_invalidate_all_roots(kvm)
        kvm.arch.mmu_valid_gen = 1 - kvm.arch.mmu_valid_gen
        kvm_reload_remote_mmus(kvm)
        write_unlock(kvm.mmu_lock)
        read_lock(kvm.mmu_lock)
        self.kvm_tdp_mmu_zap_invalidated_roots(kvm)
        read_unlock(kvm.mmu_lock)

    def mmu_free_root_page(self, kvm: Any, vcpu: Any) -> None:
        """mmu_free_root_page() (mmu.c, v5.13): kvm_tdp_mmu_put_root(kvm, sp, false)."""
        sp = vcpu.arch.root_hpa
        if sp is None:
            return
        self.kvm_tdp_mmu_put_root(kvm, sp, False)
        vcpu.arch.root_hpa = None

    def kvm_mmu_free_roots(self, vcpu: Any) -> None:
        """kvm_mmu_free_roots() (mmu.c, v5.13): under write_lock(&kvm->mmu_lock)."""
        kvm = vcpu.kvm
        write_lock(kvm.mmu_lock)
        self.mmu_free_root_page(kvm, vcpu)
        write_unlock(kvm.mmu_lock)

    def mmu_alloc_direct_roots(self, vcpu: Any) -> int:
        """mmu_alloc_direct_roots() (mmu.c, v5.13): root lookup/allocation under the write lock."""
        kvm = vcpu.kvm
        write_lock(kvm.mmu_lock)
        vcpu.arch.root_hpa = self.kvm_tdp_mmu_get_vcpu_root_hpa(vcpu)
        write_unlock(kvm.mmu_lock)
        return 0

    def kvm_mmu_slot_remove_write_access(self, kvm: Any) -> None:
        """kvm_mmu_slot_remove_write_access() (mmu.c, v5.13): the TDP part under the read lock."""
        read_lock(kvm.mmu_lock)
        self.kvm_tdp_mmu_wrprot_slot(kvm)
        read_unlock(kvm.mmu_lock)


class V6_9(V5_13):  # noqa: N801 - a version name
    """tdp_mmu.c and the mmu.c root code at v6.9."""

    version = "v6.9"
    reload_request: ClassVar[int] = KVM_REQ_MMU_FREE_OBSOLETE_ROOTS
    page_track_flush_hop: ClassVar[bool] = False

    def kvm_tdp_mmu_get_root(self, kvm: Any, root: KvmMmuPage) -> bool:
        """kvm_tdp_mmu_get_root() (tdp_mmu.h, v6.9): refcount_inc_not_zero() only."""
        return refcount_inc_not_zero(root.tdp_mmu_root_count)

    def kvm_tdp_mmu_put_root(self, kvm: Any, root: KvmMmuPage, shared: bool = False) -> None:
        """kvm_tdp_mmu_put_root() (tdp_mmu.c, v6.9): the last put of a *valid* root is a KVM bug."""
        if not refcount_dec_and_test(root.tdp_mmu_root_count):
            return
        KVM_BUG_ON(
            not root.tdp_mmu_page or not root.role_invalid,
            kvm,
            "kvm_tdp_mmu_put_root: KVM_BUG_ON(!root->role.invalid): last reference of a valid root",
        )
        spin_lock(kvm.arch.tdp_mmu_pages_lock)
        list_del_rcu(root.link)
        spin_unlock(kvm.arch.tdp_mmu_pages_lock)
        call_rcu(root, self.tdp_mmu_free_sp_rcu_callback)

    def tdp_mmu_next_root(self, kvm: Any, prev_root: Any, only_valid: bool = True) -> Any:  # type: ignore[override]
        """tdp_mmu_next_root() (tdp_mmu.c, v6.9): skip invalid roots if asked, then get."""
        lockdep_assert_held(kvm.mmu_lock)
        head = kvm.arch.tdp_mmu_roots
        rcu_read_lock()
        if prev_root is not None:
            next_root = list_next_or_null_rcu(head, prev_root.link)
        else:
            next_root = list_first_or_null_rcu(head)
        while next_root is not None:
            if (not only_valid or not next_root.role_invalid) and self.kvm_tdp_mmu_get_root(kvm, next_root):
                break
            next_root = list_next_or_null_rcu(head, next_root.link)
        rcu_read_unlock()
        if prev_root is not None:
            self.kvm_tdp_mmu_put_root(kvm, prev_root)
        return next_root

    def for_each_tdp_mmu_root_yield_safe(
        self, kvm: Any, shared: bool = False, only_valid: bool = True
    ) -> Iterator[KvmMmuPage]:
        """__for_each_tdp_mmu_root_yield_safe(kvm, root, as_id, only_valid) (tdp_mmu.c, v6.9)."""
        root = self.tdp_mmu_next_root(kvm, None, only_valid)
        while root is not None:
            lockdep_assert_held(kvm.mmu_lock)
            yield root
            root = self.tdp_mmu_next_root(kvm, root, only_valid)

    def kvm_tdp_mmu_alloc_root(self, vcpu: Any) -> int:
        """kvm_tdp_mmu_alloc_root() (tdp_mmu.c, v6.9): look up under the read lock, recheck and
        add under tdp_mmu_pages_lock; a new root starts with two references (vCPU + TDP MMU)."""
        kvm = vcpu.kvm
        role = vcpu.arch.role_word
        read_lock(kvm.mmu_lock)
        found = None
        for root in self.for_each_tdp_mmu_root_yield_safe(kvm, shared=True, only_valid=True):
            if self.role_matches(root, role):
                found = root  # goto out_read_unlock, keeping the reference for the vCPU
                break
        if found is None:
            spin_lock(kvm.arch.tdp_mmu_pages_lock)
            for root in list_for_each_entry(kvm.arch.tdp_mmu_roots):
                if self.role_matches(root, role) and not WARN_ON_ONCE(
                    not self.kvm_tdp_mmu_get_root(kvm, root)
                ):
                    found = root
                    break
            if found is None:
                found = self.alloc_tdp_mmu_page(vcpu)
                refcount_set(found.tdp_mmu_root_count, 2)
                list_add_rcu(found.link, kvm.arch.tdp_mmu_roots)
            spin_unlock(kvm.arch.tdp_mmu_pages_lock)
        read_unlock(kvm.mmu_lock)
        vcpu.arch.root_hpa = found
        return 0

    def mmu_alloc_direct_roots(self, vcpu: Any) -> int:
        """mmu_alloc_direct_roots() (mmu.c, v6.9): the TDP MMU allocates under its own locking."""
        return self.kvm_tdp_mmu_alloc_root(vcpu)

    def kvm_tdp_mmu_wrprot_slot(self, kvm: Any) -> bool:
        """kvm_tdp_mmu_wrprot_slot() (tdp_mmu.c, v6.9): valid roots only, mmu_lock held for read."""
        lockdep_assert_held_read(kvm.mmu_lock)
        spte_set = False
        for root in self.for_each_tdp_mmu_root_yield_safe(kvm, only_valid=True):
            spte_set |= self.wrprot_gfn_range(kvm, root)
        return spte_set

    def kvm_tdp_mmu_invalidate_all_roots(self, kvm: Any) -> None:
        """kvm_tdp_mmu_invalidate_all_roots() (tdp_mmu.c, v6.9): mark invalid and scheduled; no ref.

        The TDP MMU's own reference goes to the zapper.  (The write-lock
        assertion is waived while the VM is being destroyed.)
        """
        if not kvm.destroying:
            lockdep_assert_held_write(kvm.mmu_lock)
        for root in list_for_each_entry(kvm.arch.tdp_mmu_roots):
            if not root.role_invalid:
                root.tdp_mmu_scheduled_root_to_zap = True
                root.role_invalid = True

    def kvm_tdp_mmu_zap_invalidated_roots(self, kvm: Any) -> None:
        """kvm_tdp_mmu_zap_invalidated_roots() (tdp_mmu.c, v6.9): read lock, all roots, yield-safe."""
        read_lock(kvm.mmu_lock)
        for root in self.for_each_tdp_mmu_root_yield_safe(kvm, only_valid=False):
            if not root.tdp_mmu_scheduled_root_to_zap:
                continue
            root.tdp_mmu_scheduled_root_to_zap = False
            KVM_BUG_ON(not root.role_invalid, kvm)
            self.zap_gfn_range(kvm, root, can_yield=True, shared=True)  # tdp_mmu_zap_root()
            self.kvm_tdp_mmu_put_root(kvm, root)  # the TDP MMU's own reference
        read_unlock(kvm.mmu_lock)

    def kvm_mmu_uninit_tdp_mmu(self, kvm: Any) -> None:
        """kvm_mmu_uninit_tdp_mmu() (tdp_mmu.c, v6.9): invalidate and zap every root first."""
        kvm.destroying = True
        self.kvm_tdp_mmu_invalidate_all_roots(kvm)
        self.kvm_tdp_mmu_zap_invalidated_roots(kvm)
        WARN_ON(
            not list_empty(kvm.arch.tdp_mmu_roots),
            "kvm_mmu_uninit_tdp_mmu: WARN_ON(!list_empty(&kvm->arch.tdp_mmu_roots)): a root was leaked",
        )
        rcu_barrier()

    # -- mmu.c, v6.9 ---------------------------------------------------------------------------------
    def kvm_mmu_zap_all_fast(self, kvm: Any) -> None:
        """kvm_mmu_zap_all_fast() (mmu.c, v6.9): invalidate under write, zap after the unlock."""
        from kvmcheck.models.arch.x86.kvm.mmu.mmu import kvm_make_all_cpus_request

        lockdep_assert_held(kvm.slots_lock)
        write_lock(kvm.mmu_lock)
        kvm.arch.mmu_valid_gen = 1 - kvm.arch.mmu_valid_gen
        self.kvm_tdp_mmu_invalidate_all_roots(kvm)
        kvm_make_all_cpus_request(kvm, KVM_REQ_MMU_FREE_OBSOLETE_ROOTS)
        write_unlock(kvm.mmu_lock)
        self.kvm_tdp_mmu_zap_invalidated_roots(kvm)

    def mmu_free_root_page(self, kvm: Any, vcpu: Any) -> None:
        """mmu_free_root_page() (mmu.c, v6.9): kvm_tdp_mmu_put_root(kvm, sp)."""
        sp = vcpu.arch.root_hpa
        if sp is None:
            return
        self.kvm_tdp_mmu_put_root(kvm, sp)
        vcpu.arch.root_hpa = None

    def kvm_mmu_free_roots(self, vcpu: Any) -> None:
        """kvm_mmu_free_roots() (mmu.c, v6.9): only TDP MMU roots, so mmu_lock for read."""
        kvm = vcpu.kvm
        read_lock(kvm.mmu_lock)
        self.mmu_free_root_page(kvm, vcpu)
        read_unlock(kvm.mmu_lock)

    def is_obsolete_root(self, kvm: Any, root: Any) -> bool:
        """is_obsolete_root() (mmu.c, v6.9): sp->role.invalid, read without mmu_lock (racy, benign)."""
        return root is not None and bool(data_race(root, "role_invalid"))

    def service_mmu_requests(self, vcpu: Any) -> None:
        """vcpu_enter_guest() (x86.c, v6.9): KVM_REQ_MMU_FREE_OBSOLETE_ROOTS -> free obsolete roots."""
        from kvmcheck.models.arch.x86.kvm.mmu.mmu import kvm_check_request, kvm_mmu_free_roots

        if kvm_check_request(KVM_REQ_MMU_FREE_OBSOLETE_ROOTS, vcpu) and self.is_obsolete_root(
            vcpu.kvm, vcpu.arch.root_hpa
        ):
            kvm_mmu_free_roots(vcpu)  # kvm_mmu_free_obsolete_roots()


class V6_9PlainGet(V6_9):  # noqa: N801 - a version name
    """Mutant: v6.9 with a plain increment in kvm_tdp_mmu_get_root() (BUG_ON on zero)."""

    version = "v6.9-plain-get"

    def kvm_tdp_mmu_get_root(self, kvm: Any, root: KvmMmuPage) -> bool:
        """kvm_tdp_mmu_get_root() as v5.11's kvm_mmu_get_root() would have it: read, BUG_ON(0), set."""
        n = refcount_read(root.tdp_mmu_root_count)
        BUG_ON_AT(
            n == 0,
            "arch/x86/kvm/mmu/tdp_mmu.h (v6.9-plain-get)",
            f"kvm_tdp_mmu_get_root: BUG_ON(!root->tdp_mmu_root_count) on {root._kc_label()}",
        )
        refcount_set(root.tdp_mmu_root_count, n + 1)
        return True


VARIANTS: dict[str, type[TdpMmu]] = {
    "v5.11-rc2": TdpMmu,
    "ben-v1": BenV1,
    "list-safe": ListSafe,
    "a889ea54b3da": Fix_a889ea54b3da,
    "list-add-tail": ListAddTail,
    "v5.13": V5_13,
    "v6.9": V6_9,
    "v6.9-plain-get": V6_9PlainGet,
}
BUILDS: dict[str, Build] = {name: Build(impl()) for name, impl in VARIANTS.items()}
"""Each variant's kernel: its TDP MMU root code (the only subsystem seed 002's scenarios run)."""

# Where each variant's code was read (issue 23).  No tree at v5.11-rc2, v5.13 or v6.9 could be
# pinned with the code index (/work/shared/kernel/SOURCES.md), so the versions are rebuilt from
# posted diffs and file copies; digest 02's corrections list the search ids.
_BEN_V1 = (
    "[PATCH 2/3] kvm: x86/mmu: Ensure TDP MMU roots are freed after yield — 2021-01-05 — "
    "<20210105233136.2140335-2-bgardon@google.com>"
)
_SEED = "Re: reproducible BUG() in kvm_mmu_get_root() in TDP MMU — 2021-01-05 (Ben Gardon)"
SOURCES: dict[str, Source] = {
    "v5.11-rc2": Source(
        "reconstructed",
        "v5.11-rc2: arch/x86/kvm/mmu/tdp_mmu.c, mmu_internal.h, mmu.c",
        "The walkers are the '-' lines and context of " + _BEN_V1 + " (tdp_mmu.c blob 75db27fda8f3: "
        "get / yield / kvm_mmu_put_root with its result ignored); kvm_mmu_get_root's BUG_ON and the "
        "call path from Maciej Szmigiero's report (mmu_internal.h:100, kvm_mmu_load <- vcpu_enter_guest) "
        "and Ben's 2021-01-06 reply <CANgfPd-QPUwigK5um8DWQ5Y_M+JGRie_N_vkYtZdNE1WQbn3mA@mail.gmail.com> "
        "(the page-track hop). Not Rtoax/linux-5.10.13: it already has the fix.",
    ),
    "ben-v1": Source(
        "posted",
        _BEN_V1,
        "tdp_mmu_put_root() (put, free at zero) in every walker's unchanged list_for_each_entry loop, "
        "as posted; Maciej's GPF at LIST_POISON1 with it is in the same 2021-01-06 reply.",
    ),
    "list-safe": Source(
        "mutant",
        _SEED,
        "Sean's hypothetical in the seed mail ('using the \"safe\" variant would dereference a "
        "deleted entry'): ben-v1 with list_for_each_entry_safe; never posted.",
    ),
    "a889ea54b3da": Source(
        "posted",
        "[PATCH v3 1/2] KVM: x86/mmu: Ensure TDP MMU roots are freed after yield — 2021-01-06 — "
        "<20210107001935.3732070-1-bgardon@google.com>",
        "Read as quoted by Sean's Reviewed-by reply (2021-01-07, <X/dHpSoi5AkPIrfc@google.com>): "
        "tdp_mmu_next_root_valid takes the reference, tdp_mmu_next_root reads list_next_entry before "
        "tdp_mmu_put_root; merged as a889ea54b3da (linux-next, after gcc-plugins-v5.11-rc3).",
    ),
    "list-add-tail": Source(
        "mutant",
        _SEED,
        "Sean's other hypothetical in the seed mail: a889ea54b3da with list_add_tail() in "
        "get_tdp_mmu_vcpu_root(); never posted.",
    ),
    "v5.13": Source(
        "reconstructed",
        "v5.13: arch/x86/kvm/mmu/tdp_mmu.c, mmu.c",
        "From 531810caa9f4 (rwlock), 2bdb3d84cebc, cfc109979b3c, 11cccf5c0472, fb10129335ca, "
        "c0e64238ac53, 6103bc074048, b7cccd397f31 + 4c6654bd160d as quoted in review mails (Paolo's "
        "'[PATCH v2 09/13]' review, search id 25917719300; b7cccd397f31 <20210401233736.638171-13-"
        "bgardon@google.com>) and a v5.13-era tdp_mmu.c copy in a transliterated fork (search id "
        "15836801613, re-read for issue 23: put = dec_and_test, list_del_rcu, zap, call_rcu; root "
        "load under the write lock).",
    ),
    "v6.9": Source(
        "reconstructed",
        "v6.9: arch/x86/kvm/mmu/tdp_mmu.c, mmu.c",
        "From edbdb43fc96b ('KVM: x86: Preserve TDP MMU roots until they are explicitly invalidated', "
        "<20230421214946.2571580-1-seanjc@google.com>), 0df9dab891ff, 576a15de8d29 / dab285e4ec73 / "
        "f5238c2a60f1 (the kvm-x86-mmu-6.9 pull: root free/alloc under the read lock) as their mails "
        "and pulls quote them, and torvalds/linux tdp_mmu.c @0089c055b560 (a later per-file "
        "version; tdp_mmu_next_root(kvm, prev, only_valid)) -- as digest 02's corrections read them.",
    ),
    "v6.9-plain-get": Source(
        "mutant",
        "v6.9 with kvm_tdp_mmu_get_root() a plain read / BUG_ON(0) / set (digest 02, V3-mutant)",
        "Our counterfactual: v6.9 with v5.11's kvm_mmu_get_root() shape under the read lock, to show "
        "why refcount_inc_not_zero() is required.",
    ),
}
