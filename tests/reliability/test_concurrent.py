"""check() called from many Python threads at once gives each call its sequential result.

The running execution used to be one process-wide global: two checks in two
OS threads read each other's execution (wrong counts, phantom findings).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kvmcheck import Result, check
from kvmcheck.kernel import Mutex, mutex_lock, mutex_unlock
from tests.engine.corpus import CORPUS

NAMES = [
    "lost_update_assert",
    "three_on_one_lock",
    "rwlock_two_readers_writer",
    "abba_deadlock",
    "two_appends",
]
CALLS = 100


def _key(r: Result) -> tuple[Any, ...]:
    f = r.finding
    return (
        r.verdict,
        r.complete,
        r.executions,
        r.blocked,
        r.steps,
        None if f is None else (f.kind, f.message, f.schedule),
    )


def _run(name: str) -> tuple[Any, ...]:
    return _key(check(CORPUS[name], keep_going=True, kcsan=False))


def test_100_concurrent_checks_equal_their_sequential_results() -> None:
    sequential = {n: _run(n) for n in NAMES}
    assert any(k[0] == "bug" for k in sequential.values())
    assert any(k[0] == "ok" and k[2] > 1 for k in sequential.values())
    jobs = [NAMES[i % len(NAMES)] for i in range(CALLS)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(_run, jobs))
    equal = sum(r == sequential[n] for n, r in zip(jobs, results, strict=True))
    assert equal == CALLS, [
        (n, r, sequential[n]) for n, r in zip(jobs, results, strict=True) if r != sequential[n]
    ]


def test_runtime_current_is_per_os_thread() -> None:
    import threading

    from kvmcheck._engine import runtime

    seen: list[object] = []
    runtime.current = None
    t = threading.Thread(target=lambda: seen.append(runtime.current))
    t.start()
    t.join()
    assert seen == [None]


def test_concurrent_checks_with_locks_never_see_phantom_unlock() -> None:
    """The issue's second symptom: ``unlock-unheld`` on a correct model under concurrency."""
    from kvmcheck import join, scenario, spawn

    @scenario
    def locked() -> None:
        m = Mutex()

        def t() -> None:
            mutex_lock(m)
            mutex_unlock(m)

        join(spawn(t), spawn(t), spawn(t))

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: check(locked), range(24)))
    assert {(r.verdict, r.executions) for r in results} == {(results[0].verdict, results[0].executions)}
    assert results[0].verdict == "ok"


def _bundled(job: tuple[str, str]) -> tuple[Any, ...]:
    from kvmcheck._loader import resolve

    return _key(check(resolve(job[0])[0], variant=job[1]))


def test_concurrent_bundled_models_with_per_execution_module_tables() -> None:
    """vfio_kvm keeps an exported-symbol table per execution (models/kernel_module.py)."""
    jobs = [("vfio_kvm.open_vs_release", v) for v in ("v6.1", "2b48f52f2bff", "9e0f4f2918c2")]
    sequential = {j: _bundled(j) for j in jobs}
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(_bundled, jobs * 8))
    assert all(r == sequential[j] for j, r in zip(jobs * 8, results, strict=True))
