"""pgqueue: a Postgres-native background task queue for Python and Django."""

from __future__ import annotations

from pgqueue.app import App
from pgqueue.canvas import Signature, WorkflowHandle, WorkflowJob, chain, chord, group
from pgqueue.context import JobContext
from pgqueue.errors import (
    ConfigurationError,
    DatabaseUnavailable,
    DuplicateJob,
    EnqueueError,
    Fail,
    InvalidArguments,
    InvalidMeta,
    InvalidName,
    InvalidPriority,
    InvalidProgress,
    InvalidReport,
    InvalidSchedule,
    JobCancelled,
    JobFailed,
    JobNotFound,
    PayloadTooLarge,
    PgQueueError,
    ResultTooLarge,
    Retry,
    SchemaMissing,
    UnknownParent,
    UnknownTask,
)
from pgqueue.retry import RetryPolicy
from pgqueue.tasks import Task
from pgqueue.types import AttemptError, Job, JobState

__version__ = "0.1.0"
"""The release, also the distribution's version (pyproject.toml reads it from here)."""

__all__ = [
    "App",
    "AttemptError",
    "ConfigurationError",
    "DatabaseUnavailable",
    "DuplicateJob",
    "EnqueueError",
    "Fail",
    "InvalidArguments",
    "InvalidMeta",
    "InvalidName",
    "InvalidPriority",
    "InvalidProgress",
    "InvalidReport",
    "InvalidSchedule",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobFailed",
    "JobNotFound",
    "JobState",
    "PayloadTooLarge",
    "PgQueueError",
    "ResultTooLarge",
    "Retry",
    "RetryPolicy",
    "SchemaMissing",
    "Signature",
    "Task",
    "UnknownParent",
    "UnknownTask",
    "WorkflowHandle",
    "WorkflowJob",
    "__version__",
    "chain",
    "chord",
    "group",
]
