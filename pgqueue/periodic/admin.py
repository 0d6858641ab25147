"""Operating schedules: list, pause, resume and delete them (the CLI and the Django admin), and
create schedules at runtime (django-background-tasks' ``repeat=``).

Pausing and resuming call the SQL functions `pgqueue.pause_schedule(id)` and
`pgqueue.resume_schedule(id)`, so a DBA in psql and these functions do exactly the same thing.
Every function takes an optional connection, to run inside the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pgqueue import store
from pgqueue.errors import ConfigurationError
from pgqueue.periodic.schedule import Schedule

if TYPE_CHECKING:
    from pgqueue.app import App
    from pgqueue.db import ExternalConnection


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """A row of `pgqueue.schedules`."""

    id: str
    task_name: str
    cron: str | None
    every: timedelta | None
    anchor_at: datetime | None
    timezone: str
    args: list[Any]
    kwargs: dict[str, Any]
    queue: str
    priority: int
    max_attempts: int
    misfire: str
    misfire_grace: timedelta
    misfire_window: timedelta
    overlap: bool
    ends_at: datetime | None
    origin: str
    next_tick_at: datetime | None
    restart_from: datetime | None
    last_tick_at: datetime | None
    last_job_id: int | None
    last_fired_at: datetime | None
    last_fired_by: int | None
    skipped_ticks: int
    overlap_skipped_ticks: int
    paused: bool
    paused_at: datetime | None
    orphaned: bool
    orphaned_at: datetime | None
    last_seen_at: datetime
    created_at: datetime

    @property
    def state(self) -> str:
        """orphaned (no longer in code), paused, ended (past ends_at), or active."""
        if self.orphaned:
            return "orphaned"
        if self.paused:
            return "paused"
        ended = (self.ends_at is not None and self.next_tick_at is not None
                 and self.next_tick_at > self.ends_at)
        return "ended" if ended else "active"

    @property
    def timing(self) -> str:
        if self.cron is not None:
            return self.cron if self.timezone == "UTC" else f"{self.cron} ({self.timezone})"
        assert self.every is not None
        return f"every {_duration(self.every)}"


def list_schedules(app: App, connection: ExternalConnection | None = None) -> list[ScheduleInfo]:
    return [ScheduleInfo(**row) for row in app.db.run(store.list_schedules(), connection)]


def pause_schedule(app: App, schedule_id: str,
                   connection: ExternalConnection | None = None) -> bool:
    """Stop the schedule firing; False if no schedule has this id."""
    return app.db.run(store.pause_schedule(schedule_id), connection)


def resume_schedule(app: App, schedule_id: str,
                    connection: ExternalConnection | None = None) -> bool:
    """Let it fire again from its next tick on (ticks that fell while paused never run)."""
    return app.db.run(store.resume_schedule(schedule_id), connection)


def delete_schedule(app: App, schedule_id: str,
                    connection: ExternalConnection | None = None) -> bool:
    """Forget a schedule (an orphan, or one created at runtime); False if there was none.
    A schedule still declared in code comes back at the next worker start."""
    return app.db.run(store.delete_schedule(schedule_id), connection)


def save_schedule(
    app: App, schedule: Schedule, *, anchor_at: datetime | None = None,
    ends_at: datetime | None = None, connection: ExternalConnection | None = None,
) -> None:
    """Create or replace a schedule at runtime, outside the code's declarations.

    Reconciliation never orphans it. Interval ticks count from `anchor_at` (default: the
    epoch); the first tick to run is the first at or after `anchor_at` (or now); no tick after
    `ends_at` runs. Saved inside `connection`'s transaction, it fires only once that commits.
    """
    for instant, what in ((anchor_at, "anchor_at"), (ends_at, "ends_at")):
        if instant is not None and instant.utcoffset() is None:
            raise ConfigurationError(f"{what} must be timezone-aware")
    resolved = schedule.resolve(app)
    app.db.run(store.save_runtime_schedule(
        id=schedule.id, task_name=schedule.task_name, cron=schedule.cron, every=schedule.every,
        anchor_at=anchor_at, timezone=schedule.timezone, args_json=resolved.args_json,
        kwargs_json=resolved.kwargs_json, queue=resolved.queue, priority=resolved.priority,
        max_attempts=resolved.max_attempts, misfire=schedule.misfire,
        misfire_grace=schedule.misfire_grace, misfire_window=schedule.misfire_window,
        overlap=schedule.overlap, ends_at=ends_at), connection)


def _duration(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
