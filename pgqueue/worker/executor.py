"""Runs one claimed job and classifies how it ended: a pipeline of small steps on one value
(resolve the task -> run it with its timeout -> classify the outcome)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import dataclasses
import functools
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pgqueue.context import JobContext
from pgqueue.errors import (
    Fail,
    InvalidArguments,
    JobAborted,
    ResultTooLarge,
    Retry,
    TaskTimeout,
    UnknownTask,
    UnreadableJob,
)
from pgqueue.logs import log_event
from pgqueue.retry import RetryPolicy
from pgqueue.tasks import Task, call_signature
from pgqueue.types import ClaimedJob, JobError
from pgqueue.validation import checked_result, to_json
from pgqueue.worker.outcome import Outcome, OutcomeKind, describe, retry_delay

if TYPE_CHECKING:
    from pgqueue.worker.process_pool import ProcessPool

logger = logging.getLogger("pgqueue.worker")


NEVER_RETRIED = (Fail, ResultTooLarge)
"""Errors that fail the job at once: a retry would end the same way."""


class StopReason:
    ABORT = "abort"
    SHUTDOWN = "shutdown"


@dataclass(slots=True)
class RunningJob:
    """A job in a slot; `stop_reason` says why it was interrupted, if it was."""

    job: ClaimedJob
    context: JobContext
    started: float = field(default_factory=time.monotonic)
    stop_reason: str | None = None
    interrupted_at: float | None = None
    reported_stuck: bool = False
    asyncio_task: asyncio.Task[Outcome] | None = None
    thread_future: asyncio.Future[Any] | None = None

    def interrupt(self, reason: str) -> None:
        self.stop_reason = self.stop_reason or reason
        self.interrupted_at = self.interrupted_at or time.monotonic()
        self.context.request_abort()
        # A sync task cannot be interrupted: on abort it is told (context.should_abort()) and
        # keeps its slot until it returns; on shutdown its job is released regardless.
        if self.asyncio_task is not None and (
            self.thread_future is None or reason == StopReason.SHUTDOWN
        ):
            self.asyncio_task.cancel()


def classify_failure(job: ClaimedJob, policy: RetryPolicy, exc: BaseException) -> Outcome:
    """Retry while attempts remain and the policy finds the error worth it (never after
    `pgqueue.Fail`), else fail; the error is kept either way."""
    retryable = not isinstance(exc, NEVER_RETRIED) and policy.should_retry(exc)
    return classify_error(job, policy, describe(exc), retryable=retryable, exc=exc)


def classify_error(job: ClaimedJob, policy: RetryPolicy, error: JobError, *,
                   retryable: bool = True, exc: BaseException | None = None) -> Outcome:
    """classify_failure for an error already described (raised in a child process)."""
    if job.attempt < job.max_attempts and retryable:
        try:
            delay = policy.delay_after(job.attempt, exc)
        except Exception as broken:  # a backoff callable's bug must not leave the job running
            log_event(logger, logging.ERROR, "job.backoff_failed", job_id=job.id,
                      error=f"{type(broken).__name__}: {broken}"[:300])
            delay = RetryPolicy().delay_after(job.attempt)
        return Outcome(job, OutcomeKind.RETRY, retry_delay=retry_delay(delay), error=error)
    return Outcome(job, OutcomeKind.FAILED, error=error)


async def execute(
    running: RunningJob, task: Task[Any, Any] | None, threads: concurrent.futures.Executor,
    children: ProcessPool | None = None,
) -> Outcome:
    job = running.job
    if job.unreadable is not None:
        return Outcome(job, OutcomeKind.FAILED, error=describe(UnreadableJob(job.unreadable)))
    if task is None:
        # Rule for unknown tasks: never discarded; retried with backoff (another worker may
        # know the task) until max_attempts, then failed with this error.
        return classify_failure(job, RetryPolicy(), UnknownTask(
            f"no task named {job.task_name!r} is registered in this worker"))
    if job.timeout is not None and job.timeout != task.timeout:  # using(timeout=...) per call
        task = dataclasses.replace(task, timeout=job.timeout)
    args: list[Any] = [running.context, *job.args] if task.pass_context else list(job.args)
    misfit = _misfit(task.func, len(args), frozenset(job.kwargs))
    if misfit is not None:
        # Arguments written by raw SQL that can never fit: fail now, retrying cannot help.
        return Outcome(job, OutcomeKind.FAILED, error=describe(
            InvalidArguments(f"stored arguments do not fit {task.name}: {misfit}")))
    try:
        if task.is_async:
            result = await _run_on_loop(task, args, job.kwargs)
        elif children is not None and children.runs(task):
            return await _run_in_child(running, task, children)
        else:
            result = await _run_in_thread(running, task, args, job.kwargs, threads)
        if running.stop_reason == StopReason.ABORT:
            return Outcome(job, OutcomeKind.CANCELLED, error=describe(JobAborted()))
        return _success(job, result, task.app.result_max_bytes)
    except Retry as retry:
        return Outcome(job, OutcomeKind.RETRY, retry_delay=retry_delay(retry.delay),
                       refund_attempt=True)
    except asyncio.CancelledError:
        if running.stop_reason == StopReason.ABORT:
            return Outcome(job, OutcomeKind.CANCELLED, error=describe(JobAborted()))
        if running.stop_reason == StopReason.SHUTDOWN:
            return Outcome(job, OutcomeKind.RELEASED)
        raise
    except TaskTimeout as timeout:
        if running.stop_reason == StopReason.ABORT:
            return Outcome(job, OutcomeKind.CANCELLED, error=describe(JobAborted()))
        running.interrupted_at = running.interrupted_at or time.monotonic()
        running.context.request_abort()
        return classify_failure(job, task.retry, timeout)
    except BaseException as exc:
        if running.stop_reason == StopReason.ABORT:
            return Outcome(job, OutcomeKind.CANCELLED, error=describe(exc))
        return classify_failure(job, task.retry, exc)


async def _run_in_thread(
    running: RunningJob, task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any],
    threads: concurrent.futures.Executor,
) -> Any:
    """Run a sync task in the pool. On timeout the attempt fails at once, but the thread cannot
    be killed: the slot stays taken until it returns (the runner waits on `thread_future`)."""
    loop = asyncio.get_running_loop()
    call = functools.partial(
        contextvars.copy_context().run, call_with_hooks, task, args, kwargs
    )
    future = loop.run_in_executor(threads, call)
    running.thread_future = future
    try:
        return await asyncio.wait_for(asyncio.shield(future), task.timeout)
    except TimeoutError as exc:
        if future.done():
            raise  # the task itself raised TimeoutError (a socket timeout, say)
        log_event(logger, logging.WARNING, "job.timed_out", job_id=running.job.id,
                  task=task.name, timeout_s=task.timeout,
                  note="told to stop (should_abort); its thread keeps the slot until it returns")
        raise _timeout(task) from exc


async def _run_in_child(
    running: RunningJob, task: Task[Any, Any], children: ProcessPool,
) -> Outcome:
    """Run a sync task in a child process (pgqueue.worker.process_pool). A timeout, a cancel
    or the shutdown deadline kills the child, so the task really stops; a child that dies
    raises WorkerLost. Both end up in execute()'s handlers, as from a thread."""
    job = running.job
    try:
        reply = await children.run(job, task.timeout, running.context.report.add)
    except TimeoutError as exc:
        log_event(logger, logging.WARNING, "job.timed_out", job_id=job.id, task=task.name,
                  timeout_s=task.timeout, note="its child process was killed and replaced")
        raise _timeout(task) from exc
    if reply.kind == "unavailable":
        return Outcome(job, OutcomeKind.RELEASED)  # never started: no attempt spent
    running.context.completed_in_transaction = reply.completed_in_transaction
    if reply.progress is not None:
        running.context.report.add(reply.progress)
    if reply.kind == "returned":
        return Outcome(job, OutcomeKind.SUCCEEDED, result_json=reply.result_json)
    if reply.kind == "retry":
        return Outcome(job, OutcomeKind.RETRY, retry_delay=retry_delay(reply.delay),
                       refund_attempt=True)
    assert reply.error is not None, f"a {reply.kind} reply carries its error"
    if reply.kind == "unstorable":
        return Outcome(job, OutcomeKind.FAILED, error=reply.error)
    return classify_error(job, task.retry, reply.error,
                          retryable=_retryable_by_name(task.retry, reply.error))


