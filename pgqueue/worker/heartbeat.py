"""The worker's heartbeat: proves it alive, picks up abort requests a missed NOTIFY did not
deliver, and reports tasks that ignore being told to stop. Rescuing other workers' jobs is a
service of its own (pgqueue.maintenance.rescue): nothing a rescue waits on may delay a beat."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from pgqueue import store
from pgqueue.errors import DatabaseUnavailable
from pgqueue.logs import log_event
from pgqueue.worker.backoff import Backoff, raise_if_cancelling
from pgqueue.worker.executor import StopReason

if TYPE_CHECKING:
    from pgqueue.worker.runner import Worker

logger = logging.getLogger("pgqueue.worker")


async def heartbeat_service(worker: Worker) -> None:
    options = worker.options
    backoff = Backoff()
    while True:
        try:
            alive, abort_ids = await worker.db.arun(
                store.heartbeat(worker_id=worker.require_worker_id()))
            if not alive:
                log_event(logger, logging.ERROR, "worker.declared_dead",
                          worker_id=worker.worker_id,
                          note="heartbeat arrived too late; jobs were rescued; re-registering")
                await worker.register()
            _report_stuck_jobs(worker)
            for job_id in abort_ids:
                running = worker.running.get(job_id)
                if running is None:
                    worker.cancel_prefetched(job_id)
                elif running.stop_reason is None:
                    log_event(logger, logging.INFO, "job.abort_requested", job_id=job_id)
                    running.interrupt(StopReason.ABORT)
            backoff.reset()
            if worker.beating_since is None:
                worker.beating_since = time.monotonic()
            delay = options.heartbeat_interval
        except DatabaseUnavailable as exc:
            raise_if_cancelling()
            worker.beating_since = None
            delay = backoff.next_delay()
            if backoff.should_log():
                log_event(logger, logging.WARNING, "heartbeat.failed", retry_in_s=delay,
                          error=str(exc)[:200])
        worker.check_aborts.clear()
        await worker.wait_for(worker.check_aborts, delay, or_stop=False)


def _report_stuck_jobs(worker: Worker) -> None:
    now = time.monotonic()
    for running in worker.running.values():
        if (running.interrupted_at is not None and not running.reported_stuck
                and now - running.interrupted_at > worker.options.stuck_after):
            running.reported_stuck = True
            log_event(logger, logging.WARNING, "job.stuck", job_id=running.job.id,
                      task=running.job.task_name, reason=running.stop_reason,
                      ignored_for_s=now - running.interrupted_at,
                      note="the task ignores should_abort(); its slot stays taken")
