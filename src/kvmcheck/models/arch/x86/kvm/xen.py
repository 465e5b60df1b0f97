"""arch/x86/kvm/xen.c -- the users of the gfn_to_pfn caches that matter to seed 000.

Modelled version: v6.8, read in ultrarisc/linux-6.8@e2f1f355 (a 6.8.12 stable
tree: kvm_gpc_init() still takes vcpu and usage, kvm_xen_set_evtchn() still
takes xen_lock).  The one later patch modelled, 7a36d680658b ("KVM: x86/xen:
fix recursive deadlock in timer injection", v6.9, [PATCH v2 5/8] of
2024-02-27), is the subclass ``Xen_7a36d680658b`` at the end: it stops taking
kvm->arch.xen.xen_lock in kvm_xen_set_evtchn() because, since 6addfcf27139,
the cache's own refresh_lock serialises refresh against (de)activation.

Who calls what, holding which locks (v6.8):
  __kvm_xen_has_interrupt      vCPU thread (KVM_RUN: the vcpu ioctl holds vcpu->mutex,
                               vcpu_run holds kvm->srcu -- the *callers* take them);
                               read_lock_irqsave on vcpu_info; refreshes when the
                               check fails and it may sleep; reads evtchn_upcall_pending.
  kvm_xen_set_evtchn_fast      any context, atomic (irqfd wakeup via
                               kvm_arch_set_irq_inatomic; the Xen timer): kvm->srcu;
                               read_lock_irqsave on shared_info, then on the target's
                               vcpu_info (read_lock, not trylock in v6.8); never refreshes;
                               first tests vcpu_info_cache.active unlocked.  -EWOULDBLOCK
                               when shared_info is not valid.
  kvm_xen_set_evtchn           process context (irqfd_inject work via evtchn_set_fn,
                               KVM_XEN_HVM_EVTCHN_SEND, EVTCHNOP_send, timer injection):
                               fast path; on -EWOULDBLOCK takes xen_lock (v6.8) and loops
                               {fast path; kvm_gpc_refresh(shinfo) under kvm->srcu}.
  kvm_xen_hvm_set_attr         VM ioctl (SHARED_INFO): xen_lock, then
    -> kvm_xen_shared_info_init  kvm->srcu; deactivate, or activate in a loop until the
                               cache is valid under its read lock, then write the wall
                               clock through khva.
  kvm_xen_vcpu_set_attr        vCPU ioctl (vcpu->mutex) + xen_lock + kvm->srcu:
                               deactivate (INVALID gpa) or activate vcpu_info.
  xen_timer_callback           the vCPU's Xen timer (hrtimer, hardirq): fast path only; if
                               shared_info is not valid (-EWOULDBLOCK) it leaves the event in
                               timer_pending for kvm_xen_inject_timer_irqs() (77c9b9dea4fb).
  kvm_xen_vcpu_get_attr(TIMER) vCPU ioctl (vcpu->mutex) + xen_lock: hrtimer_cancel(), then
                               kvm_xen_inject_timer_irqs() -> kvm_xen_set_evtchn(), whose
                               slow path takes xen_lock AGAIN in v6.8: the recursive deadlock
                               7a36d680658b fixed (Sean's report on "[PATCH v3] KVM: x86: Use
                               fast path for Xen timer delivery", 2024-02-06,
                               <ZcJ9bXxU_Pthq_eh@google.com>).
  kvm_xen_destroy_vcpu/_vm     VM teardown (kvm_destroy_vm, last reference gone): no
                               vcpu->mutex, no xen_lock -- and no vCPU thread or ioctl
                               can still be running (they hold references to the VM).
Lock order: vcpu->mutex -> xen_lock -> kvm->srcu -> (refresh_lock) -> gpc->lock.
"""

from __future__ import annotations

from typing import Any

