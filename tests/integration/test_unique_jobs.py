"""Unique jobs: at most one queued or running job holds a unique key, enforced by a unique
index (concurrent producers cannot both insert), from Python, the CLI and SQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue.errors import InvalidName
from tests.apps import core_app
from tests.helpers import run_cli, scalar

APP = "tests.apps.core_app:app"


def _held(dsn: str, key: str) -> list[tuple[int, str]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT id, state::text FROM pgqueue.jobs WHERE unique_key = %s "
                            "ORDER BY id", (key,)).fetchall()


def test_a_second_defer_returns_the_job_holding_the_key(app: pgqueue.App, dsn: str) -> None:
    send = core_app.add.using(unique_key="welcome:42")
    first = send.defer(1, b=2)
    assert send.defer(3, b=4) == first
    assert _held(dsn, "welcome:42") == [(first, "queued")]
    with pytest.raises(pgqueue.DuplicateJob) as duplicate:
        send.using(on_conflict="raise").defer(5, b=6)
    assert duplicate.value.job_id == first
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs") == 1


def test_the_key_is_held_while_running_and_free_once_finished(
    app: pgqueue.App, dsn: str
) -> None:
    send = core_app.add.using(unique_key="sync:7")
    first = send.defer(1, b=1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE pgqueue.jobs SET state = 'running' WHERE id = %s", (first,))
        assert send.defer(1, b=1) == first
        conn.execute("UPDATE pgqueue.jobs SET state = 'succeeded', finished_at = now() "
                     "WHERE id = %s", (first,))
    second = send.defer(1, b=1)
    assert second != first
    assert _held(dsn, "sync:7") == [(first, "succeeded"), (second, "queued")]


def test_async_defer_is_unique_too(app: pgqueue.App, dsn: str) -> None:
    import asyncio

    send = core_app.async_echo.using(unique_key="k")

    async def twice() -> tuple[int, int]:
        return await send.defer_async(1), await send.defer_async(2)

    first, second = asyncio.run(twice())
    assert first == second


def test_defer_in_the_callers_transaction_waits_for_a_concurrent_one(
    app: pgqueue.App, dsn: str
) -> None:
    """A key inserted by a transaction still open is held: the second producer waits for it
    to commit (then gets its job) instead of inserting a twin."""
    send = core_app.add.using(unique_key="order:1")
    with psycopg.connect(dsn) as first_conn:
        first = send.defer(1, b=1, connection=first_conn)
        results: list[int] = []
        second = threading.Thread(target=lambda: results.append(send.defer(2, b=2)))
        second.start()
        second.join(0.5)
        assert second.is_alive(), "the second producer must wait on the open insert"
        first_conn.commit()
        second.join(10)
    assert results == [first]
    with psycopg.connect(dsn) as rolled_back:
        send.using(unique_key="order:2").defer(1, b=1, connection=rolled_back)
        rolled_back.rollback()
    assert _held(dsn, "order:2") == []


def test_many_producers_racing_on_a_few_keys_make_one_job_each(
    app: pgqueue.App, dsn: str
) -> None:
    keys = [f"key:{n}" for n in range(10)]
    apps = [pgqueue.App(dsn) for _ in range(8)]
    tasks = [producer.task(name=core_app.add.name, retry=False)(core_app.add.func)
             for producer in apps]

    def produce(task: Any) -> list[int]:
        return [task.using(unique_key=key).defer(1, b=1) for _ in range(5) for key in keys]

    try:
        with ThreadPoolExecutor(len(tasks)) as pool:
            returned = [job_id for ids in pool.map(produce, tasks) for job_id in ids]
    finally:
        for producer in apps:
            producer.close()
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT unique_key, id FROM pgqueue.jobs").fetchall()
    assert sorted(key for key, _ in rows) == sorted(keys)
    assert set(returned) == {job_id for _, job_id in rows}


def test_defer_many_with_a_key_per_job(app: pgqueue.App, dsn: str) -> None:
    held = core_app.add.using(unique_key="b").defer(0, b=0)
    ids = core_app.add.defer_many([(1, 1), (2, 2), (3, 3), (4, 4)],
                                  unique_keys=["a", "b", "c", "a"])
    assert ids[1] == held and ids[0] == ids[3]
    assert len(set(ids)) == 3
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs") == 3
    with pytest.raises(pgqueue.InvalidArguments):
        core_app.add.defer_many([(1, 1)], unique_keys=["x", "y"])


@pytest.mark.parametrize("key", ["", "x" * 501, "tab\there", 42])
def test_a_bad_key_is_refused_at_the_door(app: pgqueue.App, key: Any) -> None:
    with pytest.raises(InvalidName):
        core_app.add.using(unique_key=key)


def test_sql_enqueue_and_cli_defer_share_the_key(app: pgqueue.App, dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        by_sql = conn.execute("SELECT pgqueue.enqueue(%s, '[1, 2]', unique_key => 'nightly')",
                              (core_app.add.name,)).fetchone()[0]
        again = conn.execute("SELECT pgqueue.enqueue(%s, '[3, 4]', unique_key => 'nightly')",
                             (core_app.add.name,)).fetchone()[0]
    assert again == by_sql
    assert core_app.add.using(unique_key="nightly").defer(5, b=6) == by_sql
    returned = run_cli("--app", APP, "defer", core_app.add.name, "[1, 2]",
                       "--unique-key", "nightly", dsn=dsn)
    assert returned.returncode == 0, returned.stderr
    assert f"job {by_sql} already holds unique key 'nightly'" in returned.stdout
    raised = run_cli("--app", APP, "defer", core_app.add.name, "[1, 2]",
                     "--unique-key", "nightly", "--on-conflict", "raise", dsn=dsn)
    assert raised.returncode == 1 and raised.stderr.count("\n") == 1, raised.stderr
    fresh = run_cli("--app", APP, "defer", core_app.add.name, "[1, 2]",
                    "--unique-key", "other", dsn=dsn)
    assert fresh.returncode == 0 and "deferred job" in fresh.stdout
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs") == 2


def test_retrying_a_finished_job_whose_key_another_holds_says_so(
    app: pgqueue.App, dsn: str
) -> None:
    send = core_app.add.using(unique_key="report")
    old = send.defer(1, b=1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE pgqueue.jobs SET state = 'failed', finished_at = now() "
                     "WHERE id = %s", (old,))
    send.defer(2, b=2)
    with pytest.raises(pgqueue.DuplicateJob, match="holds this job's unique key"):
        app.retry_job(old)
    result = run_cli("retry", str(old), dsn=dsn)
    assert result.returncode == 8 and "unique key" in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1
