"""A fault path that takes mmap_lock for read twice, racing munmap (written from README's
"Writing a model": rw_semaphore fairness).

Threads: fault (down_read; nested helper takes down_read again), munmap (down_write).
Expected: "nested" deadlocks when munmap queues between the two reads (bug); "once" takes
the lock once and passes it down (ok, complete).
"""

from __future__ import annotations

from typing import Any

from kvmcheck import join, scenario, spawn
from kvmcheck.kernel import RwSem, Struct, down_read, down_write, up_read, up_write


class Mm(Struct):
    map_count: int = 1

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.mmap_lock = RwSem("mm->mmap_lock")


def find_vma(mm: Mm, locked: bool) -> int:
    if not locked:
        down_read(mm.mmap_lock)
    n = mm.map_count
    if not locked:
        up_read(mm.mmap_lock)
    return n


@scenario(name="readme.mmap_fault", expect={"nested": "bug", "once": "ok"})
def mmap_fault(variant: str) -> None:
    mm = Mm()

    def fault() -> None:
        down_read(mm.mmap_lock)
        find_vma(mm, locked=variant == "once")
        up_read(mm.mmap_lock)

    def munmap() -> None:
        down_write(mm.mmap_lock)
        mm.map_count = 0
        up_write(mm.mmap_lock)

    join(spawn(fault), spawn(munmap))
