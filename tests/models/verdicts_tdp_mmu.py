"""Seed 002 (TDP MMU roots): every bundled verdict and the kernel fact it rests on (issue 23).

Reviewed against the seed thread, Ben Gardon's v1 2/3, a889ea54b3da and the v5.13/v6.9 root
code (docs/models/seed002-tdp-mmu.md says where each was read).  tests/models/test_verdicts.py
asserts this table equals the scenarios' expect=, both ways.
"""

from __future__ import annotations

_IGNORED_PUT = "v5.11-rc2 walkers ignore kvm_mmu_put_root()'s result (the '-' lines of Ben's v1 2/3)"
_BEN_V1 = (
    "Ben's v1 2/3 <20210105233136.2140335-2-bgardon@google.com> frees the root inside "
    "list_for_each_entry, which then reads root->link.next (Maciej's LIST_POISON1 GPF, 2021-01-06)"
)
_A889 = "a889ea54b3da takes the next root's reference before the put that may free the current one"
_LAT = "list_add_tail only changes which roots a walk visits; the reference rules are a889ea54b3da's"
_V513 = (
    "v5.13: refcount_inc_not_zero gets, puts to zero only under the write lock or slots_lock, "
    "list_del_rcu + call_rcu frees (11cccf5c0472, c0e64238ac53, b7cccd397f31)"
)
_V69 = (
    "v6.9: the TDP MMU holds its own root reference until the root is invalidated (edbdb43fc96b) "
    "and gets use refcount_inc_not_zero"
)
_LOST = (
    "a plain read/set get under the read lock loses a concurrent put (reads 2, put makes 1, "
    "stores 3): the root never reaches 0 and leaks -- why v6.9 gets with refcount_inc_not_zero"
)

VERDICTS: tuple[tuple[str, str, str, str], ...] = (
    # root_reload: Maciej's memslot_move_test
    (
        "tdp_mmu.root_reload",
        "v5.11-rc2",
        "bug",
        _IGNORED_PUT + ": the vCPU's reload finds the root at 0, BUG at mmu_internal.h:100 (Maciej's report)",
    ),
    ("tdp_mmu.root_reload", "ben-v1", "bug", _BEN_V1),
    (
        "tdp_mmu.root_reload",
        "list-safe",
        "ok",
        "with one root the next entry list_for_each_entry_safe caches is the list head, never freed",
    ),
    ("tdp_mmu.root_reload", "a889ea54b3da", "ok", _A889 + "; the put that reaches 0 frees the root"),
    ("tdp_mmu.root_reload", "list-add-tail", "ok", _LAT),
    ("tdp_mmu.root_reload", "v5.13", "ok", _V513),
    ("tdp_mmu.root_reload", "v6.9", "ok", _V69),
    ("tdp_mmu.root_reload", "v6.9-plain-get", "bug", _LOST),
    # next_root_freed: Sean's "next entry is deleted"
    (
        "tdp_mmu.next_root_freed",
        "v5.11-rc2",
        "bug",
        _IGNORED_PUT + ": the walk's put leaves R2 at 0 on the list, leaked at VM destroy (Ben's prediction)",
    ),
    ("tdp_mmu.next_root_freed", "ben-v1", "bug", _BEN_V1),
    (
        "tdp_mmu.next_root_freed",
        "list-safe",
        "bug",
        "Sean in the seed mail: list_for_each_entry_safe caches next = R2, which vCPU 2 frees while the walk yields",
    ),
    ("tdp_mmu.next_root_freed", "a889ea54b3da", "ok", _A889 + ", reading it under mmu_lock after the yield"),
    ("tdp_mmu.next_root_freed", "list-add-tail", "ok", _LAT),
    ("tdp_mmu.next_root_freed", "v5.13", "ok", _V513 + "; the walk re-reads next under rcu_read_lock"),
    ("tdp_mmu.next_root_freed", "v6.9", "ok", _V69 + ", so vCPU 2 dropping a valid root frees nothing"),
    ("tdp_mmu.next_root_freed", "v6.9-plain-get", "bug", _LOST),
    # concurrent_put: two walkers and a vCPU's put on one root
    (
        "tdp_mmu.concurrent_put",
        "v5.11-rc2",
        "bug",
        _IGNORED_PUT + ": the zapper leaves R at 0 on the list and vCPU 1 finds it (BUG_ON) or it leaks",
    ),
    ("tdp_mmu.concurrent_put", "ben-v1", "bug", _BEN_V1),
    (
        "tdp_mmu.concurrent_put",
        "list-safe",
        "ok",
        "one root: the cached next is the list head, and vCPU 1 reuses R or adds its root before the walk",
    ),
    ("tdp_mmu.concurrent_put", "a889ea54b3da", "ok", _A889),
    ("tdp_mmu.concurrent_put", "list-add-tail", "ok", _LAT),
    (
        "tdp_mmu.concurrent_put",
        "v5.13",
        "ok",
        _V513 + "; no read-lock walker ever meets a dying root there (Sean: 'no existing bugs')",
    ),
    (
        "tdp_mmu.concurrent_put",
        "v6.9",
        "ok",
        _V69 + "; alloc and free under the read lock since 576a15de8d29",
    ),
    (
        "tdp_mmu.concurrent_put",
        "v6.9-plain-get",
        "bug",
        "a plain get under the read lock races vCPU 0's put: BUG_ON on 0, or a root resurrected after call_rcu",
    ),
    # vm_destroy: Ben's predicted leak
    (
        "tdp_mmu.vm_destroy",
        "v5.11-rc2",
        "bug",
        _IGNORED_PUT + ": WARN_ON(!list_empty(tdp_mmu_roots)) at uninit and kmemleak, as Ben predicted",
    ),
    ("tdp_mmu.vm_destroy", "ben-v1", "bug", _BEN_V1),
    (
        "tdp_mmu.vm_destroy",
        "list-safe",
        "ok",
        "the put that reaches 0 frees the root and the cached next of the one-root list is the head",
    ),
    ("tdp_mmu.vm_destroy", "a889ea54b3da", "ok", _A889 + "; the put that reaches 0 frees the root"),
    ("tdp_mmu.vm_destroy", "list-add-tail", "ok", _LAT),
    ("tdp_mmu.vm_destroy", "v5.13", "ok", _V513),
    ("tdp_mmu.vm_destroy", "v6.9", "ok", _V69 + "; kvm_mmu_uninit_tdp_mmu invalidates and zaps every root"),
    ("tdp_mmu.vm_destroy", "v6.9-plain-get", "bug", _LOST),
)