from kvmcheck.kernel import (
    Atomic,
    KernelMapping,
    SpinLock,
    Struct,
    atomic_inc,
    atomic_read,
    atomic_set,
    in_atomic,
    mutex_lock,
    mutex_unlock,
    read_lock_irq,
    read_lock_irqsave,
    read_unlock_irq,
    read_unlock_irqrestore,
    spin_lock,
    spin_unlock,
    spin_until_cond,
    srcu_read_lock,
    srcu_read_unlock,
)
from kvmcheck.kernel._core import bug
from kvmcheck.models.build import Subsystem
from kvmcheck.models.virt.kvm.kvm_host import INVALID_GPA, Kvm, KvmVcpu
from kvmcheck.models.virt.kvm.pfncache import (
    GfnToPfnCache,
    c_name,
    kvm_gpc_activate,
    kvm_gpc_check,
    kvm_gpc_deactivate,
    kvm_gpc_init,
    kvm_gpc_refresh,
)

VCPU_INFO_SIZE = 64
SHARED_INFO_SIZE = 4096  # PAGE_SIZE: kvm_xen_set_evtchn_fast checks the whole page
EWOULDBLOCK, EINVAL = -11, -22


HRTIMER_STATE_INACTIVE, HRTIMER_STATE_ENQUEUED, HRTIMER_CALLBACK_RUNNING = 0, 1, 2


class XenTimer(Struct):
    """``struct kvm_vcpu_xen``'s timer: ``struct hrtimer timer`` (its state), ``timer_expires``,
    ``atomic_t timer_pending``.

    Only the hrtimer behaviour xen.c relies on is modelled: a queued timer fires
    once (__run_hrtimer), and hrtimer_cancel() dequeues it or waits for a running
    callback to return (kernel/time/hrtimer.c).
    """

    __locking__ = {"state": "base_lock"}

    state: int = HRTIMER_STATE_INACTIVE
    timer_expires: int = 0  # u64, plain accesses (KCSAN is off in these scenarios)

    def __init__(self) -> None:
        super().__init__()
        self.base_lock = SpinLock("hrtimer_cpu_base->lock")
        self.timer_pending = Atomic(0, name="vcpu->arch.xen.timer_pending")

    def _kc_label(self) -> str:
        return "vcpu->arch.xen.timer"


class KvmVcpuXen:
    """``struct kvm_vcpu_xen``: the per-vCPU caches (only vcpu_info is modelled) and the timer."""

    def __init__(self) -> None:
        self.vcpu_info_cache = GfnToPfnCache("vcpu_info_cache")
        self.timer = XenTimer()


class KvmXen:
    """``struct kvm_xen``: the VM-wide shared_info cache."""

    def __init__(self) -> None:
        self.shinfo_cache = GfnToPfnCache("shinfo_cache")


def xen_vcpu(v: KvmVcpu) -> KvmVcpuXen:
    """``vcpu->arch.xen`` (struct kvm_vcpu_xen, arch/x86/include/asm/kvm_host.h), created on first use."""
    x: KvmVcpuXen = v.__dict__.setdefault("xen", KvmVcpuXen())
    return x


def xen_vm(kvm: Kvm) -> KvmXen:
    """``kvm->arch.xen`` (struct kvm_xen), created on first use."""
    x: KvmXen = kvm.__dict__.setdefault("xen", KvmXen())
    return x


# Dereferencing gpc->khva is inline in the C code ("vi = gpc->khva; vi->field"):
# reading ``khva.page`` is the access through the kernel address (it faults if
# a memremap was torn down), ``.data`` the access to the memory behind it (a
# use-after-free if that was a struct page that went back to the allocator).
def khva_of(gpc: GfnToPfnCache) -> KernelMapping:
    """``gpc->khva`` as the caller is about to dereference it (a NULL one oopses)."""
    khva = gpc.khva
    if khva is None:
        bug(
            "null-deref",
            f"dereference of {gpc.name}->khva == NULL after kvm_gpc_check() passed",
            "BUG: kernel NULL pointer dereference, address: 0000000000000000",
        )
        raise AssertionError("unreachable: bug() ends the thread")
    return khva


