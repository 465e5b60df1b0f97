"""The pytest plugin lives in the top-level module ``_kvmcheck_pytest`` (so that pytest's start
imports nothing of kvmcheck); this name still loads it, e.g. ``pytest -p kvmcheck.pytest_plugin``."""

from _kvmcheck_pytest import (
    ScenarioFailed,
    ScenarioItem,
    pytest_addoption,
    pytest_pycollect_makeitem,
)

__all__ = ["ScenarioFailed", "ScenarioItem", "pytest_addoption", "pytest_pycollect_makeitem"]
