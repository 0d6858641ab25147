"""Recording an attempt of a django-background-tasks task the way that library decides it:
retry or fail by ``MAX_ATTEMPTS`` as set when the attempt ends, ``InvalidTaskError`` fails at
once, the delay between attempts from the settings, and a repetition scheduled in the same
transaction as the success it follows.

Every write is one of the engine's acknowledgements (`store.mark_succeeded`, `retry_later`,
`mark_failed`) on Django's connection, fenced by the attempt's claim token: an attempt whose
claim was lost (rescued, or its lock taken over) records nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import transaction

from pgqueue import store
from pgqueue.contrib.django import conf
from pgqueue.contrib.django.background.exceptions import InvalidTaskError
from pgqueue.contrib.django.background.settings import app_settings
from pgqueue.contrib.django.connection import run_on_django
from pgqueue.contrib.django.queries import DjangoCall
from pgqueue.errors import InvalidArguments
from pgqueue.validation import to_json
from pgqueue.worker.outcome import describe, retry_delay

if TYPE_CHECKING:
    from pgqueue.contrib.django.background.models import Task


@dataclass(frozen=True, slots=True)
class Attempt:
    """One started attempt: `number` counts from 1, `max_attempts` is the job row's (what a
    worker decides with), `claim_token` fences its outcome."""

    job_id: int
    number: int
    max_attempts: int
    claim_token: uuid.UUID


def start_attempt(job_id: int, locked_by: str) -> Attempt | None:
    """Start an attempt here on a queued task, or on one this process locked; None if neither
    (another process holds it, or it finished)."""
    rows = run_on_django(DjangoCall("start_background_attempt",
                                    {"id": job_id, "locked_by": locked_by}), conf.database_alias())
    if not rows:
        return None
    row = rows[0]
    return Attempt(row["id"], row["attempts"], row["max_attempts"], row["claim_token"])


def lock_task(job_id: int, locked_by: str) -> bool:
    """Task.lock(): True if this call locked the task."""
    return bool(run_on_django(DjangoCall("lock_background_task", {
        "id": job_id, "locked_by": locked_by,
        "max_run_time": float(app_settings.BACKGROUND_TASK_MAX_RUN_TIME)}),
        conf.database_alias()))


def record_success(attempt: Attempt, task: Task | None, value: Any) -> bool:
    """Mark it succeeded and schedule its repetition, in one transaction; False if its claim
    was lost (nothing written)."""
    try:
        result_json = "null" if value is None else to_json(value, "the return value")
    except InvalidArguments:
        result_json = "null"  # the library ignores return values; pgqueue keeps a JSON one
    alias = conf.database_alias()
    with transaction.atomic(using=alias):
        landed = run_on_django(store.mark_succeeded(
            [attempt.job_id], [attempt.claim_token], [result_json]), alias)
        if landed and task is not None:
            task.create_repetition()
    return bool(landed)


def is_final(attempt: Attempt, error: BaseException) -> bool:
    """The library's rule, with ``MAX_ATTEMPTS`` read now."""
    return (isinstance(error, InvalidTaskError)
            or attempt.number >= app_settings.BACKGROUND_TASK_MAX_ATTEMPTS)


def record_failure(attempt: Attempt, error: BaseException) -> bool:
    """Fail it for good (`is_final`) or queue its next attempt after the configured delay;
    False if its claim was lost."""
    described = describe(error)
    columns = ([described.type], [described.message], [described.traceback])
    if is_final(attempt, error):
        call = store.mark_failed([attempt.job_id], [attempt.claim_token], *columns)
    else:
        delay = app_settings.BACKGROUND_TASK_DELAY_BETWEEN_ATTEMPTS(attempt.number)
        call = store.retry_later([attempt.job_id], [attempt.claim_token],
                                 [retry_delay(delay)], [0], *columns)
    return bool(run_on_django(call, conf.database_alias()))


__all__ = ["Attempt", "is_final", "lock_task", "record_failure", "record_success",
           "start_attempt"]