class Xen(Subsystem):
    """arch/x86/kvm/xen.c at v6.8 (the functions that use the gfn_to_pfn caches)."""

    subsystem = "xen"
    version = "v6.8"

    def kvm_xen_init_vcpu(self, v: KvmVcpu) -> None:
        """kvm_xen_init_vcpu(): kvm_gpc_init() of the vCPU's caches (sean-contract's guard: vcpu->mutex)."""
        kvm_gpc_init(xen_vcpu(v).vcpu_info_cache, v.kvm, v.mutex)

    def kvm_xen_init_vm(self, kvm: Kvm) -> None:
        """kvm_xen_init_vm(): kvm_gpc_init() of the shared_info cache (guard: xen_lock)."""
        kvm_gpc_init(xen_vm(kvm).shinfo_cache, kvm, kvm.xen_lock)

    @c_name("__kvm_xen_has_interrupt")
    def _kvm_xen_has_interrupt(self, v: KvmVcpu) -> int:
        """__kvm_xen_has_interrupt(): is an upcall pending in vcpu_info? (vCPU thread)."""
        gpc = xen_vcpu(v).vcpu_info_cache
        assert gpc.lock is not None
        flags = read_lock_irqsave(gpc.lock)
        while not kvm_gpc_check(gpc, VCPU_INFO_SIZE):
            read_unlock_irqrestore(gpc.lock, flags)
            if in_atomic():
                return 1  # cannot refresh here; assume an event is pending
            if kvm_gpc_refresh(gpc, VCPU_INFO_SIZE):
                return 0  # the gpa is no longer valid: nothing to report
            flags = read_lock_irqsave(gpc.lock)
        rc = int(khva_of(gpc).page.data)  # ((struct vcpu_info *)gpc->khva)->evtchn_upcall_pending
        read_unlock_irqrestore(gpc.lock, flags)
        return rc

    def kvm_xen_set_evtchn_fast(self, kvm: Kvm, v: KvmVcpu) -> int:
        """kvm_xen_set_evtchn_fast(): mark an event pending in shared_info, then in vcpu_info."""
        vgpc = xen_vcpu(v).vcpu_info_cache
        if not vgpc.active:  # v6.8 tests this unlocked
            return EINVAL
        gpc = xen_vm(kvm).shinfo_cache
        assert gpc.lock is not None
        assert vgpc.lock is not None
        idx = srcu_read_lock(kvm.srcu)
        locked = gpc.lock  # the cache lock to drop at out_rcu
        flags = read_lock_irqsave(locked)
        if not kvm_gpc_check(gpc, SHARED_INFO_SIZE):
            r = EWOULDBLOCK  # goto out_rcu
        else:
            khva_of(gpc).page.data = 1  # test_and_set_bit(port, shinfo->evtchn_pending)
            read_unlock_irqrestore(locked, flags)
            locked = vgpc.lock
            flags = read_lock_irqsave(locked)
            if kvm_gpc_check(vgpc, VCPU_INFO_SIZE):
                khva_of(vgpc).page.data = 1  # vcpu_info->evtchn_upcall_pending = 1
                r = 1
            else:
                r = 1  # the in-kernel evtchn_pending_sel is set and the vCPU kicked (not modelled)
        read_unlock_irqrestore(locked, flags)  # out_rcu:
        srcu_read_unlock(kvm.srcu, idx)
        return r

    def kvm_xen_set_evtchn(self, kvm: Kvm, v: KvmVcpu) -> int:
        """kvm_xen_set_evtchn(): the slow path -- under xen_lock (v6.8), refresh shared_info and retry."""
        rc = self.kvm_xen_set_evtchn_fast(kvm, v)
        if rc != EWOULDBLOCK:
            return rc
        self.xen_lock(kvm)
        while True:
            rc = self.kvm_xen_set_evtchn_fast(kvm, v)
            if rc != EWOULDBLOCK:
                break
            idx = srcu_read_lock(kvm.srcu)
            rc = kvm_gpc_refresh(xen_vm(kvm).shinfo_cache, SHARED_INFO_SIZE)
            srcu_read_unlock(kvm.srcu, idx)
            if rc:
                break
        self.xen_unlock(kvm)
        return rc

    def xen_lock(self, kvm: Kvm) -> None:
        """mutex_lock(&kvm->arch.xen.xen_lock) in kvm_xen_set_evtchn() (v6.8)."""
        mutex_lock(kvm.xen_lock)

    def xen_unlock(self, kvm: Kvm) -> None:
        """mutex_unlock(&kvm->arch.xen.xen_lock) in kvm_xen_set_evtchn() (v6.8)."""
        mutex_unlock(kvm.xen_lock)

    def kvm_xen_shared_info_init(self, kvm: Kvm, gpa: int) -> int:
        """kvm_xen_shared_info_init(): (de)activate shared_info; on activation write the wall clock."""
        gpc = xen_vm(kvm).shinfo_cache
        assert gpc.lock is not None
        idx = srcu_read_lock(kvm.srcu)
        ret = 0
        if gpa == INVALID_GPA:
            kvm_gpc_deactivate(gpc)
        else:
            while True:
                ret = kvm_gpc_activate(gpc, gpa, SHARED_INFO_SIZE)
                if ret:
                    break
                read_lock_irq(gpc.lock)  # "It could be invalid again already"
                if gpc.valid:
                    shinfo = khva_of(gpc)
                    shinfo.page.data = shinfo.page.data  # wc->version, wc->sec ... through khva
                    read_unlock_irq(gpc.lock)
                    break
                read_unlock_irq(gpc.lock)
        srcu_read_unlock(kvm.srcu, idx)
        return int(ret)

    def kvm_xen_hvm_set_attr_shared_info(self, kvm: Kvm, gpa: int) -> int:
        """kvm_xen_hvm_set_attr(KVM_XEN_ATTR_TYPE_SHARED_INFO): the VM ioctl, under xen_lock."""
        mutex_lock(kvm.xen_lock)
        r = self.kvm_xen_shared_info_init(kvm, gpa)
        mutex_unlock(kvm.xen_lock)
        return r

    def kvm_xen_vcpu_set_attr_vcpu_info(self, v: KvmVcpu, gpa: int) -> int:
        """kvm_xen_vcpu_set_attr(KVM_XEN_VCPU_ATTR_TYPE_VCPU_INFO): vcpu ioctl, xen_lock, kvm->srcu."""
        kvm = v.kvm
        gpc = xen_vcpu(v).vcpu_info_cache
        mutex_lock(v.mutex)  # kvm_vcpu_ioctl()
        mutex_lock(kvm.xen_lock)
        idx = srcu_read_lock(kvm.srcu)
        if gpa == INVALID_GPA:
            kvm_gpc_deactivate(gpc)
            r = 0
        else:
            r = kvm_gpc_activate(gpc, gpa, VCPU_INFO_SIZE)
        srcu_read_unlock(kvm.srcu, idx)
        mutex_unlock(kvm.xen_lock)
        mutex_unlock(v.mutex)
        return int(r)

    def kvm_xen_destroy_vcpu(self, v: KvmVcpu) -> None:
        """kvm_xen_destroy_vcpu(): deactivate the vCPU's caches, holding neither vcpu->mutex nor xen_lock."""
        kvm_gpc_deactivate(xen_vcpu(v).vcpu_info_cache)

    def kvm_xen_destroy_vm(self, kvm: Kvm) -> None:
        """kvm_xen_destroy_vm(): deactivate shared_info -- without xen_lock."""
        kvm_gpc_deactivate(xen_vm(kvm).shinfo_cache)

    # -- the Xen timer (77c9b9dea4fb "KVM: x86/xen: Use fast path for Xen timer delivery", v6.8) --
    def kvm_xen_start_timer(self, v: KvmVcpu, guest_abs: int) -> None:
        """kvm_xen_start_timer(): arm the vCPU's timer (the deadline is in the future here)."""
        t = xen_vcpu(v).timer
        if t.timer_expires:
            hrtimer_cancel(t)
        atomic_set(t.timer_pending, 0)
        t.timer_expires = guest_abs
        hrtimer_start(t)

    def xen_timer_callback(self, v: KvmVcpu) -> int:
        """xen_timer_callback(): deliver through the fast path, else leave it in timer_pending."""
        t = xen_vcpu(v).timer
        if atomic_read(t.timer_pending):
            return HRTIMER_NORESTART
        rc = self.kvm_xen_set_evtchn_fast(v.kvm, v)
        if rc != EWOULDBLOCK:
            t.timer_expires = 0
            return HRTIMER_NORESTART
        atomic_inc(t.timer_pending)  # then kvm_make_request(KVM_REQ_UNBLOCK) + kick (not modelled)
        return HRTIMER_NORESTART

    def kvm_xen_inject_timer_irqs(self, v: KvmVcpu) -> None:
        """kvm_xen_inject_timer_irqs(): deliver a timer event left pending, through kvm_xen_set_evtchn()."""
        t = xen_vcpu(v).timer
        if atomic_read(t.timer_pending) > 0:
            self.kvm_xen_set_evtchn(v.kvm, v)
            t.timer_expires = 0
            atomic_set(t.timer_pending, 0)

    @c_name("kvm_xen_vcpu_get_attr")
    def kvm_xen_vcpu_get_attr_timer(self, v: KvmVcpu) -> int:
        """kvm_xen_vcpu_get_attr(KVM_XEN_VCPU_ATTR_TYPE_TIMER): vcpu ioctl (vcpu->mutex), under xen_lock."""
        kvm = v.kvm
        t = xen_vcpu(v).timer
        mutex_lock(v.mutex)  # kvm_vcpu_ioctl()
        mutex_lock(kvm.xen_lock)
        if t.timer_expires:  # "Ensure a consistent snapshot of state is captured"
            hrtimer_cancel(t)
            self.kvm_xen_inject_timer_irqs(v)
        expires = t.timer_expires  # data->u.timer.expires_ns
        if expires:
            hrtimer_start(t)  # hrtimer_start_expires(): the timer runs on
        mutex_unlock(kvm.xen_lock)
        mutex_unlock(v.mutex)
        return int(expires)


