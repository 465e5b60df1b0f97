"""lib/locking-selftest.c, case by case: lockdep's verdict on each of the kernel's own selftests.

Source: lib/locking-selftest.c as stored in the code index for torvalds/linux (the version with
local_lock, DEFINE_WD_CLASS, the queued-read-lock and hardirq_deadlock_softirq_not_deadlock tests
and lockdep_set_subclass_name_test, i.e. v6.x), and the lib/locking-selftest-*.h templates
(LOCK/UNLOCK/INIT per lock type, IRQ_* per irq kind).  The table below is written one entry per
``dotest()`` call of ``locking_selftest()``, in its order, expanded the way its ``DO_TESTCASE_*``
and ``GENERATE_PERMUTATIONS_*`` macros expand them; the expectation of each case is the
``SUCCESS``/``FAILURE`` its ``dotest()`` passes, as a non-PREEMPT_RT x86 kernel (qrwlocks) runs
it: every case up to the ww_mutex tests with ``force_read_lock_recursive = 1``, the rest with 0.
FAILURE means lockdep reported something (debug_locks went off); SUCCESS means nothing at all.

Not applicable (``model=None``): rt_mutex, ww_mutex, local_lock_t, fs_reclaim, the wait-context
tests and lockdep_set_subclass(), which kvmcheck does not have.
"""

from __future__ import annotations

import pytest

from tests.conformance.case import KernelCase
from tests.conformance.conformance_table import assert_agrees
from tests.conformance.selftest_model import selftest_model

SUITE = "lib/locking-selftest.c"
F, S = "bug", "ok"

# locking-selftest-{spin,wlock,rlock,mutex,wsem,rsem}.h: LOCK, UNLOCK, INIT of each lock type
TEMPLATES = {
    "spin": ("L", "U", "SI"),
    "wlock": ("WL", "WU", "RWI"),
    "rlock": ("RL", "RU", "RWI"),
    "mutex": ("ML", "MU", "MI"),
    "wsem": ("WSL", "WSU", "RWSI"),
    "rsem": ("RSL", "RSU", "RWSI"),
}
# locking-selftest-{hardirq,softirq}.h: IRQ_DISABLE, IRQ_ENABLE, IRQ_ENTER, IRQ_EXIT
IRQS = {"hard": "HARDIRQ", "soft": "SOFTIRQ"}
PERMS2 = ("12", "21")
PERMS3 = ("123", "132", "213", "231", "312", "321")


def lu2(x: str, y: str) -> str:
    """LOCK_UNLOCK_2(x, y)."""
    return f"LOCK {x}; LOCK {y}; UNLOCK {y}; UNLOCK {x}"


