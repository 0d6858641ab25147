"""Reconciliation: make `pgqueue.schedules` say what the code declares, at worker start.

In one transaction, serialised by an advisory lock so workers starting together take turns:
declared schedules are written (a new one waits for its first tick after the database's now();
an existing one keeps its next tick unless its timing changed, so ticks missed while no worker
ran are seen by the misfire policy), and schedules no longer declared are marked orphaned: they
stop firing and stay in the table for the operator.

The table describes one application: workers whose code declares different schedules (two
apps sharing a database, or old and new code during a rolling deploy) each write their own
view when they start. Run the workers of other apps with ``--no-periodic``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from pgqueue import store
from pgqueue.db import AsyncDatabase, Call, atransaction
from pgqueue.logs import log_event
from pgqueue.periodic.schedule import ResolvedSchedule, Schedule
from pgqueue.periodic.ticks import next_after

if TYPE_CHECKING:
    from pgqueue.app import App

logger = logging.getLogger("pgqueue.periodic")


@dataclass(frozen=True, slots=True)
class Reconciled:
    declared: list[str]
    orphaned: list[str]
    """Schedules marked orphaned by this reconciliation (those already orphaned are not listed)."""


async def reconcile(
    app: App, schedules: Sequence[Schedule], db: AsyncDatabase | None = None
) -> Reconciled:
    """On `db` (default: the app's pools; a worker passes its own connection)."""
    db = db if db is not None else app.db
    resolved = [schedule.resolve(app) for schedule in schedules]
    for item in resolved:
        if not item.task_known:
            log_event(logger, logging.WARNING, "periodic.unknown_task",
                      schedule=item.schedule.id, task=item.schedule.task_name,
                      note="jobs will be enqueued; a worker that has the task must run them")
    async with db.aconnection() as conn, atransaction(conn):
        now = await db.arun(store.lock_schedules_for_reconcile(), conn)
        for item in resolved:
            await db.arun(_upsert(item, next_after(item.schedule.ticks, now)), conn)
        orphaned = await db.arun(
            store.orphan_undeclared_schedules([item.schedule.id for item in resolved]), conn)
    for schedule_id in orphaned:
        log_event(logger, logging.WARNING, "periodic.schedule_orphaned", schedule=schedule_id,
                  note="no longer declared in code: it stops firing")
    return Reconciled([item.schedule.id for item in resolved], orphaned)


def _upsert(item: ResolvedSchedule, next_tick_at: datetime) -> Call[datetime | None]:
    schedule = item.schedule
    return store.upsert_schedule(
        id=schedule.id, task_name=schedule.task_name, cron=schedule.cron, every=schedule.every,
        timezone=schedule.timezone, args_json=item.args_json, kwargs_json=item.kwargs_json,
        queue=item.queue, priority=item.priority, max_attempts=item.max_attempts,
        misfire=schedule.misfire, misfire_grace=schedule.misfire_grace,
        misfire_window=schedule.misfire_window, overlap=schedule.overlap,
        next_tick_at=next_tick_at,
    )
