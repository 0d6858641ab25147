"""Retention: finished jobs are deleted once older than an age per state, in small batches
(each its own short transaction, so locks stay brief and vacuum can reclaim space while the
rest is deleted). `pgqueue prune` runs it once; every worker runs it every `prune_every`
seconds (`--prune-every 0` turns that off)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pgqueue import store
from pgqueue.db import AsyncDatabase, Database
from pgqueue.errors import ConfigurationError, DatabaseUnavailable
from pgqueue.logs import log_event

if TYPE_CHECKING:
    from pgqueue.worker.services import ServiceContext

logger = logging.getLogger("pgqueue.maintenance")

DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    keep_succeeded: float | None = 7 * DAY
    keep_failed: float | None = 30 * DAY
    keep_cancelled: float | None = 7 * DAY
    batch_size: int = 1000

    def __post_init__(self) -> None:
        for age in (self.keep_succeeded, self.keep_failed, self.keep_cancelled):
            if age is not None and age < 0:
                raise ConfigurationError("retention ages must not be negative")
        if self.batch_size < 1:
            raise ConfigurationError("batch_size must be >= 1")

    def batch(self) -> store.Call[int]:
        return store.prune_finished_jobs(
            keep_succeeded=self.keep_succeeded, keep_failed=self.keep_failed,
            keep_cancelled=self.keep_cancelled, batch_size=self.batch_size)

    def prunable(self) -> store.Call[dict[str, int]]:
        """What a prune would delete now, per state (`pgqueue prune --dry-run`)."""
        return store.count_prunable_jobs(
            keep_succeeded=self.keep_succeeded, keep_failed=self.keep_failed,
            keep_cancelled=self.keep_cancelled)


def prune(db: Database, policy: RetentionPolicy,
          progress: Callable[[int], None] = lambda deleted: None) -> int:
    """Delete every finished job past its age, batch by batch; returns how many."""
    deleted = 0
    while True:
        batch = db.run(policy.batch())
        deleted += batch
        progress(deleted)
        if batch < policy.batch_size:
            return deleted


async def aprune(db: AsyncDatabase, policy: RetentionPolicy) -> int:
    deleted = 0
    while True:
        batch = await db.arun(policy.batch())
        deleted += batch
        if batch < policy.batch_size:
            return deleted
        await asyncio.sleep(0)  # let jobs and heartbeats run between batches


async def retention_service(context: ServiceContext) -> None:
    """Prune every `prune_every` seconds (first run after a random part of that, so a fleet
    started together does not prune in lockstep)."""
    options = context.options
    if not options.prune_every:
        return
    await asyncio.sleep(random.uniform(0.1, 1.0) * options.prune_every)
    while True:
        try:
            deleted = await aprune(context.db, options.retention)
            if deleted:
                log_event(logger, logging.INFO, "retention.pruned", deleted=deleted)
        except DatabaseUnavailable as exc:
            log_event(logger, logging.WARNING, "retention.skipped", error=str(exc)[:200])
        await asyncio.sleep(options.prune_every)
