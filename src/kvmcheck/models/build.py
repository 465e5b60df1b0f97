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
"""

from __future__ import annotations

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
