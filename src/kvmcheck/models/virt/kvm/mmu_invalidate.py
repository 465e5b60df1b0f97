"""The mmu_invalidate_seq / mmu_invalidate_in_progress pairing, with its barriers (issue 20 item 3).

What is modelled, and where it was read:

* ``kvm_mmu_invalidate_begin()`` / ``kvm_mmu_invalidate_end()`` (virt/kvm/kvm_main.c,
  v6.8; ``mmu_notifier_count``/``mmu_notifier_seq`` before v6.1): under ``kvm->mmu_lock``
  the begin raises ``mmu_invalidate_in_progress``; the end bumps
  ``mmu_invalidate_seq``, then ``smp_wmb()``, then lowers ``mmu_invalidate_in_progress``.
* ``mmu_invalidate_retry()`` (include/linux/kvm_host.h; ``mmu_notifier_retry()`` before
  v6.1): ``in_progress`` non-zero -> retry; then ``smp_rmb()``; then
  ``mmu_invalidate_seq != mmu_seq`` -> retry.  Its comment says why the barrier is
  there: the read of the count must happen before the read of the sequence, pairing
  with the ``smp_wmb()`` in the end, "to make sure that the caller either sees the old
  (non-zero) value of [the count] or the new (incremented) value of [the sequence]";
  and it names the caller that needs it: PowerPC Book3s HV calls it "under a per-page
  lock rather than under kvm->mmu_lock, for scalability, so can't rely on
  kvm->mmu_lock to keep things ordered".  (Read in the v5.x text of the function as
  indexed by the code search, `mmu_notifier_retry`; the v6.8 text differs only in the
  names.)
* The fault side (arch/x86/kvm/mmu/mmu.c, and the PPC HV fault): sample
  ``mmu_seq = kvm->mmu_invalidate_seq`` then ``smp_rmb()`` before translating the hva.

The C accesses to both counters are plain; here they are ``READ_ONCE``/``WRITE_ONCE``
(marked) so that the LKMM gives the outcome a meaning: with plain accesses herd7 flags
a data race and says nothing about the values.  That is the one liberty taken.

Variants (``VARIANTS``): the kernel's pairing, and mutants, each one barrier removed
or weakened:

  v6.8                 smp_wmb() in the end, smp_rmb() in mmu_invalidate_retry()
  no-rmb-in-retry      mutant: mmu_invalidate_retry() without its smp_rmb()
  no-wmb-in-end        mutant: kvm_mmu_invalidate_end() without its smp_wmb()
  release              the end lowers the count with smp_store_release() instead of
                       smp_wmb(); WRITE_ONCE() (also correct under the LKMM)
  release-weakened     mutant: that smp_store_release() weakened to WRITE_ONCE()
"""

from __future__ import annotations

from kvmcheck.kernel import READ_ONCE, WRITE_ONCE, Struct, smp_rmb, smp_store_release, smp_wmb

VARIANTS = ("v6.8", "no-rmb-in-retry", "no-wmb-in-end", "release", "release-weakened")


class KvmMmuInvalidate(Struct):
    """The two counters of ``struct kvm`` the pairing is about."""

    __locking__ = {"mmu_invalidate_in_progress": {"write": "mmu_lock", "read": ()}}

    mmu_invalidate_seq: int = 0
    mmu_invalidate_in_progress: int = 0


def kvm_mmu_invalidate_begin(kvm: KvmMmuInvalidate, variant: str) -> None:
    """kvm_mmu_invalidate_begin(): under mmu_lock, in_progress++."""
    WRITE_ONCE(kvm, "mmu_invalidate_in_progress", READ_ONCE(kvm, "mmu_invalidate_in_progress") + 1)


def kvm_mmu_invalidate_end(kvm: KvmMmuInvalidate, variant: str) -> None:
    """kvm_mmu_invalidate_end(): under mmu_lock, seq++, smp_wmb(), in_progress--."""
    WRITE_ONCE(kvm, "mmu_invalidate_seq", READ_ONCE(kvm, "mmu_invalidate_seq") + 1)
    left = READ_ONCE(kvm, "mmu_invalidate_in_progress") - 1
    if variant in ("release", "release-weakened"):
        if variant == "release":
            smp_store_release(kvm, "mmu_invalidate_in_progress", left)
        else:
            WRITE_ONCE(kvm, "mmu_invalidate_in_progress", left)
        return
    if variant != "no-wmb-in-end":
        smp_wmb()
    WRITE_ONCE(kvm, "mmu_invalidate_in_progress", left)


def mmu_invalidate_retry(kvm: KvmMmuInvalidate, mmu_seq: int, variant: str) -> bool:
    """mmu_invalidate_retry(): an invalidation is running, or one ended since ``mmu_seq``."""
    if READ_ONCE(kvm, "mmu_invalidate_in_progress"):
        return True
    if variant != "no-rmb-in-retry":
        smp_rmb()
    return bool(READ_ONCE(kvm, "mmu_invalidate_seq") != mmu_seq)
