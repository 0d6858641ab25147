"""Rescue of jobs held by dead workers: their running jobs go back to `queued` (or to `failed`
when out of attempts), then long-dead workers are forgotten.

A service of its own, apart from the heartbeat: whatever a rescue waits on must never delay the
worker's own beat. Nor does it wait: rows another session holds locked (a frozen worker inside
its acknowledgement transaction, say) are skipped and rescued by a later pass, once the server
ends that session (`idle_in_transaction_session_timeout`) or it moves on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from pgqueue import store
from pgqueue.errors import DatabaseUnavailable
from pgqueue.logs import log_event
from pgqueue.worker.backoff import Backoff, raise_if_cancelling

if TYPE_CHECKING:
    from pgqueue.worker.services import ServiceContext

logger = logging.getLogger("pgqueue.worker")


async def rescue_service(context: ServiceContext) -> None:
    """Every heartbeat interval, once this worker's own heartbeat has landed for one full
    heartbeat timeout: after an outage every heartbeat is stale, and live workers need that
    long to report in before their jobs may be taken from them."""
    options = context.options
    backoff = Backoff()
    while True:
        delay = options.heartbeat_interval
        beating_since = context.identity.beating_since
        if beating_since is not None and time.monotonic() - beating_since >= (
                options.heartbeat_timeout):
            try:
                await rescue_stalled_jobs(context)
                backoff.reset()
            except DatabaseUnavailable as exc:
                raise_if_cancelling()
                delay = backoff.next_delay()
                if backoff.should_log():
                    log_event(logger, logging.WARNING, "rescue.failed", retry_in_s=delay,
                              error=str(exc)[:200])
        await asyncio.sleep(delay)


async def rescue_stalled_jobs(context: ServiceContext) -> None:
    heartbeat_timeout = context.options.heartbeat_timeout
    rescued = await context.db.arun(store.rescue_stalled_jobs(
        heartbeat_timeout=heartbeat_timeout))
    for job_id, state in rescued:
        log_event(logger, logging.WARNING, "job.rescued", job_id=job_id, state=state,
                  reason="worker lost")
    await context.db.arun(store.delete_dead_workers(heartbeat_timeout=heartbeat_timeout))
