"""Seed 000 (gfn->pfn cache): every bundled verdict and the kernel fact it rests on (issue 23).

Reviewed against the seed thread, the posted patches named in
src/kvmcheck/models/virt/kvm/pfncache_variants.py's SOURCES and v6.8's xen.c
(docs/models/seed000-pfncache.md says where each was read).
tests/models/test_verdicts.py asserts this table equals the scenarios' expect=, both ways.
"""

from __future__ import annotations

_REUSE = (
    "v6.2..v6.8 kvm_gpc_deactivate() takes no refresh_lock (9f87791d686d: 'Omit acquiring "
    "refresh_lock'), so a refresh that dropped gpc->lock reinstalls the pfn/khva deactivate unmapped "
    "(seed thread, 2024-01-12)"
)
_V1_UHVA = "seed v1 <9a82db19...@amazon.co.uk> discards the new mapping only if gpc->uhva changed"
_ACTIVE = "v12 20/20 / v13 21/21 / v2 8/8 also discard when !gpc->active ('if (ret || !gpc->active || ...')"
_REFRESH_LOCK = "6addfcf27139 (v2 4/8): guard(mutex)(&gpc->refresh_lock) in refresh, activate and deactivate"
_PRE = (
    "6.1.y's kvm_gfn_to_pfn_cache_unmap() takes refresh_lock, so deactivation waits for a refresh "
    "(the '-' side of 9f87791d686d)"
)
_SEAN = (
    "Sean's contract (<Zaf7yCYt8XFuMhAd@google.com>) asserts the guarding mutex in refresh, which "
    "this refresher does not hold: lockdep_assert_held fires"
)
_VCPU_MUTEX = (
    "v6.8: KVM_RUN and KVM_XEN_VCPU_SET_ATTR both run under vcpu->mutex (kvm_vcpu_ioctl), "
    "Woodhouse's point in the seed mail"
)
_XEN_LOCK = (
    "v6.8: kvm_xen_set_evtchn()'s slow path and KVM_XEN_HVM_SET_ATTR both hold xen_lock "
    "(the lock 7a36d680658b removed)"
)
_NO_XEN_LOCK = (
    "without xen_lock and without 6addfcf27139 the slow-path refresh of shared_info races its "
    "deactivate/reactivate; 7a36d680658b's message relies on 6addfcf27139 ('Now that the "
    "gfn_to_pfn_cache has its own self-sufficient locking')"
)
_V69_SELF = "v6.9: refresh_lock covers (de)activation (6addfcf27139), so dropping xen_lock is safe"
_RECURSIVE = (
    "v6.8: kvm_xen_vcpu_get_attr(TIMER) holds xen_lock and kvm_xen_inject_timer_irqs -> "
    "kvm_xen_set_evtchn takes it again when shared_info is invalid (Sean, 2024-02-06, "
    "<ZcJ9bXxU_Pthq_eh@google.com>)"
)
_FIXED_RECURSIVE = "7a36d680658b (v2 5/8) stops taking xen_lock in kvm_xen_set_evtchn()"
_TEARDOWN = (
    "kvm_xen_destroy_vcpu runs from kvm_destroy_vm on the last kvm reference, after every vCPU fd "
    "(and so KVM_RUN) is gone"
)
_TEARDOWN_SEAN = (
    "kvm_xen_destroy_vcpu holds no vcpu->mutex (Sean, 2024-01-17), so the contract's assert fires"
)
_DESTROY = (
    "with no refresh_lock in deactivate (v6.2..v6.8) a refresh running beside kvm_xen_destroy_vcpu "
    "installs a valid mapping into the destroyed cache"
)
_MMU_LOCKED = (
    "mmu_notifier_retry_cache() runs with gpc->lock held in hva_to_pfn_retry() (v6.8, v6.9), so an "
    "invalidation either forces a retry or finds the installed pfn and clears valid"
)
_MMU_OUTSIDE = (
    "every posted rework calls mmu_notifier_retry_cache() before retaking gpc->lock (v2 8/8 "
    "<20240227115648.3104-9-dwmw2@infradead.org>): an invalidation in the gap is missed "
    "(docs/findings/pfncache-retry-check-outside-lock.md)"
)
_RECHECK = "our fix repeats mmu_notifier_retry_cache() under gpc->lock next to the active/uhva checks"
_WAIT = (
    "[PATCH v3 3/5] <20240821202814.711673-3-dwmw2@infradead.org> waits before GUP; the retry "
    "check stays under gpc->lock"
)
_SPIN = (
    "mainline retries while mn_active_invalidate_count != 0 whatever the range: it spins, but "
    "every iteration is GUP + map + locked check, so nothing stale is installed"
)

_V68_XEN = ("pre-9f87791d686d", "v6.8", "seed-v1", "seed-v2", "6addfcf27139", "sean-contract")
_SEED_RACE = (
    ("pre-9f87791d686d", "ok", _PRE),
    ("v6.8", "bug", _REUSE + "; reactivation then hits KVM_BUG_ON(gpc->valid) (5762cb10235)"),
    ("v6.8-no-xen-lock", "bug", _REUSE + "; xen.c plays no part in this race"),
    ("seed-v1", "bug", _V1_UHVA + ": a fresh mapping lands in the deactivated cache, KVM_BUG_ON"),
    ("seed-v2", "ok", _ACTIVE),
    ("6addfcf27139", "ok", _REFRESH_LOCK),
    ("v6.9", "ok", _REFRESH_LOCK),
    ("seed-final", "ok", _REFRESH_LOCK + "; " + _ACTIVE),
    ("seed-final-recheck", "ok", _REFRESH_LOCK + "; " + _ACTIVE),
    ("sean-contract", "bug", _SEAN),
)
_UNMAPPED = "; the khva memunmap'ed by deactivate is then dereferenced: Woodhouse's oops"
_SEED_RACE_IOMEM = tuple(
    (v, verdict, fact + (_UNMAPPED if v in ("v6.8", "v6.8-no-xen-lock") else ""))
    for v, verdict, fact in _SEED_RACE
)

