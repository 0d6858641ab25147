"""`Job`: an unmanaged model over ``pgqueue.jobs``, for the admin and for ORM queries.

The table belongs to the SQL migrations; Django never creates or alters it (and, the model
being unmanaged, its fields need no Django migration: Django tracks only its options). State
changes go through named queries (the engine's, and the admin's bulk ones in ``sql/``), never
ORM updates, so the state machine keeps one implementation.
"""

from __future__ import annotations

from django.db import models

from pgqueue.types import JobState


class JobStateChoices(models.TextChoices):
    QUEUED = JobState.QUEUED.value, "queued"
    WAITING = JobState.WAITING.value, "waiting"
    BLOCKED = JobState.BLOCKED.value, "blocked"
    RUNNING = JobState.RUNNING.value, "running"
    SUCCEEDED = JobState.SUCCEEDED.value, "succeeded"
    FAILED = JobState.FAILED.value, "failed"
    CANCELLED = JobState.CANCELLED.value, "cancelled"


class Job(models.Model):
    id = models.BigAutoField(primary_key=True)
    queue = models.TextField(db_default="default")
    task_name = models.TextField()
    args = models.JSONField(db_default=models.Value([], models.JSONField()))
    kwargs = models.JSONField(db_default=models.Value({}, models.JSONField()))
    priority = models.IntegerField(db_default=0, help_text="Higher runs first among due jobs.")
    state = models.TextField(choices=JobStateChoices.choices, db_default="queued")
    run_at = models.DateTimeField(db_default=models.functions.Now())
    attempts = models.IntegerField(db_default=0)
    max_attempts = models.IntegerField(db_default=3)
    worker_id = models.BigIntegerField(null=True, blank=True)
    claim_token = models.UUIDField(null=True, blank=True)
    abort_requested = models.BooleanField(db_default=False)
    enqueued_at = models.DateTimeField(db_default=models.functions.Now())
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error_type = models.TextField(null=True, blank=True)
    error_message = models.TextField(null=True, blank=True)
    error_traceback = models.TextField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    timeout_seconds = models.FloatField(null=True, blank=True,
                                        help_text="The task's timeout when it was enqueued.")
    unique_key = models.TextField(null=True, blank=True, help_text=(
        "At most one unfinished job holds a given key."))
    lock = models.TextField(null=True, blank=True, help_text=(
        "Jobs sharing a lock run one at a time, in enqueue order; the others wait."))
    concurrency_key = models.TextField(null=True, blank=True, help_text=(
        "Counted against its queue's per-key concurrency limit."))
    workflow_id = models.UUIDField(null=True, blank=True, help_text=(
        "The workflow (chain, group, chord) the job is a step of."))
    progress = models.FloatField(null=True, blank=True, help_text=(
        "The latest fraction done (0 to 1) the task reported (context.set_progress)."))
    progress_message = models.TextField(null=True, blank=True)
    progress_at = models.DateTimeField(null=True, blank=True)
    meta = models.JSONField(null=True, blank=True, help_text=(
        "Keys the task set with context.set_meta."))

    class Meta:
        managed = False
        db_table = '"pgqueue"."jobs"'
        ordering = ("-id",)
        verbose_name = "job"
        verbose_name_plural = "jobs"

    def __str__(self) -> str:
        return f"#{self.id} {self.task_name} ({self.state})"


class TextList(models.Field):
    """A ``text[]`` column of a view, read as a list (psycopg decodes it); unlike ArrayField it
    needs no ``django.contrib.postgres`` in INSTALLED_APPS (Django 6 checks for it)."""

    def db_type(self, connection: object) -> str:
        return "text[]"


class Queue(models.Model):
    """A row of ``pgqueue.queue_overview`` (migration 0013): one queue, its depth, waits, limits
    and pause, for the admin's queue page. Changed only through the SQL functions
    (pause_queue, resume_queue, set_queue_limit)."""

    queue = models.TextField(primary_key=True)
    paused = models.BooleanField()
    queued = models.BigIntegerField()
    due = models.BigIntegerField()
    scheduled = models.BigIntegerField()
    waiting_on_lock = models.BigIntegerField()
    running = models.BigIntegerField()
    succeeded = models.BigIntegerField()
    failed = models.BigIntegerField()
    cancelled = models.BigIntegerField()
    oldest_waiting_seconds = models.FloatField(null=True)
    started_5m = models.BigIntegerField()
    wait_p50_seconds = models.FloatField(null=True)
    wait_p95_seconds = models.FloatField(null=True)
    concurrency = models.IntegerField(null=True)
    per_key_concurrency = models.IntegerField(null=True)
    rate_limit = models.TextField(null=True)
    started_in_rate_window = models.BigIntegerField(null=True)
    held_back_by = models.TextField(null=True)
    limits_set_by = models.TextField(null=True)
    paused_at = models.DateTimeField(null=True)
    paused_by = models.TextField(null=True)
    paused_reason = models.TextField(null=True)

    class Meta:
        managed = False
        db_table = '"pgqueue"."queue_overview"'
        ordering = ("queue",)
        verbose_name = "queue"
        verbose_name_plural = "queues"

    def __str__(self) -> str:
        return self.queue


class Schedule(models.Model):
    """A periodic schedule (``pgqueue.schedules``): paused, resumed and run by the admin's
    actions through the SQL functions, never by saving the row."""

    id = models.TextField(primary_key=True)
    task_name = models.TextField()
    cron = models.TextField(null=True)
    every = models.DurationField(null=True)
    timezone = models.TextField()
    args = models.JSONField()
    kwargs = models.JSONField()
    queue = models.TextField()
    priority = models.IntegerField()
    max_attempts = models.IntegerField()
    misfire = models.TextField()
    ends_at = models.DateTimeField(null=True)
    origin = models.TextField()
    next_tick_at = models.DateTimeField(null=True)
    restart_from = models.DateTimeField(null=True)
    last_tick_at = models.DateTimeField(null=True)
    last_job_id = models.BigIntegerField(null=True)
    last_fired_at = models.DateTimeField(null=True)
    skipped_ticks = models.BigIntegerField()
    overlap = models.BooleanField()
    overlap_skipped_ticks = models.BigIntegerField()
    paused = models.BooleanField()
    paused_at = models.DateTimeField(null=True)
    orphaned = models.BooleanField()
    created_at = models.DateTimeField()

    class Meta:
        managed = False
        db_table = '"pgqueue"."schedules"'
        ordering = ("id",)
        verbose_name = "periodic schedule"
        verbose_name_plural = "periodic schedules"

    def __str__(self) -> str:
        return self.id


class Worker(models.Model):
    """A row of ``pgqueue.workers_overview``: a registered worker, alive or not, with what it
    runs now and its server connections."""

    id = models.BigIntegerField(primary_key=True)
    name = models.TextField()
    hostname = models.TextField()
    pid = models.IntegerField()
    queues = TextList(null=True)
    concurrency = models.IntegerField()
    alive = models.BooleanField()
    heartbeat_age_seconds = models.FloatField(null=True)
    started_at = models.DateTimeField()
    uptime_seconds = models.FloatField()
    running_jobs = models.BigIntegerField()
    running_tasks = TextList(null=True)
    longest_running_seconds = models.FloatField(null=True)
    server_connections = models.IntegerField(null=True)

    class Meta:
        managed = False
        db_table = '"pgqueue"."workers_overview"'
        ordering = ("-alive", "id")
        verbose_name = "worker"
        verbose_name_plural = "workers"

    def __str__(self) -> str:
        return self.name
