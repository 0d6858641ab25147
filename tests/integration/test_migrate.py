from __future__ import annotations

import threading

import psycopg
import pytest

from pgqueue.errors import MigrationInProgress
from pgqueue.migrate import apply_migrations, full_sql, migration_files


def _tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'pgqueue'").fetchall()
    return {row[0] for row in rows}


def test_migrate_creates_the_schema_and_is_idempotent(empty_dsn: str) -> None:
    names = [m.name for m in migration_files()]
    assert apply_migrations(empty_dsn) == names
    assert {"jobs", "workers", "migrations"} <= _tables(empty_dsn)
    assert apply_migrations(empty_dsn) == []
    with psycopg.connect(empty_dsn) as conn:
        recorded = [r[0] for r in conn.execute("SELECT name FROM pgqueue.migrations ORDER BY 1")]
    assert recorded == names


def test_second_migrator_is_refused_while_one_holds_the_lock(empty_dsn: str) -> None:
    holding = threading.Event()
    release = threading.Event()

    def hold_lock() -> None:
        with psycopg.connect(empty_dsn) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('pgqueue.migrate'))")
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert holding.wait(10)
        with pytest.raises(MigrationInProgress):
            apply_migrations(empty_dsn)
        assert "jobs" not in _tables(empty_dsn)
    finally:
        release.set()
        holder.join()
    assert apply_migrations(empty_dsn)


def test_printed_sql_applied_by_hand_counts_as_migrated(empty_dsn: str) -> None:
    with psycopg.connect(empty_dsn) as conn:
        conn.execute(full_sql().encode())
    assert apply_migrations(empty_dsn) == []


def test_failed_migration_leaves_nothing_behind(empty_dsn: str) -> None:
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA pgqueue; CREATE TYPE pgqueue.job_state AS ENUM ('x')")
    with pytest.raises(psycopg.errors.DuplicateObject):
        apply_migrations(empty_dsn)
    assert _tables(empty_dsn) == set()
