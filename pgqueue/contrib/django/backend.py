"""`PgQueueBackend`: a backend for Django's Tasks framework (``django.tasks`` on Django 6, the
``django_tasks`` backport on 5.2) that stores each enqueued Task as a pgqueue job.

    TASKS = {"default": {
        "BACKEND": "pgqueue.contrib.django.backend.PgQueueBackend",
        "QUEUES": ["default", "emails"],
        "OPTIONS": {"MAX_ATTEMPTS": 1, "TIMEOUT": None},
    }}

- ``enqueue`` inserts on Django's connection, so it commits or rolls back with
  ``transaction.atomic()``; the result id is the job id, as a string.
- Django priorities (-100..100) are stored times ten (pgqueue allows -1000..1000; higher runs
  first in both), so the order is kept and ``get_result`` maps them back.
- A worker (``manage.py pgqueue worker``) runs the Task through a registered pgqueue task that
  sends ``task_started`` and ``task_finished`` around it, as Django's own backends do.
- Django Tasks have no retries: ``MAX_ATTEMPTS`` defaults to 1; set it higher to let pgqueue
  retry a failed Task with its backoff (``errors`` then holds the last error only).
- Per Task, `pgqueue_options` (a decorator over ``@task``) sets its attempts and timeout, and
  a unique key, a lock or a concurrency key made from each call's arguments.
"""

from __future__ import annotations

import builtins
import dataclasses
import inspect
import json
import traceback
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.apps import apps
from django.core import checks
from django.utils import timezone
from django.utils.module_loading import import_string

from pgqueue.context import JobContext
from pgqueue.contrib.django import conf, tasks_api
from pgqueue.contrib.django.app import DjangoApp
from pgqueue.contrib.django.app import app as default_app
from pgqueue.contrib.django.task_options import PgQueueOptions, options_of, pgqueue_options
from pgqueue.errors import InvalidArguments, JobNotFound
from pgqueue.retry import RetryPolicy
from pgqueue.tasks import Task as PgQueueTask
from pgqueue.types import Job, JobError, JobState
from pgqueue.validation import checked_result

PRIORITY_SCALE = 10
"""pgqueue priority = Django priority x 10."""

OPTION_DEFAULTS: dict[str, Any] = {"MAX_ATTEMPTS": 1, "TIMEOUT": None}

_STATUS = {
    JobState.QUEUED: tasks_api.TaskResultStatus.READY,
    JobState.WAITING: tasks_api.TaskResultStatus.READY,  # behind its lock: not started yet
    JobState.RUNNING: tasks_api.TaskResultStatus.RUNNING,
    JobState.SUCCEEDED: tasks_api.TaskResultStatus.SUCCESSFUL,
    JobState.FAILED: tasks_api.TaskResultStatus.FAILED,
    # Django has no "cancelled": a cancelled Task did not succeed and will not run again.
    JobState.CANCELLED: tasks_api.TaskResultStatus.FAILED,
}


def to_pgqueue_priority(priority: int) -> int:
    return int(priority) * PRIORITY_SCALE


def to_django_priority(priority: int) -> int:
    scaled = round(priority / PRIORITY_SCALE)
    return max(tasks_api.TASK_MIN_PRIORITY, min(tasks_api.TASK_MAX_PRIORITY, scaled))


def _not_json_serializable(value: Any, cause: Exception) -> TypeError:
    """The message Django's database backend gives (json's own): "Object of type set is not
    JSON serializable"."""
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        return TypeError(str(exc))
    return TypeError(str(cause))


