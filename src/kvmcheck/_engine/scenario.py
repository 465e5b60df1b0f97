"""Scenarios: a plain function re-run once per explored execution.

A scenario may take a ``variant`` parameter; it then declares, per variant,
the verdict it expects (``expect={"v6.8": "bug", "6addfcf27139": "ok"}``).
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable
from typing import Any, overload

from kvmcheck._engine import weak
from kvmcheck._engine.finding import UsageError
from kvmcheck._engine.provenance import Source

VERDICTS = ("ok", "bug", "bounded")


class Scenario:
    def __init__(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        expect: str | dict[str, str] | None = None,
        kcsan: bool = True,
        keep_going: bool = False,
        source: Source | None = None,
        sources: dict[str, Source] | None = None,
        memory_model: str = "sc",
    ) -> None:
        self.fn = fn
        self.memory_model = weak.check_name(memory_model)  # "sc" or "lkmm" (_engine/weak.py)
        # where the scenario's setup was read (``source``) and each variant's code (``sources``)
        self.source = source
        self.sources: dict[str, Source] = dict(sources or {})
        self.kcsan = kcsan  # report data races (KCSAN) by default
        # search on past WARN-class reports by default: the scenario asks about an oops or a
        # hang that a WARN (lockdep, a leak check) may precede in some executions
        self.keep_going = keep_going
        self.name = name or fn.__name__
        self.doc = inspect.getdoc(fn) or ""
        self.takes_variant = "variant" in inspect.signature(fn).parameters
        if isinstance(expect, dict):
            if not self.takes_variant:
                raise UsageError(f"scenario {self.name}: expect per variant needs a 'variant' parameter")
            self.expect: dict[str | None, str] = dict(expect.items())
        else:
            self.expect = {None: expect} if expect else {}
        for v in self.expect.values():
            if v not in VERDICTS:
                raise UsageError(f"scenario {self.name}: expect={v!r} is not one of {', '.join(VERDICTS)}")
        functools.update_wrapper(self, fn)

    @property
    def variants(self) -> list[str]:
        return [v for v in self.expect if v is not None]

    def source_of(self, variant: str | None) -> Source | None:
        """Where ``variant``'s code was read (the scenario's own source when it has no variants)."""
        if variant is None:
            return self.source
        return self.sources.get(variant)

    def body(self, variant: str | None = None) -> Callable[[], Any]:
        if self.takes_variant:
            if variant is None:
                variant = self.variants[0] if self.variants else None
            elif self.variants and variant not in self.expect:
                raise UsageError(
                    f"unknown variant {variant!r} for scenario {self.name}; "
                    f"known variants: {', '.join(self.variants)}"
                )
            return weak.wrap(functools.partial(self.fn, variant=variant), self.memory_model)
        if variant is not None:
            raise UsageError(f"scenario {self.name} has no variants (got --variant {variant})")
        return weak.wrap(self.fn, self.memory_model)

    def under(self, memory_model: str) -> Scenario:
        """This scenario run under ``memory_model`` (itself when it already is)."""
        if weak.check_name(memory_model) == self.memory_model:
            return self
        other = copy.copy(self)
        other.memory_model = memory_model
        return other

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<scenario {self.name}>"


@overload
def scenario(fn: Callable[..., Any]) -> Scenario: ...
@overload
def scenario(
    fn: None = None,
    *,
    name: str | None = None,
    expect: str | dict[str, str] | None = None,
    kcsan: bool = True,
    keep_going: bool = False,
    source: Source | None = None,
    sources: dict[str, Source] | None = None,
    memory_model: str = "sc",
) -> Callable[[Callable[..., Any]], Scenario]: ...


def scenario(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    expect: str | dict[str, str] | None = None,
    kcsan: bool = True,
    keep_going: bool = False,
    source: Source | None = None,
    sources: dict[str, Source] | None = None,
    memory_model: str = "sc",
) -> Scenario | Callable[[Callable[..., Any]], Scenario]:
    """Mark a function as a scenario: ``@scenario`` or ``@scenario(name=..., expect=..., ...)``."""
    if fn is not None:
        return Scenario(fn)

    def wrap(f: Callable[..., Any]) -> Scenario:
        return Scenario(
            f,
            name=name,
            expect=expect,
            kcsan=kcsan,
            keep_going=keep_going,
            source=source,
            sources=sources,
            memory_model=memory_model,
        )

    return wrap
