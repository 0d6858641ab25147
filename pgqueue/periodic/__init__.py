"""Periodic tasks: schedules declared in code, enqueued exactly once per tick by the database.

    @periodic(app, cron="*/5 * * * *")          # or app.periodic(...) where App provides it
    @app.task
    def refresh() -> None: ...

Modules: `ticks` (cron and interval math, DST), `plan` (misfire policies), `schedule` (a
declaration, validated), `declare` (the decorator and settings), `reconcile` (code -> table at
worker start), `scheduler` (the worker service), `admin` (list, pause, resume, runtime
schedules). See
docs/periodic.md.
"""

from __future__ import annotations

from pgqueue.periodic.admin import (
    ScheduleInfo,
    delete_schedule,
    list_schedules,
    pause_schedule,
    resume_schedule,
    save_schedule,
)
from pgqueue.periodic.declare import (
    SETTING_KEYS,
    declared_schedules,
    install_scheduler,
    periodic,
    register_schedules,
)
from pgqueue.periodic.plan import MISFIRE_POLICIES, Misfire
from pgqueue.periodic.schedule import Schedule
from pgqueue.periodic.scheduler import Scheduler, run_scheduler

__all__ = [
    "MISFIRE_POLICIES",
    "SETTING_KEYS",
    "Misfire",
    "Schedule",
    "ScheduleInfo",
    "Scheduler",
    "declared_schedules",
    "delete_schedule",
    "install_scheduler",
    "list_schedules",
    "pause_schedule",
    "periodic",
    "register_schedules",
    "resume_schedule",
    "run_scheduler",
    "save_schedule",
]
