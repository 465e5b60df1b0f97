"""The counterexample is built once and then frozen (issue 24 item 2)."""

from __future__ import annotations

import dataclasses

import pytest

from kvmcheck import check
from kvmcheck._loader import resolve
from tests.report.test_golden import KINDS


def _uaf():
    return check(resolve(f"{KINDS}::kinds.use_after_free")[0])


def test_a_finding_cannot_be_changed_once_built():
    f = _uaf().finding
    assert f is not None and f.trace
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.schedule = ""  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.trace = ()  # type: ignore[misc]
    assert isinstance(f.details, tuple) and isinstance(f.trace, tuple) and isinstance(f.needs, tuple)
