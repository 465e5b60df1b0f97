"""A scenario a Ray node can import by name (tests/engine/test_ray.py): 2 x 4 lock-protected increments."""

from __future__ import annotations

from tests.engine.test_conformance import lock_family

lock_family_2x4 = lock_family(2, 4)
