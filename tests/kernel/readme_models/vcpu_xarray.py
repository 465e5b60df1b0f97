"""vCPU lookup in an XArray against vCPU removal (written from README's "Writing a model":
the XArray, embedded primitives and KASAN).

Threads: lookup (xa_load, then takes a reference on the vCPU), remove (xa_erase, then
drops the table's reference and frees on the last one).
Expected: "no-rcu" looks up outside any RCU section while remove frees at once: the
refcount_inc lands on freed memory (bug: use-after-free); "rcu" looks up under
rcu_read_lock with refcount_inc_not_zero and remove waits a grace period (ok, complete).
"""

from __future__ import annotations

from typing import Any

from kvmcheck import join, scenario, spawn
from kvmcheck.kernel import (
    Refcount,
    Struct,
    XArray,
    kfree,
    kmalloc,
    rcu_read_lock,
    rcu_read_unlock,
    refcount_dec_and_test,
    refcount_inc,
    refcount_inc_not_zero,
    synchronize_rcu,
    xa_erase,
    xa_load,
    xa_store,
)


class Vcpu(Struct):
    id: int = 0

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.users = Refcount(1)


def put_vcpu(v: Vcpu, rcu: bool) -> None:
    if refcount_dec_and_test(v.users):
        if rcu:
            synchronize_rcu()
        kfree(v)


@scenario(name="readme.vcpu_lookup", expect={"no-rcu": "bug", "rcu": "ok"}, kcsan=False)
def vcpu_lookup(variant: str) -> None:
    rcu = variant == "rcu"
    vcpus = XArray("kvm->vcpu_array")
    xa_store(vcpus, 0, kmalloc(Vcpu, id=0))

    def lookup() -> None:
        if rcu:
            rcu_read_lock()
        v = xa_load(vcpus, 0)
        got = False
        if v is not None:
            if rcu:
                got = refcount_inc_not_zero(v.users)
            else:
                refcount_inc(v.users)
                got = True
        if rcu:
            rcu_read_unlock()
        if got:
            put_vcpu(v, rcu)

    def remove() -> None:
        v = xa_erase(vcpus, 0)
        put_vcpu(v, rcu)

    join(spawn(lookup), spawn(remove))
