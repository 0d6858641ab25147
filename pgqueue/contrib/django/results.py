"""Waiting for a Django Task's result, woken when its job ends.

Django's `TaskResult` has `refresh()` / `arefresh()` but no wait: a caller polls. For a Task
enqueued on `PgQueueBackend`, `wait_for(result, timeout)` (and `await await_result(...)`) block
until the job ends -- woken by the NOTIFY its end sends from the transaction that records it
(pgqueue/waiting.py: the job is marked `watched` here, so Tasks nobody waits for send nothing)
-- then refresh the result and return it. Like Django's own API they do not raise for a failed
Task: read `result.status` and `result.errors`; `return_value` raises as Django's does.
"""

from __future__ import annotations

from typing import Any

from pgqueue import waiting
from pgqueue.contrib.django import tasks_api
from pgqueue.contrib.django.backend import PgQueueBackend
from pgqueue.errors import ConfigurationError, JobNotFound


def wait_for(result: Any, timeout: float | None = None, *,
             poll_interval: float = waiting.DEFAULT_POLL_INTERVAL) -> Any:
    """Block until the Task ended (successful or failed), then refresh `result` and return
    it. Raises `TimeoutError` after `timeout` seconds (None: no limit),
    `TaskResultDoesNotExist` for a job that does not exist (or is not committed yet: wait
    after the enqueueing transaction commits, e.g. from `transaction.on_commit`)."""
    backend, job_id = _job_of(result)
    try:
        waiting.wait_until(backend.app, [job_id], timeout, poll_interval, waiting.ended)
    except JobNotFound:
        raise _does_not_exist(result) from None
    result.refresh()
    return result


async def await_result(result: Any, timeout: float | None = None, *,
                       poll_interval: float = waiting.DEFAULT_POLL_INTERVAL) -> Any:
    """`wait_for` on the event loop (the refresh is Django's `arefresh`)."""
    backend, job_id = _job_of(result)
    try:
        await waiting.await_until(backend.app, [job_id], timeout, poll_interval, waiting.ended)
    except JobNotFound:
        raise _does_not_exist(result) from None
    await result.arefresh()
    return result


def _job_of(result: Any) -> tuple[PgQueueBackend, int]:
    if not isinstance(result, tasks_api.TaskResult):
        raise ConfigurationError(f"wait_for takes a Django TaskResult, not "
                                 f"{type(result).__name__}")
    backend = tasks_api.task_backends[result.backend]
    if not isinstance(backend, PgQueueBackend):
        raise ConfigurationError(f"TaskResult {result.id} is of backend {result.backend!r}, a "
                                 f"{type(backend).__name__}: only PgQueueBackend's can be "
                                 "waited for")
    return backend, int(result.id)


def _does_not_exist(result: Any) -> Exception:
    return tasks_api.TaskResultDoesNotExist(
        f"{result.id}: no such job (pruned, or enqueued in a transaction not committed yet)")
