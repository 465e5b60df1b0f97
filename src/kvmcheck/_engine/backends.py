"""The bundled backends of a split search (where its jobs run), registered: one line each."""

from __future__ import annotations

from kvmcheck._engine.parallel import ProcessPool
from kvmcheck._engine.ray_backend import RayPool
from kvmcheck._engine.registry import BackendSpec, register_backend

register_backend(BackendSpec("local", ProcessPool))
register_backend(
    BackendSpec(
        "ray",
        RayPool,
        remote=True,
        address_help="the address of a running Ray cluster (e.g. 127.0.0.1:6379)",
        tasks="Ray tasks",
    )
)
