"""``@background``: django-background-tasks' decorator, enqueueing pgqueue jobs.

The decorated function is registered on the project's pgqueue app (retries: ``MAX_ATTEMPTS``
attempts, ``BACKGROUND_TASK_DELAY_BETWEEN_ATTEMPTS`` backoff, ``MAX_RUN_TIME`` timeout, all read
when the function is decorated); calling the returned proxy saves a ``Task`` row, which is a
pgqueue job. A repeating task (``repeat=``) schedules its next run when an attempt succeeds,
from inside that attempt, just before its success is recorded.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from pgqueue.context import JobContext
from pgqueue.contrib.django.app import app
from pgqueue.contrib.django.background import settings as bg_settings
from pgqueue.errors import InvalidArguments
from pgqueue.retry import RetryPolicy
from pgqueue.validation import to_json

if TYPE_CHECKING:
    from pgqueue.contrib.django.background.models import Task


class TaskSchedule:
    """When and how to schedule: ``schedule=`` is seconds, a timedelta, a datetime, or a dict
    with ``run_at``, ``priority`` and ``action`` (one of the three constants below)."""

    SCHEDULE = 0
    RESCHEDULE_EXISTING = 1
    CHECK_EXISTING = 2

    def __init__(self, run_at: Any = None, priority: int | None = None,
                 action: int | None = None) -> None:
        self._run_at = run_at
        self._priority = priority
        self._action = action

    @classmethod
    def create(cls, schedule: Any) -> TaskSchedule:
        if isinstance(schedule, TaskSchedule):
            return schedule
        if not schedule:
            return cls()
        if isinstance(schedule, int | float | timedelta | datetime):
            return cls(run_at=schedule)
        if isinstance(schedule, Mapping):
            return cls(run_at=schedule.get("run_at"), priority=schedule.get("priority"),
                       action=schedule.get("action"))
        raise TypeError(f"schedule must be seconds, a timedelta, a datetime or a dict, "
                        f"not {type(schedule).__name__}")

    def merge(self, schedule: TaskSchedule) -> TaskSchedule:
        """Values set here win; unset ones come from `schedule` (the decorator's)."""
        return TaskSchedule(
            run_at=self._run_at if self._run_at is not None else schedule._run_at,
            priority=self._priority if self._priority is not None else schedule._priority,
            action=self._action if self._action is not None else schedule._action)

    @property
    def run_at(self) -> datetime:
        run_at = self._run_at or timezone.now()
        if isinstance(run_at, int | float):
            return timezone.now() + timedelta(seconds=run_at)
        if isinstance(run_at, timedelta):
            return timezone.now() + run_at
        return run_at

    @property
    def priority(self) -> int:
        return self._priority or 0

    @property
    def action(self) -> int:
        return self._action or TaskSchedule.SCHEDULE

    def __repr__(self) -> str:
        return f"TaskSchedule(run_at={self._run_at}, priority={self._priority})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaskSchedule) and (
            (self._run_at, self._priority, self._action)
            == (other._run_at, other._priority, other._action))

    __hash__ = None  # type: ignore[assignment]


def schedule_task(
    task_name: str, args: Any, kwargs: Any, run_at: Any = None, priority: int = 0,
    action: int = TaskSchedule.SCHEDULE, queue: str | None = None,
    verbose_name: str | None = None, creator: Any = None, repeat: int | None = None,
    repeat_until: Any = None, remove_existing_tasks: bool = False,
) -> Task | None:
    """Save a Task row (a pgqueue job) on Django's connection; None when ``CHECK_EXISTING``
    found one or ``RESCHEDULE_EXISTING`` moved one."""
    from pgqueue.contrib.django.background.models import Task

    task = Task.objects.new_task(task_name, args, kwargs, run_at, priority, queue, verbose_name,
                                 creator, repeat, repeat_until, remove_existing_tasks)
    if action != TaskSchedule.SCHEDULE:
        existing = Task.objects.filter(task_hash=task.task_hash, state="queued")
        if queue:
            existing = existing.filter(queue=queue)
        if action == TaskSchedule.RESCHEDULE_EXISTING:
            if existing.update(run_at=task.run_at, priority=task.priority):
                return None
        elif action == TaskSchedule.CHECK_EXISTING and existing.exists():
            return None
    task.save()
    return task


