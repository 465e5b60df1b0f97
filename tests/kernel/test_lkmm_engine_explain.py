"""Issue 20 item 4, the engine's part: a finding under the LKMM explained in LKMM terms.

The mmu_invalidate pairing without the retry's smp_rmb() (tests/models/lkmm_mmu_invalidate.py,
variant no-rmb-in-retry): the fault reads mmu_invalidate_in_progress = 0 from the
invalidation's end and then a stale mmu_invalidate_seq -- the initial value, although
the end's increment was already performed -- and nothing orders its two reads (no ppo:
the missing barrier).  :func:`kvmcheck.kernel.lkmm_explain.explain` says exactly that.
"""

from __future__ import annotations

from kvmcheck import check, join, replay, scenario, spawn
from kvmcheck._engine.explore import replay_runs
from kvmcheck.kernel import READ_ONCE, WRITE_ONCE, Struct
from kvmcheck.kernel.lkmm_explain import explain

from ..models.lkmm_mmu_invalidate import stale_spte_after_invalidate as scn

SEQ = "READ_ONCE(KvmMmuInvalidate.mmu_invalidate_seq)"
IN_PROGRESS = "READ_ONCE(KvmMmuInvalidate.mmu_invalidate_in_progress)"


def run_finding(variant: str, memory_model: str) -> object:
    r = check(scn, variant=variant, memory_model=memory_model)
    assert r.verdict == "bug" and r.finding is not None
    ex = replay_runs(
        scn.under(memory_model).body(variant), r.finding.schedule, 10_000, tracing=True, kcsan=True
    )
    assert ex is not None and ex.finding is not None and ex.finding.kind == "assertion"
    return ex


def test_no_rmb_in_retry_explained() -> None:
    ex = run_finding("no-rmb-in-retry", "lkmm")
    x = explain(ex)  # type: ignore[arg-type]
    assert x is not None
    stale = [rf for rf in x.reads if rf.stale]
    assert any(rf.read.op == SEQ and rf.write.thread is None and rf.read.value == 0 for rf in stale), (
        x.lines()
    )
    fault = {rf.read.thread for rf in stale if rf.read.op == SEQ}
    assert len(fault) == 1
    (t,) = fault
    # the fault's in_progress read took the end's write (0 again), not the initial value
    ends = [rf for rf in x.reads if rf.read.thread == t and rf.read.op == IN_PROGRESS]
    assert any(rf.write.thread is not None and rf.write.thread != t for rf in ends)
    # and nothing orders its in_progress read before its seq read: the dropped smp_rmb()
    assert any(a.thread == t and a.op == IN_PROGRESS and b.op == SEQ for a, b in x.unordered), x.lines()
    assert any("mmu_invalidate_seq" in loc for loc, _ in x.co)
    text = "\n".join(x.lines())
    assert "co-later, was already performed" in text
    assert f"{IN_PROGRESS} = 0 and step " in text and "no fence, dependency, acquire or release" in text


def test_a_counterexample_that_needs_a_revisit_is_minimised() -> None:
    """Load buffering needs a read of a later write: its schedule gives an open choice an
    outcome >= the choices the run offers there (a revisit's).  The minimiser's guided runs
    used to clamp it to 0, so even its first run (the schedule as found) lost the bug and
    no candidate was tried (tries == 0); now it replays and the candidates are tried."""
    from kvmcheck._engine.minimise import minimise

    from .test_lkmm_engine_revisit import lb

    body = scenario(name="lb")(lb("po", "po"))
    r = check(body, memory_model="lkmm")
    assert r.finding is not None and "load buffering" in r.finding.message
    shrunk = minimise(body.under("lkmm"), r)
    assert shrunk.shrink.tries > 0  # the first guided run showed the same finding
    f = shrunk.result.finding
    assert f is not None and "load buffering" in f.message
    assert shrunk.shrink.after <= shrunk.shrink.before
    again = replay(body, f.schedule, memory_model="lkmm")
    assert again.finding is not None and "load buffering" in again.finding.message


class Noisy(Struct):
    x: int = 0
    y: int = 0
    a: int = 0
    b: int = 0


@scenario(name="lb_with_noise")
def lb_with_noise() -> None:
    """LB with a write of its own location before and after each thread's read."""
    m = Noisy()
    got: dict[int, int] = {}

    def p0() -> None:
        WRITE_ONCE(m, "a", 1)
        got[0] = READ_ONCE(m, "x")
        WRITE_ONCE(m, "a", 2)
        WRITE_ONCE(m, "y", 1)

    def p1() -> None:
        WRITE_ONCE(m, "b", 1)
        got[1] = READ_ONCE(m, "y")
        WRITE_ONCE(m, "b", 2)
        WRITE_ONCE(m, "x", 1)

    join(spawn(p0), spawn(p1))
    assert not (got[0] == 1 and got[1] == 1), "load buffering"


def test_a_revisit_counterexample_with_preemptions_shrinks() -> None:
    """Both reads read the other's write performed later (``=6``: a revisit outcome, above
    the one write each read could take when it ran), with 6 preemptions; minimised to 1,
    and the minimal schedule still needs both revisits and replays."""
    from kvmcheck._engine.minimise import minimise

    sched = "0x2-1-2-1-2-1=6-2=6-1x3-2x3-0x2"
    r = replay(lb_with_noise, sched, memory_model="lkmm")
    assert r.finding is not None and "load buffering" in r.finding.message
    shrunk = minimise(lb_with_noise.under("lkmm"), r)
    assert shrunk.shrink.before[0] == 6
    assert shrunk.shrink.after[0] == 1, shrunk.shrink
    f = shrunk.result.finding
    assert f is not None and "load buffering" in f.message
    assert f.schedule.count("=6") == 2  # both reads still read a later write
    again = replay(lb_with_noise, f.schedule, memory_model="lkmm")
    assert again.finding is not None and "load buffering" in again.finding.message
