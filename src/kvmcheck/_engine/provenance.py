"""Where a variant's (or a scenario's) code was read: the record a reviewer follows.

Every bundled variant names its ``source`` -- a kernel tree tag and file path ("v6.8:
virt/kvm/pfncache.c"), or a posted patch's subject, date and message-id -- and how it was obtained:

``tree``           read from the kernel tree at that tag or commit;
``posted``         read from the patch mail as posted (subject, date, message-id in ``source``);
``reconstructed``  rebuilt from diffs, later prose or review comments, because the text itself could
                   not be read here (``note`` says from what);
``mutant``         a combination that never existed as a commit, or our own proposed fix
                   (``note`` says what was changed and from which base).
"""

from __future__ import annotations

from dataclasses import dataclass

PROVENANCES = ("tree", "posted", "reconstructed", "mutant")


@dataclass(frozen=True)
class Source:
    """Where code was read, and how (one of :data:`PROVENANCES`)."""

    provenance: str
    source: str
    note: str = ""

    def __post_init__(self) -> None:
        if self.provenance not in PROVENANCES:
            raise ValueError(f"provenance {self.provenance!r} is not one of {', '.join(PROVENANCES)}")
        if not self.source.strip():
            raise ValueError("a Source needs a source: a tree tag + path, or subject/date/message-id")
        if self.provenance in ("reconstructed", "mutant") and not self.note.strip():
            raise ValueError(f"a {self.provenance} Source must say from what in its note")

    def as_dict(self) -> dict[str, str]:
        return {"provenance": self.provenance, "source": self.source, "note": self.note}
