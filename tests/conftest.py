"""Every test gets a failure database of its own: a counterexample one test saves is
never replayed first by another (tests that study the database set KVMCHECK_DB themselves)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_failure_database(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KVMCHECK_DB", str(tmp_path_factory.mktemp("kvmcheck-db")))
