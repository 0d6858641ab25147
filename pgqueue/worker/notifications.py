"""The worker's LISTEN connection: wake-ups for new jobs, abort requests for running ones.
Notifications are only a fast path; the claim loop's poll and the heartbeat cover any missed
while the connection was down, and a reconnect wakes the claim loop to catch up.

LISTEN needs a session of its own on the server. A transaction-mode pooler gives none: LISTEN
succeeds on whichever server session runs it, which then serves other clients, and nothing is
ever received. So behind one (`pooler="transaction"`) the worker LISTENs on the app's direct
`listen_dsn`, or, without one, says so once and relies on polling. The setting is explicit:
a NOTIFY the listener sends itself does come back through PgBouncer, so proving LISTEN would
take a probe from a second session and a timeout on every connect (docs/deployment.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pgqueue.db import ABORT_CHANNEL, JOBS_CHANNEL, Listener, worker_application_name
from pgqueue.errors import DatabaseUnavailable
from pgqueue.logs import log_event
from pgqueue.worker.backoff import Backoff, raise_if_cancelling

if TYPE_CHECKING:
    from pgqueue.app import App
    from pgqueue.worker.services import ServiceContext

logger = logging.getLogger("pgqueue.worker")


def concerns_queues(payload: str, queues: Sequence[str] | None) -> bool:
    """Reading the wake-up payload: which queues got jobs (empty payload: maybe any). Anyone
    allowed to NOTIFY may send anything on the channel: a payload that is not the trigger's
    `{"queues": [...]}` (nested thousands deep, say) wakes the worker instead of breaking it."""
    if queues is None or not payload:
        return True
    try:
        notified = json.loads(payload)
    except (ValueError, RecursionError):
        return True
    listed = notified.get("queues") if isinstance(notified, dict) else None
    if not isinstance(listed, list):
        return True
    return any(queue in listed for queue in queues)


def listen_conninfo(app: App) -> str | None:
    """Where to LISTEN: the listen DSN, else the DSN unless it goes through a transaction-mode
    pooler; None when there is nowhere."""
    if app.listen_dsn:
        return app.listen_dsn
    return app.dsn if app.pooler == "none" else None


async def listen_service(context: ServiceContext) -> None:
    """Returns at once (after one log line) when there is nowhere to LISTEN: the claim loop's
    poll and the heartbeat then do the listener's work, more slowly."""
    conninfo = listen_conninfo(context.app)
    if conninfo is None:
        log_event(logger, logging.WARNING, "listener.disabled",
                  reason="LISTEN cannot work through a transaction-mode pooler",
                  wake_up="polling", poll_interval_s=context.options.poll_interval,
                  fix="set --listen-dsn or PGQUEUE_LISTEN_DSN to a direct connection")
        context.signals.ready.set()
        return
    listener = Listener(conninfo, (JOBS_CHANNEL, ABORT_CHANNEL),
                        application_name=worker_application_name(context.identity.name, "listen"))
    backoff = Backoff()
    try:
        while True:
            try:
                if not listener.connected:
                    await listener.connect()
                    if backoff.failures:
                        log_event(logger, logging.INFO, "listener.reconnected")
                    backoff.reset()
                    context.signals.wake_all()  # catch up on what was enqueued while deaf
                    context.signals.ready.set()
                notifications = await listener.wait(context.options.listener_ping_interval)
                if not notifications:
                    await listener.ping(timeout=5.0)
                for channel, payload in notifications:
                    _on_notification(context, channel, payload)
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


def _on_notification(context: ServiceContext, channel: str, payload: str) -> None:
    if channel == JOBS_CHANNEL:
        context.signals.wake_where(lambda queues: concerns_queues(payload, queues))
    elif channel == ABORT_CHANNEL and payload == str(context.identity.worker_id):
        context.signals.check_aborts.set()
