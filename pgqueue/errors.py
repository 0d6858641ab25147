"""One exception tree for pgqueue: every error a caller can meet is a `PgQueueError`.

The class docstring is the default message, so `raise UnknownTask()` still says something useful;
driver errors are wrapped with `raise ... from` so the psycopg cause stays visible.
"""

from __future__ import annotations


class PgQueueError(Exception):
    """pgqueue error."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigurationError(PgQueueError):
    """pgqueue is misconfigured."""


class MissingExtra(ConfigurationError):
    """A feature needs an optional dependency that is not installed."""

    def __init__(self, feature: str, module: str, extra: str) -> None:
        super().__init__(f"{feature} needs {module}, which is not installed: "
                         f"pip install 'pgqueue-tasks[{extra}]'")
        self.extra = extra


class InvalidLimit(ConfigurationError):
    """Queue limits are whole numbers > 0, and rate limits look like 10/s, 100/m, 1000/h, 5/d."""


class DatabaseUnavailable(PgQueueError):
    """The database cannot be reached."""


class ReadOnlyDatabase(DatabaseUnavailable):
    """The database accepts no writes (a read replica, or default_transaction_read_only is on):
    point the DSN at the primary."""


class PermissionDenied(PgQueueError):
    """The database role lacks a privilege this needs (see migrations_sql/roles.sql)."""


class SchemaMissing(PgQueueError):
    """The pgqueue schema is missing or out of date: run `pgqueue migrate`."""


class MigrationInProgress(PgQueueError):
    """Another `pgqueue migrate` holds the migration lock; try again when it has finished."""


class JobNotFound(PgQueueError):
    """No job has this id."""


class EnqueueError(PgQueueError):
    """The job cannot be enqueued; nothing was written."""


class DuplicateJob(EnqueueError):
    """A job with this unique key is already queued or running (`job_id`, when known); nothing
    was written."""

    def __init__(self, message: str | None = None, *, job_id: int | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id


class UnknownTask(EnqueueError):
    """No task is registered under this name."""


class UnknownParent(EnqueueError):
    """`depends_on` names a job that does not exist (or was already pruned)."""


class InvalidArguments(EnqueueError):
    """Task arguments must survive a JSON round-trip unchanged."""


class InvalidPriority(EnqueueError):
    """Priority must be an integer between -1000 and 1000."""


class InvalidSchedule(EnqueueError):
    """run_at must be timezone-aware and delay a finite number of seconds."""


class PayloadTooLarge(EnqueueError):
    """The job's serialised arguments exceed the configured size cap."""


class InvalidName(EnqueueError):
    """Queue and task names must be 1 to 200 printable characters."""


class PgQueueWarning(UserWarning):
    """Something will not work as the code reads (a task name no worker can find)."""


class Retry(Exception):
    """Raised inside a task to run it again later without counting a failed attempt."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__(f"retry requested in {delay:g}s")
        self.delay = float(delay)


class Fail(Exception):
    """Raised inside a task to fail its job at once, whatever attempts remain."""

    def __init__(self, reason: str = "the task gave up") -> None:
        super().__init__(reason)
        self.reason = reason


class ClaimLost(PgQueueError):
    """The job's claim was lost (rescued after a stall, or cancelled): its outcome is void."""


class TaskTimeout(PgQueueError):
    """The task ran longer than its timeout."""


class WorkerLost(PgQueueError):
    """The process running the job died mid-attempt (a hard exit, a segfault, an OOM kill):
    the attempt counts and the job follows its retry policy."""


class JobAborted(PgQueueError):
    """The job was cancelled while it ran."""


class UnreadableJob(PgQueueError):
    """The stored job cannot be read (written by SQL past the checks at the door): it fails
    alone, without retrying, and its worker goes on."""


class UnrecordableOutcome(PgQueueError):
    """The database refused the attempt's outcome as it stood (a value it cannot store): the
    job is failed with this error instead, so one bad value never blocks the other outcomes."""


class InvalidReport(PgQueueError, ValueError):
    """A task reported progress or metadata its job cannot store (context.set_progress,
    context.set_meta); nothing of that call was kept."""


class InvalidProgress(InvalidReport):
    """Progress is a finite number from 0 to 1, with an optional message of at most 1,000
    characters."""


class InvalidMeta(InvalidReport):
    """Job metadata is keyword values that survive a JSON round-trip, 64 KiB at most in all."""


class ResultTooLarge(PgQueueError):
    """The task's return value is bigger than the app's `result_max_bytes`: the attempt fails
    at once, without retrying (a retry would return the same value)."""


class JobFailed(PgQueueError):
    """A job waited for (App.wait, WorkflowHandle.wait) failed for good."""

    def __init__(self, message: str | None = None, *, job_id: int = 0,
                 error_type: str | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.error_type = error_type


class JobCancelled(JobFailed):
    """A job waited for was cancelled (by an operator, or because a parent failed:
    error_type 'ParentFailed')."""