# The E() / E1() E2() E3() bodies, as the selftest #defines them before each group.
E = {
    "AA": "LOCK X1; LOCK X2",
    "ABBA": f"{lu2('A', 'B')}; {lu2('B', 'A')}",
    "ABBCCA": f"{lu2('A', 'B')}; {lu2('B', 'C')}; {lu2('C', 'A')}",
    "ABCABC": f"{lu2('A', 'B')}; {lu2('C', 'A')}; {lu2('B', 'C')}",
    "ABBCCDDA": f"{lu2('A', 'B')}; {lu2('B', 'C')}; {lu2('C', 'D')}; {lu2('D', 'A')}",
    "ABCDBDDA": f"{lu2('A', 'B')}; {lu2('C', 'D')}; {lu2('B', 'D')}; {lu2('D', 'A')}",
    "ABCDBCDA": f"{lu2('A', 'B')}; {lu2('C', 'D')}; {lu2('B', 'C')}; {lu2('D', 'A')}",
    "double_unlock": "LOCK A; UNLOCK A; UNLOCK A",
    "init_held": "LOCK A; INIT A",
}
E123 = {
    "irqsafe1": ("IRQ_ENTER; LOCK A; UNLOCK A; IRQ_EXIT", "LOCK A; UNLOCK A"),
    "irqsafe2A": (
        "SOFTIRQ_ENTER; LOCK A; UNLOCK A; SOFTIRQ_EXIT",
        "HARDIRQ_DISABLE; LOCK A; HARDIRQ_ENABLE; UNLOCK A",
    ),
    "irqsafe2B": ("IRQ_ENTER; LOCK A; UNLOCK A; IRQ_EXIT", "IRQ_DISABLE; LOCK A; IRQ_ENABLE; UNLOCK A"),
    "irqsafe3": (
        "LOCK A; LOCK B; UNLOCK B; UNLOCK A",
        "LOCK B; UNLOCK B",
        "IRQ_ENTER; LOCK A; UNLOCK A; IRQ_EXIT",
    ),
    "irqsafe4": (
        "IRQ_DISABLE; LOCK A; LOCK B; UNLOCK B; UNLOCK A; IRQ_ENABLE",
        "LOCK B; UNLOCK B",
        "IRQ_ENTER; LOCK A; UNLOCK A; IRQ_EXIT",
    ),
    "irq_inversion": (
        "IRQ_DISABLE; WL A; LOCK B; UNLOCK B; WU A; IRQ_ENABLE",
        "LOCK B; UNLOCK B",
        "IRQ_ENTER; RL A; RU A; IRQ_EXIT",
    ),
    "W1R2_W2R3_W3R1": (
        "WL X1; RL Y1; RU Y1; WU X1",
        "WL Y1; RL Z1; RU Z1; WU Y1",
        "WL Z1; RL X1; RU X1; WU Z1",
    ),
    "W1W2_R2R3_W3R1": (
        "WL X1; WL Y1; WU Y1; WU X1",
        "RL Y1; RL Z1; RU Z1; RU Y1",
        "WL Z1; RL X1; RU X1; WU Z1",
    ),
    "W1R2_R2R3_W3W1": (
        "WL X1; WL Y1; WU Y1; WU X1",
        "RL Y1; RL Z1; RU Z1; RU Y1",
        "RL Z1; WL X1; WU X1; RU Z1",
    ),
    "W1W2_R2R3_R3W1": (
        "WL X1; RL Y1; RU Y1; WU X1",
        "RL Y1; RL Z1; RU Z1; RU Y1",
        "WL Z1; WL X1; WU X1; WU Z1",
    ),
    "irq_read_recursion": (
        "IRQ_DISABLE; WL A; WU A; IRQ_ENABLE",
        "RL A; RU A",
        "IRQ_ENTER; LOCK A; L B; U B; UNLOCK A; IRQ_EXIT",
    ),
    "irq_read_recursion2": (
        "IRQ_DISABLE; L B; LOCK A; UNLOCK A; U B; IRQ_ENABLE",
        "RL A; RU A",
        "IRQ_ENTER; L B; U B; IRQ_EXIT",
    ),
    "irq_read_recursion3": (
        "IRQ_DISABLE; WL B; LOCK A; UNLOCK A; WU B; IRQ_ENABLE",
        "RL A; RU A",
        "IRQ_ENTER; RL B; RU B; IRQ_EXIT",
    ),
}
# The single-function cases (recursive read-lock and mixed read/write tests).
SINGLE = {
    "rlock_AA1": "RL X1; RL X1",
    "rsem_AA1": "RSL X1; RSL X1",
    "rlock_AA1B": "RL X1; RL X2",
    "rsem_AA1B": "RSL X1; RSL X2",
    "rlock_AA2": "RL X1; WL X2",
    "rsem_AA2": "RSL X1; WSL X2",
    "rlock_AA3": "WL X1; RL X2",
    "rsem_AA3": "WSL X1; RSL X2",
    "rlock_ABBA1": "RL X1; L Y1; U Y1; RU X1; L Y1; WL X1; WU X1; U Y1",
    "rwsem_ABBA1": "RSL X1; ML Y1; MU Y1; RSU X1; ML Y1; WSL X1; WSU X1; MU Y1",
    "rlock_ABBA2": "RL X1; L Y1; U Y1; RU X1; L Y1; RL X1; RU X1; U Y1",
    "rwsem_ABBA2": "RSL X1; ML Y1; MU Y1; RSU X1; ML Y1; RSL X1; RSU X1; MU Y1",
    "rlock_ABBA3": "WL X1; L Y1; U Y1; WU X1; L Y1; WL X1; WU X1; U Y1",
    "rwsem_ABBA3": "WSL X1; ML Y1; MU Y1; WSU X1; ML Y1; WSL X1; WSU X1; MU Y1",
    "rlock_chaincache_ABBA1": "RL X1; L Y1; U Y1; RU X1; L Y1; RL X1; RU X1; U Y1; L Y1; WL X1; WU X1; U Y1",
    # queued_read_lock_tests(): LOCK() there is the last template included, locking-selftest-wlock.h
    "queued_read_lock_hardirq_RE_Er": "HARDIRQ_ENTER; RL A; WL B; WU B; RU A; HARDIRQ_EXIT; "
    "HARDIRQ_DISABLE; WL B; RL A; RU A; WU B; HARDIRQ_ENABLE",
    "queued_read_lock_hardirq_ER_rE": "HARDIRQ_ENTER; WL B; RL A; RU A; WU B; HARDIRQ_EXIT; "
    "HARDIRQ_DISABLE; RL A; WL B; WU B; RU A; HARDIRQ_ENABLE",
    "queued_read_lock_hardirq_inversion": "HARDIRQ_ENTER; WL B; WU B; HARDIRQ_EXIT; "
    "HARDIRQ_DISABLE; WL B; RL A; RU A; WU B; HARDIRQ_ENABLE; RL A; RU A",
    "hardirq_deadlock_softirq_not_deadlock": "ML A; HARDIRQ_DISABLE; L C; U C; HARDIRQ_ENABLE; MU A; "
    "HARDIRQ_ENTER; L A; U A; HARDIRQ_EXIT; "
    "HARDIRQ_DISABLE; L A; L B; U B; U A; HARDIRQ_ENABLE; "
    "HARDIRQ_DISABLE; L B; L C; U C; U B; HARDIRQ_ENABLE; "
    "SOFTIRQ_ENTER; L D; U D; SOFTIRQ_EXIT; "
    "SOFTIRQ_DISABLE; L D; U D; SOFTIRQ_ENABLE; "
    "HARDIRQ_DISABLE; L C; L D; U D; U C; HARDIRQ_ENABLE",
}

