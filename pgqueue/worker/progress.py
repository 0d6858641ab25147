"""Writes the progress and meta that running tasks report (pgqueue.progress): whatever all of
a worker's jobs reported since the last write goes out in one statement, at most once per
`progress_interval`, so a task reporting in a tight loop costs the database one small update
per interval, not one per call. The value pending when a job ends is written with its outcome
(pgqueue.worker.completer), not here.

Nothing wakes this service while no task reports: a report that finds nothing pending tells it
(once per write), and it writes after the rest of the interval since its last write."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from pgqueue import store
from pgqueue.errors import DatabaseUnavailable, PgQueueError
from pgqueue.logs import log_event
from pgqueue.worker.backoff import Backoff, raise_if_cancelling

if TYPE_CHECKING:
    from pgqueue.worker.services import ServiceContext

logger = logging.getLogger("pgqueue.worker")


class ProgressWriter:
    """Told by each running job's report when it has something pending; `run` writes."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._pending = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self.writes = 0
        """Statements written so far."""

    def wake(self) -> None:
        """A job's report has something pending (each JobContext's on_report_pending). Called
        from the task's thread or from the loop itself; either way the event is set on the
        loop."""
        self._loop.call_soon_threadsafe(self._pending.set)

    async def run(self, context: ServiceContext) -> None:
        backoff = Backoff()
        refusals = Backoff()
        last_write = -self.interval
        while True:
            await self._pending.wait()
            await asyncio.sleep(max(0.0, last_write + self.interval - time.monotonic()))
            self._pending.clear()
            last_write = time.monotonic()
            reports = [(running.job, report) for running in context.jobs.running.values()
                       if (report := running.context.existing_report) is not None]
            taken = [(job, report, update) for job, report in reports
                     if (update := report.take()) is not None]
            if not taken:
                continue
            try:
                await context.db.arun(store.set_progress([job for job, _, _ in taken],
                                                         [update for _, _, update in taken]))
                self.writes += 1
                backoff.reset()
            except DatabaseUnavailable as exc:
                raise_if_cancelling()
                for _job, report, update in taken:
                    report.put_back(update)
                self._pending.set()
                delay = backoff.next_delay()
                if backoff.should_log():
                    log_event(logger, logging.WARNING, "progress.write_failed",
                              jobs=len(taken), retry_in_s=delay, error=str(exc)[:200])
                await asyncio.sleep(delay)
            except PgQueueError as exc:
                # Refused (a role without the grants of migration 0021: roles.sql not applied
                # again): progress is dropped, the worker goes on running jobs.
                refusals.next_delay()
                if refusals.should_log():
                    log_event(logger, logging.ERROR, "progress.write_refused", jobs=len(taken),
                              refusals=refusals.failures, error=str(exc)[:300])