VERDICTS: tuple[tuple[str, str, str, str], ...] = (
    *(("pfncache.seed_race", v, verdict, fact) for v, verdict, fact in _SEED_RACE),
    *(("pfncache.seed_race_iomem", v, verdict, fact) for v, verdict, fact in _SEED_RACE_IOMEM),
    *(
        ("pfncache.seed_race_vcpu_mutex", v, "ok", _VCPU_MUTEX)
        for v in (
            "pre-9f87791d686d",
            "v6.8",
            "v6.8-no-xen-lock",
            "seed-v1",
            "seed-v2",
            "6addfcf27139",
            "v6.9",
            "seed-final",
            "seed-final-recheck",
            "sean-contract",
        )
    ),
    *(
        ("pfncache.xen_callers", v, "ok", _VCPU_MUTEX + "; " + _XEN_LOCK)
        for v in ("pre-9f87791d686d", "v6.8", "seed-v1", "seed-v2", "sean-contract")
    ),
    ("pfncache.xen_callers", "6addfcf27139", "ok", _REFRESH_LOCK),
    ("pfncache.xen_callers", "v6.9", "ok", _V69_SELF),
    ("pfncache.xen_callers", "v6.8-no-xen-lock", "bug", _NO_XEN_LOCK),
    *(("pfncache.shinfo_evtchn", v, "ok", _XEN_LOCK) for v in _V68_XEN),
    ("pfncache.shinfo_evtchn", "v6.8-no-xen-lock", "bug", _NO_XEN_LOCK),
    ("pfncache.shinfo_evtchn", "v6.9", "ok", _V69_SELF),
    ("pfncache.shinfo_evtchn", "seed-final", "ok", _V69_SELF + "; " + _ACTIVE),
    ("pfncache.shinfo_evtchn", "seed-final-recheck", "ok", _V69_SELF + "; " + _ACTIVE),
    *(
        ("pfncache.teardown", v, "ok", _TEARDOWN)
        for v in (
            "pre-9f87791d686d",
            "v6.8",
            "v6.8-no-xen-lock",
            "seed-v1",
            "seed-v2",
            "6addfcf27139",
            "v6.9",
            "seed-final",
            "seed-final-recheck",
        )
    ),
    ("pfncache.teardown", "sean-contract", "bug", _TEARDOWN_SEAN),
    ("pfncache.teardown_contract", "pre-9f87791d686d", "ok", _PRE),
    ("pfncache.teardown_contract", "v6.8", "bug", _DESTROY),
    ("pfncache.teardown_contract", "v6.8-no-xen-lock", "bug", _DESTROY),
    ("pfncache.teardown_contract", "seed-v1", "bug", _V1_UHVA + ", not !active: " + _DESTROY),
    ("pfncache.teardown_contract", "seed-v2", "ok", _ACTIVE),
    ("pfncache.teardown_contract", "6addfcf27139", "ok", _REFRESH_LOCK),
    ("pfncache.teardown_contract", "v6.9", "ok", _REFRESH_LOCK),
    ("pfncache.teardown_contract", "seed-final", "ok", _REFRESH_LOCK + "; " + _ACTIVE),
    ("pfncache.teardown_contract", "seed-final-recheck", "ok", _REFRESH_LOCK + "; " + _ACTIVE),
    ("pfncache.teardown_contract", "sean-contract", "bug", _TEARDOWN_SEAN),
    *(
        ("pfncache.mmu_notifier", v, "ok", _MMU_LOCKED)
        for v in ("pre-9f87791d686d", "v6.8", "v6.8-no-xen-lock", "6addfcf27139", "v6.9", "sean-contract")
    ),
    ("pfncache.mmu_notifier", "seed-v1", "bug", _MMU_OUTSIDE),
    ("pfncache.mmu_notifier", "seed-v2", "bug", _MMU_OUTSIDE),
    ("pfncache.mmu_notifier", "seed-final", "bug", _MMU_OUTSIDE),
    ("pfncache.mmu_notifier", "seed-final-recheck", "ok", _RECHECK),
    ("pfncache.mmu_notifier", "v6.9-wait-v3", "ok", _WAIT),
    *(("pfncache.xen_timer_get_attr", v, "bug", _RECURSIVE) for v in _V68_XEN if v != "pre-9f87791d686d"),
    *(
        ("pfncache.xen_timer_get_attr", v, "ok", _FIXED_RECURSIVE)
        for v in ("v6.8-no-xen-lock", "v6.9", "seed-final", "seed-final-recheck")
    ),
    ("pfncache.retry_unrelated_invalidation", "v6.9", "ok", _SPIN),
    ("pfncache.retry_unrelated_invalidation", "v6.9-wait-v3", "ok", _WAIT),
)
