"""django-background-tasks' ``background_task.tasks``: ``@background``, ``tasks`` (with
``run_next_task`` and ``run_task``), ``TaskSchedule``, ``TaskProxy`` and ``DBTaskRunner``,
over pgqueue jobs.

A decorated function is registered on the project's pgqueue app, so workers
(``process_tasks``, ``manage.py pgqueue worker``) run it; calling the proxy saves a ``Task``
row, which is a pgqueue job. ``tasks.run_next_task()`` locks one due task and runs it in this
process, as the library does (what its users call in their own tests). Either way an attempt
follows the library's rules (`runner`) and sends its signals (`signals`).
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import import_module
from multiprocessing.pool import ThreadPool
from typing import TYPE_CHECKING, Any

from django.core.signals import setting_changed
from django.db.utils import OperationalError
from django.utils import timezone

from pgqueue.context import JobContext
from pgqueue.contrib.django.app import app
from pgqueue.contrib.django.background import runner, signals
from pgqueue.contrib.django.background.exceptions import BackgroundTaskError
from pgqueue.contrib.django.background.settings import app_settings
from pgqueue.retry import RetryPolicy

if TYPE_CHECKING:
    from pgqueue.contrib.django.background.models import Task

logger = logging.getLogger(__name__)

RUN_TIME_SETTINGS = frozenset({"MAX_ATTEMPTS", "MAX_RUN_TIME"})
"""Settings a worker's registration of a task carries (its timeout, its retry budget)."""


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


# -- one attempt ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttemptEnd:
    error: Exception | None
    recorded: bool
    """The outcome is written (by this attempt; else the worker writes it, or the claim was
    lost)."""


def run_attempt(function: Callable[..., Any], args: Any, kwargs: Any, task: Task | None,
                attempt: runner.Attempt, *, in_worker: bool) -> AttemptEnd:
    """Run the function and record the outcome with the library's rules and signals. In a
    worker, a retry the worker would decide the same way is left for it to record."""
    from pgqueue.contrib.django.background.models import CompletedTask, Task

    signals.task_started.send(Task)
    try:
        value = function(*args, **kwargs)
    except Exception as error:
        logger.error("Rescheduling %s", task, exc_info=error)
        signals.task_error.send(sender=error.__class__, task=task)
        final = runner.is_final(attempt, error)
        left_to_worker = in_worker and not final and attempt.number < attempt.max_attempts
        recorded = not left_to_worker and runner.record_failure(attempt, error)
        if final and recorded:
            signals.task_failed.send(sender=Task, task_id=attempt.job_id,
                                     completed_task=CompletedTask.objects.get(pk=attempt.job_id))
        elif recorded or left_to_worker:
            rescheduled = Task.objects.filter(pk=attempt.job_id).first() if recorded else task
            signals.task_rescheduled.send(sender=Task, task=rescheduled)
        else:
            logger.warning("%s lost its lock while it ran: its outcome is not recorded", task)
        signals.task_finished.send(Task)
        return AttemptEnd(error, recorded)
    recorded = runner.record_success(attempt, task, value)
    if recorded:
        signals.task_successful.send(sender=Task, task_id=attempt.job_id,
                                     completed_task=CompletedTask.objects.get(pk=attempt.job_id))
        logger.info("Ran task and deleting %s", task)
    else:
        logger.warning("%s lost its lock while it ran: its outcome is not recorded", task)
    signals.task_finished.send(Task)
    return AttemptEnd(None, recorded)


def bg_runner(proxy_task: TaskProxy, task: Task | None = None, *args: Any,
              **kwargs: Any) -> None:
    """Run a task here (the library's ``bg_runner``): a `Task` with its own arguments, or, given
    arguments, the scheduled task they match if there is one, else just the function."""
    from pgqueue.contrib.django.background.models import Task

    function = getattr(proxy_task, "task_function", None) or _missing_function
    if isinstance(task, Task):
        args, kwargs = task.params()
    else:
        matching = Task.objects.get_task(task_name=proxy_task.name, args=args, kwargs=kwargs)
        if proxy_task.queue:
            matching = matching.filter(queue=proxy_task.queue)
        task = matching.first()
    if task is None:
        signals.task_started.send(Task)
        try:
            function(*args, **kwargs)
        except Exception as error:
            logger.error("Error running %s", proxy_task, exc_info=error)
        signals.task_finished.send(Task)
        return
    attempt = runner.start_attempt(task.pk, tasks._runner.worker_name)
    if attempt is None:
        logger.warning("%s is locked by another process, or finished: not run", task)
        return
    run_attempt(function, args, kwargs, task, attempt, in_worker=False)


def _missing_function(*args: Any, **kwargs: Any) -> None:
    raise BackgroundTaskError("Function is None, can't execute!")


