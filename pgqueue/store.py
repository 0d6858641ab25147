"""One function per named query: parameters in, a `Call` out, typed values back when it runs.

Nothing here touches a connection; `pgqueue.db.Database` runs the calls sync or async, on a pool
or on a caller's own connection (so enqueue can join the caller's transaction).
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from pgqueue.copy_rows import NULL, copy_field, job_rows
from pgqueue.db import Call, Copy, Row
from pgqueue.progress import ProgressUpdate
from pgqueue.types import ClaimedJob, Job, QueueStats


def _ids(rows: list[Row]) -> list[int]:
    return [row["id"] for row in rows]


def _first_id(rows: list[Row]) -> int:
    return rows[0]["id"]


def insert_job(
    *, task_name: str, queue: str, args_json: str, kwargs_json: str, priority: int,
    run_at: datetime | None, delay: float, max_attempts: int, timeout_seconds: float | None,
    lock: str | None = None, concurrency_key: str | None = None,
) -> Call[int]:
    return Call("insert_job", {
        "task_name": task_name, "queue": queue, "args": args_json, "kwargs": kwargs_json,
        "priority": priority, "run_at": run_at, "delay": delay, "max_attempts": max_attempts,
        "timeout_seconds": timeout_seconds, "lock": lock,
        "concurrency_key": concurrency_key,
    }, _first_id)


def insert_dependent_job(
    *, parent_ids: Sequence[int], on_parent_failure: str, task_name: str, queue: str,
    args_json: str, kwargs_json: str, priority: int, run_at: datetime | None, delay: float,
    max_attempts: int, timeout_seconds: float | None, unique_key: str | None = None,
    concurrency_key: str | None = None,
) -> Call[int]:
    return Call("insert_dependent_job", {
        "parent_ids": list(parent_ids), "on_parent_failure": on_parent_failure,
        "task_name": task_name, "queue": queue, "args": args_json, "kwargs": kwargs_json,
        "priority": priority, "run_at": run_at, "delay": delay, "max_attempts": max_attempts,
        "timeout_seconds": timeout_seconds, "unique_key": unique_key,
        "concurrency_key": concurrency_key,
    }, _first_id)


def insert_unique_job(
    *, task_name: str, queue: str, args_json: str, kwargs_json: str, priority: int,
    run_at: datetime | None, delay: float, max_attempts: int, timeout_seconds: float | None,
    unique_key: str, lock: str | None = None, concurrency_key: str | None = None,
) -> Call[tuple[int, bool] | None]:
    """(job id, whether this call created it); None when the key changed hands meanwhile."""
    return Call("insert_unique_job", {
        "task_name": task_name, "queue": queue, "args": args_json, "kwargs": kwargs_json,
        "priority": priority, "run_at": run_at, "delay": delay, "max_attempts": max_attempts,
        "timeout_seconds": timeout_seconds, "unique_key": unique_key, "lock": lock,
        "concurrency_key": concurrency_key,
    }, lambda rows: (rows[0]["id"], rows[0]["created"]) if rows else None)


def insert_unique_jobs_many(
    *, task_name: str, queue: str, args_json: Sequence[str], kwargs_json: Sequence[str],
    unique_keys: Sequence[str], priority: int, run_at: datetime | None, delay: float,
    max_attempts: int, timeout_seconds: float | None, lock: str | None = None,
    concurrency_key: str | None = None,
) -> Call[list[int | None]]:
    return Call("insert_unique_jobs_many", {
        "task_name": task_name, "queue": queue, "args": list(args_json),
        "kwargs": list(kwargs_json), "unique_keys": list(unique_keys), "priority": priority,
        "run_at": run_at, "delay": delay, "max_attempts": max_attempts,
        "timeout_seconds": timeout_seconds, "lock": lock,
        "concurrency_key": concurrency_key,
    }, lambda rows: [row["id"] for row in rows])


def insert_jobs_many(
    *, task_name: str, queue: str, args_json: Sequence[str], kwargs_json: Sequence[str],
    priority: int, run_at: datetime | None, delay: float, max_attempts: int,
    timeout_seconds: float | None, lock: str | None = None,
    concurrency_key: str | None = None,
) -> Call[list[int]]:
    return Call("insert_jobs_many", {
        "task_name": task_name, "queue": queue, "args": list(args_json),
        "kwargs": list(kwargs_json), "priority": priority, "run_at": run_at, "delay": delay,
        "max_attempts": max_attempts, "timeout_seconds": timeout_seconds, "lock": lock,
        "concurrency_key": concurrency_key,
    }, _ids)


def reserve_job_ids(
    *, count: int, run_at: datetime | None, delay: float
) -> Call[tuple[list[int], datetime]]:
    def decode(rows: list[Row]) -> tuple[list[int], datetime]:
        row = rows[0]
        if row["ids"] is None:  # consecutive: sent as the first id alone
            return list(range(row["first_id"], row["first_id"] + count)), row["run_at"]
        return list(row["ids"]), row["run_at"]

    return Call("reserve_job_ids", {"count": count, "run_at": run_at, "delay": delay}, decode)


def copy_jobs(
    *, ids: Sequence[int], run_at: datetime | None, task_name: str, queue: str,
    arguments: Iterable[Sequence[tuple[str, str]]], priority: int, max_attempts: int,
    timeout_seconds: float | None,
) -> Copy:
    """`arguments` yields chunks of (args JSON, kwargs JSON), one pair per id, in order; each
    chunk streams to the server as soon as it is encoded. With `run_at` None the jobs are due
    now: the column's default, which spares the server parsing a timestamp per row."""
    head = f"{copy_field(task_name)}\t{copy_field(queue)}"
    timeout = NULL if timeout_seconds is None else repr(float(timeout_seconds))
    if run_at is None:
        return Copy("copy_jobs_due_now", job_rows(
            ids, arguments, head=head, tail=f"{priority}\t{max_attempts}\t{timeout}"))
    return Copy("copy_jobs", job_rows(
        ids, arguments, head=head,
        tail=f"{priority}\t{run_at.isoformat()}\t{max_attempts}\t{timeout}"))


