"""A kernel developer's patch on the bundled scenarios: ``check ... --patch FILE.py:Class``.

A patch is written the way the bundled variants are: a subclass of the
variant class it applies to, overriding just the functions it changes::

    class MyFix(Fix6addfcf27139):
        def kvm_gpc_deactivate(self, gpc): ...

Its base (the class it subclasses directly) names both the subsystem slot
(``MyFix.subsystem``, inherited) and the variants it applies to: every bundled
scenario x variant whose build (its module's ``BUILDS``) holds exactly that
class in that slot.  Each such pair is run twice: as bundled (the base
verdict) and with the patch in the slot, as variant ``<base>+<Class>``
(models/build.py's ``Patched`` carries it to the scenario's ``build_for``).

Everything a user can get wrong is one line (a :class:`UsageError`): no such
file or class, a class that is no kernel subsystem, a base that no bundled
build holds, a target none of whose variants builds the base.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from typing import Any

from kvmcheck._engine.finding import UsageError
from kvmcheck._engine.scenario import Scenario
from kvmcheck._loader import bundled_modules, load_file
from kvmcheck.models.build import Build, Patched, Subsystem


@dataclass(frozen=True)
class Patch:
    """A user's patch class, where it came from, and the bundled class it patches."""

    cls: type[Subsystem]
    spec: str  # FILE.py:Class, as given
    base: type[Subsystem]

    @property
    def name(self) -> str:
        return self.cls.__name__

    @property
    def slot(self) -> str:
        return self.cls.subsystem

    def variant(self, base_variant: str) -> str:
        """The patched variant's name: ``6addfcf27139+MyFix``."""
        return f"{base_variant}+{self.name}"


@dataclass(frozen=True)
class PatchedPair:
    """One bundled scenario x variant, and the same with the patch in its slot."""

    scenario: Scenario
    variant: str
    patched: Scenario
    patched_variant: str


def builds_of(scn: Scenario) -> dict[str, Build] | None:
    """The ``BUILDS`` table the scenario's module publishes (None if it has none)."""
    mod = sys.modules.get(scn.fn.__module__)
    builds = getattr(mod, "BUILDS", None)
    return builds if isinstance(builds, dict) else None


def bundled_classes(slot: str) -> dict[type[Subsystem], list[str]]:
    """Every class a bundled build holds in ``slot``, with the variants whose build does."""
    out: dict[type[Subsystem], list[str]] = {}
    for name in bundled_modules():
        builds = getattr(importlib.import_module(name), "BUILDS", None) or {}
        for variant, build in builds.items():
            part = build.part(slot)
            if part is not None and variant not in out.setdefault(type(part), []):
                out[type(part)].append(variant)
    return out


def load_patch(spec: str) -> Patch:
    """The patch class named by ``FILE.py:Class``, checked; every mistake is one UsageError line."""
    path, sep, name = spec.rpartition(":")
    if not sep or not path or not name:
        raise UsageError(f"--patch takes FILE.py:Class, e.g. mypatch.py:MyFix (got {spec!r})")
    if not os.path.exists(path):
        raise UsageError(f"--patch: no file {path!r}")
    cls = getattr(load_file(path), name, None)
    if cls is None:
        raise UsageError(f"--patch: {path} defines no {name!r}")
    if not isinstance(cls, type) or not issubclass(cls, Subsystem) or cls is Subsystem:
        raise UsageError(
            f"--patch: {path}:{name} is not a kernel subsystem class; "
            "subclass the variant class it patches (e.g. class MyFix(Fix6addfcf27139))"
        )
    base = cls.__mro__[1]
    slot = cls.subsystem
    known = bundled_classes(slot) if slot else {}
    if base not in known or base.subsystem != slot:
        have = ", ".join(sorted(c.__name__ for c in known)) or "none"
        raise UsageError(
            f"--patch: {name}'s base {base.__name__} is no bundled variant's implementation of "
            f"{slot or 'any subsystem'!r}; subclass one of: {have}"
        )
    return Patch(cls, spec, base)


def patched_scenario(scn: Scenario, patch: Patch, bases: dict[str, str]) -> Scenario:
    """``scn`` run on its base variant's build with the patch in its slot.

    ``bases`` maps each patched variant name to its base variant's name.
    """

    def run(variant: str) -> Any:
        return scn.fn(variant=Patched(bases[variant], patch.cls))

    run.__doc__ = scn.fn.__doc__
    return Scenario(
        run,
        name=scn.name,
        kcsan=scn.kcsan,
        keep_going=scn.keep_going,
        source=scn.source,
        memory_model=scn.memory_model,
        sources={pv: src for pv, bv in bases.items() if (src := scn.sources.get(bv)) is not None},
    )


def patched_pairs(patch: Patch, pairs: list[tuple[Scenario, str | None]]) -> list[PatchedPair]:
    """The pairs whose build holds the patch's base in its slot, each with its patched twin."""
    out: list[PatchedPair] = []
    for scn, variant in pairs:
        builds = builds_of(scn)
        if variant is None or builds is None or variant not in builds:
            continue
        if type(builds[variant].part(patch.slot)) is not patch.base:
            continue
        pv = patch.variant(variant)
        out.append(PatchedPair(scn, variant, patched_scenario(scn, patch, {pv: variant}), pv))
    if not out:
        names = sorted({s.name + (f" [{v}]" if v else "") for s, v in pairs})
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        raise UsageError(
            f"--patch: {patch.name} patches {patch.base.__name__} ({patch.slot}), which no build of "
            f"{shown} holds; the variants that do: {', '.join(bundled_classes(patch.slot)[patch.base])}"
        )
    return out


def replay_pair(patch: Patch, scn: Scenario, variant: str | None) -> PatchedPair:
    """The patched pair that ``kvmcheck replay --patch`` re-runs (variant ``<base>+<Class>``)."""
    suffix = "+" + patch.name
    if variant is None or not variant.endswith(suffix):
        raise UsageError(f"--patch: give the patched variant, -V <variant>{suffix} (got {variant})")
    return patched_pairs(patch, [(scn, variant[: -len(suffix)])])[0]


def replay_command(command: str | None, patch: Patch) -> str | None:
    """The printed ``kvmcheck replay ...`` line of a patched run, with its ``--patch``."""
    if command is None:
        return None
    return command.replace("kvmcheck replay ", f"kvmcheck replay --patch {patch.spec} ", 1)
