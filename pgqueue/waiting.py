"""Waiting for jobs to end (App.wait, WorkflowHandle.wait): woken by LISTEN/NOTIFY.

The waiter LISTENs on pgqueue_done on a connection of its own, then marks the jobs `watched` and
reads them (pgqueue.watch_jobs, migration 0020); a watched job's end sends its id, so an end
committed after that read always wakes it. `poll_interval` is only a fallback (no LISTEN behind
a transaction-mode pooler without listen_dsn, or a dropped notification): a read every so often.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pgqueue import store
from pgqueue.db import Row, aconnect, arun_on, connect, run_on
from pgqueue.errors import ConfigurationError, JobCancelled, JobFailed, JobNotFound

if TYPE_CHECKING:
    from pgqueue.app import App

CHANNEL = "pgqueue_done"
DEFAULT_POLL_INTERVAL = 5.0
_FINAL = ("succeeded", "failed", "cancelled")
T = TypeVar("T")
Settle = Callable[[list[Row], Sequence[int]], T | None]
"""Given the jobs' rows (id order) and the ids waited for: the value to return once the wait is
over, None to keep waiting; it may raise (JobFailed, JobNotFound)."""


def wait_for(app: App, job_ids: Sequence[int], timeout: float | None,
             poll_interval: float = DEFAULT_POLL_INTERVAL) -> list[Any]:
    """The results of `job_ids` once every one has succeeded; raises `JobFailed` /
    `JobCancelled` for the first that did not (in id order), `TimeoutError` at the deadline."""
    return wait_until(app, job_ids, timeout, poll_interval, _outcome)


def wait_until(app: App, job_ids: Sequence[int], timeout: float | None,
               poll_interval: float, settle: Settle[T]) -> T:
    """Read the jobs (marking them watched) until `settle` says the wait is over: after each
    NOTIFY of one of their ends, or every `poll_interval`; `TimeoutError` at the deadline."""
    deadline = _deadline(timeout, poll_interval)
    conninfo, listening = _conninfo(app)
    with connect(conninfo, prepare_threshold=None) as conn:
        if listening:
            conn.execute(f"LISTEN {CHANNEL}")
        while True:
            done = settle(run_on(conn, store.watch_jobs(job_ids)), job_ids)
            if done is not None:
                return done
            pause = _pause(deadline, poll_interval, job_ids)
            if listening:
                for _ in conn.notifies(timeout=pause, stop_after=1):
                    pass
            else:
                time.sleep(pause)


async def await_for(app: App, job_ids: Sequence[int], timeout: float | None,
                    poll_interval: float = DEFAULT_POLL_INTERVAL) -> list[Any]:
    """`wait_for` on the event loop."""
    return await await_until(app, job_ids, timeout, poll_interval, _outcome)


async def await_until(app: App, job_ids: Sequence[int], timeout: float | None,
                      poll_interval: float, settle: Settle[T]) -> T:
    """`wait_until` on the event loop."""
    deadline = _deadline(timeout, poll_interval)
    conninfo, listening = _conninfo(app)
    conn = await aconnect(conninfo, prepare_threshold=None)
    async with conn:
        if listening:
            await conn.execute(f"LISTEN {CHANNEL}")
        while True:
            done = settle(await arun_on(conn, store.watch_jobs(job_ids)), job_ids)
            if done is not None:
                return done
            pause = _pause(deadline, poll_interval, job_ids)
            if listening:
                async for _ in conn.notifies(timeout=pause, stop_after=1):
                    pass
            else:
                await asyncio.sleep(pause)


def _conninfo(app: App) -> tuple[str, bool]:
    if app.pooler == "none":
        return app.dsn, True
    return (app.listen_dsn, True) if app.listen_dsn else (app.dsn, False)


def _deadline(timeout: float | None, poll_interval: float) -> float | None:
    if timeout is not None and timeout < 0:
        raise ConfigurationError(f"timeout must be >= 0 seconds or None, not {timeout!r}")
    if not poll_interval > 0:
        raise ConfigurationError(f"poll_interval must be > 0 seconds, not {poll_interval!r}")
    return None if timeout is None else time.monotonic() + timeout


def _pause(deadline: float | None, poll_interval: float, job_ids: Sequence[int]) -> float:
    if deadline is None:
        return poll_interval
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError(f"jobs {list(job_ids)} did not finish in time")
    return min(left, poll_interval)


def ended(rows: list[Row], job_ids: Sequence[int]) -> list[Row] | None:
    """A `Settle`: the rows once every job has ended, however (succeeded, failed, cancelled)."""
    _require_all(rows, job_ids)
    return rows if all(row["state"] in _FINAL for row in rows) else None



def _require_all(rows: list[Row], job_ids: Sequence[int]) -> None:
    found = {row["id"] for row in rows}
    missing = [job_id for job_id in job_ids if job_id not in found]
    if missing:
        raise JobNotFound(f"no job has id {missing[0]}")


def _outcome(rows: list[Row], job_ids: Sequence[int]) -> list[Any] | None:
    _require_all(rows, job_ids)
    by_id = {row["id"]: row for row in rows}
    for row in rows:
        if row["state"] in ("failed", "cancelled"):
            error = JobCancelled if row["state"] == "cancelled" else JobFailed
            raise error(f"job {row['id']} {row['state']}: {row['error_type']}: "
                        f"{row['error_message']}", job_id=row["id"],
                        error_type=row["error_type"])
    if all(row["state"] == "succeeded" for row in rows):
        return [by_id[job_id]["result"] for job_id in job_ids]
    return None
