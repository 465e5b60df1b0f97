"""A build of the modelled kernel: one implementation per subsystem.

The kernel is many files, each with its own history; a fix or a proposal is a
patch to one of them.  So a variant here is a subclass of one subsystem's
class (``Pfncache``, ``KvmMain``, ``TdpMmu`` ...) that overrides just the
functions its patch changed, and a scenario runs one :class:`Build` -- one
implementation per subsystem.  A ``kvm_main`` variant (seed 004) composes
with a ``pfncache`` variant (seed 000) without either file knowing the
other's variants::

    build = Build(KvmMain(), Pfncache())           # the base kernel
    build = build.patched(SeedV1())                 # the seed patch on top

Model code keeps reading like the C: callers use thin C-style functions
(``kvm_gpc_refresh(gpc, len)``, ``hva_to_pfn(kvm, hva)``) that dispatch to
``kvm.build.<subsystem>``.

Every seed publishes its kernels the same way -- ``BUILDS: dict[str, Build]``,
one named build per variant, in the seed's ``*_variants.py`` -- and every
scenario obtains its build through :func:`build_for`.  That one function is
where a user's patch (``kvmcheck check ... --patch FILE.py:Class``, see
kvmcheck/patching.py) gets in: the scenario is handed a :class:`Patched`
variant name, and ``build_for`` puts the patch class in its subsystem's slot.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, ClassVar


class Subsystem:
    """One kernel file's implementation, at one version.

    ``subsystem`` names the slot it fills in a build (``"pfncache"``);
    ``version`` names the upstream version, commit or proposal it models.
    """

    subsystem: ClassVar[str] = ""
    version: ClassVar[str] = ""

    def __repr__(self) -> str:
        return f"<{self.subsystem} {self.version}>"


class Build:
    """One build of the modelled kernel: an implementation per subsystem."""

    def __init__(self, *parts: Subsystem) -> None:
        self._parts: dict[str, Subsystem] = {}
        for part in parts:
            if not part.subsystem:
                raise TypeError(
                    f"{type(part).__name__} names no subsystem (set the 'subsystem' class attribute)"
                )
            if part.subsystem in self._parts:
                raise TypeError(f"two implementations of {part.subsystem} in one build")
            self._parts[part.subsystem] = part

    def patched(self, *parts: Subsystem) -> Build:
        """This build with ``parts`` replacing (or adding) their subsystems' implementations."""
        merged = dict(self._parts)
        for part in parts:
            merged[part.subsystem] = part
        return Build(*merged.values())

    def part(self, subsystem: str) -> Subsystem | None:
        """The implementation in slot ``subsystem``, or None if this build has none."""
        return self._parts.get(subsystem)

    def configured(self, subsystem: str, **params: Any) -> Build:
        """This build with a copy of ``subsystem``'s implementation whose ``params`` are set.

        For a scenario's knob that lives on a subsystem (a module parameter such as
        kvm_main's ``allow_unsafe_mappings``): the class stays whatever the build has --
        a variant's, or a user's patch.
        """
        part = copy.copy(self._parts[subsystem])
        for name, value in params.items():
            setattr(part, name, value)
        return self.patched(part)

    def __getattr__(self, name: str) -> Any:
        parts = self.__dict__.get("_parts", {})
        if name in parts:
            return parts[name]
        have = ", ".join(sorted(parts)) or "none"
        raise AttributeError(f"this kernel build has no {name!r} subsystem (it has: {have})")

    @property
    def versions(self) -> dict[str, str]:
        """Which version of each subsystem this build runs."""
        return {name: part.version for name, part in sorted(self._parts.items())}

    def __repr__(self) -> str:
        return "<build " + " ".join(f"{k}={v}" for k, v in self.versions.items()) + ">"


class Patched(str):
    """A variant name that carries a user's patch: ``BUILDS[name]`` with ``patch`` in its slot.

    It *is* the base variant's name (equal, same hash), so a scenario that looks
    the variant up anywhere else (its SOURCES, a per-variant table) sees the base;
    only :func:`build_for` reads ``patch``.
    """

    patch: type[Subsystem] | None

    def __new__(cls, base: str, patch: type[Subsystem]) -> Patched:
        self = super().__new__(cls, base)
        self.patch = patch
        return self


def apply_patch(build: Build, patch: type[Subsystem]) -> Build:
    """``build`` with an instance of ``patch`` in its subsystem's slot.

    The instance starts as a copy of the state of the implementation it replaces
    (its constructor's parameters: a module parameter, a device table), so a patch
    class never has to repeat its base's constructor.
    """
    base = build.part(patch.subsystem)
    if base is None or not isinstance(base, patch.__mro__[1]):
        have = type(base).__name__ if base is not None else "nothing"
        raise TypeError(f"{patch.__name__} patches {patch.__mro__[1].__name__}, but this build has {have}")
    part = patch.__new__(patch)
    part.__dict__.update(base.__dict__)
    return build.patched(part)


def build_for(builds: Mapping[str, Build], variant: str) -> Build:
    """The kernel build of ``variant`` from a seed's ``BUILDS`` (with a user's patch, if any)."""
    build = builds[variant]
    patch = getattr(variant, "patch", None)
    return build if patch is None else apply_patch(build, patch)
