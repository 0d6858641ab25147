"""The wake-up trigger's payload: the queues that got due jobs, one NOTIFY per statement."""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg
import pytest


@pytest.fixture
def listener(dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("LISTEN pgqueue_jobs")
        yield conn


def _payloads(conn: psycopg.Connection) -> list[object]:
    return [json.loads(n.payload) for n in conn.notifies(timeout=0.5)]


def _insert(dsn: str, sql: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql)


def test_one_queue_many_rows_names_that_queue_once(dsn: str, listener: psycopg.Connection) -> None:
    _insert(dsn, "INSERT INTO pgqueue.jobs (task_name, queue) "
                 "SELECT 't', 'emails' FROM generate_series(1, 1000)")
    assert _payloads(listener) == [{"queues": ["emails"]}]


def test_several_queues_in_one_statement_are_all_named(
    dsn: str, listener: psycopg.Connection,
) -> None:
    _insert(dsn, "INSERT INTO pgqueue.jobs (task_name, queue) "
                 "SELECT 't', q FROM unnest(ARRAY['b', 'a', 'b', 'c']) AS q")
    assert _payloads(listener) == [{"queues": ["a", "b", "c"]}]


def test_rows_that_are_not_queued_do_not_wake_anyone(
    dsn: str, listener: psycopg.Connection,
) -> None:
    _insert(dsn, "INSERT INTO pgqueue.jobs (task_name, queue, state, finished_at) "
                 "VALUES ('t', 'emails', 'succeeded', now())")
    assert _payloads(listener) == []


def test_only_the_queued_rows_queues_are_named(dsn: str, listener: psycopg.Connection) -> None:
    _insert(dsn, "INSERT INTO pgqueue.jobs (task_name, queue, state, finished_at) "
                 "VALUES ('t', 'done', 'succeeded', now()), ('t', 'todo', 'queued', NULL)")
    assert _payloads(listener) == [{"queues": ["todo"]}]
