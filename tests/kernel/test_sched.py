"""set_current_state()/schedule()/wake_up_process() (kernel/sched.py) beyond the documented rules.

The lost-wakeup rules of include/linux/sched.h, try_to_wake_up()'s return value and ordering,
"scheduling while atomic" and schedule_timeout()'s kernel-doc are conformance cases, each with the
comment it rests on: tests/conformance/test_wait.py.  Here: the corner cases of schedule() itself.
"""

from __future__ import annotations

from kvmcheck.kernel import (
    MAX_SCHEDULE_TIMEOUT,
    TASK_UNINTERRUPTIBLE,
    schedule,
    schedule_timeout,
    set_current_state,
)
from tests.kernel.helpers import found, ok, run


def test_max_schedule_timeout_is_schedule() -> None:
    def body() -> None:
        set_current_state(TASK_UNINTERRUPTIBLE)
        schedule_timeout(MAX_SCHEDULE_TIMEOUT)

    found(run(body), "deadlock")


def test_schedule_while_running_is_a_reschedule_point() -> None:
    def body() -> None:
        schedule()

    ok(run(body))
