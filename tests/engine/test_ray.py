"""The parallel search on a Ray cluster (issue 15 item 5): a local cluster on 127.0.0.1,
started by the test and stopped after it; same verdict and executions as one worker."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvmcheck import check
from kvmcheck._engine.finding import UsageError

RAY = str(Path(sys.executable).with_name("ray"))
ROOT = str(Path(__file__).resolve().parents[2])
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]  # Ray's own warnings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # The full tier needs Ray (make test-full installs the dev extra): absent, these tests fail
    # loudly instead of skipping, so a CI that lost it cannot pass silently.
    try:
        import ray  # noqa: F401
    except ImportError:
        pytest.fail("ray is not installed: `make test-full` installs it (pip install -e '.[dev]')")
    port = _free_port()
    # the nodes import this checkout's kvmcheck (src/) and the tests' models (the root)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(ROOT) / "src"), ROOT]),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    tmp = tmp_path_factory.mktemp("ray")
    start = [
        RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
        "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={tmp}",
    ]  # fmt: skip
    subprocess.run(start, check=True, env=env, capture_output=True, timeout=180)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)


def test_a_bundled_scenario_on_ray_gets_one_workers_verdict_and_count(cluster: str) -> None:
    from kvmcheck.scenarios.pfncache import mmu_notifier

    one = check(mmu_notifier, variant="v6.8")
    on_ray = check(mmu_notifier, variant="v6.8", backend="ray", address=cluster, workers=None)
    assert (on_ray.verdict, on_ray.executions) == (one.verdict, one.executions)
    assert "Ray tasks at" in on_ray.coverage


def test_a_split_search_on_ray_gets_one_workers_count(cluster: str) -> None:
    from tests.engine.ray_models import lock_family_2x4

    one = check(lock_family_2x4)
    on_ray = check(lock_family_2x4, backend="ray", address=cluster, workers=2)
    assert (on_ray.verdict, on_ray.complete, on_ray.executions) == ("ok", True, one.executions)
    assert "on 2 Ray tasks" in on_ray.coverage and "jobs split" in on_ray.coverage


def test_no_cluster_at_the_address_is_one_clear_line() -> None:
    from tests.engine.ray_models import lock_family_2x4

    with pytest.raises(UsageError, match="cannot reach a Ray cluster") as e:
        check(lock_family_2x4, backend="ray", address=f"127.0.0.1:{_free_port()}")
    assert "\n" not in str(e.value)


# -- faults (issue 21): a task that dies, a model file gone after submit: one line, exit 2 --------
_CRASHES = """
import os, sys
from kvmcheck import join, scenario, spawn
from kvmcheck.kernel import Mutex, Struct, mutex_lock, mutex_unlock

IN_RAY = sys.argv[0].endswith("default_worker.py")  # a Ray worker process, not the command line
if {gone} and not IN_RAY:
    os.remove(__file__)  # loaded here; the nodes will not find it


class C(Struct):
    a: int = 0


@scenario(kcsan=False)
def s():
    m, c = Mutex("m"), C()

    def t():
        mutex_lock(m)
        if IN_RAY and {crash}:
            os._exit(1)
        c.a = c.a + 1
        mutex_unlock(m)

    join(spawn(t), spawn(t), spawn(t))
"""


@pytest.mark.parametrize(("gone", "crash", "says"), [(False, True, "failed"), (True, False, "cannot load")])
def test_a_failed_ray_task_is_one_line_naming_its_job(
    cluster: str, tmp_path: Path, gone: bool, crash: bool, says: str
) -> None:
    model = tmp_path / "m.py"
    model.write_text(_CRASHES.format(gone=gone, crash=crash))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(ROOT) / "src"), ROOT])}
    p = subprocess.run(
        [sys.executable, "-m", "kvmcheck.cli", "check", f"{model}::s", "--no-db",
         "--backend", "ray", "--address", cluster, "--workers", "2"],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    (line,) = [x for x in p.stderr.splitlines() if x.startswith("kvmcheck: error:")]
    assert "Ray task running job" in line and "schedule prefix" in line and says in line, line
    assert "bounded" in p.stdout or "bug" in p.stdout  # the result so far is printed first
