"""Where the kernel's litmus tests are: ../shared/kernel/lkmm beside the clone (or $KVMCHECK_SHARED)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CORPUS = HERE / "litmus"


def shared_lkmm() -> Path:
    env = os.environ.get("KVMCHECK_SHARED")
    base = Path(env) if env else ROOT.parent / "shared"
    return base / "kernel" / "lkmm"