def _claimed_jobs(rows: list[tuple[Any, ...]]) -> list[ClaimedJob]:
    return [_claimed_job(*row) for row in rows]


def _claimed_job(
    job_id: int, task_name: str, queue: str, args_text: str, kwargs_text: str, *rest: Any,
) -> ClaimedJob:
    """One claimed row (ClaimedJob's fields in order, arguments as JSON text): decoded here,
    one job at a time, so a row no worker can read (nesting deeper than Python's recursion
    limit, say) marks that job unreadable instead of failing the whole batch's decode."""
    try:
        args = json.loads(args_text)
        kwargs = json.loads(kwargs_text)
    except (ValueError, RecursionError) as exc:
        return ClaimedJob(job_id, task_name, queue, [], {}, *rest,
                          unreadable=f"stored arguments cannot be decoded: {exc}")
    if type(args) is not list or type(kwargs) is not dict:
        return ClaimedJob(job_id, task_name, queue, [], {}, *rest, unreadable=(
            f"stored args must be a JSON array and kwargs an object, not "
            f"{type(args).__name__} and {type(kwargs).__name__}"))
    return ClaimedJob(job_id, task_name, queue, args, kwargs, *rest)


def _array(values: Iterable[int]) -> str:
    """ids as the text of a bigint[] (the queries cast them): psycopg's list dumper inspects
    every element, 54 µs for the 10 ids and 10 tokens of one acknowledgement, against 15 µs
    this way."""
    return "{" + ",".join(map(str, values)) + "}"


def _tokens(values: Iterable[uuid.UUID]) -> str:
    """Claim tokens as the text of a uuid[]: 32 hex digits each, which Postgres reads as a uuid
    (half the cost of str())."""
    return "{" + ",".join(token.hex for token in values) + "}"