HRTIMER_NORESTART = 0


def hrtimer_start(t: XenTimer) -> None:
    """hrtimer_start() (kernel/time/hrtimer.c): queue the timer."""
    spin_lock(t.base_lock)
    if t.state != HRTIMER_CALLBACK_RUNNING:
        t.state = HRTIMER_STATE_ENQUEUED
    spin_unlock(t.base_lock)


def hrtimer_cancel(t: XenTimer) -> int:
    """hrtimer_cancel(): dequeue the timer, or wait until its running callback has returned."""
    while True:
        spin_lock(t.base_lock)
        state = t.state
        if state == HRTIMER_STATE_ENQUEUED:
            t.state = HRTIMER_STATE_INACTIVE
        spin_unlock(t.base_lock)
        if state != HRTIMER_CALLBACK_RUNNING:
            return int(state == HRTIMER_STATE_ENQUEUED)
        spin_until_cond(
            t, "state", lambda st: st != HRTIMER_CALLBACK_RUNNING
        )  # hrtimer_cancel_wait_running()


def __run_hrtimer(v: KvmVcpu) -> None:
    """__run_hrtimer() (hardirq): run xen_timer_callback() once if the timer is still queued."""
    t = xen_vcpu(v).timer
    spin_lock(t.base_lock)
    if t.state != HRTIMER_STATE_ENQUEUED:
        spin_unlock(t.base_lock)
        return
    t.state = HRTIMER_CALLBACK_RUNNING
    spin_unlock(t.base_lock)
    _xen(v.kvm).xen_timer_callback(v)
    spin_lock(t.base_lock)
    t.state = HRTIMER_STATE_INACTIVE
    spin_unlock(t.base_lock)


