from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

import pgqueue
from pgqueue.errors import (
    InvalidArguments,
    InvalidName,
    InvalidPriority,
    InvalidSchedule,
    PayloadTooLarge,
    UnknownTask,
)
from tests.apps import core_app
from tests.helpers import scalar


def _job_count(dsn: str) -> int:
    return scalar(dsn, "SELECT count(*) FROM pgqueue.jobs")


def _notifications(conn: psycopg.Connection, timeout: float = 0.5) -> list[str]:
    return [n.payload for n in conn.notifies(timeout=timeout)]


def _payloads(conn: psycopg.Connection) -> list[object]:
    return [json.loads(payload) for payload in _notifications(conn)]


@pytest.fixture
def listener(dsn: str):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("LISTEN pgqueue_jobs")
        yield conn


def test_defer_inserts_a_queued_job_and_returns_its_id(app: pgqueue.App) -> None:
    job_id = core_app.add.defer(1, b=2)
    job = app.get_job(job_id)
    assert (job.task_name, job.queue, job.args, job.kwargs) == (
        "tests.apps.core_app.add", "default", [1], {"b": 2})
    assert job.state == pgqueue.JobState.QUEUED
    assert (job.attempts, job.max_attempts, job.priority) == (0, 1, 0)
    assert job.run_at <= datetime.now(UTC) and job.enqueued_at.tzinfo is not None
    assert job.started_at is None and job.result is None and job.error is None


def test_defer_async(app: pgqueue.App) -> None:
    async def go() -> int:
        job_id = await core_app.async_echo.defer_async({"k": [1, 2]})
        await app.aclose()
        return job_id

    assert app.get_job(asyncio.run(go())).args == [{"k": [1, 2]}]


def test_using_returns_a_configured_copy(app: pgqueue.App) -> None:
    run_at = datetime.now(UTC) + timedelta(hours=1)
    configured = core_app.add.using(queue="reports", priority=7, run_at=run_at)
    assert configured is not core_app.add and core_app.add.queue == "default"
    job = app.get_job(configured.defer(1, 2))
    assert (job.queue, job.priority, job.run_at) == ("reports", 7, run_at)
    delayed = app.get_job(core_app.add.using(delay=60).defer(1, 2))
    assert timedelta(seconds=55) < delayed.run_at - delayed.enqueued_at < timedelta(seconds=65)


def test_defer_many_inserts_in_one_statement_with_one_notification(
    app: pgqueue.App, listener: psycopg.Connection
) -> None:
    ids = core_app.add.defer_many([(n, n) for n in range(5000)] + [{"a": 1, "b": 2}])
    assert len(ids) == len(set(ids)) == 5001
    assert _payloads(listener) == [{"queues": ["default"]}]
    assert app.get_job(ids[-1]).kwargs == {"a": 1, "b": 2}
    assert app.get_job(ids[3]).args == [3, 3]


def test_bulk_insert_of_100k_rows_commits_and_sends_one_notification(
    dsn: str, listener: psycopg.Connection
) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("""INSERT INTO pgqueue.jobs (task_name, args)
                        SELECT 'bulk', jsonb_build_array(n) FROM generate_series(1, 100000) n""")
    assert _job_count(dsn) == 100_000
    assert len(_notifications(listener)) == 1


def test_raw_insert_and_sql_enqueue_wake_listeners(dsn: str, listener: psycopg.Connection) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO pgqueue.jobs (task_name, queue) VALUES ('raw', 'q1')")
        assert _payloads(listener) == [{"queues": ["q1"]}]
        job_id = conn.execute(
            "SELECT pgqueue.enqueue('sql_task', '{\"x\": 1}', 'q2', 5)").fetchone()[0]
        assert _payloads(listener) == [{"queues": ["q2"]}]
        row = conn.execute("SELECT args, kwargs, queue, priority FROM pgqueue.jobs WHERE id = %s",
                           (job_id,)).fetchone()
        assert row == ([], {"x": 1}, "q2", 5)
        positional = conn.execute("SELECT pgqueue.enqueue('t', '[1, 2]')").fetchone()[0]
        assert conn.execute("SELECT args FROM pgqueue.jobs WHERE id = %s",
                            (positional,)).fetchone()[0] == [1, 2]


@pytest.mark.parametrize("queue", ["q'uote", 'dq"uote', "x;DROP TABLE pgqueue.jobs;--",
                                   "$$dollar$$", "队列 ✓", "with space", "a" * 200])
def test_hostile_queue_names_are_stored_verbatim_and_notify_survives(
    app: pgqueue.App, dsn: str, listener: psycopg.Connection, queue: str
) -> None:
    job_id = core_app.add.using(queue=queue).defer(1, 2)
    assert app.get_job(job_id).queue == queue
    assert json.loads(_notifications(listener)[0]) == {"queues": [queue]}
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs") == 1


def test_many_queues_in_one_statement_fall_back_to_an_empty_payload(
    dsn: str, listener: psycopg.Connection
) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("""INSERT INTO pgqueue.jobs (task_name, queue)
                        SELECT 't', repeat('q', 150) || n FROM generate_series(1, 100) n""")
    assert _notifications(listener) == [""]


