"""How an attempt ended, as a value the completer records in a batch."""

from __future__ import annotations

import enum
import traceback
from dataclasses import dataclass

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

    @property
    def is_final(self) -> bool:
        return self.kind in (OutcomeKind.SUCCEEDED, OutcomeKind.FAILED, OutcomeKind.CANCELLED)


def describe(exc: BaseException) -> JobError:
    return JobError(
        type=type(exc).__qualname__,
        message=str(exc),
        traceback="".join(traceback.format_exception(exc)),
    )
