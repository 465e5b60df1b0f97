"""The execution that is running now (None outside a check).

Kept in its own module so that primitives reach it with one attribute load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kvmcheck._engine.execution import Execution

current: Execution | None = None
