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
from pgqueue.worker.services import wait_for_event

if TYPE_CHECKING:
    from pgqueue.worker.services import ServiceContext

logger = logging.getLogger("pgqueue.worker")


async def heartbeat_service(context: ServiceContext) -> None:
    options, identity, jobs = context.options, context.identity, context.jobs
    backoff = Backoff()
    while True:
        try:
            children = context.children.describe() if context.children is not None else []
            alive, abort_ids = await context.db.arun(
                store.heartbeat(worker_id=identity.require_id(), children=children))
            if not alive:
                log_event(logger, logging.ERROR, "worker.declared_dead",
                          worker_id=identity.worker_id,
                          note="heartbeat arrived too late; jobs were rescued; re-registering")
                await context.register()
            _report_stuck_jobs(context)
            for job_id in abort_ids:
                running = jobs.running.get(job_id)
                if running is None:
                    jobs.cancel_prefetched(job_id)
                elif running.stop_reason is None:
                    log_event(logger, logging.INFO, "job.abort_requested", job_id=job_id)
                    running.interrupt(StopReason.ABORT)
            backoff.reset()
            if identity.beating_since is None:
                identity.beating_since = time.monotonic()
            delay = options.heartbeat_interval
        except DatabaseUnavailable as exc:
            raise_if_cancelling()
            identity.beating_since = None
            delay = backoff.next_delay()
            if backoff.should_log():
                log_event(logger, logging.WARNING, "heartbeat.failed", retry_in_s=delay,
                          error=str(exc)[:200])
        context.signals.check_aborts.clear()
        await wait_for_event(context.signals.check_aborts, delay)


def _report_stuck_jobs(context: ServiceContext) -> None:
    now = time.monotonic()
    for running in context.jobs.running.values():
        if (running.interrupted_at is not None and not running.reported_stuck
                and now - running.interrupted_at > context.options.stuck_after):
            running.reported_stuck = True
            log_event(logger, logging.WARNING, "job.stuck", job_id=running.job.id,
                      task=running.job.task_name, reason=running.stop_reason,
                      ignored_for_s=now - running.interrupted_at,
                      note="the task ignores should_abort(); its slot stays taken")