class Xen_7a36d680658b(Xen):  # noqa: N801 -- named after the commit
    """7a36d680658b (v6.9): kvm_xen_set_evtchn() no longer takes xen_lock.

    Upstream it only ever ran on top of 6addfcf27139; the v6.8-no-xen-lock build
    pairing it with v6.8's pfncache.c is a counterfactual mutant.
    """

    version = "7a36d680658b"

    def xen_lock(self, kvm: Kvm) -> None:
        """Removed by 7a36d680658b ("just stop taking kvm->arch.xen.xen_lock from kvm_xen_set_evtchn()")."""

    def xen_unlock(self, kvm: Kvm) -> None:
        """Removed by 7a36d680658b."""


# C-style entry points: dispatch to the VM's build of xen.c.
def _xen(kvm: Kvm) -> Any:
    return kvm.build.xen


def kvm_xen_init_vcpu(v: KvmVcpu) -> None:
    """``kvm_xen_init_vcpu()`` of the VM's kernel build."""
    _xen(v.kvm).kvm_xen_init_vcpu(v)


def kvm_xen_init_vm(kvm: Kvm) -> None:
    """``kvm_xen_init_vm()`` of the VM's kernel build."""
    _xen(kvm).kvm_xen_init_vm(kvm)


def __kvm_xen_has_interrupt(v: KvmVcpu) -> int:
    """``__kvm_xen_has_interrupt()`` of the VM's kernel build."""
    r: int = _xen(v.kvm)._kvm_xen_has_interrupt(v)
    return r


