"""How an attempt ended, as a value the completer records in a batch."""

from __future__ import annotations

import enum
import traceback
from dataclasses import dataclass

from pgqueue.progress import ProgressUpdate
from pgqueue.types import ClaimedJob, JobError


class OutcomeKind(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRY = "retry"
    CANCELLED = "cancelled"
    RELEASED = "released"


@dataclass(frozen=True, slots=True)
class Outcome:
    job: ClaimedJob
    kind: OutcomeKind
    result_json: str | None = None
    retry_delay: float = 0.0
    refund_attempt: bool = False
    error: JobError | None = None
    progress: ProgressUpdate | None = None
    """Progress or meta the task reported since the last write: written in the same
    transaction as the outcome, before it."""

    @property
    def is_final(self) -> bool:
        return self.kind in (OutcomeKind.SUCCEEDED, OutcomeKind.FAILED, OutcomeKind.CANCELLED)


MAX_ERROR_MESSAGE = 10_000
MAX_TRACEBACK = 100_000
MAX_RETRY_DELAY = 366 * 24 * 3600.0
"""A retry later than a year is a bug in a backoff, not a plan; it is capped there."""


def describe(exc: BaseException) -> JobError:
    """The exception as text the database can store: a task's exception may hold NUL
    characters (refused by Postgres text), be enormous, or fail in its own __str__."""
    try:
        message = str(exc)
    except Exception as broken:
        message = f"<str() of the exception failed: {type(broken).__name__}>"
    try:
        formatted = "".join(traceback.format_exception(exc))
    except Exception:
        formatted = ""
    return JobError(type=type(exc).__qualname__, message=_storable(message, MAX_ERROR_MESSAGE),
                    traceback=_storable(formatted, MAX_TRACEBACK))


def _storable(text: str, limit: int) -> str:
    # Postgres text holds no NUL and only valid UTF-8 (no lone surrogates).
    text = text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > limit:
        return f"{text[:limit]}… [{len(text) - limit} characters cut]"
    return text


def retry_delay(seconds: float) -> float:
    """A delay the database can add to now(): finite, >= 0, at most MAX_RETRY_DELAY (a
    backoff callable or `Retry(delay=…)` may give NaN, infinity or a negative number)."""
    if not seconds > 0:  # NaN and negatives
        return 0.0
    return min(seconds, MAX_RETRY_DELAY)
