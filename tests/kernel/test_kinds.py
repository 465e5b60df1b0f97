"""Finding kinds live in one registry (_engine/kinds.py); a kind outside it is an error."""

from __future__ import annotations

import pytest

from kvmcheck._engine.finding import Finding
from kvmcheck._engine.kinds import KINDS, OOPS, WARN, kind_class
from kvmcheck.kernel._core import bug, warn

DESIGN_KINDS = [
    "deadlock",
    "lock-order",
    "use-after-free",
    "use-after-unmap",
    "double-free",
    "leak",
    "refcount",
    "sleep-in-atomic",
    "data-race",
    "bug-on",
    "warn",
    "assert-held",
    "unlock-unheld",
    "assertion",
    "step-limit",
]


def test_every_kind_of_design_md_is_registered_with_a_class_and_a_line() -> None:
    for name in DESIGN_KINDS:
        assert name in KINDS
    for k in KINDS.values():
        assert k.cls in (OOPS, WARN) and k.doc and "\n" not in k.doc


def test_an_unknown_kind_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown finding kind 'use-after-fre'"):
        Finding("use-after-fre", "typo")


def test_the_kernel_layer_reports_only_registered_kinds() -> None:
    assert kind_class("refcount") == WARN and kind_class("use-after-free") == OOPS
    with pytest.raises(ValueError, match="unknown finding kind"):
        bug("use-after-fre", "x", "y")
    with pytest.raises(ValueError, match="unknown finding kind"):
        warn("data_race", "x", "y")
    with pytest.raises(AssertionError, match="oops-class"):  # a WARN never stops an oops
        warn("use-after-free", "x", "y")
