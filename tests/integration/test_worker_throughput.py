"""The worker's hot path: one connection each for claiming and acknowledging (reopened after a
failure), batched claims when jobs finish together, the acknowledgement of tasks that return
None, and prefetched jobs."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
import psycopg.sql
import pytest

import pgqueue
from pgqueue import store
from pgqueue.errors import DatabaseUnavailable
from pgqueue.queries import query
from pgqueue.types import ClaimedJob
from pgqueue.worker.connection import DedicatedConnection
from pgqueue.worker.options import WorkerOptions
from pgqueue.worker.runner import Worker
from tests.apps import core_app
from tests.helpers import ThreadedWorker, scalar, wait_until

StartWorker = Callable[..., ThreadedWorker]


class ClaimSizes:
    """An observer recording how many jobs each claim returned."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def jobs_claimed(self, jobs: Sequence[ClaimedJob], seconds: float) -> None:
        self.sizes.append(len(jobs))


def _succeeded(dsn: str) -> int:
    return scalar(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE state = 'succeeded'")


def _running(dsn: str) -> int:
    return scalar(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE state = 'running'")


def _terminate_other_backends(dsn: str) -> int:
    return scalar(dsn, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")


def test_claim_loop_and_completer_each_keep_one_connection(app: pgqueue.App, dsn: str) -> None:
    core_app.async_echo.defer_many([(n,) for n in range(300)])
    worker = Worker(app, WorkerOptions(one_shot=True, concurrency=4))
    claims = ClaimSizes()
    worker.observers.append(claims)
    worker.run()
    assert _succeeded(dsn) == 300
    assert len(claims.sizes) > 50  # many statements on each connection ...
    assert worker.claim_connection.connects == 1  # ... and one connection each
    assert worker.db.connects == 1


def test_claim_loop_and_completer_reconnect_after_their_backends_are_terminated(
    app: pgqueue.App, dsn: str, worker_thread: StartWorker
) -> None:
    handle = worker_thread(concurrency=4)
    core_app.async_echo.defer_many([(n,) for n in range(20)])
    wait_until(lambda: _succeeded(dsn) == 20, message="first jobs")
    worker = handle.worker
    assert (worker.claim_connection.connects, worker.db.connects) == (1, 1)
    assert _terminate_other_backends(dsn) >= 2
    app.close()  # this test's own connections were terminated too
    core_app.async_echo.defer_many([(n,) for n in range(20)])
    wait_until(lambda: _succeeded(dsn) == 40, message="jobs after the backends were killed")
    assert (worker.claim_connection.connects, worker.db.connects) == (2, 2)


def test_a_dedicated_connection_reopens_after_a_failed_statement(dsn: str) -> None:
    async def scenario() -> None:
        connection = DedicatedConnection(dsn)
        try:
            assert await connection.run(store.schema_exists())
            _terminate_other_backends(dsn)
            with pytest.raises(DatabaseUnavailable):
                await connection.run(store.schema_exists())
            assert await connection.run(store.schema_exists())
            assert connection.connects == 2
            with pytest.raises(ZeroDivisionError):
                async with connection.transaction() as conn:
                    await conn.execute("SELECT 1")
                    raise ZeroDivisionError
            # Never reused mid-transaction: the next statement runs on a fresh connection.
            assert await connection.run(store.schema_exists())
            assert connection.connects == 3
        finally:
            await connection.close()

    asyncio.run(scenario())


def test_jobs_finishing_one_turn_apart_are_claimed_in_one_batch(
    app: pgqueue.App, dsn: str
) -> None:
    concurrency = 20
    core_app.yields_then_returns.defer_many(
        [(turns,) for _ in range(2) for turns in range(1, concurrency + 1)])
    worker = Worker(app, WorkerOptions(one_shot=True, concurrency=concurrency))
    claims = ClaimSizes()
    worker.observers.append(claims)
    worker.run()
    assert _succeeded(dsn) == 2 * concurrency
    # The first claim fills every slot. As its jobs end one loop turn apart, the next claim
    # waits for at least half the slots instead of claiming for the first one or two.
    assert claims.sizes[0] == concurrency
    assert claims.sizes[1] >= concurrency // 2, claims.sizes


def test_results_of_none_are_stored_as_json_null_next_to_real_results(
    app: pgqueue.App, dsn: str
) -> None:
    nothing = core_app.async_echo.defer_many([(None,)] * 5)
    something = core_app.async_echo.defer_many([({"n": n},) for n in range(5)])
    app.run_worker(one_shot=True, concurrency=10)
    app.run_worker(one_shot=True)  # a batch of None results alone
    for job_id in nothing:
        assert app.get_job(job_id).result is None
    assert [app.get_job(job_id).result for job_id in something] == [{"n": n} for n in range(5)]
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE result = 'null'::jsonb") == 5


def test_a_none_only_batch_uses_the_query_without_results() -> None:
    token = uuid.UUID(int=0)
    assert store.mark_succeeded([1, 2], [token, token], ["null", "null"]).query_name == (
        "mark_succeeded_returning_none")
    assert store.mark_succeeded([1, 2], [token, token], ["null", "1"]).query_name == (
        "mark_succeeded")


def test_claimed_jobs_carry_every_field_of_their_row(app: pgqueue.App, dsn: str) -> None:
    job_id = core_app.add.using(queue="q", priority=3).defer(1, b=2)
    worker_id = app.db.run(store.register_worker(
        name="t", hostname="h", pid=1, queues=None, concurrency=1))
    [claimed] = app.db.run(store.claim_jobs(worker_id=worker_id, queues=("q",), limit=5))
    row = app.get_job(job_id)
    assert claimed == ClaimedJob(
        id=job_id, task_name=core_app.add.name, queue="q", args=[1], kwargs={"b": 2}, priority=3,
        attempt=1, max_attempts=row.max_attempts, claim_token=row.claim_token,
        enqueued_at=row.enqueued_at, run_at=row.run_at)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT attempts FROM pgqueue.jobs").fetchone() == (1,)


def test_a_prefetched_job_cancelled_before_it_starts_never_runs(
    app: pgqueue.App, dsn: str, worker_thread: StartWorker
) -> None:
    running = core_app.sleep_for.defer(1.0)
    waiting = core_app.noop.defer(1)
    worker_thread(concurrency=1, prefetch=1, heartbeat_interval=0.1)
    wait_until(lambda: _running(dsn) == 2, message="both claimed, one of them prefetched")
    assert app.cancel_job(waiting) == "running"  # held by the worker: an abort is requested
    wait_until(lambda: app.get_job(waiting).state == "cancelled", timeout=5,
               message="prefetched job cancelled")
    wait_until(lambda: app.get_job(running).state == "succeeded", timeout=10,
               message="running job finishes")
    assert scalar(dsn, "SELECT count(*) FROM ledger WHERE job_id = %s", (waiting,)) == 0


def _positional(sql: str) -> tuple[str, list[str]]:
    """The query with $1, $2, ... for its named parameters, and their names in that order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match[1] not in names:
            names.append(match[1])
        return f"${names.index(match[1]) + 1}"

    return re.sub(r"%\((\w+)\)s", number, sql), names


@pytest.mark.parametrize("query_name", [
    "mark_succeeded", "mark_succeeded_returning_none", "delete_finished", "mark_failed",
    "mark_cancelled", "retry_later", "release_jobs"])
def test_acknowledgements_probe_the_primary_key_whatever_the_statistics_say(
    app: pgqueue.App, dsn: str, query_name: str
) -> None:
    # The worker's statements are prepared, so Postgres may settle on a generic plan. With
    # statistics taken while no job ran, that plan once expected one running row and rescanned
    # the whole batch for each of them (quadratic), driven by the running-jobs index.
    core_app.noop.defer_many([(n,) for n in range(500)])
    sql, names = _positional(query(query_name))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE pgqueue.jobs")
        rows = conn.execute("UPDATE pgqueue.jobs SET state = 'running', claim_token = "
                            "gen_random_uuid() RETURNING id::text, claim_token::text").fetchall()
        columns = {"ids": [row[0] for row in rows], "tokens": [row[1] for row in rows],
                   "results": ["1"] * len(rows), "delays": ["0"] * len(rows),
                   "refunds": ["0"] * len(rows)}
        arguments = [psycopg.sql.Literal("{" + ",".join(columns.get(name, ["NULL"] * len(rows)))
                                         + "}") for name in names]
        conn.execute("SET plan_cache_mode = force_generic_plan")
        conn.execute(f"PREPARE ack AS {sql}")
        plan = "\n".join(row[0] for row in conn.execute(psycopg.sql.SQL(
            "EXPLAIN EXECUTE ack({})").format(psycopg.sql.SQL(", ").join(arguments))))
    assert "jobs_running_idx" not in plan, plan


def test_claims_commit_without_waiting_for_the_flush_and_acknowledgements_wait(
    dsn: str,
) -> None:
    """Each statement sets synchronous_commit for its own transaction, whatever the session or
    server default says (the throwaway test server runs with `off`), and nothing outlives it:
    behind a transaction-mode pooler a session setting would reach other clients."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO pgqueue.jobs (task_name) SELECT 't' FROM generate_series(1, 3)")
        worker_id = conn.execute("INSERT INTO pgqueue.workers (name, hostname, pid, concurrency) "
                                 "VALUES ('w', 'h', 1, 1) RETURNING id").fetchone()[0]

        def setting_inside(call: Any, session_default: str) -> tuple[Any, str, str]:
            conn.execute(f"SET synchronous_commit = {session_default}")
            with conn.transaction():
                with conn.cursor() as cursor:
                    cursor.execute(call.sql, call.params)
                    rows = cursor.fetchall()
                inside = conn.execute("SELECT current_setting('synchronous_commit')").fetchone()
            after = conn.execute("SELECT current_setting('synchronous_commit')").fetchone()
            return rows, inside[0], after[0]

        claimed, inside, after = setting_inside(
            store.claim_jobs(worker_id=worker_id, queues=None, limit=3), "on")
        assert (len(claimed), inside, after) == (3, "off", "on")
        ids = [row[0] for row in claimed]
        tokens = [row[8] for row in claimed]
        for acknowledgement in (store.mark_succeeded(ids[:1], tokens[:1], ["1"]),
                                store.mark_succeeded(ids[1:2], tokens[1:2], ["null"]),
                                store.release_jobs(ids[2:], tokens[2:])):
            acknowledged, inside, after = setting_inside(acknowledgement, "off")
            assert (len(acknowledged), inside, after) == (1, "on", "off")
