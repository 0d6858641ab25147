"""One reading of the DBA views, taken on one connection, for `pgqueue top` to draw.

It reads only the views, so a role granted nothing but `pgqueue_observer` (roles.sql) can run
`pgqueue top`. Rows stay dicts keyed by the views' column names (documented in docs/sql.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pgqueue import store
from pgqueue.app import App

Row = dict[str, Any]
RUNNING_ROWS = 12


@dataclass(frozen=True, slots=True)
class Snapshot:
    queues: list[Row] = field(default_factory=list)
    tasks: list[Row] = field(default_factory=list)
    workers: list[Row] = field(default_factory=list)
    stuck: list[Row] = field(default_factory=list)
    running: list[Row] = field(default_factory=list)
    """The oldest running jobs, with their progress (pgqueue.running_jobs), at most
    RUNNING_ROWS."""
    children: list[Row] = field(default_factory=list)
    """Child processes of process-pool workers (pgqueue.worker_children)."""
    health: Row | None = None
    database: str = ""
    taken_at: float = field(default_factory=time.time)
    """Wall-clock time of the reading (seconds since the epoch)."""
    read_seconds: float = 0.0
    """How long the views took to read: the cost of one refresh."""

    @property
    def failing_tasks(self) -> list[Row]:
        return [t for t in self.tasks if t["failed_1h"] or t["retrying"]]


def take_snapshot(app: App) -> Snapshot:
    started = time.monotonic()
    with app.db.connection() as conn:
        queues = app.db.run(store.observe_queue_stats(), conn)
        tasks = app.db.run(store.observe_task_stats(), conn)
        workers = app.db.run(store.observe_workers(), conn)
        stuck = app.db.run(store.observe_stuck_jobs(), conn)
        running = app.db.run(store.observe_running_jobs(limit=RUNNING_ROWS), conn)
        children = app.db.run(store.observe_worker_children(), conn)
        health = app.db.run(store.observe_health(), conn)
        info = conn.info
        database = f"{info.dbname}@{info.host}:{info.port}"
    return Snapshot(queues=queues, tasks=tasks, workers=workers, stuck=stuck,
                    running=running, children=children, health=health,
                    database=database, read_seconds=time.monotonic() - started)