def test_enqueue_joins_the_callers_transaction(app: pgqueue.App, dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        core_app.add.defer(1, 2, connection=conn)
        conn.rollback()
        assert _job_count(dsn) == 0
        job_id = core_app.add.defer(1, 2, connection=conn)
        assert _job_count(dsn) == 0  # not visible before the caller commits
        conn.commit()
    assert app.get_job(job_id).state == "queued"
    with psycopg.connect(dsn) as conn, conn.cursor() as cursor:
        core_app.add.defer_many([(1, 2), (3, 4)], connection=cursor)
        conn.rollback()
    assert _job_count(dsn) == 1


@pytest.mark.parametrize(("call", "error"), [
    (lambda: core_app.add.defer({1, 2}, 1), InvalidArguments),
    (lambda: core_app.add.defer(Decimal("1.1"), 1), InvalidArguments),
    (lambda: core_app.add.defer(lambda: 1, 1), InvalidArguments),
    (lambda: core_app.add.defer(object(), 1), InvalidArguments),
    (lambda: core_app.add.defer((1, 2), 1), InvalidArguments),
    (lambda: core_app.add.defer(1), InvalidArguments),  # missing argument
    (lambda: core_app.add.defer(1, 2, c=3), InvalidArguments),  # unexpected argument
    (lambda: core_app.add.defer_many([(1, 2), (1,)]), InvalidArguments),
    (lambda: core_app.add.defer_many(["12"]), InvalidArguments),
    (lambda: core_app.add.defer("x" * 2_000_000, 1), PayloadTooLarge),
    (lambda: core_app.add.using(priority=5000).defer(1, 2), InvalidPriority),
    (lambda: core_app.add.using(run_at=datetime.now()).defer(1, 2),
     InvalidSchedule),
    (lambda: core_app.add.using(queue="").defer(1, 2), InvalidName),
    (lambda: core_app.add.using(queue="a\nb").defer(1, 2), InvalidName),
    (lambda: core_app.app.defer("no.such.task"), UnknownTask),
])
def test_bad_input_raises_a_typed_error_and_writes_nothing(
    app: pgqueue.App, dsn: str, call, error: type[Exception]
) -> None:
    with pytest.raises(error):
        call()
    assert _job_count(dsn) == 0


def test_all_enqueue_errors_share_one_base(app: pgqueue.App) -> None:
    with pytest.raises(pgqueue.EnqueueError):
        core_app.add.defer({1}, 2)


def test_payload_cap_is_configurable(app: pgqueue.App, dsn: str) -> None:
    small = pgqueue.App(dsn, max_payload_bytes=64)
    task = small.task(name="small.echo")(lambda text: text)
    task.defer("x" * 40)
    with pytest.raises(PayloadTooLarge):
        task.defer("x" * 100)
    small.close()
    assert _job_count(dsn) == 1


def test_defer_by_name_uses_the_registry(app: pgqueue.App) -> None:
    job = app.get_job(app.defer("tests.apps.core_app.add", [1], {"b": 2}, queue="by-name"))
    assert (job.args, job.kwargs, job.queue) == ([1], {"b": 2}, "by-name")


def test_unknown_job_id(app: pgqueue.App) -> None:
    with pytest.raises(pgqueue.JobNotFound):
        app.get_job(123456)


def test_dsn_comes_from_argument_then_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGQUEUE_DSN", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://from-database-url/x")
    assert pgqueue.App().dsn == "postgresql://from-database-url/x"
    monkeypatch.setenv("PGQUEUE_DSN", "postgresql://from-pgqueue-dsn/x")
    assert pgqueue.App().dsn == "postgresql://from-pgqueue-dsn/x"
    assert pgqueue.App("postgresql://explicit/x").dsn == "postgresql://explicit/x"
    monkeypatch.delenv("PGQUEUE_DSN")
    monkeypatch.delenv("DATABASE_URL")
    with pytest.raises(pgqueue.ConfigurationError):
        _ = pgqueue.App().dsn


def test_bulk_copy_path_keeps_every_value_verbatim(app: pgqueue.App, dsn: str) -> None:
    awkward = {"text": 'tab\there "quoted" back\\slash \\N ünï ✓ \n newline', "n": [1.5, None]}
    task = core_app.async_echo.using(queue="back\\slash queue", priority=3, delay=60)
    ids = task.defer_many([(awkward,)] * 1200 + [{"value": n} for n in range(300)])
    assert len(ids) == 1500 and ids == sorted(ids)
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT DISTINCT args, queue, priority, max_attempts FROM pgqueue.jobs "
                            "WHERE args <> '[]'").fetchall()
        kwargs = conn.execute("SELECT kwargs FROM pgqueue.jobs WHERE id = %s",
                              (ids[-1],)).fetchone()[0]
        delay = conn.execute("SELECT min(run_at - enqueued_at) FROM pgqueue.jobs").fetchone()[0]
    assert rows == [([awkward], "back\\slash queue", 3, 3)]
    assert kwargs == {"value": 299}
    assert timedelta(seconds=55) < delay < timedelta(seconds=65)
