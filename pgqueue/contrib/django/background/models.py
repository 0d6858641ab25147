"""django-background-tasks' ``Task`` and ``CompletedTask`` models, over pgqueue's jobs.

Both are unmanaged models over views (created by this app's migration):

- ``pgqueue_background_task``: this door's unfinished jobs, with the library's columns
  (``task_params``, ``locked_by``, ``last_error``, ...). Its INSTEAD OF triggers turn an INSERT
  into a row of ``pgqueue.jobs`` (whose statement trigger NOTIFYs the workers, so
  ``Task.objects.create(task_name=...)`` wakes a worker at once), an UPDATE into an update of
  the job (its schedule, attempts and lock: a running job is a locked task), and a DELETE into
  a delete of the job.
- ``pgqueue_background_completedtask``: this door's finished jobs (succeeded, failed,
  cancelled); an INSERT records a finished job (``Task.create_completed_task()``).

What the jobs table has no column for (``verbose_name``, ``creator``, ``repeat``,
``repeat_until``, ``task_hash``, the name a lock was taken with) lives in
``pgqueue_background_task_meta``, one row per job of this door, deleted with the job. Jobs
enqueued otherwise (pgqueue's own API, Django Tasks) have none, and are not listed here.
"""

from __future__ import annotations

import json
import logging
import traceback
from datetime import datetime, timedelta
from hashlib import sha1
from types import TracebackType
from typing import Any

from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q
from django.utils import timezone

from pgqueue.contrib.django.background import runner
from pgqueue.contrib.django.background.exceptions import InvalidTaskError
from pgqueue.contrib.django.background.settings import app_settings
from pgqueue.contrib.django.background.signals import task_failed, task_rescheduled

logger = logging.getLogger(__name__)


def task_params_json(args: Any = None, kwargs: Any = None) -> str:
    return json.dumps((list(args or ()), dict(kwargs or {})), sort_keys=True)


def compute_task_hash(task_name: str, task_params: str) -> str:
    return sha1(f"{task_name}{task_params}".encode()).hexdigest()


def resolve_task_name(name: str) -> str:
    """A registered task's full name for `name`: itself if registered, else the one registered
    task whose last dotted part is `name` (so ``task_name="send_newsletter"``, as written in the
    article, reaches ``myapp.tasks.send_newsletter``)."""
    from pgqueue.contrib.django.app import app

    if dict.__contains__(app.tasks, name):
        return name
    matches = [registered for registered in app.tasks if registered.rsplit(".", 1)[-1] == name]
    return matches[0] if len(matches) == 1 else name


class TaskQuerySet(models.QuerySet):
    def created_by(self, creator: models.Model) -> TaskQuerySet:
        content_type = ContentType.objects.get_for_model(creator)
        return self.filter(creator_content_type=content_type, creator_object_id=creator.pk)


class TaskManager(models.Manager.from_queryset(TaskQuerySet)):  # type: ignore[misc]
    def find_available(self, queue: str | None = None) -> TaskQuerySet:
        """Due tasks nobody holds, higher priority first (pgqueue's order, whatever
        ``BACKGROUND_TASK_PRIORITY_ORDERING`` says), as many as free threads when async."""
        now = timezone.now()
        ready = self.unlocked(now)
        if queue:
            ready = ready.filter(queue=queue)
        ready = ready.filter(run_at__lte=now, failed_at=None).exclude(state="waiting")
        ready = ready.order_by("-priority", "run_at")
        if app_settings.BACKGROUND_TASK_RUN_ASYNC:
            free = app_settings.BACKGROUND_TASK_ASYNC_THREADS - (
                self.locked(now).count() - self.failed().count())
            return ready[:free] if free > 0 else self.none()
        return ready

    def unlocked(self, now: datetime) -> TaskQuerySet:
        """Not locked, or locked longer than ``MAX_RUN_TIME`` ago (its lock may be taken)."""
        expires_at = now - timedelta(seconds=app_settings.BACKGROUND_TASK_MAX_RUN_TIME)
        return self.filter(Q(locked_by=None) | Q(locked_at__lt=expires_at))

    def locked(self, now: datetime) -> TaskQuerySet:
        expires_at = now - timedelta(seconds=app_settings.BACKGROUND_TASK_MAX_RUN_TIME)
        return self.filter(Q(locked_by__isnull=False) | Q(locked_at__gt=expires_at))

    def failed(self) -> TaskQuerySet:
        """Tasks with ``failed_at`` set: none here, a failed task is a CompletedTask."""
        return self.filter(failed_at__isnull=False)

    def new_task(
        self, task_name: str, args: Any = None, kwargs: Any = None, run_at: Any = None,
        priority: int = 0, queue: str | None = None, verbose_name: str | None = None,
        creator: models.Model | None = None, repeat: int | None = None,
        repeat_until: Any = None, remove_existing_tasks: bool = False,
    ) -> Task:
        """An unsaved Task, as in django-background-tasks (``save()`` enqueues it)."""
        task_name = resolve_task_name(task_name)
        task_params = task_params_json(args, kwargs)
        task_hash = compute_task_hash(task_name, task_params)
        if remove_existing_tasks:
            self.filter(task_hash=task_hash, locked_at__isnull=True).delete()
        return Task(
            task_name=task_name, task_params=task_params, task_hash=task_hash,
            priority=priority or 0, run_at=run_at or timezone.now(), queue=queue,
            verbose_name=verbose_name, creator=creator, repeat=repeat or Task.NEVER,
            repeat_until=repeat_until)

    def get_task(self, task_name: str, args: Any = None, kwargs: Any = None) -> TaskQuerySet:
        task_name = resolve_task_name(task_name)
        return self.filter(task_hash=compute_task_hash(task_name, task_params_json(args, kwargs)))

    def drop_task(self, task_name: str, args: Any = None, kwargs: Any = None) -> Any:
        return self.get_task(task_name, args, kwargs).delete()


