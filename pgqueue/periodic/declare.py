"""Declaring schedules: the `periodic` decorator and `register_schedules` for settings.

Declarations are kept per `App` (they are code, like the task registry) and reach the database
when a worker starts and reconciles them. Declaring the first schedule of an app also adds the
scheduler to the services every worker of that app runs.
"""

from __future__ import annotations

import difflib
import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pgqueue.errors import ConfigurationError
from pgqueue.periodic.plan import Misfire
from pgqueue.periodic.schedule import DEFAULT_MISFIRE_GRACE, DEFAULT_MISFIRE_WINDOW, Schedule
from pgqueue.tasks import Task

if TYPE_CHECKING:
    from pgqueue.app import App

_declared: weakref.WeakKeyDictionary[App, dict[str, Schedule]] = weakref.WeakKeyDictionary()

SETTING_KEYS = ("task", "cron", "every", "timezone", "args", "kwargs", "queue", "priority",
                "misfire", "misfire_grace", "misfire_window", "overlap")


def periodic(
    app: App, *, cron: str | None = None, every: timedelta | float | None = None,
    id: str | None = None, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
    queue: str | None = None, priority: int | None = None, timezone: str = "UTC",
    misfire: Misfire = "skip", misfire_grace: timedelta | float = DEFAULT_MISFIRE_GRACE,
    misfire_window: timedelta | float = DEFAULT_MISFIRE_WINDOW, overlap: bool = True,
) -> Callable[[Task[Any, Any]], Task[Any, Any]]:
    """Run a task on a schedule; stack it above ``@app.task`` (several may be stacked).

    ``cron`` is a 5-field expression read in ``timezone``; ``every`` a timedelta (or seconds).
    ``id`` defaults to the task name: give each schedule of one task its own.
    ``overlap=False`` skips a tick while the previous tick's job is queued, waiting or running.
    """

    def declare(task: Task[Any, Any]) -> Task[Any, Any]:
        if not isinstance(task, Task):
            raise ConfigurationError(
                "@periodic schedules a registered task: put it above @app.task, not below "
                f"(got {type(task).__name__})")
        if task.app is not app:
            raise ConfigurationError(f"task {task.name!r} belongs to another App")
        schedule = Schedule(
            id=task.name if id is None else id, task_name=task.name, cron=cron,
            every=every,  # type: ignore[arg-type]  # seconds are converted by Schedule
            timezone=timezone, args=list(args), kwargs=dict(kwargs or {}), queue=queue,
            priority=priority, misfire=misfire,
            misfire_grace=misfire_grace,  # type: ignore[arg-type]
            misfire_window=misfire_window,  # type: ignore[arg-type]
            overlap=overlap,
        )
        schedule.check_task(task)
        add_schedule(app, schedule)
        return task

    return declare


def register_schedules(app: App, mapping: Mapping[str, Mapping[str, Any]]) -> list[Schedule]:
    """Declare schedules from plain data (the Django setting ``PGQUEUE_PERIODIC``).

    ``mapping`` is ``{schedule_id: {"task": "dotted.task.name", "cron": "0 3 * * *", ...}}``;
    the keys of each entry are those of `periodic` (durations may be numbers of seconds). The
    task may be registered later: its arguments are checked then, when a worker starts.
    """
    if not isinstance(mapping, Mapping):
        raise ConfigurationError(f"schedules must be a mapping of id to settings, "
                                 f"not {type(mapping).__name__}")
    schedules = []
    for schedule_id, spec in mapping.items():
        if not isinstance(spec, Mapping):
            raise ConfigurationError(f"schedule {schedule_id!r} must be a mapping, "
                                     f"not {type(spec).__name__}")
        for key in spec:
            if key not in SETTING_KEYS:
                close = difflib.get_close_matches(str(key), SETTING_KEYS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigurationError(f"schedule {schedule_id!r}: unknown key {key!r}{hint}")
        options = dict(spec)
        task = options.pop("task", None)
        if isinstance(task, Task):
            task = task.name
        if not isinstance(task, str):
            raise ConfigurationError(f"schedule {schedule_id!r} needs 'task': a task name")
        options["args"] = list(options.get("args", ()))
        options["kwargs"] = dict(options.get("kwargs") or {})
        schedule = Schedule(id=schedule_id, task_name=task, **options)
        registered = app.tasks.get(task)
        if registered is not None:
            schedule.check_task(registered)
        add_schedule(app, schedule)
        schedules.append(schedule)
    install_scheduler(app)
    return schedules


def add_schedule(app: App, schedule: Schedule) -> None:
    """Declare one schedule; declaring the same one again (a re-imported module) is a no-op."""
    declared = _declared.setdefault(app, {})
    existing = declared.get(schedule.id)
    if existing is not None and existing != schedule:
        raise ConfigurationError(
            f"schedule id {schedule.id!r} is declared twice with different settings; give "
            "each schedule of a task its own id=")
    declared[schedule.id] = schedule
    install_scheduler(app)


def declared_schedules(app: App) -> list[Schedule]:
    return sorted(_declared.get(app, {}).values(), key=lambda schedule: schedule.id)


def install_scheduler(app: App) -> None:
    """Make every worker of `app` run the scheduler (idempotent). Workers started with
    ``--no-periodic`` skip it."""
    from pgqueue.periodic.scheduler import run_scheduler

    if run_scheduler not in app.worker_services:
        app.worker_services.append(run_scheduler)
