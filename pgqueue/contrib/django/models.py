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

    class Meta:
        managed = False
        db_table = '"pgqueue"."jobs"'
        ordering = ("-id",)
        verbose_name = "job"
        verbose_name_plural = "jobs"

    def __str__(self) -> str:
        return f"#{self.id} {self.task_name} ({self.state})"
