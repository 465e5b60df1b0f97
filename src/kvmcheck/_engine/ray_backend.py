"""The jobs of a parallel search (parallel.py) on a Ray cluster: ``--backend ray --address HOST:PORT``.

Each job is one Ray task (one CPU).  The scenario travels as a locator -- the
bundled module and name, or the model file's path and name, which every node
must then be able to read -- and is loaded again on the node; a scenario made
on the fly (a test's closure) travels as the object itself (Ray's cloudpickle).
The merge, the order and the answer are those of the process pool.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import socket
import sys
from typing import TYPE_CHECKING, Any

from kvmcheck._engine import guard
from kvmcheck._engine.explore import Explored
from kvmcheck._engine.finding import UsageError
from kvmcheck._engine.parallel import Job, JobResult, Pool, WorkerDied, run_job
from kvmcheck._engine.scenario import Scenario
from kvmcheck._engine.target import Target

if TYPE_CHECKING:
    from kvmcheck._engine.settings import Settings

Locator = tuple[str, str, str] | Scenario


def locate(scn: Scenario) -> Locator:
    """How a node finds ``scn``: ("module", name, attr), ("file", path, attr), or the object."""
    mod = sys.modules.get(scn.fn.__module__)
    if mod is not None:
        for attr, value in vars(mod).items():
            if value is scn:
                if mod.__name__.startswith("kvmcheck_user_") and getattr(mod, "__file__", None):
                    return ("file", str(mod.__file__), attr)
                if mod.__name__ != "__main__":
                    return ("module", mod.__name__, attr)
    return scn


def find(where: Locator) -> Scenario:
    if isinstance(where, Scenario):
        return where
    kind, name, attr = where
    if kind == "file":  # the node loads the model file as the CLI did (kvmcheck._loader)
        modname = "kvmcheck_user_" + os.path.splitext(os.path.basename(name))[0].replace("-", "_")
        mod = sys.modules.get(modname)  # type: ignore[assignment]
        if mod is None:
            spec = importlib.util.spec_from_file_location(modname, name)
            if spec is None or spec.loader is None:
                raise ImportError(f"a Ray node cannot import the model file {name!r}")
            mod = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(mod)
            except OSError as e:  # gone (deleted after the check started), or unreadable there
                raise ImportError(f"cannot read the model file {name!r}: {e.strerror or e}") from None
            sys.modules[modname] = mod
    else:
        mod = importlib.import_module(name)
    scn = getattr(mod, attr)
    assert isinstance(scn, Scenario)
    return scn


def _task(where: Locator, variant: str | None, settings: Settings, *job: Any) -> JobResult:
    """One job on a node: the target found again there, the settings as the check resolved them."""
    return run_job(Target(find(where), variant), settings, *job)


class RayPool(Pool):
    def __init__(self, workers: int, target: Target, settings: Settings) -> None:
        super().__init__(workers)
        try:
            import ray
        except ImportError:
            raise UsageError(
                "backend 'ray' needs the ray package: pip install 'ray>=2.9' (or use backend 'local')"
            ) from None
        self.ray = ray
        _reachable(settings.address)
        try:
            ray.init(
                address=settings.address,
                ignore_reinit_error=True,
                log_to_driver=False,
                logging_level=logging.ERROR,
                include_dashboard=False,
            )
        except (ConnectionError, RuntimeError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise _unreachable(settings.address, first) from None
        if not self.workers:  # as many tasks at a time as the cluster has CPUs
            self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))  # type: ignore[no-untyped-call]
        self.task = ray.remote(num_cpus=1, max_retries=0)(_task)
        self.where = ray.put(locate(target.scenario))
        self.fixed = (target.variant, settings)
        self.pending: list[Any] = []
        self.jobs: dict[Any, Job] = {}  # each task's job, to name it if the task fails

    def submit(self, job: Job, deadline: float | None) -> None:
        ref = self.task.remote(self.where, *self.fixed, job.state(), len(job.nodes), job.index, deadline)
        self.pending.append(ref)
        self.jobs[ref] = job

    def wait(self) -> JobResult:
        while True:
            ready, self.pending = self.ray.wait(self.pending, num_returns=1, timeout=0.1)
            if ready:
                job = self.jobs.pop(ready[0])
                try:
                    result: JobResult = self.ray.get(ready[0])
                except self.ray.exceptions.RayError as e:
                    return JobResult(job.index, Explored(), 0, [], error=self._failed(job, e))
                return result
            if guard.stop_requested():
                raise guard.Stop()

    def _failed(self, job: Job, e: Exception) -> BaseException:
        """A Ray task that ended without a result: one line naming its job (or kvmcheck's own bug)."""
        where = f"the Ray task running job {job.index} (schedule prefix {job.prefix()})"
        if isinstance(e, self.ray.exceptions.RayTaskError):
            cause: BaseException = e.as_instanceof_cause()  # type: ignore[no-untyped-call]
            if not isinstance(cause, ImportError | OSError):  # OSError: a node of an older kvmcheck
                return cause  # raised by kvmcheck itself: a bug, with its traceback
            return WorkerDied(
                f"{where} cannot load the scenario ({cause}); every node needs the model importable "
                "(a bundled scenario, or a model file at the same path); the result above covers "
                "the jobs finished before it"
            )
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return WorkerDied(
            f"{where} failed ({type(e).__name__}{': ' + first if first else ''}); the result above "
            "covers the jobs finished before it"
        )

    def close(self) -> None:
        for ref in self.pending:
            self.ray.cancel(ref, force=True)
        self.pending = []
        self.jobs = {}
        self.ray.shutdown()


def _reachable(address: str | None) -> None:
    """A quick look before ray.init(), which retries an address nobody listens on for minutes."""
    host, _, port = (address or "").rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--address {address!r} is not HOST:PORT (e.g. 127.0.0.1:6379)")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as e:
        raise _unreachable(address, e.strerror or str(e)) from None


def _unreachable(address: str | None, why: str) -> UsageError:
    return UsageError(
        f"cannot reach a Ray cluster at {address}: {why} "
        "(start one with `ray start --head`, and give its address)"
    )