def kvm_xen_set_evtchn_fast(kvm: Kvm, v: KvmVcpu) -> int:
    """``kvm_xen_set_evtchn_fast()`` of the VM's kernel build (target vCPU ``v``)."""
    r: int = _xen(kvm).kvm_xen_set_evtchn_fast(kvm, v)
    return r


def kvm_xen_set_evtchn(kvm: Kvm, v: KvmVcpu) -> int:
    """``kvm_xen_set_evtchn()`` of the VM's kernel build (target vCPU ``v``)."""
    r: int = _xen(kvm).kvm_xen_set_evtchn(kvm, v)
    return r


def kvm_xen_hvm_set_attr_shared_info(kvm: Kvm, gpa: int) -> int:
    """``kvm_xen_hvm_set_attr(KVM_XEN_ATTR_TYPE_SHARED_INFO)`` of the VM's kernel build."""
    r: int = _xen(kvm).kvm_xen_hvm_set_attr_shared_info(kvm, gpa)
    return r


def kvm_xen_vcpu_set_attr_vcpu_info(v: KvmVcpu, gpa: int) -> int:
    """``kvm_xen_vcpu_set_attr(KVM_XEN_VCPU_ATTR_TYPE_VCPU_INFO)`` of the VM's kernel build."""
    r: int = _xen(v.kvm).kvm_xen_vcpu_set_attr_vcpu_info(v, gpa)
    return r


def kvm_xen_destroy_vcpu(v: KvmVcpu) -> None:
    """``kvm_xen_destroy_vcpu()`` of the VM's kernel build."""
    _xen(v.kvm).kvm_xen_destroy_vcpu(v)


def kvm_xen_destroy_vm(kvm: Kvm) -> None:
    """``kvm_xen_destroy_vm()`` of the VM's kernel build."""
    _xen(kvm).kvm_xen_destroy_vm(kvm)


def kvm_xen_start_timer(v: KvmVcpu, guest_abs: int) -> None:
    """``kvm_xen_start_timer()`` of the VM's kernel build."""
    _xen(v.kvm).kvm_xen_start_timer(v, guest_abs)


def kvm_xen_vcpu_get_attr_timer(v: KvmVcpu) -> int:
    """``kvm_xen_vcpu_get_attr(KVM_XEN_VCPU_ATTR_TYPE_TIMER)`` of the VM's kernel build."""
    r: int = _xen(v.kvm).kvm_xen_vcpu_get_attr_timer(v)
    return r


def xen_timer_fire(v: KvmVcpu) -> None:
    """The vCPU's Xen timer expiring: the hrtimer core runs xen_timer_callback() (__run_hrtimer)."""
    __run_hrtimer(v)
