"""The worker's LISTEN connection: wake-ups for new jobs, abort requests for running ones.
Notifications are only a fast path; the claim loop's poll and the heartbeat cover any missed
while the connection was down, and a reconnect wakes the claim loop to catch up."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pgqueue.db import ABORT_CHANNEL, JOBS_CHANNEL, Listener
from pgqueue.errors import DatabaseUnavailable
from pgqueue.logs import log_event
from pgqueue.worker.backoff import Backoff, raise_if_cancelling

if TYPE_CHECKING:
    from pgqueue.worker.runner import Worker

logger = logging.getLogger("pgqueue.worker")


def concerns_queues(payload: str, queues: Sequence[str] | None) -> bool:
    """Reading the wake-up payload: which queues got jobs (empty payload: maybe any)."""
    if queues is None or not payload:
        return True
    try:
        notified = json.loads(payload).get("queues") or []
    except (ValueError, AttributeError):
        return True
    return any(queue in notified for queue in queues)


async def listen_service(worker: Worker) -> None:
    listener = Listener(worker.app.dsn, (JOBS_CHANNEL, ABORT_CHANNEL))
    backoff = Backoff()
    try:
        while True:
            try:
                if not listener.connected:
                    await listener.connect()
                    if backoff.failures:
                        log_event(logger, logging.INFO, "listener.reconnected")
                    backoff.reset()
                    worker.wake.set()  # catch up on what was enqueued while deaf
                    worker.ready.set()
                notifications = await listener.wait(worker.options.listener_ping_interval)
                if not notifications:
                    await listener.ping(timeout=5.0)
                for channel, payload in notifications:
                    _on_notification(worker, channel, payload)
            except DatabaseUnavailable as exc:
                raise_if_cancelling()
                await listener.close()
                delay = backoff.next_delay()
                if backoff.should_log():
                    log_event(logger, logging.WARNING, "listener.lost",
                              retry_in_s=delay, error=str(exc)[:200])
                await asyncio.sleep(delay)
    finally:
        await listener.close()


def _on_notification(worker: Worker, channel: str, payload: str) -> None:
    if channel == JOBS_CHANNEL:
        if concerns_queues(payload, worker.options.queues):
            worker.wake.set()
    elif channel == ABORT_CHANNEL and payload == str(worker.worker_id):
        worker.check_aborts.set()
