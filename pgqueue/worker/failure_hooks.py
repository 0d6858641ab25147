"""Runs a task's `on_failure` hook once its job's final failure is recorded.

Called by the completer with the failures the database accepted, never before: a worker that
dies before recording the failure leaves the job to be rescued and run again, so calling the
hook earlier could alert for a job that later succeeds, or alert twice. The price is the other
edge: a worker that dies between the write and the hook skips that one call (at most once).
Sync hooks run in the worker's thread pool, async ones on its loop; a hook that raises is
logged and never disturbs the worker."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from pgqueue.logs import log_event
from pgqueue.types import ClaimedJob, JobError
from pgqueue.worker.outcome import Outcome

logger = logging.getLogger("pgqueue.worker")


class FailureHooks:
    def __init__(self, tasks: Mapping[str, Any], threads: concurrent.futures.Executor) -> None:
        self.tasks = tasks
        self.threads = threads
        self._pending: set[asyncio.Future[Any]] = set()

    def failures_recorded(self, failures: Sequence[Outcome]) -> None:
        loop = asyncio.get_running_loop()
        for outcome in failures:
            task = self.tasks.get(outcome.job.task_name)
            hook = getattr(task, "on_failure", None)
            if hook is None or outcome.error is None:
                continue
            if inspect.iscoroutinefunction(hook):
                future: asyncio.Future[Any] = loop.create_task(hook(outcome.job, outcome.error))
            else:
                future = loop.run_in_executor(self.threads, hook, outcome.job, outcome.error)
            self._pending.add(future)
            future.add_done_callback(
                lambda done, job=outcome.job, error=outcome.error: self._finished(done, job, error))

    def _finished(self, future: asyncio.Future[Any], job: ClaimedJob, error: JobError) -> None:
        self._pending.discard(future)
        if future.cancelled() or future.exception() is None:
            return
        exc = future.exception()
        log_event(logger, logging.WARNING, "job.on_failure_failed", job_id=job.id,
                  task=job.task_name, failure=error.type,
                  error=f"{type(exc).__name__}: {exc}"[:300])
