"""Two tiers, chosen by folder (tests/README.md maps them).

``pytest`` (``make test``) runs the fast tier: the engine, the kernel layer, reports, the CLI, golden
files, layers, conformance and the small brute-force corpora -- what a contributor runs before every
commit, in a few minutes.  ``pytest --full`` (``make test-full``, CI) adds the full tier: the bundled
seed verdicts, the reliability subprocess corpora, the sampling-quality budgets, Ray, and every test
marked ``slow``.  A full-tier file or folder named on the command line runs without ``--full``.

Every test gets a failure database of its own: a counterexample one test saves is never replayed
first by another (tests that study the database set KVMCHECK_DB themselves).
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

# The full tier: these folders and files, and every test marked ``slow``.
FULL_TIER = (
    "models",
    "reliability",
    "quality",
    "engine/test_ray.py",
    "report/test_bundled_stories.py",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--full",
        action="store_true",
        help="also run the full tier (bundled verdicts, reliability corpora, Ray, slow tests)",
    )


def _in_full_tier(path: Path) -> bool:
    rel = path.resolve().relative_to(TESTS).as_posix() if path.resolve().is_relative_to(TESTS) else ""
    return any(rel == p or rel.startswith(p.rstrip("/") + "/") for p in FULL_TIER)


def _named(config: pytest.Config) -> list[Path]:
    """The paths named on the command line (node ids cut at '::')."""
    return [Path(str(a).split("::")[0]).resolve() for a in config.args]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--full"):
        return
    named = [p for p in _named(config) if p != TESTS and _in_full_tier(p)]
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        path = Path(str(item.path))
        asked = any(path == p or path.is_relative_to(p) for p in named)
        full = _in_full_tier(path) or item.get_closest_marker("slow") is not None
        (dropped if full and not asked else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(autouse=True)
def _private_failure_database(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KVMCHECK_DB", str(tmp_path_factory.mktemp("kvmcheck-db")))