class PgQueueBackend(tasks_api.BaseTaskBackend):
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.unknown_options = sorted(set(self.options) - set(OPTION_DEFAULTS))
        settings = {**OPTION_DEFAULTS, **self.options}
        self.max_attempts = settings["MAX_ATTEMPTS"]
        self.timeout = settings["TIMEOUT"]
        self.app: DjangoApp = default_app

    # -- definition ----------------------------------------------------------------------

    def validate_task(self, task: Any) -> None:
        super().validate_task(task)
        self.pgqueue_task(task)

    def pgqueue_task(self, task: Any) -> PgQueueTask[Any, Any]:
        """The pgqueue task that runs `task` in a worker, registered once per function."""
        name = task.module_path
        options = options_of(task)
        retry = RetryPolicy(max_attempts=options.max_attempts or self.max_attempts)
        timeout = options.timeout if options.timeout is not None else self.timeout
        existing = dict.get(self.app.tasks, name)
        if existing is not None and getattr(existing.func, "django_task_func", None) is task.func:
            if (existing.retry, existing.timeout) != (retry, timeout):
                # @pgqueue_options sits above @task, which registered the Task first.
                existing = dataclasses.replace(existing, retry=retry, timeout=timeout)
                dict.__setitem__(self.app.tasks, name, existing)
            return existing
        return self.app.task(_runner_for(task, type(self), self.app), name=name,
                             queue=task.queue_name, retry=retry, timeout=timeout,
                             pass_context=True)

    # -- enqueue -------------------------------------------------------------------------

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        self.validate_task(task)
        args = tasks_api.normalize_json(list(args))
        kwargs = tasks_api.normalize_json(dict(kwargs))
        run_after = task.run_after
        if run_after is not None and timezone.is_naive(run_after):
            run_after = timezone.make_aware(run_after)
        try:
            keys = options_of(task).keys_for(task.func, task.takes_context, args, kwargs)
            configured = self.pgqueue_task(task).using(
                queue=task.queue_name, priority=to_pgqueue_priority(task.priority),
                run_at=run_after, **keys)
            job_id = configured.defer(*args, **kwargs)
        except InvalidArguments as exc:
            # What calling the function with these arguments would raise.
            raise TypeError(str(exc)) from exc
        # Read back in the same transaction: the result is the row's (its enqueued_at is the
        # database's), equal to what get_result() returns; with a unique key, the result of
        # the job that holds it.
        job = self.app.get_job(job_id)
        result = result_from_job(job, self._task_of(job) or task, backend_alias=self.alias)
        tasks_api.task_enqueued.send(type(self), task_result=result)
        return result

    # -- results -------------------------------------------------------------------------

    def get_result(self, result_id: str) -> Any:
        try:
            job = self.app.get_job(int(result_id))
        except (TypeError, ValueError, JobNotFound):
            raise tasks_api.TaskResultDoesNotExist(result_id) from None
        task = self._task_of(job)
        if task is None:
            raise tasks_api.TaskResultDoesNotExist(
                f"{result_id} is the id of a pgqueue job of {job.task_name!r}, which is not a "
                "Django Task")
        return result_from_job(job, task, backend_alias=self.alias)

    def _task_of(self, job: Job) -> Any:
        task = _import_task(job.task_name)
        if task is None:
            return None
        run_after = job.run_at if job.run_at > job.enqueued_at else None
        return task.using(priority=to_django_priority(job.priority), queue_name=job.queue,
                          run_after=run_after, backend=self.alias)

    # -- checks --------------------------------------------------------------------------

    def check(self, **kwargs: Any) -> Iterable[checks.CheckMessage]:
        from pgqueue.contrib.django.checks import check_database_alias, check_schema

        yield from super().check(**kwargs)
        for option in self.unknown_options:
            yield checks.Error(
                f"TASKS[{self.alias!r}]['OPTIONS'] has an unknown option {option!r}",
                hint=f"PgQueueBackend takes {', '.join(OPTION_DEFAULTS)}.", id="pgqueue.E002")
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            yield checks.Error(f"MAX_ATTEMPTS must be an int >= 1, not {self.max_attempts!r}",
                               id="pgqueue.E003")
        alias = conf.database_alias()
        problems = check_database_alias(alias, source="PGQUEUE_DATABASE_ALIAS")
        yield from problems
        if not problems and alias in (kwargs.get("databases") or ()):
            yield from check_schema(alias)


def _import_task(name: str) -> Any:
    """The Django Task object at dotted path `name`, only from an installed app's modules."""
    module_name, _, _attr = name.rpartition(".")
    if not module_name or not any(
        module_name == config.name or module_name.startswith(config.name + ".")
        for config in apps.get_app_configs()
    ):
        return None
    try:
        found = import_string(name)
    except ImportError:
        return None
    return found if isinstance(found, tasks_api.Task) else None


def resolve_django_task(app: DjangoApp, name: str) -> PgQueueTask[Any, Any] | None:
    """For `TaskRegistry`: a worker meeting a Django Task that was never imported registers it."""
    task = _import_task(name)
    if task is None:
        return None
    try:
        backend = tasks_api.task_backends[task.backend]
    except Exception:
        return None
    if not isinstance(backend, PgQueueBackend) or backend.app is not app:
        return None
    return backend.pgqueue_task(task)


