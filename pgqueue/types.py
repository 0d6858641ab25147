"""Plain values that cross module boundaries: job states and the typed `Job` view of a row.

The job state machine is drawn once, in migrations_sql/0001_initial.sql; each arrow there is one
named query in pgqueue/sql/queries.sql.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

JsonValue = Any


class JobState(enum.StrEnum):
    QUEUED = "queued"
    WAITING = "waiting"
    """Behind an unfinished job of the same lock; queued when that one finishes."""
    BLOCKED = "blocked"
    """Waiting for its parent jobs (`using(depends_on=...)`) to succeed."""
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True, slots=True)
class JobError:
    type: str
    message: str
    traceback: str | None


@dataclass(frozen=True, slots=True)
class AttemptError:
    """One failed attempt, as kept in the job's history (`Job.errors`)."""

    attempt: int
    type: str
    message: str
    traceback: str | None
    worker_id: int | None
    worker: str | None
    """The worker's name, if it was still registered when the failure was recorded."""
    at: datetime

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> AttemptError:
        return cls(attempt=entry["attempt"], type=entry["type"], message=entry["message"] or "",
                   traceback=entry.get("traceback"), worker_id=entry.get("worker_id"),
                   worker=entry.get("worker"), at=datetime.fromisoformat(entry["at"]))


@dataclass(frozen=True, slots=True)
class Job:
    """A job row as read back from the database."""

    id: int
    task_name: str
    queue: str
    args: list[JsonValue]
    kwargs: dict[str, JsonValue]
    priority: int
    state: JobState
    run_at: datetime
    attempts: int
    max_attempts: int
    worker_id: int | None
    claim_token: uuid.UUID | None
    abort_requested: bool
    enqueued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: JobError | None
    """The latest error."""
    result: JsonValue
    errors: tuple[AttemptError, ...] = ()
    """Every failed attempt's error, oldest first."""
    progress: float | None = None
    """The latest fraction done (0 to 1) reported with `context.set_progress` (by any
    attempt); None: none reported."""
    progress_message: str | None = None
    progress_at: datetime | None = None
    """When the worker last wrote progress or meta."""
    meta: dict[str, JsonValue] | None = None
    """Keys set with `context.set_meta`, merged."""

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        error = None
        if row["error_type"] is not None:
            error = JobError(row["error_type"], row["error_message"] or "", row["error_traceback"])
        return cls(
            id=row["id"],
            task_name=row["task_name"],
            queue=row["queue"],
            args=row["args"],
            kwargs=row["kwargs"],
            priority=row["priority"],
            state=JobState(row["state"]),
            run_at=row["run_at"],
            attempts=row["attempts"],
            max_attempts=row["max_attempts"],
            worker_id=row["worker_id"],
            claim_token=row["claim_token"],
            abort_requested=row["abort_requested"],
            enqueued_at=row["enqueued_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            error=error,
            result=row["result"],
            errors=tuple(AttemptError.from_json(entry) for entry in row.get("errors") or ()),
            progress=row.get("progress"),
            progress_message=row.get("progress_message"),
            progress_at=row.get("progress_at"),
            meta=row.get("meta"),
        )


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """What a worker needs to run one attempt; `claim_token` fences its outcome. The fields are
    in the order the claim queries return them: a claimed row becomes a job positionally."""

    id: int
    task_name: str
    queue: str
    args: list[JsonValue]
    kwargs: dict[str, JsonValue]
    priority: int
    attempt: int
    max_attempts: int
    claim_token: uuid.UUID
    enqueued_at: datetime
    run_at: datetime
    timeout: float | None = None
    """Stored with the job (the task's, or a per-call `using(timeout=...)`); None: the
    task's own."""
    unreadable: str | None = None
    """Why the stored row cannot run (its arguments do not decode, or are not an array and an
    object): the worker fails such a job alone instead of crashing on it."""


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue: str
    queued: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    oldest_waiting_seconds: float | None
    paused: bool = False
    waiting_on_lock: int = 0
    """Jobs behind an unfinished job of the same lock."""
    concurrency: int | None = None
    per_key_concurrency: int | None = None
    rate_limit: str | None = None
    """e.g. "100 per 00:01:00"."""
    started_in_rate_window: int | None = None
    held_back_by: str | None = None
    """Why due jobs are not starting (paused, concurrency / rate / per-key limit reached)."""
