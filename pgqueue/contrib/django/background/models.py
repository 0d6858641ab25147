"""django-background-tasks' ``Task`` and ``CompletedTask`` models, over pgqueue's jobs.

Both are unmanaged models over views (created by this app's migration):

- ``pgqueue_background_task``: queued and running jobs, with the library's columns
  (``task_params``, ``locked_by``, ``last_error``, ...). Its INSTEAD OF triggers turn an INSERT
  into a row of ``pgqueue.jobs`` (whose statement trigger NOTIFYs the workers, so
  ``Task.objects.create(task_name=...)`` wakes a worker at once), an UPDATE into an update of
  the job's schedule, and a DELETE into a delete of the job.
- ``pgqueue_background_completedtask``: finished jobs (succeeded, failed, cancelled).

What the jobs table has no column for (``verbose_name``, ``creator``, ``repeat``,
``repeat_until``, ``task_hash``) lives in ``pgqueue_background_task_meta``, one row per job,
deleted with the job.
"""

from __future__ import annotations

import json
from datetime import timedelta
from hashlib import sha1
from typing import Any

from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils import timezone

from pgqueue.contrib.django.background import settings as bg_settings


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
        """Due tasks nobody runs, in the order a worker claims them."""
        ready = self.filter(state="queued", run_at__lte=timezone.now())
        if queue:
            ready = ready.filter(queue=queue)
        return ready.order_by("-priority", "run_at")

    def unlocked(self, now: Any = None) -> TaskQuerySet:
        return self.filter(state="queued")

    def locked(self, now: Any = None) -> TaskQuerySet:
        return self.filter(state="running")

    def failed(self) -> TaskQuerySet:
        """Pending tasks are never failed in pgqueue: a failed task is a CompletedTask."""
        return self.none()

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
            self.filter(task_hash=task_hash, state="queued").delete()
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
        from pgqueue.contrib.django.app import app

        self.task_name = resolve_task_name(self.task_name)
        if not self.task_params:
            self.task_params = task_params_json()
        if not self.task_hash:
            self.task_hash = compute_task_hash(self.task_name, self.task_params)
        if self.run_at is None:
            self.run_at = timezone.now()
        if self.max_attempts is None:
            registered = dict.get(app.tasks, self.task_name)
            self.max_attempts = (registered.retry.max_attempts if registered is not None
                                 else bg_settings.max_attempts())
        self.locked_by = self.locked_by or None
        super().save(*args, **kwargs)

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
