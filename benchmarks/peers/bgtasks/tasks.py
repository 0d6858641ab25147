"""The no-op task, as django-background-tasks' docs write one (`@background`)."""

from __future__ import annotations

from background_task import background

from benchmarks.record import record


@background(schedule=0)
def noop(i: int) -> None:
    record(i)