WW = {  # ww_tests(): name -> expectation
    "ww_test_fail_acquire": S, "ww_test_normal": S, "ww_test_unneeded_slow": F,
    "ww_test_two_contexts": F, "ww_test_diff_class": F,
    "ww_test_context_done_twice": F, "ww_test_context_unlock_twice": F,
    "ww_test_context_fini_early": F, "ww_test_context_lock_after_done": F,
    "ww_test_object_unlock_twice": F, "ww_test_object_lock_unbalanced": F,
    "ww_test_object_lock_stale_context": F,
    "ww_test_edeadlk_normal": S, "ww_test_edeadlk_normal_slow": S,
    "ww_test_edeadlk_no_unlock": F, "ww_test_edeadlk_no_unlock_slow": F,
    "ww_test_edeadlk_acquire_more": F, "ww_test_edeadlk_acquire_more_slow": F,
    "ww_test_edeadlk_acquire_more_edeadlk": F, "ww_test_edeadlk_acquire_more_edeadlk_slow": F,
    "ww_test_edeadlk_acquire_wrong": F, "ww_test_edeadlk_acquire_wrong_slow": F,
    "ww_test_spin_nest_unlocked": F, "ww_test_spin_nest_lock": S,
    "ww_test_context_block": F, "ww_test_context_try": S, "ww_test_context_context": S,
    "ww_test_try_block": F, "ww_test_try_try": S, "ww_test_try_context": F,
    "ww_test_block_block": F, "ww_test_block_try": S, "ww_test_block_context": F,
    "ww_test_spin_block": F, "ww_test_spin_try": S, "ww_test_spin_context": F,
}  # fmt: skip
WAIT_OUTER = {  # wait_context_tests(): outer context -> (RCU, raw_spinlock, spinlock, mutex) inside it
    "HARDIRQ": (S, S, S, F), "NOTTHREADED_HARDIRQ": (S, S, F, F), "SOFTIRQ": (S, S, S, F),
    "RCU": (S, S, S, F), "RCU_BH": (S, S, S, F), "RCU_SCHED": (S, S, F, F),
    "raw_spinlock": (S, S, F, F), "spinlock": (S, S, S, F), "mutex": (S, S, S, S),
}  # fmt: skip

_cases: list[KernelCase] = []


def _kind(name: str) -> str:
    if name.startswith("double_unlock"):
        return "unlock-unheld"  # "WARNING: bad unlock balance detected!"
    if name.startswith("init_held"):
        return "use-after-free"  # debug_check_no_locks_freed(): "WARNING: held lock freed!"
    return "lock-order"


