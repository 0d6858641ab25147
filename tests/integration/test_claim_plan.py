"""The claim reads O(batch) rows whatever the table holds and whatever its statistics say.

Rows read are counted by the server itself (pg_stat_xact_all_tables, for the claim's own
transaction), so the check holds for the plans inside pgqueue.claimable_job_ids
too, which EXPLAIN of the claim statement does not show."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg
import pytest
from psycopg.rows import tuple_row

from pgqueue import store
from pgqueue.db import arun_on
from pgqueue.queries import query
from pgqueue.worker import connection as worker_connection
from pgqueue.worker.connection import DedicatedConnection
from tests.helpers import SqlCall

BATCH = 10
ROWS_READ = SqlCall("SELECT coalesce(sum(seq_tup_read + idx_tup_fetch), 0)::bigint "
                    "FROM pg_stat_xact_all_tables WHERE relid = 'pgqueue.jobs'::regclass")
"""Rows of pgqueue.jobs read by the current transaction's scans, counted by the server."""


def _worker(conn: psycopg.Connection) -> int:
    return conn.execute("INSERT INTO pgqueue.workers (name, hostname, pid, concurrency) "
                        "VALUES ('w', 'h', 1, 10) RETURNING id").fetchone()[0]


def _claim_and_roll_back(dsn: str, worker_id: int, queues: list[str] | None,
                         tasks: list[str] | None = None) -> tuple[int, int, float]:
    """(jobs claimed, rows of pgqueue.jobs read by sequential and index scans, ms)."""
    with psycopg.connect(dsn) as conn:
        started = time.perf_counter()
        claimed = conn.execute(query("claim_jobs"), {
            "worker_id": worker_id, "limit": BATCH, "queues": queues, "tasks": tasks}).fetchall()
        elapsed_ms = (time.perf_counter() - started) * 1000
        read = conn.execute(
            "SELECT seq_tup_read + idx_tup_fetch FROM pg_stat_xact_all_tables "
            "WHERE relid = 'pgqueue.jobs'::regclass").fetchone()[0]
        conn.rollback()
    return len(claimed), int(read), elapsed_ms


CLAIMS: dict[str, tuple[list[str] | None, bool, list[str] | None]] = {
    "every queue": (None, False, None),
    "its queue": (["bench"], False, None),
    "two queues": (["bench", "other"], False, None),
    "two queues, the big one paused": (["bench", "other"], True, None),
    "every queue, the big one paused": (None, True, None),
    # A worker passes its task names (migration 0015): every job here is one of them.
    "every queue, its tasks": (None, False, ["s", "t"]),
    "two queues, its tasks": (["bench", "other"], False, ["s", "t"]),
    "every queue, its tasks, the big one paused": (None, True, ["s", "t"]),
}


def _fill(conn: psycopg.Connection, queued: int, *, finished: int = 0) -> None:
    conn.execute("INSERT INTO pgqueue.jobs (task_name, queue, state, finished_at, attempts) "
                 "SELECT 't', 'bench', 'succeeded', now(), 1 FROM generate_series(1, %s)",
                 (finished,))
    conn.execute("INSERT INTO pgqueue.jobs (task_name, queue, priority) "
                 "SELECT 't', 'bench', n %% 3 FROM generate_series(1, %s) n", (queued,))
    conn.execute("INSERT INTO pgqueue.jobs (task_name, queue) "
                 "SELECT 't', 'other' FROM generate_series(1, 20)")


def _assert_every_claim_reads_only_the_batch(conn: psycopg.Connection, dsn: str) -> None:
    worker_id = _worker(conn)
    for label, (queues, big_one_paused, tasks) in CLAIMS.items():
        if big_one_paused:
            conn.execute("SELECT pgqueue.pause_queue('bench')")
        claimed, read, elapsed_ms = _claim_and_roll_back(dsn, worker_id, queues, tasks)
        conn.execute("SELECT pgqueue.resume_queue('bench')")
        assert claimed == BATCH, label
        # Each walk reads about the batch, one walk per queue, plus one primary-key probe per
        # claimed job and, serving every queue with one paused, one probe per queue to list
        # them (a sort of every queued row would read thousands).
        assert read <= 4 * BATCH, (label, read, f"{elapsed_ms:.1f} ms")


@pytest.mark.slow
def test_claims_read_only_the_batch_however_many_finished_jobs_the_table_holds(
    conn: psycopg.Connection, dsn: str
) -> None:
    _fill(conn, 20_000, finished=500_000)
    conn.execute("ANALYZE pgqueue.jobs")
    _assert_every_claim_reads_only_the_batch(conn, dsn)


