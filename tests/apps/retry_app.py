"""Tasks for the retry-control tests (tests/integration/test_retry_control.py): each failure
and each on_failure call is recorded in the `calls` list, read by the test in-process."""

from __future__ import annotations

import threading
from typing import Any

import pgqueue

app = pgqueue.App()
calls: list[tuple[str, Any]] = []
_lock = threading.Lock()


def _record(kind: str, value: Any) -> None:
    with _lock:
        calls.append((kind, value))


def _alert(job: pgqueue.types.ClaimedJob, error: pgqueue.types.JobError) -> None:
    _record("on_failure", (job.id, job.attempt, error.type, error.message))


@app.task(retry=pgqueue.RetryPolicy(max_attempts=5, backoff="fixed", base_delay=0,
                                    retry_on=(ConnectionError, TimeoutError),
                                    dont_retry_on=(ConnectionRefusedError,)),
          on_failure=_alert)
def flaky(kind: str) -> None:
    """Raises the named built-in exception every time."""
    exc = {"connection": ConnectionError, "refused": ConnectionRefusedError,
           "value": ValueError, "timeout": TimeoutError}[kind]
    raise exc(kind)


@app.task(retry=10, on_failure=_alert)
def gives_up(reason: str) -> None:
    raise pgqueue.Fail(reason)


def _delay_seen(attempt: int, exc: BaseException) -> float:
    _record("backoff", (attempt, type(exc).__name__, str(exc)))
    return 0.0


@app.task(pass_context=True,
          retry=pgqueue.RetryPolicy(max_attempts=3, backoff=_delay_seen))
def fails_with_attempt(context: pgqueue.JobContext) -> None:
    raise KeyError(f"attempt {context.attempt}")


async def _async_alert(job: pgqueue.types.ClaimedJob, error: pgqueue.types.JobError) -> None:
    _record("async_on_failure", (job.id, error.type))


@app.task(retry=False, on_failure=_async_alert)
async def fails_once() -> None:
    raise RuntimeError("no")


@app.task(retry=2, on_failure=_alert)
def succeeds() -> str:
    return "ok"


@app.task
async def sleeps(seconds: float) -> str:
    import asyncio

    await asyncio.sleep(seconds)
    return "slept"