def _exception_path(error: JobError) -> str:
    """The dotted path of the exception class; pgqueue keeps its qualname, and the traceback's
    last line names it with its module."""
    last_line = (error.traceback or "").strip().splitlines()[-1:] or [""]
    head = last_line[0].split(":", 1)[0].strip()
    if "." in head and head.endswith(error.type):
        return head
    if isinstance(getattr(builtins, error.type, None), type):
        return f"builtins.{error.type}"
    return error.type


def _worker_ids(attempts: int, current: str | None) -> list[str]:
    """One entry per attempt started; pgqueue keeps no history of which worker ran the earlier
    ones, so only the running attempt's entry names its worker."""
    earlier = ["pgqueue"] * max(attempts - 1, 0)
    if attempts <= 0:
        return []
    return [*earlier, current or "pgqueue"]


def result_from_job(job: Job, task: Any, *, backend_alias: str) -> Any:
    status = _STATUS[job.state]
    errors = []
    if job.error is not None and job.error.traceback is not None:
        errors.append(tasks_api.TaskError(exception_class_path=_exception_path(job.error),
                                          traceback=job.error.traceback))
    running_worker = str(job.worker_id) if job.state == JobState.RUNNING and job.worker_id else None
    result = tasks_api.TaskResult(
        task=task, id=str(job.id), status=status, enqueued_at=job.enqueued_at,
        started_at=job.started_at, finished_at=job.finished_at,
        last_attempted_at=job.started_at, args=job.args, kwargs=job.kwargs,
        backend=backend_alias, errors=errors, worker_ids=_worker_ids(job.attempts, running_worker))
    if status == tasks_api.TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", job.result)
    return result


def _runner_for(task: Any, sender: type[PgQueueBackend], app: DjangoApp) -> Any:
    """The function a worker runs for `task`: it rebuilds the TaskResult, sends task_started,
    calls the Task, then records the outcome on the result and sends task_finished (a return
    value over the app's result_max_bytes fails it here, so the signal says FAILED)."""

    def run_django_task(pgqueue_context: JobContext, *args: Any, **kwargs: Any) -> Any:
        job = pgqueue_context.job
        started = timezone.now()
        run_after: datetime | None = job.run_at if job.run_at > job.enqueued_at else None
        current = task.using(priority=to_django_priority(job.priority), queue_name=job.queue,
                             run_after=run_after)
        result = tasks_api.TaskResult(
            task=current, id=str(job.id), status=tasks_api.TaskResultStatus.RUNNING,
            enqueued_at=job.enqueued_at, started_at=started, finished_at=None,
            last_attempted_at=started, args=list(args), kwargs=dict(kwargs),
            backend=current.backend, errors=[],
            worker_ids=_worker_ids(job.attempt, pgqueue_context.worker_name))
        tasks_api.task_started.send(sender=sender, task_result=result)
        try:
            if current.takes_context:
                value = current.call(tasks_api.TaskContext(task_result=result), *args, **kwargs)
            else:
                value = current.call(*args, **kwargs)
            try:
                value = tasks_api.normalize_json(value)
            except (TypeError, ValueError) as exc:
                raise _not_json_serializable(value, exc) from exc
            if value is not None:
                checked_result(json.dumps(value, ensure_ascii=False, separators=(",", ":")),
                               app.result_max_bytes)
        except BaseException as exc:
            object.__setattr__(result, "finished_at", timezone.now())
            object.__setattr__(result, "status", tasks_api.TaskResultStatus.FAILED)
            result.errors.append(tasks_api.TaskError(
                exception_class_path=f"{type(exc).__module__}.{type(exc).__qualname__}",
                traceback="".join(traceback.format_exception(exc))))
            tasks_api.task_finished.send(sender=sender, task_result=result)
            raise
        object.__setattr__(result, "finished_at", timezone.now())
        object.__setattr__(result, "status", tasks_api.TaskResultStatus.SUCCESSFUL)
        object.__setattr__(result, "_return_value", value)
        tasks_api.task_finished.send(sender=sender, task_result=result)
        return value

    parameters = list(inspect.signature(task.func).parameters.values())
    if task.takes_context:
        parameters = parameters[1:]
    context_parameter = inspect.Parameter("pgqueue_context", inspect.Parameter.POSITIONAL_ONLY)
    run_django_task.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [context_parameter, *parameters])
    run_django_task.django_task_func = task.func  # type: ignore[attr-defined]
    run_django_task.__qualname__ = f"run_django_task[{task.module_path}]"
    return run_django_task


__all__ = ["PRIORITY_SCALE", "PgQueueBackend", "PgQueueOptions", "pgqueue_options",
           "to_django_priority", "to_pgqueue_priority"]