def _expand(events: str, lock: str | None, irq: str | None) -> list[str]:
    """The events with the template's LOCK/UNLOCK/INIT and IRQ_* substituted, as cpp would."""
    out = []
    for ev in (e.strip() for e in events.split(";")):
        word, _, arg = ev.partition(" ")
        if word in ("LOCK", "UNLOCK", "INIT"):
            assert lock is not None, ev
            word = TEMPLATES[lock][("LOCK", "UNLOCK", "INIT").index(word)]
        elif word.startswith("IRQ_"):
            assert irq is not None, ev
            word = f"{IRQS[irq]}_{word[4:]}"
        out.append(f"{word} {arg}".strip())
    return out


def add(name: str, expect: str, events: str, lock: str | None, irq: str | None, desc: str, rec: bool) -> None:
    ev = _expand(events, lock, irq)
    doc = (
        f"{SUITE}: {name} ({desc!r}), expected {'FAILURE' if expect == F else 'SUCCESS'}"
        f"{'' if rec else ' (force_read_lock_recursive = 0)'}.\n\nEvents: {'; '.join(ev)}"
    )
    _cases.append(
        KernelCase(
            SUITE, name, expect, selftest_model(name, ev, rec, doc), _kind(name) if expect == F else "", doc
        )
    )


def na(name: str, expect: str, why: str) -> None:
    _cases.append(KernelCase(SUITE, name, expect, None, why=why))


RTMUTEX = "rt_mutex (CONFIG_RT_MUTEXES) is not modelled by kvmcheck"

# DO_TESTCASE_6R / DO_TESTCASE_6: spin, wlock, rlock, mutex, wsem, rsem, rtmutex
for group, desc in (
    ("AA", "A-A deadlock"),
    ("ABBA", "A-B-B-A deadlock"),
    ("ABBCCA", "A-B-B-C-C-A deadlock"),
    ("ABCABC", "A-B-C-A-B-C deadlock"),
    ("ABBCCDDA", "A-B-B-C-C-D-D-A deadlock"),
    ("ABCDBDDA", "A-B-C-D-B-D-D-A deadlock"),
    ("ABCDBCDA", "A-B-C-D-B-C-D-A deadlock"),
    ("double_unlock", "double unlock"),
    ("init_held", "initialize held"),
):
    read_ok = group not in ("double_unlock", "init_held")  # DO_TESTCASE_6R: rlocks must not trigger
    for t in TEMPLATES:
        add(f"{group}_{t}", S if (t == "rlock" and read_ok) else F, E[group], t, None, desc, True)
    na(f"{group}_rtmutex", F, RTMUTEX)

for name, expect, desc in (
    ("rlock_AA1", S, "recursive read-lock"),
    ("rsem_AA1", F, "recursive read-lock"),
    ("rlock_AA1B", S, "recursive read-lock #2"),
    ("rsem_AA1B", F, "recursive read-lock #2"),
    ("rlock_AA2", F, "mixed read-write-lock"),
    ("rsem_AA2", F, "mixed read-write-lock"),
    ("rlock_AA3", F, "mixed write-read-lock"),
    ("rsem_AA3", F, "mixed write-read-lock"),
    ("rlock_ABBA1", F, "mixed read-lock/lock-write ABBA"),
    ("rwsem_ABBA1", F, "mixed read-lock/lock-write ABBA"),
    ("rlock_ABBA2", S, "mixed read-lock/lock-read ABBA"),
    ("rwsem_ABBA2", F, "mixed read-lock/lock-read ABBA"),
    ("rlock_ABBA3", F, "mixed write-lock/lock-write ABBA"),
    ("rwsem_ABBA3", F, "mixed write-lock/lock-write ABBA"),
    ("rlock_chaincache_ABBA1", F, "chain cached mixed R-L/L-W ABBA"),
):
    add(name, expect, SINGLE[name], None, None, desc, True)


def perms(name: str, nr: str, lock: str | None, irq: str | None, expect: str, desc: str) -> None:
    """GENERATE_PERMUTATIONS_{2,3}_EVENTS: case ``name_nr`` runs E<nr[0]>, E<nr[1]>, ..."""
    events = "; ".join(E123[name][int(d) - 1] for d in nr)
    add(f"{name}_{nr}", expect, events, lock, irq, desc, True)


