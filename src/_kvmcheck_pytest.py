"""kvmcheck's pytest plugin (entry point ``pytest11``): scenarios in test files are collected and checked.

A module-level ``@scenario`` whose name pytest would collect (``test_*``) becomes
one test per variant.  It passes when its verdict is the one its ``expect=``
declares, or, with no expectation, when no bug is found.  A failure prints the
text report and the replay command.  Counterexamples are saved in the failure
database (``.kvmcheck/`` in the rootdir, or ``$KVMCHECK_DB``) and replayed
first on the next run.

Nothing of kvmcheck is imported until a scenario is collected, so the plugin
costs nothing in projects that do not use it.  That is why it is a top-level
module, as Hypothesis's ``_hypothesis_pytestplugin`` is: a module inside the
``kvmcheck`` package would import the package, and with it the whole checker, at
every pytest start.  (``kvmcheck.pytest_plugin`` still names it, for ``-p``.)
"""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kvmcheck", "kvmcheck scenarios")
    group.addoption(
        "--kvmcheck-max-seconds",
        type=float,
        default=None,
        help="Time budget of each scenario x variant check (default: until the search is complete).",
    )
    group.addoption(
        "--kvmcheck-strategy",
        default="dpor",
        help="Search strategy for collected scenarios: dpor, bounded, random, pct or a registered one "
        "(default: dpor).",
    )
    group.addoption(
        "--kvmcheck-no-db",
        action="store_true",
        default=False,
        help="Neither replay nor save counterexamples in the failure database.",
    )


def _is_scenario(obj: Any) -> bool:
    mod = sys.modules.get("kvmcheck._engine.scenario")
    return mod is not None and isinstance(obj, mod.Scenario)


def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: Any) -> Any:
    if not _is_scenario(obj) or not isinstance(collector, pytest.Module):
        return None
    wanted = getattr(collector, "funcnamefilter", None)
    if wanted is not None and not wanted(name):
        return []  # a scenario not named like a test: not a test (and not a function to call)
    variants = obj.variants or [None]
    return [
        ScenarioItem.from_parent(collector, name=_item_name(name, v), scn=obj, variant=v) for v in variants
    ]


def _item_name(name: str, variant: str | None) -> str:
    return f"{name}[{variant}]" if variant else name


_SETTINGS = pytest.StashKey[tuple[Any, Any]]()


def _settings(cfg: pytest.Config) -> tuple[Any, Any]:
    """The session's one Settings and Output, built from the options at the first scenario
    (not at pytest's start: the plugin imports nothing of kvmcheck until then)."""
    built = cfg.stash.get(_SETTINGS, None)
    if built is None:
        from kvmcheck._engine.settings import Settings
        from kvmcheck.run import Output

        built = (
            Settings(
                strategy=cfg.getoption("kvmcheck_strategy"), max_seconds=cfg.getoption("kvmcheck_max_seconds")
            ),
            Output(use_db=not cfg.getoption("kvmcheck_no_db")),
        )
        cfg.stash[_SETTINGS] = built
    return built


class ScenarioFailed(Exception):
    """A scenario's verdict differs from its expectation; carries the report."""


class ScenarioItem(pytest.Item):
    def __init__(self, *, scn: Any, variant: str | None, **kw: Any) -> None:
        super().__init__(**kw)
        self.scn = scn
        self.variant = variant

    def runtest(self) -> None:
        from kvmcheck._engine.target import Target
        from kvmcheck.report import database as db
        from kvmcheck.report.text import render_result
        from kvmcheck.run import run_one

        cfg = self.config
        if not os.environ.get("KVMCHECK_DB"):
            db.set_root(str(cfg.rootpath / ".kvmcheck"))
        settings, output = _settings(cfg)
        path = str(self.path)
        rel = os.path.relpath(path, str(cfg.invocation_params.dir))
        c = run_one(Target(self.scn, self.variant, rel), settings, output, db_origin=path)
        r = c.result
        expected = c.expected
        passed = c.as_expected if expected is not None else r.verdict != "bug"
        self.user_properties.append(("kvmcheck_executions", r.executions))
        if passed:
            return
        text = render_result(r, c.counterexample)
        cmd = c.replay_command()
        want = f"expected {expected}" if expected else "expected no bug"
        raise ScenarioFailed(f"{want}, got {r.verdict}\n{text}" + (f"\nreplay: {cmd}" if cmd else ""))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        from kvmcheck._engine.finding import UsageError

        if isinstance(excinfo.value, ScenarioFailed):
            return str(excinfo.value)
        if isinstance(excinfo.value, UsageError):  # a bad option (--kvmcheck-strategy magic): one line
            return f"kvmcheck: error: {excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, self.scn.fn.__code__.co_firstlineno - 1, f"kvmcheck scenario {self.name}"