class TaskProxy:
    """What ``@background`` returns: calling it schedules the task; ``now`` runs it inline."""

    def __init__(self, name: str, task_function: Callable[..., Any], schedule: Any,
                 queue: str | None, remove_existing_tasks: bool) -> None:
        self.name = name
        self.now = self.task_function = task_function
        self.schedule = TaskSchedule.create(schedule)
        self.queue = queue
        self.remove_existing_tasks = remove_existing_tasks
        self.runner = None
        self.__doc__ = task_function.__doc__
        self.__wrapped__ = task_function

    def __call__(self, *args: Any, **kwargs: Any) -> Task | None:
        schedule = TaskSchedule.create(kwargs.pop("schedule", None)).merge(self.schedule)
        return schedule_task(
            self.name, args, kwargs, run_at=schedule.run_at,
            priority=kwargs.pop("priority", schedule.priority), action=schedule.action,
            queue=kwargs.pop("queue", self.queue),
            verbose_name=kwargs.pop("verbose_name", None), creator=kwargs.pop("creator", None),
            repeat=kwargs.pop("repeat", None), repeat_until=kwargs.pop("repeat_until", None),
            remove_existing_tasks=kwargs.pop("remove_existing_tasks",
                                             self.remove_existing_tasks))

    def __str__(self) -> str:
        return f"TaskProxy({self.name})"


def _schedule_repetition(job_id: int) -> None:
    from pgqueue.contrib.django.background.models import Task

    current = Task.objects.filter(pk=job_id).first()
    if current is not None:
        current.create_repetition()


def _runner(function: Callable[..., Any]) -> Callable[..., Any]:
    def run_background_task(pgqueue_context: JobContext, *args: Any, **kwargs: Any) -> Any:
        value = function(*args, **kwargs)
        _schedule_repetition(pgqueue_context.job.id)
        try:
            to_json(value, "the return value")
        except InvalidArguments:
            return None  # django-background-tasks ignores return values; keep what JSON can
        return value

    context_parameter = inspect.Parameter("pgqueue_context", inspect.Parameter.POSITIONAL_ONLY)
    parameters = list(inspect.signature(function).parameters.values())
    run_background_task.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [context_parameter, *parameters])
    run_background_task.__qualname__ = function.__qualname__
    run_background_task.__module__ = function.__module__
    run_background_task.background_function = function  # type: ignore[attr-defined]
    return run_background_task


class Tasks:
    """The registry of ``@background`` tasks (``tasks`` below is the one everybody uses)."""

    def __init__(self) -> None:
        self._tasks: dict[str, TaskProxy] = {}

    def background(
        self, name: str | Callable[..., Any] | None = None, schedule: Any = None,
        queue: str | None = None, remove_existing_tasks: bool = False,
    ) -> Any:
        function = None
        if name is not None and callable(name):
            function, name = name, None

        def decorate(function: Callable[..., Any]) -> TaskProxy:
            task_name = name or f"{function.__module__}.{function.__name__}"
            delay = bg_settings.delay_between_attempts()
            existing = dict.get(app.tasks, task_name)
            if existing is not None and hasattr(existing.func, "background_function"):
                dict.pop(app.tasks, task_name)  # decorated again (a reload): the last one wins
            app.task(
                _runner(function), name=task_name, queue=queue or "default",
                retry=RetryPolicy(max_attempts=bg_settings.max_attempts(), backoff=delay),
                timeout=bg_settings.max_run_time(), pass_context=True)
            proxy = TaskProxy(task_name, function, schedule, queue, remove_existing_tasks)
            self._tasks[task_name] = proxy
            return proxy

        return decorate(function) if function is not None else decorate


tasks = Tasks()
background = tasks.background