def _retryable_by_name(policy: RetryPolicy, error: JobError) -> bool:
    """A child's exception crosses the process boundary as its class name: matched by name
    against `pgqueue.Fail` and the policy's retry_on / dont_retry_on classes (each class
    itself, not its subclasses)."""
    if error.type in {c.__qualname__ for c in NEVER_RETRIED}:
        return False
    if policy.dont_retry_on and error.type in {c.__qualname__ for c in policy.dont_retry_on}:
        return False
    return not policy.retry_on or error.type in {c.__qualname__ for c in policy.retry_on}


async def _run_on_loop(task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Await an async task under its timeout; only the deadline's own expiry is a TaskTimeout,
    a TimeoutError the task raises itself is an ordinary failure."""
    if task.timeout is None:
        return await task.func(*args, **kwargs)  # no deadline to arm: spare its context
    deadline = asyncio.timeout(task.timeout)
    try:
        async with deadline:
            return await task.func(*args, **kwargs)
    except TimeoutError as exc:
        if deadline.expired():
            raise _timeout(task) from exc
        raise


def _timeout(task: Task[Any, Any]) -> TaskTimeout:
    return TaskTimeout(f"{task.name} exceeded its timeout of {task.timeout:g}s")


def call_with_hooks(task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any]) -> Any:
    with contextlib.ExitStack() as stack:
        for hook in task.app.task_hooks:
            stack.enter_context(hook())
        return task.func(*args, **kwargs)


def _success(job: ClaimedJob, result: Any, max_bytes: int | None) -> Outcome:
    if result is None:  # most tasks: nothing to check or encode
        return Outcome(job, OutcomeKind.SUCCEEDED, result_json="null")
    try:
        result_json = checked_result(to_json(result, "the return value"), max_bytes)
    except (InvalidArguments, ResultTooLarge) as exc:
        return Outcome(job, OutcomeKind.FAILED, error=describe(exc))
    return Outcome(job, OutcomeKind.SUCCEEDED, result_json=result_json)



@functools.lru_cache(maxsize=4096)
def _misfit(func: Any, positional: int, keywords: frozenset[str]) -> str | None:
    """Why a call with this many positional arguments and these keywords cannot bind (None if
    it can): binding depends on nothing else, so each shape is checked once."""
    try:
        call_signature(func, False).bind(*range(positional), **dict.fromkeys(keywords))
    except TypeError as exc:
        return str(exc)
    return None
