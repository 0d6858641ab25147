"""No row can take a worker down: every value a producer can write by SQL (past the checks at
the door, as rows written before them or by the schema owner) and every outcome a task can
produce fails that job alone, with a typed error, while the jobs claimed with it run."""

from __future__ import annotations

import psycopg
import pytest

from tests.apps import core_app
from tests.helpers import run_cli

DEEP = 10_000

# (label, column values by SQL) -> the state and error type the job must end with.
POISON_ROWS: list[tuple[str, dict[str, str], str, str | None]] = [
    ("args nested 10,000 deep", {"args": "[" * DEEP + "]" * DEEP}, "failed", "UnreadableJob"),
    ("kwargs nested 10,000 deep", {"kwargs": '{"a":' * DEEP + "1" + "}" * DEEP},
     "failed", "UnreadableJob"),
    ("args an object", {"args": '{"a": 1}'}, "failed", "UnreadableJob"),
    ("args a string", {"args": '"12"'}, "failed", "UnreadableJob"),
    ("kwargs an array", {"kwargs": "[1, 2]"}, "failed", "UnreadableJob"),
    ("kwargs JSON null", {"kwargs": "null"}, "failed", "UnreadableJob"),
    ("kwargs not identifiers", {"kwargs": '{"a b": 1, "": 2}'}, "failed", "InvalidArguments"),
    ("run_at -infinity", {"run_at": "-infinity"}, "succeeded", None),
    ("enqueued_at -infinity", {"enqueued_at": "-infinity"}, "succeeded", None),
    ("run_at 4000 BC", {"run_at": "4000-01-01 BC"}, "succeeded", None),
    ("max_attempts 0", {"max_attempts": "0"}, "succeeded", None),
    ("priority at int's limit", {"priority": "2147483647"}, "succeeded", None),
    # No worker has this task: it is not claimed (migration 0015), so it waits, unspent.
    ("task name with escapes", {"task_name": "\x1b[2J\x1b[31mnot.a.task"}, "queued", None),
]


def _drop_check_constraints(conn: psycopg.Connection) -> None:
    """Rows written before the door's checks existed (or by the schema owner) are possible.
    The checks are the table's and its columns' domains' (migration 0025)."""
    for (name,) in conn.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'pgqueue.jobs'::regclass "
            "AND contype = 'c'").fetchall():
        conn.execute(psycopg.sql.SQL("ALTER TABLE pgqueue.jobs DROP CONSTRAINT {}").format(
            psycopg.sql.Identifier(name)))
    for domain, name in conn.execute(
            "SELECT DISTINCT t.typname, c.conname FROM pg_attribute AS a "
            "JOIN pg_type AS t ON t.oid = a.atttypid AND t.typtype = 'd' "
            "JOIN pg_constraint AS c ON c.contypid = t.oid "
            "WHERE a.attrelid = 'pgqueue.jobs'::regclass").fetchall():
        conn.execute(psycopg.sql.SQL("ALTER DOMAIN pgqueue.{} DROP CONSTRAINT {}").format(
            psycopg.sql.Identifier(domain), psycopg.sql.Identifier(name)))


def _insert(conn: psycopg.Connection, values: dict[str, str]) -> int:
    row = {"task_name": core_app.add.name, "args": "[1]", "kwargs": '{"b": 2}',
           "max_attempts": "1", **values}
    columns = psycopg.sql.SQL(", ").join(map(psycopg.sql.Identifier, row))
    return conn.execute(psycopg.sql.SQL("INSERT INTO pgqueue.jobs ({}) VALUES ({}) RETURNING id")
                        .format(columns, psycopg.sql.SQL(", ").join(
                            psycopg.sql.Placeholder() * len(row))),
                        list(row.values())).fetchone()[0]


@pytest.mark.slow
def test_bad_rows_and_bad_outcomes_fail_alone_and_the_worker_goes_on(rel_dsn: str) -> None:
    with psycopg.connect(rel_dsn, autocommit=True) as conn:
        _drop_check_constraints(conn)
        good_before = [core_app.add.defer(n, b=1) for n in range(3)]
        poison = {label: (_insert(conn, values), state, error)
                  for label, values, state, error in POISON_ROWS}
        never_due = _insert(conn, {"run_at": "infinity"})
        outcomes = {
            "error with NUL and a lone surrogate": (
                core_app.raises_unstorable_error.defer(), "failed", "ValueError"),
            "exception whose str() raises": (
                core_app.raises_unprintable_error.defer(), "failed", "_Unprintable"),
            "Retry(delay=1e300)": (
                core_app.retries_in_ten_thousand_years.defer(), "queued", None),
            # Retried after the default backoff (under a second): gone again or not yet.
            "backoff returning NaN": (
                core_app.fails_with_a_broken_backoff.defer(), "queued|failed", "ValueError"),
        }
        good_after = [core_app.add.defer(n, b=1) for n in range(3)]

    # Every job fits in one batch: the bad ones are claimed beside the good ones.
    result = run_cli("--app", "tests.apps.core_app:app", "worker", "--one-shot", "-c", "40",
                     dsn=rel_dsn, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr

    with psycopg.connect(rel_dsn, autocommit=True) as conn:
        def job(job_id: int) -> tuple[str, str | None, int, str | None]:
            return conn.execute("SELECT state::text, error_type, attempts, error_message "
                                "FROM pgqueue.jobs WHERE id = %s", (job_id,)).fetchone()

        for job_id in good_before + good_after:
            assert job(job_id)[:3] == ("succeeded", None, 1)
        for label, (job_id, state, error) in {**poison, **outcomes}.items():
            found = job(job_id)
            assert found[0] in state.split("|") and found[1] == error, (label, found)
            assert found[2] == 1 or "queued" in state, (label, found)
        assert job(never_due)[:3] == ("queued", None, 0)
        unstorable_message = job(outcomes["error with NUL and a lone surrogate"][0])[3]
        assert "\\x00" in unstorable_message and "\\ud800" in unstorable_message
        retry_at = conn.execute("SELECT run_at - now() FROM pgqueue.jobs WHERE id = %s",
                                (outcomes["Retry(delay=1e300)"][0],)).fetchone()[0]
        assert 360 <= retry_at.days <= 367
        assert "cannot be decoded" in job(poison["args nested 10,000 deep"][0])[3]
        assert "JSON array" in job(poison["args an object"][0])[3]