# DO_TESTCASE_6x1RRB / 6x1RR: the rlock-only W/R cycles
for group, expect, desc in (
    ("W1R2_W2R3_W3R1", F, "rlock W1R2/W2R3/W3R1"),
    ("W1W2_R2R3_W3R1", F, "rlock W1W2/R2R3/W3R1"),
    ("W1W2_R2R3_R3W1", S, "rlock W1W2/R2R3/R3W1"),
    ("W1R2_R2R3_W3W1", S, "rlock W1R2/R2R3/W3W1"),
):
    for nr in PERMS3:
        perms(group, nr, "rlock", None, expect, desc)

# irq-context cases: DO_TESTCASE_2x6 / 2x3 / 6x6 / 6x6RW: spin FAILURE, wlock FAILURE, rlock SUCCESS
for group, nrs, irqs, desc in (
    ("irqsafe1", PERMS2, ("hard", "soft"), "irqs-on + irq-safe-A"),
    ("irqsafe2A", PERMS2, (None,), "sirq-safe-A => hirqs-on"),
    ("irqsafe2B", PERMS2, ("hard", "soft"), "safe-A + irqs-on"),
    ("irqsafe3", PERMS3, ("hard", "soft"), "safe-A + unsafe-B #1"),
    ("irqsafe4", PERMS3, ("hard", "soft"), "safe-A + unsafe-B #2"),
    ("irq_inversion", PERMS3, ("hard", "soft"), "irq lock-inversion"),
):
    for nr in nrs:
        for irq in irqs:
            for t in ("spin", "wlock", "rlock"):
                mid = f"_{irq}" if irq else ""
                events = "; ".join(E123[group][int(d) - 1] for d in nr)
                add(
                    f"{group}{mid}_{t}_{nr}",
                    S if t == "rlock" else F,
                    events,
                    t,
                    irq,
                    f"{irq or ''} {desc}",
                    True,
                )

# DO_TESTCASE_6x2x2RW: wlock FAILURE, rlock SUCCESS, hard then soft
for group, desc in (
    ("irq_read_recursion", "irq read-recursion"),
    ("irq_read_recursion2", "irq read-recursion #2"),
    ("irq_read_recursion3", "irq read-recursion #3"),
):
    for nr in PERMS3:
        for irq in ("hard", "soft"):
            for t, expect in (("wlock", F), ("rlock", S)):
                events = "; ".join(E123[group][int(d) - 1] for d in nr)
                add(f"{group}_{irq}_{t}_{nr}", expect, events, t, irq, f"{irq}-{desc}", True)

for name, expect in WW.items():
    na(name, expect, "ww_mutex (wound/wait acquire contexts) is not modelled by kvmcheck")

# force_read_lock_recursive = 0 from here on
for name, expect, desc in (
    ("queued_read_lock_hardirq_RE_Er", F, "hardirq read-lock/lock-read"),
    ("queued_read_lock_hardirq_ER_rE", S, "hardirq lock-read/read-lock"),
    ("queued_read_lock_hardirq_inversion", F, "hardirq inversion"),
):
    add(name, expect, SINGLE[name], None, None, desc, False)

for name, expect in (
    ("fs_reclaim_correct_nesting", S),
    ("fs_reclaim_wrong_nesting", F),
    ("fs_reclaim_protected_nesting", S),
):
    na(name, expect, "fs_reclaim_acquire()/might_alloc() (the reclaim lockdep map) is not modelled")

for outer, expects in WAIT_OUTER.items():
    for inner, expect in zip(("RCU", "raw_spinlock", "spinlock", "mutex"), expects, strict=True):
        na(
            f"{inner}_in_{outer}",
            expect,
            "wait-context check (CONFIG_PROVE_RAW_LOCK_NESTING, LD_WAIT_* types): kvmcheck has no "
            "raw_spinlock_t and no wait types (a mutex in atomic context is might_sleep's report)",
        )

for name, expect in (("local_lock_2", S), ("local_lock_3A", S), ("local_lock_3B", F)):
    na(name, expect, "local_lock_t is not modelled by kvmcheck")

add(
    "hardirq_deadlock_softirq_not_deadlock",
    F,
    SINGLE["hardirq_deadlock_softirq_not_deadlock"],
    None,
    None,
    "hardirq_unsafe_softirq_safe",
    False,
)
na("test_lockdep_set_subclass_name", S, "lockdep_set_subclass() (a class's name) is not modelled")

CASES: tuple[KernelCase, ...] = tuple(_cases)


@pytest.mark.parametrize("case", [c for c in CASES if c.applicable], ids=lambda c: c.case)
def test_selftest_case(case: KernelCase) -> None:
    assert_agrees(case)