@pytest.mark.slow
@pytest.mark.parametrize("queued", [10_000, 100_000, 1_000_000])
def test_claims_stay_o_batch_on_statistics_taken_before_a_burst(
    conn: psycopg.Connection, dsn: str, queued: int
) -> None:
    """Statistics as a burst leaves them: taken on an empty table (autovacuum cannot follow a
    queue that fills in a second), then the jobs enqueued, no ANALYZE after."""
    conn.execute("ALTER TABLE pgqueue.jobs SET (autovacuum_enabled = off)")
    conn.execute("ANALYZE pgqueue.jobs")
    _fill(conn, queued)
    _assert_every_claim_reads_only_the_batch(conn, dsn)


@pytest.mark.slow
@pytest.mark.parametrize("planner_settings", ["worker's", "none (shows the failure)"])
def test_claims_and_acks_stay_o_batch_on_plans_cached_while_the_table_was_empty(
    conn: psycopg.Connection, dsn: str, planner_settings: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker prepares its statements at once; their generic plans, cached while the table
    held a handful of rows, must still read O(batch) rows once a burst has filled it."""
    if planner_settings.startswith("none"):
        monkeypatch.setattr(worker_connection, "PLANNER_SETTINGS", {})
    conn.execute("ALTER TABLE pgqueue.jobs SET (autovacuum_enabled = off)")
    conn.execute("ANALYZE pgqueue.jobs")
    worker_id = _worker(conn)

    async def claim_and_acknowledge(claims: DedicatedConnection,
                                    acks: DedicatedConnection) -> tuple[int, int]:
        """(rows read by the claim, rows read by its acknowledgement)."""
        # The counters a backend has not reported yet span transactions: take differences.
        async with claims.transaction() as claiming:
            before = await arun_on(claiming, ROWS_READ)  # type: ignore[arg-type]
            jobs = await arun_on(claiming, store.claim_jobs(
                worker_id=worker_id, queues=None, limit=BATCH, tasks=["t"]))
            claim_read = await arun_on(claiming, ROWS_READ) - before  # type: ignore[arg-type]
        async with acks.transaction() as acknowledging:
            before = await arun_on(acknowledging, ROWS_READ)  # type: ignore[arg-type]
            await arun_on(acknowledging, store.mark_succeeded(
                [job.id for job in jobs], [job.claim_token for job in jobs],
                ["null"] * len(jobs)))
            ack_read = await arun_on(acknowledging, ROWS_READ) - before  # type: ignore[arg-type]
        return claim_read, ack_read

    async def run() -> list[tuple[int, int]]:
        claims, acks = DedicatedConnection(dsn), DedicatedConnection(dsn)
        try:
            for _ in range(8):  # a quiet start: plans prepared and cached on a tiny table
                conn.execute("INSERT INTO pgqueue.jobs (task_name) "
                             "SELECT 't' FROM generate_series(1, 10)")
                await claim_and_acknowledge(claims, acks)
            conn.execute("INSERT INTO pgqueue.jobs (task_name) "
                         "SELECT 't' FROM generate_series(1, 100000)")  # then the burst
            return [await claim_and_acknowledge(claims, acks) for _ in range(3)]
        finally:
            await claims.close()
            await acks.close()

    reads = asyncio.run(run())
    bounded = all(claim <= 4 * BATCH and ack <= 4 * BATCH for claim, ack in reads)
    assert bounded == (planner_settings == "worker's"), reads


@pytest.mark.parametrize("queues", [None, ["bench", "other"]])
def test_a_held_back_workers_next_job_question_stops_at_the_first_row(
    conn: psycopg.Connection, dsn: str, queues: list[str] | None
) -> None:
    """A worker held back by a limit asks when the next job is due after every claim that came
    up short. On its own session (the worker's planner settings) the question must read a few
    pages whatever the backlog: as shipped before, a bitmap scan read the claim index's every
    due entry, an EXISTS became a semi-join grouping every due job, and a sequential scan of
    pgqueue.queue_limits priced at 10^10 (seqscans off) made Postgres JIT-compile the statement
    (340 ms each time)."""
    conn.execute("ALTER TABLE pgqueue.jobs SET (autovacuum_enabled = off)")
    conn.execute("ANALYZE pgqueue.jobs")
    _fill(conn, 20_000)
    conn.execute("SELECT pgqueue.set_queue_limit('bench', 'concurrency', '5')")
    call = store.seconds_until_next_job(queues=queues, tasks=["t"])

    async def explain() -> dict[str, Any]:
        worker_session = DedicatedConnection(dsn)
        try:
            async with worker_session.session() as session:
                for _ in range(6):  # past the custom plans: the generic one is cached
                    await arun_on(session, call)
                cursor = session.cursor(row_factory=tuple_row)
                await cursor.execute(
                    "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + call.sql, call.params)
                row = await cursor.fetchone()
                assert row is not None
                return row[0][0]
        finally:
            await worker_session.close()

    plan = asyncio.run(explain())
    pages = plan["Plan"]["Shared Hit Blocks"] + plan["Plan"]["Shared Read Blocks"]
    assert "JIT" not in plan, "the worker's statements are never compiled"
    assert pages < 60, f"{pages} pages read to find one due job among 20,000"