class BackgroundTaskFields(models.Model):
    """The columns django-background-tasks' Task and CompletedTask share."""

    # Repeat choices are numbers of seconds, as in django-background-tasks.
    HOURLY = 3600
    DAILY = 24 * HOURLY
    WEEKLY = 7 * DAILY
    EVERY_2_WEEKS = 2 * WEEKLY
    EVERY_4_WEEKS = 4 * WEEKLY
    NEVER = 0
    REPEAT_CHOICES = (
        (HOURLY, "hourly"), (DAILY, "daily"), (WEEKLY, "weekly"),
        (EVERY_2_WEEKS, "every 2 weeks"), (EVERY_4_WEEKS, "every 4 weeks"), (NEVER, "never"),
    )

    id = models.BigAutoField(primary_key=True)
    task_name = models.CharField(max_length=300, db_index=True)
    task_params = models.TextField(default="[[], {}]")
    task_hash = models.CharField(max_length=40, blank=True, default="")
    verbose_name = models.CharField(max_length=255, null=True, blank=True)
    priority = models.IntegerField(default=0)
    run_at = models.DateTimeField(null=True, blank=True)
    repeat = models.BigIntegerField(choices=REPEAT_CHOICES, default=NEVER)
    repeat_until = models.DateTimeField(null=True, blank=True)
    queue = models.CharField(max_length=200, null=True, blank=True)
    attempts = models.IntegerField(default=0)
    failed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    locked_by = models.CharField(max_length=64, null=True, blank=True)
    locked_at = models.DateTimeField(null=True, blank=True)
    creator_object_id = models.PositiveIntegerField(null=True, blank=True)
    # pgqueue's own columns, for the admin and process_tasks' listing.
    state = models.CharField(max_length=20, default="queued", editable=False)
    max_attempts = models.IntegerField(null=True, blank=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.verbose_name or self.task_name}"

    def params(self) -> tuple[list[Any], dict[str, Any]]:
        args, kwargs = json.loads(self.task_params)
        return list(args), {str(key): value for key, value in kwargs.items()}

    def has_error(self) -> bool:
        return bool(self.last_error)

    has_error.boolean = True  # type: ignore[attr-defined]

    def locked_by_pid_running(self) -> bool | None:
        """pgqueue records the worker's id, not a pid: True while the task runs."""
        if not self.locked_by:
            return None
        return self.state == "running"

    locked_by_pid_running.boolean = True  # type: ignore[attr-defined]

    def is_repeating_task(self) -> bool:
        return self.repeat > self.NEVER


