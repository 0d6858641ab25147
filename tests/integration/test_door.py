"""The door in the database (migrations_sql/0006_door_checks.sql): a value a producer writes by
INSERT, COPY or pgqueue.enqueue() is refused, or is one a worker reads back; the limits are
pgqueue/validation.py's, value for value; and a database already holding out-of-range rows
migrates, its rows brought into range without changing what they do."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pgqueue.app import App
from pgqueue.errors import PgQueueError
from pgqueue.migrate import apply_migrations, migration_files
from pgqueue.validation import (
    MAX_ATTEMPTS,
    MAX_INT_DIGITS,
    MAX_NESTING,
    MAX_RUN_AT,
    MAX_TIMEOUT_SECONDS,
    MIN_RUN_AT,
    check_max_attempts,
    check_schedule,
    check_timeout,
    to_json,
)

Refused = (psycopg.errors.CheckViolation, psycopg.errors.InvalidParameterValue)
MICROSECOND = timedelta(microseconds=1)


def _lists(depth: int) -> str:
    return "[" * depth + "]" * depth


def _accepts(conn: psycopg.Connection[Any], statement: str, *params: Any) -> bool:
    """Whether the statement succeeds; rolled back either way."""
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(statement, params or None)
    except Refused:
        return False
    return True


def _insert(conn: psycopg.Connection[Any], column: str, value: str) -> None:
    conn.execute(sql.SQL("INSERT INTO pgqueue.jobs (task_name, {}) VALUES ('t', {})").format(
        sql.Identifier(column), sql.Literal(value)))


def _copy(conn: psycopg.Connection[Any], column: str, value: str) -> None:
    with conn.cursor().copy(sql.SQL("COPY pgqueue.jobs (task_name, {}) FROM STDIN").format(
            sql.Identifier(column))) as copy:
        copy.write_row(("t", value))


OUT_OF_RANGE = [
    ("run_at", "infinity"), ("run_at", "-infinity"), ("run_at", "4000-01-01 BC"),
    ("run_at", "0001-01-01 23:59:59.999999+00"), ("run_at", "9999-12-30 00:00:00.000001+00"),
    ("run_at", "20000-01-01"),
    ("timeout_seconds", "NaN"), ("timeout_seconds", "Infinity"), ("timeout_seconds", "-Infinity"),
    ("timeout_seconds", "0"), ("timeout_seconds", "31536000.5"),
    ("max_attempts", "0"), ("max_attempts", "1000001"), ("max_attempts", "2147483647"),
    ("args", '"12"'), ("args", "{}"), ("kwargs", "[]"), ("priority", "1001"), ("queue", ""),
]
IN_RANGE = [
    ("run_at", "0001-01-02 00:00:00+00"), ("run_at", "9999-12-30 00:00:00+00"),
    ("timeout_seconds", "1e-9"), ("timeout_seconds", "31536000"),
    ("max_attempts", "1"), ("max_attempts", "1000000"),
]


@pytest.mark.parametrize("write", [_insert, _copy], ids=["INSERT", "COPY"])
def test_the_table_refuses_out_of_range_values_by_insert_and_copy(
        conn: psycopg.Connection[Any], write: Callable[..., None]) -> None:
    for column, value in OUT_OF_RANGE:
        with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
            write(conn, column, value)
    for column, value in IN_RANGE:
        write(conn, column, value)
    assert conn.execute("SELECT count(*) FROM pgqueue.jobs").fetchone() == (len(IN_RANGE),)


@pytest.mark.parametrize(("call", "message"), [
    ("pgqueue.enqueue('t', '\"12\"')", "not a JSON string"),
    ("pgqueue.enqueue('t', '5')", "not a JSON number"),
    ("pgqueue.enqueue('t', 'null')", "not a JSON null"),
    (f"pgqueue.enqueue('t', '[{_lists(MAX_NESTING)}]')", "more than 100 arrays/objects deep"),
    (f"pgqueue.enqueue('t', '{{\"a\": {_lists(MAX_NESTING)}}}')", "more than 100"),
    (f"pgqueue.enqueue('t', '[1{'0' * MAX_INT_DIGITS}]')", "more than 4300 digits"),
    (f"pgqueue.enqueue('t', '{{\"a\": [-1e{MAX_INT_DIGITS}]}}')", "more than 4300 digits"),
    ("pgqueue.enqueue(E't\\x1b[2J', '[]')", "control characters"),
    ("pgqueue.enqueue('t', '[]', U&'q\\009B')", "control characters"),
    ("pgqueue.enqueue('t', '[]', run_at => 'infinity')", "jobs_run_at_check"),
    ("pgqueue.enqueue('t', '[]', max_attempts => 0)", "jobs_max_attempts_check"),
])
def test_enqueue_refuses_what_no_worker_could_run(conn: psycopg.Connection[Any], call: str,
                                                 message: str) -> None:
    with pytest.raises(Refused, match=message.replace("[", r"\[")):
        conn.execute(f"SELECT {call}")


def test_enqueue_takes_everything_inside_the_limits(conn: psycopg.Connection[Any]) -> None:
    calls = [
        f"pgqueue.enqueue('t', '[{_lists(MAX_NESTING - 1)}]')",
        f"pgqueue.enqueue('t', '[{'9' * MAX_INT_DIGITS}, -1.5e-9999, 1e{MAX_INT_DIGITS - 1}]')",
        "pgqueue.enqueue('tâche ✓', '{\"a\": 1}', 'file d''attente')",
        "pgqueue.enqueue('t', NULL)",
    ]
    ids = [conn.execute(f"SELECT {call}").fetchone()[0] for call in calls]  # type: ignore[index]
    rows = conn.execute("SELECT jsonb_typeof(args), jsonb_typeof(kwargs) FROM pgqueue.jobs "
                        "WHERE id = ANY(%s) ORDER BY id", (ids,)).fetchall()
    assert rows == [("array", "object")] * len(calls)


def test_python_and_sql_agree_at_every_limit(conn: psycopg.Connection[Any]) -> None:
    def python_accepts(check: Callable[[], object]) -> bool:
        try:
            check()
        except PgQueueError:
            return False
        return True

    enqueue = "SELECT pgqueue.enqueue('t', %s::jsonb)"
    insert = "INSERT INTO pgqueue.jobs (task_name, {}) VALUES ('t', %s)"
    cases: list[tuple[Callable[[], object], str, Any]] = []
    for depth in (MAX_NESTING, MAX_NESTING + 1):
        nested: list[Any] = []
        for _ in range(depth - 1):
            nested = [nested]
        cases.append((lambda value=nested: to_json(value, "args"), enqueue, _lists(depth)))
    for digits in (MAX_INT_DIGITS, MAX_INT_DIGITS + 1):  # 999...9, built without str -> int
        cases.append((lambda digits=digits: to_json([10**digits - 1], "args"), enqueue,
                      f"[{'9' * digits}]"))
    for run_at in (MIN_RUN_AT, MAX_RUN_AT, MIN_RUN_AT - MICROSECOND, MAX_RUN_AT + MICROSECOND):
        cases.append((lambda run_at=run_at: check_schedule(run_at, None),
                      insert.format("run_at"), run_at))
    for timeout in (MAX_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS + 0.001, 0.0, float("nan"),
                    float("inf")):
        cases.append((lambda timeout=timeout: check_timeout(timeout),
                      insert.format("timeout_seconds"), timeout))
    for attempts in (1, MAX_ATTEMPTS, 0, MAX_ATTEMPTS + 1):
        cases.append((lambda attempts=attempts: check_max_attempts(attempts),
                      insert.format("max_attempts"), attempts))
    for check, statement, value in cases:
        assert python_accepts(check) == _accepts(conn, statement, value), (statement, value)


def test_a_database_holding_out_of_range_rows_migrates(empty_dsn: str) -> None:
    """Every such value has an in-range one that does the same: before year 1 is due now, after
    9999 is never, a recorded timeout past a year is a year (NaN: none recorded), more than a
    million attempts is a million. No job is failed, none changes state."""
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        for migration in migration_files():
            if migration.name < "0006":
                conn.execute(migration.sql.encode())
        rows = {
            "due long ago": ("queued", "run_at", "-infinity"),
            "before year 1": ("queued", "run_at", "4000-01-01 BC"),
            "never": ("queued", "run_at", "infinity"),
            "after 9999": ("queued", "run_at", "20000-01-01"),
            "claimed, then undecodable": ("running", "run_at", "-infinity"),
            "history": ("failed", "run_at", "infinity"),
            "timeout NaN": ("queued", "timeout_seconds", "NaN"),
            "timeout Infinity": ("running", "timeout_seconds", "Infinity"),
            "timeout of a millennium": ("queued", "timeout_seconds", "31536000000"),
            "two million attempts": ("queued", "max_attempts", "2000000"),
            "in range": ("queued", "timeout_seconds", "30"),
        }
        ids = {}
        for label, (state, column, value) in rows.items():
            ids[label] = conn.execute(
                sql.SQL("INSERT INTO pgqueue.jobs (task_name, state, {}) VALUES ({}, {}, {}) "
                        "RETURNING id").format(sql.Identifier(column), sql.Literal(label),
                                               sql.Literal(state), sql.Literal(value))
            ).fetchone()[0]  # type: ignore[index]
        conn.execute("INSERT INTO pgqueue.schedules (id, task_name, every, max_attempts) "
                     "VALUES ('hourly', 't', '1 hour', 2000000)")

    assert apply_migrations(empty_dsn)[0] == "0006_door_checks"

    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        found = {label: conn.execute(
            "SELECT state::text, run_at, timeout_seconds, max_attempts, error_type "
            "FROM pgqueue.jobs WHERE id = %s", (job_id,)).fetchone()
            for label, job_id in ids.items()}
        assert {label: row[0] for label, row in found.items()} == {  # type: ignore[index]
            label: state for label, (state, _, _) in rows.items()}
        assert all(row[4] is None for row in found.values())  # type: ignore[index]
        for label in ("due long ago", "before year 1", "claimed, then undecodable"):
            assert found[label][1] == MIN_RUN_AT  # type: ignore[index]
        for label in ("never", "after 9999", "history"):
            assert found[label][1] == MAX_RUN_AT  # type: ignore[index]
        assert [found[label][2] for label in (  # type: ignore[index]
            "timeout NaN", "timeout Infinity", "timeout of a millennium", "in range")] == [
            None, MAX_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS, 30]
        assert found["two million attempts"][3] == MAX_ATTEMPTS  # type: ignore[index]
        assert conn.execute("SELECT max_attempts FROM pgqueue.schedules").fetchone() == (
            MAX_ATTEMPTS,)
        assert conn.execute(
            "SELECT count(*) FROM pgqueue.jobs WHERE now() - run_at > interval '1 day'"
        ).fetchone() == (3,)  # the ones due long ago are still due
        unvalidated = conn.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid IN "
            "('pgqueue.jobs'::regclass, 'pgqueue.schedules'::regclass) AND NOT convalidated"
        ).fetchall()
        assert unvalidated == []

    app = App(empty_dsn)
    try:  # every row reads back through the Python API (it failed to decode before)
        assert [app.get_job(job_id).id for job_id in ids.values()] == list(ids.values())
        assert len(app.list_jobs(limit=100)) == len(ids)
    finally:
        app.close()


def test_run_at_far_ahead_from_python_is_refused_before_sql(conn: psycopg.Connection[Any],
                                                           dsn: str) -> None:
    """A delay Postgres' interval could not even hold (1e300 s) fails typed in the caller."""
    app = App(dsn)
    task = app.task(name="door.noop")(lambda: None)
    try:
        for options in ({"delay": 1e300}, {"delay": 1e12},
                        {"run_at": datetime.max.replace(tzinfo=MAX_RUN_AT.tzinfo)}):
            with pytest.raises(PgQueueError, match="9999-12-30"):
                task.using(**options).defer()
        assert task.using(delay=3600).defer()
    finally:
        app.close()
    assert conn.execute("SELECT count(*) FROM pgqueue.jobs").fetchone() == (1,)