@functools.lru_cache(maxsize=64)
def _names(values: tuple[str, ...]) -> str:
    """Queue or task names as the text of a text[]: a worker sends the same ones with every
    claim, built once (a list costs psycopg 9 µs a claim to dump)."""
    quoted = ('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values)
    return "{" + ",".join(quoted) + "}"


def _names_or_none(values: Sequence[str] | None) -> str | None:
    return None if values is None else _names(tuple(values))


def claim_jobs(
    *, worker_id: int, queues: Sequence[str] | None, limit: int,
    tasks: Sequence[str] | None = None,
) -> Call[list[ClaimedJob]]:
    """`tasks`: only jobs of these task names (None: any task)."""
    return Call("claim_jobs", {"worker_id": worker_id, "limit": limit,
                               "queues": _names_or_none(queues),
                               "tasks": _names_or_none(tasks)},
                _claimed_jobs, tuples=True)


def bound_transaction(bounds: Mapping[str, str]) -> Call[None]:
    return Call("bound_transaction", {"idle_in_transaction": bounds[
        "idle_in_transaction_session_timeout"], "lock": bounds["lock_timeout"],
        "statement": bounds["statement_timeout"]}, lambda rows: None)


class NextJob(NamedTuple):
    seconds: float | None
    """Until the next queued job is due: None, none queued; 0, one is due now."""
    rate_reopens_in: float | None
    """Jobs due now that a rate limit holds: until its window lets one start; else None."""


def seconds_until_next_job(
    *, queues: Sequence[str] | None, tasks: Sequence[str] | None = None,
) -> Call[NextJob]:
    """When the next job of `queues` is due (seconds: None when nothing is queued, 0 when one
    is due now, math.inf for run_at 'infinity'; only jobs of `tasks` count, None: any task),
    and, for jobs due now, when a rate limit holding them lets the next one start."""
    def decode(rows: list[Row]) -> NextJob:
        if not rows:
            return NextJob(None, None)
        seconds, reopens = rows[0]["seconds"], rows[0]["rate_reopens_in"]
        return NextJob(None if seconds is None else max(0.0, seconds),
                       None if reopens is None else max(0.0, reopens))

    return Call("seconds_until_next_job",
                {"queues": _names_or_none(queues), "tasks": _names_or_none(tasks)}, decode)


def _acknowledgement(query_name: str, **params: Any) -> Call[list[int]]:
    """Acknowledgements return only the ids that landed: plain tuples spare a dict per job."""
    return Call(query_name, params, lambda rows: [row[0] for row in rows], tuples=True)


def mark_succeeded(
    ids: Sequence[int], tokens: Sequence[uuid.UUID], results_json: Sequence[str | None]
) -> Call[list[int]]:
    if all(result == "null" for result in results_json):
        # Most tasks return None: no results array to build, send and unnest.
        return _acknowledgement("mark_succeeded_returning_none", ids=_array(ids),
                                tokens=_tokens(tokens))
    return _acknowledgement("mark_succeeded", ids=_array(ids), tokens=_tokens(tokens),
                            results=list(results_json))


def delete_finished(ids: Sequence[int], tokens: Sequence[uuid.UUID]) -> Call[list[int]]:
    return _acknowledgement("delete_finished", ids=_array(ids), tokens=_tokens(tokens))


def mark_failed(
    ids: Sequence[int], tokens: Sequence[uuid.UUID], error_types: Sequence[str],
    error_messages: Sequence[str], tracebacks: Sequence[str | None],
) -> Call[list[int]]:
    return _acknowledgement(
        "mark_failed", ids=_array(ids), tokens=_tokens(tokens), error_types=list(error_types),
        error_messages=list(error_messages), tracebacks=list(tracebacks))


def mark_cancelled(ids: Sequence[int], tokens: Sequence[uuid.UUID]) -> Call[list[int]]:
    return _acknowledgement("mark_cancelled", ids=_array(ids), tokens=_tokens(tokens))


def retry_later(
    ids: Sequence[int], tokens: Sequence[uuid.UUID], delays: Sequence[float],
    refunds: Sequence[int], error_types: Sequence[str | None],
    error_messages: Sequence[str | None], tracebacks: Sequence[str | None],
) -> Call[list[int]]:
    return _acknowledgement(
        "retry_later", ids=_array(ids), tokens=_tokens(tokens), delays=list(delays),
        refunds=list(refunds), error_types=list(error_types),
        error_messages=list(error_messages), tracebacks=list(tracebacks))


def release_jobs(ids: Sequence[int], tokens: Sequence[uuid.UUID]) -> Call[list[int]]:
    return _acknowledgement("release_jobs", ids=_array(ids), tokens=_tokens(tokens))


def set_progress(
    jobs: Sequence[ClaimedJob], updates: Sequence[ProgressUpdate],
) -> Call[list[int]]:
    """Write reported progress and meta, fenced by each job's claim token; returns the ids
    that landed."""
    return _acknowledgement(
        "set_progress", ids=_array(job.id for job in jobs),
        tokens=_tokens(job.claim_token for job in jobs),
        progress=[u.progress for u in updates], messages=[u.message for u in updates],
        metas=[u.meta_json() for u in updates])


def rescue_stalled_jobs(*, heartbeat_timeout: float) -> Call[list[tuple[int, str]]]:
    return Call("rescue_stalled_jobs", {"heartbeat_timeout": heartbeat_timeout},
                lambda rows: [(row["id"], row["state"]) for row in rows])


def mark_worker_dead(*, hostname: str, pid: int) -> Call[list[int]]:
    return Call("mark_worker_dead", {"hostname": hostname, "pid": pid}, _ids)


def delete_dead_workers(*, heartbeat_timeout: float) -> Call[list[int]]:
    return Call("delete_dead_workers", {"heartbeat_timeout": heartbeat_timeout}, _ids)


def register_worker(
    *, name: str, hostname: str, pid: int, queues: Sequence[str] | None, concurrency: int,
    application_name: str | None = None, tasks: Sequence[str] | None = None,
    pool: str = "thread",
) -> Call[int]:
    return Call("register_worker", {
        "name": name, "hostname": hostname, "pid": pid,
        "queues": list(queues) if queues is not None else None, "concurrency": concurrency,
        "application_name": application_name,
        "tasks": list(tasks) if tasks is not None else None, "pool": pool,
    }, _first_id)


def heartbeat(
    *, worker_id: int, children: Sequence[Mapping[str, Any]] = (),
) -> Call[tuple[bool, list[int]]]:
    """`children`: the worker's child processes now (pgqueue.worker.process_pool)."""
    return Call("heartbeat", {"worker_id": worker_id,
                              "children": json.dumps(list(children)) if children else None},
                lambda rows: (bool(rows[0]["alive"]), list(rows[0]["abort_ids"])))


def unregister_worker(*, worker_id: int) -> Call[None]:
    return Call("unregister_worker", {"worker_id": worker_id}, lambda rows: None)


def get_job(job_id: int) -> Call[Job | None]:
    return Call("get_job", {"id": job_id}, lambda rows: Job.from_row(rows[0]) if rows else None)


def get_job_detail(job_id: int) -> Call[Row | None]:
    """The job's every column as JSON values, plus `worker_name`, `worker_hostname`,
    `worker_pid` (None when no registered worker holds it)."""
    return Call("get_job_detail", {"id": job_id}, lambda rows: rows[0] if rows else None)


def list_jobs(
    *, state: str | None = None, queue: str | None = None, task_name: str | None = None,
    limit: int = 50,
) -> Call[list[Job]]:
    return Call("list_jobs",
                {"state": state, "queue": queue, "task_name": task_name, "limit": limit},
                lambda rows: [Job.from_row(row) for row in rows])


def retry_job(job_id: int) -> Call[bool]:
    return Call("retry_job", {"id": job_id}, bool)


def cancel_job(job_id: int) -> Call[str | None]:
    """Returns the state the job is left in ('cancelled', or 'running' with an abort requested)."""
    return Call("cancel_job", {"id": job_id}, lambda rows: rows[0]["state"] if rows else None)


def queue_stats() -> Call[list[QueueStats]]:
    return Call("queue_stats", {}, lambda rows: [QueueStats(**row) for row in rows])


def schema_exists() -> Call[bool]:
    return Call("schema_exists", {}, lambda rows: bool(rows[0]["present"]))


def applied_migrations() -> Call[list[str]]:
    return Call("applied_migrations", {}, lambda rows: [row["name"] for row in rows])


def lock_migrations() -> Call[bool]:
    return Call("lock_migrations", {}, lambda rows: bool(rows[0]["locked"]))


# -- DBA surface (issue 7): `pgqueue top` and the worker's metrics endpoint ----------------------
# The views' rows go out as dicts keyed by column name: their columns are documented once, in
# migrations_sql/0003_dba_surface.sql and docs/sql.md.


def observe_queue_stats() -> Call[list[Row]]:
    return Call("observe_queue_stats")


def observe_task_stats() -> Call[list[Row]]:
    return Call("observe_task_stats")


def observe_workers() -> Call[list[Row]]:
    return Call("observe_workers")


def observe_worker_children() -> Call[list[Row]]:
    return Call("observe_worker_children")


def observe_running_jobs(*, limit: int) -> Call[list[Row]]:
    return Call("observe_running_jobs", {"limit": limit})


def observe_stuck_jobs() -> Call[list[Row]]:
    return Call("observe_stuck_jobs")


def observe_health() -> Call[Row | None]:
    return Call("observe_health", {}, lambda rows: rows[0] if rows else None)


def metrics_live_jobs() -> Call[list[Row]]:
    return Call("metrics_live_jobs")


def metrics_overview(*, heartbeat_timeout: float) -> Call[Row]:
    return Call("metrics_overview", {"heartbeat_timeout": heartbeat_timeout},
                lambda rows: rows[0])


# ==== periodic ====
# Rows stay dicts here: the typed views live in pgqueue/periodic, above this layer.


def _schedule_ids(rows: list[Row]) -> list[str]:
    return [row["id"] for row in rows]


def lock_schedules_for_reconcile() -> Call[datetime]:
    return Call("lock_schedules_for_reconcile", {}, lambda rows: rows[0]["now"])


def upsert_schedule(
    *, id: str, task_name: str, cron: str | None, every: timedelta | None, timezone: str,
    args_json: str, kwargs_json: str, queue: str, priority: int, max_attempts: int,
    misfire: str, misfire_grace: timedelta, misfire_window: timedelta, overlap: bool,
    next_tick_at: datetime,
) -> Call[datetime | None]:
    """Returns the schedule's next tick as stored (kept, or the one given)."""
    return Call("upsert_schedule", {
        "id": id, "task_name": task_name, "cron": cron, "every": every, "timezone": timezone,
        "args": args_json, "kwargs": kwargs_json, "queue": queue, "priority": priority,
        "max_attempts": max_attempts, "misfire": misfire, "misfire_grace": misfire_grace,
        "misfire_window": misfire_window, "overlap": overlap, "next_tick_at": next_tick_at,
    }, lambda rows: rows[0]["next_tick_at"])


def orphan_undeclared_schedules(declared: Sequence[str]) -> Call[list[str]]:
    return Call("orphan_undeclared_schedules", {"declared": list(declared)}, _schedule_ids)


def save_runtime_schedule(
    *, id: str, task_name: str, cron: str | None, every: timedelta | None,
    anchor_at: datetime | None, timezone: str, args_json: str, kwargs_json: str, queue: str,
    priority: int, max_attempts: int, misfire: str, misfire_grace: timedelta,
    misfire_window: timedelta, overlap: bool, ends_at: datetime | None,
) -> Call[str]:
    return Call("save_runtime_schedule", {
        "id": id, "task_name": task_name, "cron": cron, "every": every, "anchor_at": anchor_at,
        "timezone": timezone, "args": args_json, "kwargs": kwargs_json, "queue": queue,
        "priority": priority, "max_attempts": max_attempts, "misfire": misfire,
        "misfire_grace": misfire_grace, "misfire_window": misfire_window, "overlap": overlap,
        "ends_at": ends_at,
    }, lambda rows: rows[0]["id"])


def delete_schedule(schedule_id: str) -> Call[bool]:
    return Call("delete_schedule", {"id": schedule_id}, bool)


def due_schedule_ids() -> Call[list[str]]:
    return Call("due_schedule_ids", {}, _schedule_ids)


def lock_due_schedule(schedule_id: str) -> Call[Row | None]:
    return Call("lock_due_schedule", {"id": schedule_id}, lambda rows: rows[0] if rows else None)


def fire_schedule_ticks(
    schedule_id: str, *, ticks: Sequence[datetime], next_tick_at: datetime, skipped: int,
    overlap_skipped: int, worker_id: int | None,
) -> Call[list[tuple[datetime, int]]]:
    """Returns (tick, job id) for each tick recorded now (a tick already recorded is left out)."""
    return Call("fire_schedule_ticks", {
        "id": schedule_id, "ticks": list(ticks), "next_tick_at": next_tick_at,
        "skipped": skipped, "overlap_skipped": overlap_skipped, "worker_id": worker_id,
    }, lambda rows: [(row["tick_at"], row["job_id"]) for row in rows])


def seconds_until_next_tick(*, excluded: Sequence[str] = ()) -> Call[float | None]:
    return Call("seconds_until_next_tick", {"excluded": list(excluded)},
                lambda rows: rows[0]["seconds"] if rows else None)


def prune_schedule_ticks(*, retention: float) -> Call[int]:
    return Call("prune_schedule_ticks", {"retention": retention}, len)


def list_schedules() -> Call[list[Row]]:
    return Call("list_schedules", {}, lambda rows: rows)


def pause_schedule(schedule_id: str) -> Call[bool]:
    return Call("pause_schedule", {"id": schedule_id}, lambda rows: bool(rows[0]["found"]))


def resume_schedule(schedule_id: str) -> Call[bool]:
    return Call("resume_schedule", {"id": schedule_id}, lambda rows: bool(rows[0]["found"]))


# ==== retention ====


def prune_finished_jobs(
    *, keep_succeeded: float | None, keep_failed: float | None, keep_cancelled: float | None,
    batch_size: int,
) -> Call[int]:
    return Call("prune_finished_jobs", {
        "keep_succeeded": keep_succeeded, "keep_failed": keep_failed,
        "keep_cancelled": keep_cancelled, "batch_size": batch_size,
    }, lambda rows: int(rows[0]["deleted"]))


def unserved_jobs() -> Call[list[Row]]:
    """(queue, task_name, due) of due jobs no live worker can claim."""
    return Call("unserved_jobs")


def delete_all_jobs() -> Call[None]:
    return Call("delete_all_jobs", {}, lambda rows: None)


def count_prunable_jobs(
    *, keep_succeeded: float | None, keep_failed: float | None, keep_cancelled: float | None,
) -> Call[dict[str, int]]:
    return Call("count_prunable_jobs", {
        "keep_succeeded": keep_succeeded, "keep_failed": keep_failed,
        "keep_cancelled": keep_cancelled,
    }, lambda rows: {state: int(count) for state, count in rows[0].items()})


def set_queue_limit(
    *, queue: str, limit_name: str, limit_value: str | None, set_by: str = "operator",
) -> Call[None]:
    return Call("set_queue_limit", {"queue": queue, "limit_name": limit_name,
                                    "limit_value": limit_value, "set_by": set_by},
                lambda rows: None)


def declare_queue_limit(*, queue: str, limit_name: str, limit_value: str | None) -> Call[bool]:
    """True if written, False if an operator's runtime limits stand for this queue."""
    return Call("declare_queue_limit", {"queue": queue, "limit_name": limit_name,
                                        "limit_value": limit_value}, bool)


def reset_queue_limits(*, queue: str) -> Call[bool]:
    return Call("reset_queue_limits", {"queue": queue}, bool)


def get_queue_limits(*, queue: str) -> Call[Row | None]:
    return Call("get_queue_limits", {"queue": queue}, lambda rows: rows[0] if rows else None)


def pause_queue(*, queue: str) -> Call[bool]:
    return Call("pause_queue", {"queue": queue}, lambda rows: bool(rows[0]["changed"]))


def resume_queue(*, queue: str) -> Call[bool]:
    return Call("resume_queue", {"queue": queue}, lambda rows: bool(rows[0]["changed"]))


def queue_is_paused(*, queue: str) -> Call[bool]:
    return Call("queue_is_paused", {"queue": queue}, lambda rows: bool(rows[0]["paused"]))


def enqueue_workflow(*, workflow_id: uuid.UUID, steps: Sequence[Mapping[str, Any]],
                     args: Sequence[str], kwargs: Sequence[str],
                     edges: Sequence[tuple[int, int]]) -> Call[list[int]]:
    """`steps`: the job columns of each step (JSON-ready: run_at as ISO text), `args` and
    `kwargs` its arguments as JSON; `edges`: (child, parent) step positions, counted from 1.
    Returns the ids in step order."""
    return Call("enqueue_workflow", {
        "workflow_id": workflow_id, "steps": json.dumps(steps), "args": _json_array(args),
        "kwargs": _json_array(kwargs), "edge_children": [child for child, _ in edges],
        "edge_parents": [parent for _, parent in edges],
    }, lambda rows: list(rows[0]["ids"]))


def _json_array(documents: Sequence[str]) -> str:
    """JSON documents, each already checked, as one JSON array."""
    return f"[{','.join(documents)}]"


def workflow_jobs(workflow_id: uuid.UUID) -> Call[list[Row]]:
    return Call("workflow_jobs", {"workflow_id": workflow_id}, lambda rows: rows)


def cancel_workflow(workflow_id: uuid.UUID) -> Call[int]:
    return Call("cancel_workflow", {"workflow_id": workflow_id},
                lambda rows: rows[0]["cancelled"])


def watch_jobs(job_ids: Sequence[int]) -> Call[list[Row]]:
    return Call("watch_jobs", {"job_ids": list(job_ids)}, lambda rows: rows)