class Task(BackgroundTaskFields):
    creator_content_type = models.ForeignKey(
        ContentType, null=True, blank=True, on_delete=models.CASCADE, db_constraint=False,
        related_name="pgqueue_background_tasks")
    creator = GenericForeignKey("creator_content_type", "creator_object_id")

    objects = TaskManager()

    class Meta:
        managed = False
        db_table = "pgqueue_background_task"
        ordering = ("run_at", "id")

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.task_name = resolve_task_name(self.task_name)
        if not self.task_params:
            self.task_params = task_params_json()
        if not self.task_hash:
            self.task_hash = compute_task_hash(self.task_name, self.task_params)
        if self.run_at is None:
            self.run_at = timezone.now()
        if self.max_attempts is None:
            self.max_attempts = app_settings.BACKGROUND_TASK_MAX_ATTEMPTS
        self.locked_by = self.locked_by or None
        super().save(*args, **kwargs)

    def lock(self, locked_by: str) -> Task | None:
        """Lock the task under this name if nobody holds it (or its lock is older than
        ``MAX_RUN_TIME``), reading the database, not this object: the locked task, or None.
        A locked task is a running job: workers leave it alone."""
        if runner.lock_task(self.pk, locked_by):
            return Task.objects.get(pk=self.pk)
        return None

    def _extract_error(self, type: type[BaseException] | None, err: BaseException | None,
                       tb: TracebackType | None) -> str:
        return "".join(traceback.format_exception(type, err, tb))

    def increment_attempts(self) -> None:
        self.attempts += 1
        self.save()

    def has_reached_max_attempts(self) -> bool:
        return self.attempts >= app_settings.BACKGROUND_TASK_MAX_ATTEMPTS

    def reschedule(self, type: type[BaseException] | None, err: BaseException | None,
                   traceback: TracebackType | None) -> None:
        """The library's bookkeeping of a failed attempt done by hand: a later run, or, out of
        attempts (or for an `InvalidTaskError`), a CompletedTask in its place. Workers and
        `tasks.run_task` record their attempts themselves."""
        self.last_error = self._extract_error(type, err, traceback)
        self.increment_attempts()
        if self.has_reached_max_attempts() or isinstance(err, InvalidTaskError):
            self.failed_at = timezone.now()
            logger.warning("Marking task %s as failed", self)
            completed = self.create_completed_task()
            task_failed.send(sender=self.__class__, task_id=self.id, completed_task=completed)
            self.delete()
        else:
            backoff = timedelta(seconds=self.attempts ** 4 + 5)
            self.run_at = timezone.now() + backoff
            logger.warning("Rescheduling task %s for %s later at %s", self, backoff,
                           self.run_at)
            task_rescheduled.send(sender=self.__class__, task=self)
            self.locked_by = None
            self.locked_at = None
            self.save()

    def create_completed_task(self) -> CompletedTask:
        """A new CompletedTask with this task's values (a finished job of its own)."""
        completed = CompletedTask(
            task_name=self.task_name, task_params=self.task_params, task_hash=self.task_hash,
            priority=self.priority, run_at=timezone.now(), queue=self.queue,
            attempts=self.attempts, failed_at=self.failed_at, last_error=self.last_error,
            locked_by=self.locked_by, locked_at=self.locked_at,
            verbose_name=self.verbose_name, creator=self.creator, repeat=self.repeat,
            repeat_until=self.repeat_until, max_attempts=self.max_attempts)
        completed.save()
        return completed

    def create_repetition(self) -> Task | None:
        """The next run of a repeating task, from its scheduled time (as the library does)."""
        if not self.is_repeating_task():
            return None
        now = timezone.now()
        if self.repeat_until and self.repeat_until <= now:
            return None
        run_at = (self.run_at or now) + timedelta(seconds=self.repeat)
        while run_at < now:
            run_at += timedelta(seconds=self.repeat)
        args, kwargs = self.params()
        repetition = Task.objects.new_task(
            task_name=self.task_name, args=args, kwargs=kwargs, run_at=run_at,
            priority=self.priority, queue=self.queue, verbose_name=self.verbose_name,
            creator=self.creator, repeat=self.repeat, repeat_until=self.repeat_until)
        repetition.save()
        return repetition


class CompletedTaskQuerySet(models.QuerySet):
    def created_by(self, creator: models.Model) -> CompletedTaskQuerySet:
        content_type = ContentType.objects.get_for_model(creator)
        return self.filter(creator_content_type=content_type, creator_object_id=creator.pk)

    def failed(self, within: timedelta | None = None) -> CompletedTaskQuerySet:
        queryset = self.filter(failed_at__isnull=False)
        if within:
            queryset = queryset.filter(failed_at__gt=timezone.now() - within)
        return queryset

    def succeeded(self, within: timedelta | None = None) -> CompletedTaskQuerySet:
        queryset = self.filter(failed_at__isnull=True)
        if within:
            queryset = queryset.filter(run_at__gt=timezone.now() - within)
        return queryset


class CompletedTask(BackgroundTaskFields):
    """A finished job; ``run_at`` is when it finished and ``failed_at`` is set unless it
    succeeded (a cancelled task counts as failed)."""

    creator_content_type = models.ForeignKey(
        ContentType, null=True, blank=True, on_delete=models.CASCADE, db_constraint=False,
        related_name="pgqueue_completed_background_tasks")
    creator = GenericForeignKey("creator_content_type", "creator_object_id")

    objects = CompletedTaskQuerySet.as_manager()

    class Meta:
        managed = False
        db_table = "pgqueue_background_completedtask"
        ordering = ("-run_at", "-id")

    def __str__(self) -> str:
        return f"{self.verbose_name or self.task_name} - {self.run_at}"

    def create_restarted_task(self) -> Task:
        """Queue the same task again now, as a new job."""
        args, kwargs = self.params()
        restarted = Task.objects.new_task(
            task_name=self.task_name, args=args, kwargs=kwargs, priority=self.priority,
            queue=self.queue, verbose_name=self.verbose_name, creator=self.creator,
            repeat=self.repeat, repeat_until=self.repeat_until)
        restarted.save()
        return restarted


__all__ = ["CompletedTask", "Task", "resolve_task_name"]
