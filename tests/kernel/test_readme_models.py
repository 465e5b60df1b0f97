"""Models written only from README's "Writing a model": each verdict is the one it expects."""

from __future__ import annotations

import importlib

import pytest

from kvmcheck import Scenario, check

MODULES = ["mmap_fairness", "irqfd_work", "ready_wait", "vcpu_xarray"]


def _cases() -> list[tuple[Scenario, str]]:
    out = []
    for m in MODULES:
        mod = importlib.import_module(f"tests.kernel.readme_models.{m}")
        for obj in vars(mod).values():
            if isinstance(obj, Scenario):
                out.extend((obj, v) for v in obj.variants)
    return out


@pytest.mark.parametrize(("scn", "variant"), _cases(), ids=lambda x: getattr(x, "name", x))
def test_readme_model_verdict(scn: Scenario, variant: str) -> None:
    r = check(scn, variant=variant, max_seconds=10)
    assert r.verdict == scn.expect[variant], (variant, r.finding)
    if r.verdict == "ok":
        assert r.complete