def _for_workers(function: Callable[..., Any]) -> Callable[..., Any]:
    """What a pgqueue worker runs for a ``@background`` function: one attempt of its Task."""

    def run_background_task(pgqueue_context: JobContext, *args: Any, **kwargs: Any) -> Any:
        from pgqueue.contrib.django.background.models import Task

        job = pgqueue_context.job
        task = Task.objects.filter(pk=job.id).first()
        if task is None:  # deferred through pgqueue's own API: an ordinary job
            return function(*args, **kwargs)
        attempt = runner.Attempt(job.id, job.attempt, job.max_attempts, job.claim_token)
        ended = run_attempt(function, args, kwargs, task, attempt, in_worker=True)
        if ended.error is not None:
            raise ended.error  # recorded already, or the worker records the retry
        pgqueue_context.completed_in_transaction = ended.recorded
        return None

    context_parameter = inspect.Parameter("pgqueue_context", inspect.Parameter.POSITIONAL_ONLY)
    parameters = list(inspect.signature(function).parameters.values())
    run_background_task.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [context_parameter, *parameters])
    run_background_task.__qualname__ = function.__qualname__
    run_background_task.__module__ = function.__module__
    run_background_task.background_function = function  # type: ignore[attr-defined]
    return run_background_task


# -- runners and the registry ----------------------------------------------------------------


class PoolRunner:
    """``BACKGROUND_TASK_RUN_ASYNC``: `run_task` hands the attempt to a thread pool."""

    def __init__(self, bg_runner: Callable[..., None], num_processes: int | None = None) -> None:
        self._bg_runner = bg_runner
        self._num_processes = num_processes
        self._pool_instance: ThreadPool | None = None

    @property
    def _pool(self) -> ThreadPool:
        if self._pool_instance is None:
            self._pool_instance = ThreadPool(
                processes=self._num_processes or app_settings.BACKGROUND_TASK_ASYNC_THREADS)
        return self._pool_instance

    def run(self, proxy_task: TaskProxy, task: Task | None = None, *args: Any,
            **kwargs: Any) -> None:
        self._pool.apply_async(func=self._bg_runner, args=(proxy_task, task, *args),
                               kwds=kwargs)

    __call__ = run


class DBTaskRunner:
    """Schedules tasks and picks the next one to run here; `worker_name` (the process id) is
    the name its locks carry."""

    def __init__(self) -> None:
        self.worker_name = str(os.getpid())

    def schedule(
        self, task_name: str, args: Any, kwargs: Any, run_at: Any = None, priority: int = 0,
        action: int = TaskSchedule.SCHEDULE, queue: str | None = None,
        verbose_name: str | None = None, creator: Any = None, repeat: int | None = None,
        repeat_until: Any = None, remove_existing_tasks: bool = False,
    ) -> Task | None:
        """Save a Task row (a pgqueue job) on Django's connection; None when ``CHECK_EXISTING``
        found one or ``RESCHEDULE_EXISTING`` moved one."""
        from pgqueue.contrib.django.background.models import Task

        task = Task.objects.new_task(task_name, args, kwargs, run_at, priority, queue,
                                     verbose_name, creator, repeat, repeat_until,
                                     remove_existing_tasks)
        if action != TaskSchedule.SCHEDULE:
            existing = Task.objects.unlocked(timezone.now()).filter(task_hash=task.task_hash)
            if queue:
                existing = existing.filter(queue=queue)
            if action == TaskSchedule.RESCHEDULE_EXISTING:
                if existing.update(run_at=run_at, priority=priority):
                    return None
            elif action == TaskSchedule.CHECK_EXISTING and existing.exists():
                return None
        task.save()
        signals.task_created.send(sender=self.__class__, task=task)
        return task

    def get_task_to_run(self, tasks: Tasks, queue: str | None = None) -> Task | None:
        """Lock one due task this process knows (of the first five, the first it can lock)."""
        from pgqueue.contrib.django.background.models import Task

        try:
            available = [task for task in Task.objects.find_available(queue)
                         if task.task_name in tasks._tasks][:5]
            for task in available:
                locked = task.lock(self.worker_name)
                if locked is not None:
                    return locked
        except OperationalError:
            logger.warning("Failed to retrieve tasks. Database unreachable.")
        return None

    def run_task(self, tasks: Tasks, task: Task) -> None:
        logger.info("Running %s", task)
        tasks.run_task(task)

    def run_next_task(self, tasks: Tasks, queue: str | None = None) -> bool:
        task = self.get_task_to_run(tasks, queue)
        if task is None:
            return False
        self.run_task(tasks, task)
        return True


