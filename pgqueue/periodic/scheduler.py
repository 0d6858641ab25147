"""The scheduler: a worker service that enqueues each tick of each schedule exactly once.

Every worker runs one (unless started with ``--no-periodic``); there is no leader to elect or
lose. A pass lists the due schedules and fires each in its own transaction:

1. lock the schedule's row ``FOR UPDATE SKIP LOCKED`` (a scheduler already firing it is passed
   by) and read the database's ``now()``;
2. plan the ticks from the next tick, ``now()`` and the misfire policy (`plan.plan_fire`);
   a schedule declared ``overlap=False`` keeps none while its previous tick's job has not
   ended, and at most the newest otherwise (`plan.without_overlap`);
3. one statement records the ticks in ``pgqueue.schedule_ticks`` (primary key (schedule, tick):
   a tick recorded before is dropped), inserts one job per recorded tick and advances the
   schedule; the commit makes all of it visible at once, or none of it.

Then it sleeps until the next tick by the database's clock (a duration the database computes,
measured here on the monotonic clock), at most `MAX_SLEEP` so resumed schedules are noticed.
No worker's wall clock is ever read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pgqueue import store
from pgqueue.db import AsyncDatabase, atransaction
from pgqueue.errors import DatabaseUnavailable, PgQueueError
from pgqueue.logs import log_event
from pgqueue.periodic.declare import declared_schedules
from pgqueue.periodic.plan import plan_fire, without_overlap
from pgqueue.periodic.reconcile import reconcile
from pgqueue.periodic.schedule import Schedule
from pgqueue.periodic.ticks import MICROSECOND, next_after, ticks_for
from pgqueue.worker.backoff import Backoff

if TYPE_CHECKING:
    from pgqueue.app import App
    from pgqueue.worker.services import ServiceContext, WorkerIdentity

logger = logging.getLogger("pgqueue.periodic")

MAX_SLEEP = 10.0
"""Longest sleep between passes (seconds): bounds how long a resumed schedule waits."""
LOCKED_RETRY = 0.05
"""Sleep when a due schedule is being fired by another scheduler (or its commit is in flight)."""
WAKE_MARGIN = 0.002
"""Wake this much after the tick, so the tick is due when the pass reaches the database."""
BROKEN_RETRY = 60.0
"""A schedule whose row cannot be planned (say, a cron edited by hand) is retried this late."""
PRUNE_INTERVAL = 3600.0
TICK_RETENTION = timedelta(days=7)
"""How long pgqueue.schedule_ticks remembers a tick."""


@dataclass(frozen=True, slots=True)
class FiredTick:
    schedule_id: str
    tick_at: datetime
    job_id: int


class Scheduler:
    """Fires due schedules of `app`'s database; `fire_due` is one pass (tests call it)."""

    def __init__(self, app: App, *, db: AsyncDatabase | None = None,
                 identity: WorkerIdentity | None = None) -> None:
        self.app = app
        self.db: AsyncDatabase = db if db is not None else app.db
        """The worker's own connection when it runs in one, else the app's pools."""
        self.identity = identity
        self._broken: dict[str, float] = {}
        self._next_prune = 0.0

    @property
    def worker_id(self) -> int | None:
        """Recorded with each tick; read each time (a worker declared dead re-registers)."""
        return self.identity.worker_id if self.identity is not None else None

    async def run(self, schedules: Sequence[Schedule]) -> None:
        """Reconcile, then fire due schedules until cancelled. Never raises (but cancellation):
        a scheduler that died silently would be the worst failure of all."""
        await self._reconcile_until_done(schedules)
        backoff = Backoff()
        while True:
            try:
                _fired, delay = await self.fire_due()
                backoff.reset()
            except DatabaseUnavailable as exc:
                delay = backoff.next_delay()
                if backoff.should_log():
                    log_event(logger, logging.WARNING, "periodic.pass_failed",
                              retry_in_s=delay, error=str(exc)[:200])
            except Exception as exc:
                delay = max(1.0, backoff.next_delay())
                logger.exception("periodic.pass_crashed error=%r", str(exc)[:200])
            await asyncio.sleep(delay)

    async def _reconcile_until_done(self, schedules: Sequence[Schedule]) -> None:
        backoff = Backoff()
        while True:
            try:
                result = await reconcile(self.app, schedules, self.db)
            except DatabaseUnavailable as exc:
                delay = backoff.next_delay()
                if backoff.should_log():
                    log_event(logger, logging.WARNING, "periodic.reconcile_failed",
                              retry_in_s=delay, error=str(exc)[:200])
                await asyncio.sleep(delay)
                continue
            log_event(logger, logging.INFO, "periodic.reconciled",
                      schedules=",".join(result.declared) or "-",
                      orphaned=",".join(result.orphaned) or "-")
            return

    async def fire_due(self) -> tuple[list[FiredTick], float]:
        """Fire every due schedule once; returns the ticks enqueued and the seconds to sleep."""
        now = time.monotonic()
        self._broken = {key: until for key, until in self._broken.items() if until > now}
        fired: list[FiredTick] = []
        for schedule_id in await self.db.arun(store.due_schedule_ids()):
            if schedule_id in self._broken:
                continue
            try:
                fired.extend(await self.fire_schedule(schedule_id))
            except DatabaseUnavailable:
                raise
            except Exception as exc:  # one broken row must not stop the other schedules
                self._broken[schedule_id] = time.monotonic() + BROKEN_RETRY
                log_event(logger, logging.ERROR, "periodic.schedule_failed",
                          schedule=schedule_id, retry_in_s=BROKEN_RETRY,
                          error=f"{type(exc).__name__}: {exc}"[:300])
        await self._prune_now_and_then()
        wait = await self.db.arun(store.seconds_until_next_tick(excluded=list(self._broken)))
        if wait is None:
            return fired, MAX_SLEEP
        if wait <= 0:
            return fired, LOCKED_RETRY
        return fired, min(wait + WAKE_MARGIN, MAX_SLEEP)

    async def fire_schedule(self, schedule_id: str) -> list[FiredTick]:
        """Fire one schedule if it is still due and no other scheduler holds it."""
        db = self.db
        async with db.aconnection() as conn, atransaction(conn):
            row = await db.arun(store.lock_due_schedule(schedule_id), conn)
            if row is None:
                return []
            ticks = ticks_for(cron=row["cron"], every=row["every"], timezone=row["timezone"],
                              anchor=row["anchor_at"])
            due_from = row["next_tick_at"]
            if due_from is None:  # resumed, or new at runtime: the first tick from then on
                restart_from = row["restart_from"] or row["now"]
                due_from = next_after(ticks, restart_from - MICROSECOND)
            plan = plan_fire(ticks, due_from=due_from, now=row["now"], misfire=row["misfire"],
                             misfire_grace=row["misfire_grace"],
                             misfire_window=row["misfire_window"], ends_at=row["ends_at"])
            run, overlap_skipped = without_overlap(plan.run, overlap=row["overlap"],
                                                   previous_unfinished=row["previous_unfinished"])
            recorded = await db.arun(store.fire_schedule_ticks(
                schedule_id, ticks=run, next_tick_at=plan.next_tick_at, skipped=plan.skipped,
                overlap_skipped=overlap_skipped, worker_id=self.worker_id), conn)
        fired = [FiredTick(schedule_id, tick_at, job_id) for tick_at, job_id in recorded]
        if plan.skipped:
            log_event(logger, logging.WARNING, "periodic.ticks_skipped", schedule=schedule_id,
                      skipped=plan.skipped, misfire=row["misfire"],
                      since=due_from.isoformat(timespec="seconds"))
        if overlap_skipped:
            log_event(logger, logging.INFO, "periodic.tick_skipped_overlap",
                      schedule=schedule_id, skipped=overlap_skipped,
                      previous_job_id=row["last_job_id"])
        if len(recorded) < len(run):
            log_event(logger, logging.WARNING, "periodic.ticks_already_recorded",
                      schedule=schedule_id, count=len(run) - len(recorded))
        for tick in fired:
            log_event(logger, logging.INFO, "periodic.tick_enqueued", schedule=schedule_id,
                      tick=tick.tick_at.isoformat(), job_id=tick.job_id)
        return fired

    async def _prune_now_and_then(self) -> None:
        if time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + PRUNE_INTERVAL
        await self.db.arun(store.prune_schedule_ticks(
            retention=TICK_RETENTION.total_seconds()))


async def run_scheduler(context: ServiceContext) -> None:
    """The worker service (see `App.worker_services`)."""
    if not context.options.periodic:
        log_event(logger, logging.INFO, "periodic.disabled", worker=context.identity.name)
        return
    schedules = declared_schedules(context.app)
    try:
        scheduler = Scheduler(context.app, db=context.db, identity=context.identity)
        await scheduler.run(schedules)
    except PgQueueError as exc:  # a declaration the task cannot take (checked at reconcile)
        log_event(logger, logging.ERROR, "periodic.stopped",
                  error=f"{type(exc).__name__}: {exc}"[:300])
