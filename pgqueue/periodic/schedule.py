"""A periodic schedule as declared in code, validated when it is declared.

`Schedule` names its task by name so a schedule can be declared before its task is registered
(Django settings are read before tasks are imported); `resolve` fills in what comes from the
task (queue, priority, attempts) when a worker reconciles the schedules table.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pgqueue.errors import ConfigurationError, InvalidArguments
from pgqueue.periodic.plan import MISFIRE_POLICIES, Misfire
from pgqueue.periodic.ticks import Ticks, ticks_for
from pgqueue.retry import RetryPolicy
from pgqueue.tasks import DEFAULT_QUEUE
from pgqueue.validation import (
    MAX_QUEUE_NAME,
    MAX_TASK_NAME,
    check_name,
    check_priority,
    encode_arguments,
)

if TYPE_CHECKING:
    from pgqueue.app import App
    from pgqueue.tasks import Task

MAX_SCHEDULE_ID = 200
DEFAULT_MISFIRE_GRACE = timedelta(minutes=1)
DEFAULT_MISFIRE_WINDOW = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Schedule:
    """One schedule: which task, when (`cron` in `timezone`, or `every`), with what arguments."""

    id: str
    task_name: str
    cron: str | None = None
    every: timedelta | None = None
    timezone: str = "UTC"
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str | None = None
    """None: the task's own queue."""
    priority: int | None = None
    """None: the task's own priority."""
    misfire: Misfire = "skip"
    misfire_grace: timedelta = DEFAULT_MISFIRE_GRACE
    misfire_window: timedelta = DEFAULT_MISFIRE_WINDOW
    overlap: bool = True
    """False: skip a tick while the previous tick's job is queued, waiting or running."""

    def __post_init__(self) -> None:
        check_name(self.id, "schedule id", MAX_SCHEDULE_ID)
        check_name(self.task_name, "task name", MAX_TASK_NAME)
        every = _as_timedelta(self.every, "every") if self.every is not None else None
        object.__setattr__(self, "every", every)
        if every is not None and self.timezone != "UTC":
            raise ConfigurationError(
                f"schedule {self.id!r}: timezone applies to cron schedules only (every= ticks "
                "are fixed periods of real time)")
        self.ticks  # noqa: B018 - validates cron, timezone and interval
        if self.queue is not None:
            check_name(self.queue, "queue", MAX_QUEUE_NAME)
        if self.priority is not None:
            check_priority(self.priority)
        if self.misfire not in MISFIRE_POLICIES:
            raise ConfigurationError(f"schedule {self.id!r}: misfire must be one of "
                                     f"{', '.join(MISFIRE_POLICIES)}, not {self.misfire!r}")
        if not isinstance(self.overlap, bool):
            raise ConfigurationError(f"schedule {self.id!r}: overlap must be True or False, "
                                     f"not {self.overlap!r}")
        grace = _as_timedelta(self.misfire_grace, "misfire_grace", allow_zero=True)
        window = _as_timedelta(self.misfire_window, "misfire_window")
        object.__setattr__(self, "misfire_grace", grace)
        object.__setattr__(self, "misfire_window", window)
        if isinstance(self.args, str | bytes) or not isinstance(self.args, list | tuple):
            raise InvalidArguments(f"schedule {self.id!r}: args must be a list or tuple")
        if not isinstance(self.kwargs, dict):
            raise InvalidArguments(f"schedule {self.id!r}: kwargs must be a dict")
        object.__setattr__(self, "args", list(self.args))
        encode_arguments(self.args, self.kwargs, max_bytes=2**31)

    @property
    def ticks(self) -> Ticks:
        try:
            return ticks_for(cron=self.cron, every=self.every, timezone=self.timezone)
        except ConfigurationError as exc:
            raise ConfigurationError(f"schedule {self.id!r}: {exc}") from exc

    def check_task(self, task: Task[Any, Any]) -> None:
        """The fixed arguments must fit the task's signature (checked once, at declaration)."""
        signature = inspect.signature(task.func)
        if task.pass_context:
            signature = signature.replace(parameters=list(signature.parameters.values())[1:])
        try:
            signature.bind(*self.args, **self.kwargs)
        except TypeError as exc:
            raise InvalidArguments(f"schedule {self.id!r} of {task.name}: {exc}") from exc

    def resolve(self, app: App) -> ResolvedSchedule:
        """What the schedules table stores, with the task's defaults filled in."""
        task = app.tasks.get(self.task_name)
        if task is not None:
            self.check_task(task)
        args_json, kwargs_json = encode_arguments(self.args, self.kwargs,
                                                  max_bytes=app.max_payload_bytes)
        return ResolvedSchedule(
            schedule=self, task_known=task is not None,
            queue=self.queue or (task.queue if task else DEFAULT_QUEUE),
            priority=self.priority if self.priority is not None else (
                task.priority if task else 0),
            max_attempts=(task.retry if task else RetryPolicy()).max_attempts,
            args_json=args_json, kwargs_json=kwargs_json,
        )


@dataclass(frozen=True, slots=True)
class ResolvedSchedule:
    schedule: Schedule
    task_known: bool
    queue: str
    priority: int
    max_attempts: int
    args_json: str
    kwargs_json: str


def _as_timedelta(value: Any, what: str, *, allow_zero: bool = False) -> timedelta:
    """A timedelta, or a number of seconds (as Django settings write it)."""
    if isinstance(value, bool) or not isinstance(value, timedelta | int | float):
        raise ConfigurationError(f"{what} must be a timedelta or a number of seconds, "
                                 f"not {value!r}")
    delta = value if isinstance(value, timedelta) else timedelta(seconds=value)
    if delta < timedelta(0) or (delta == timedelta(0) and not allow_zero):
        raise ConfigurationError(f"{what} must be {'>=' if allow_zero else '>'} 0, not {value!r}")
    return delta