class TaskProxy:
    """What ``@background`` returns: calling it schedules the task; ``now`` runs it inline."""

    def __init__(self, name: str, task_function: Callable[..., Any], schedule: Any,
                 queue: str | None, remove_existing_tasks: bool,
                 runner: DBTaskRunner | None = None) -> None:
        self.name = name
        self.now = self.task_function = task_function
        self.runner = runner or tasks._runner
        self.schedule = TaskSchedule.create(schedule)
        self.queue = queue
        self.remove_existing_tasks = remove_existing_tasks
        self.__doc__ = task_function.__doc__
        self.__wrapped__ = task_function

    def __call__(self, *args: Any, **kwargs: Any) -> Task | None:
        schedule = TaskSchedule.create(kwargs.pop("schedule", None)).merge(self.schedule)
        return self.runner.schedule(
            self.name, args, kwargs, schedule.run_at,
            kwargs.pop("priority", schedule.priority), schedule.action,
            kwargs.pop("queue", self.queue), kwargs.pop("verbose_name", None),
            kwargs.pop("creator", None), kwargs.pop("repeat", None),
            kwargs.pop("repeat_until", None),
            kwargs.pop("remove_existing_tasks", self.remove_existing_tasks))

    def __str__(self) -> str:
        return f"TaskProxy({self.name})"


class Tasks:
    """The registry of ``@background`` tasks (``tasks`` below is the one everybody uses)."""

    def __init__(self) -> None:
        self._tasks: dict[str, TaskProxy] = {}
        self._runner = DBTaskRunner()
        self._task_proxy_class = TaskProxy
        self._bg_runner = bg_runner
        self._pool_runner = PoolRunner(bg_runner)

    def background(
        self, name: str | Callable[..., Any] | None = None, schedule: Any = None,
        queue: str | None = None, remove_existing_tasks: bool = False,
    ) -> Any:
        function = None
        if name is not None and callable(name):
            function, name = name, None

        def decorate(function: Callable[..., Any]) -> TaskProxy:
            task_name = name or f"{function.__module__}.{function.__name__}"
            _register_for_workers(task_name, function, queue)
            proxy = self._task_proxy_class(task_name, function, schedule, queue,
                                           remove_existing_tasks, self._runner)
            self._tasks[task_name] = proxy
            return proxy

        return decorate(function) if function is not None else decorate

    def run_task(self, task_name: str | Task, args: Any = None, kwargs: Any = None) -> None:
        """Run a task (a `Task`, or a task name with arguments) in this process."""
        from pgqueue.contrib.django.background.models import Task

        task = None
        if isinstance(task_name, Task):
            task, task_name, args, kwargs = task_name, task_name.task_name, [], {}
        proxy_task = self._tasks[task_name]
        run = self._pool_runner if app_settings.BACKGROUND_TASK_RUN_ASYNC else self._bg_runner
        run(proxy_task, task, *(args or ()), **(kwargs or {}))

    def run_next_task(self, queue: str | None = None) -> bool:
        """Lock the next due task and run it here; False if none was due."""
        return self._runner.run_next_task(self, queue)


def _register_for_workers(task_name: str, function: Callable[..., Any],
                          queue: str | None) -> None:
    existing = dict.get(app.tasks, task_name)
    if existing is not None and hasattr(existing.func, "background_function"):
        dict.pop(app.tasks, task_name)  # decorated again (a reload, a test): the last one wins
    app.task(_for_workers(function), name=task_name, queue=queue or "default",
             retry=RetryPolicy(max_attempts=app_settings.BACKGROUND_TASK_MAX_ATTEMPTS,
                               backoff=_delay_after),
             timeout=app_settings.BACKGROUND_TASK_MAX_RUN_TIME, pass_context=True)


def _delay_after(attempts: int) -> float:
    """The delay setting, read when the attempt fails."""
    return app_settings.BACKGROUND_TASK_DELAY_BETWEEN_ATTEMPTS(attempts)


def _refresh_worker_registrations(*, setting: str, **kwargs: Any) -> None:
    """``override_settings(MAX_RUN_TIME=..., MAX_ATTEMPTS=...)`` reaches tasks decorated
    before it: their registrations carry the new timeout and retry budget."""
    if setting not in RUN_TIME_SETTINGS:
        return
    for name in tasks._tasks:
        registered = dict.get(app.tasks, name)
        if registered is not None and hasattr(registered.func, "background_function"):
            app.tasks[name] = dataclasses.replace(
                registered, timeout=app_settings.BACKGROUND_TASK_MAX_RUN_TIME,
                retry=dataclasses.replace(
                    registered.retry, max_attempts=app_settings.BACKGROUND_TASK_MAX_ATTEMPTS))


setting_changed.connect(_refresh_worker_registrations)

tasks = Tasks()


def autodiscover() -> None:
    """Import every installed app's ``tasks`` module (pgqueue's app config does it at start)."""
    from django.conf import settings

    for app_name in settings.INSTALLED_APPS:
        try:
            import_module(f"{app_name}.tasks")
        except ImportError:
            continue


__all__ = ["DBTaskRunner", "PoolRunner", "TaskProxy", "TaskSchedule", "Tasks", "autodiscover",
           "bg_runner", "tasks"]
