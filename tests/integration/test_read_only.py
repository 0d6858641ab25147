"""A read-only database is told apart before anything is written to it.

Two kinds, both real: a hot standby built by ``pg_basebackup -R`` from a throwaway primary (the
``replication`` fixture), and a database with ``default_transaction_read_only = on`` (what a
read-only role or a maintenance switch looks like) on the session's server.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

import pgqueue
from pgqueue.db import Database
from pgqueue.errors import DatabaseUnavailable, ReadOnlyDatabase
from pgqueue.migrate import apply_migrations
from pgqueue.readonly import read_only_reason, require_writable
from tests.conftest import Replication
from tests.helpers import app_on, scalar


def _set_read_only(dsn: str) -> str:
    """Make every later session on this database read-only by default; returns the DSN."""
    name = conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    return dsn


@pytest.fixture
def read_only_dsn(dsn: str) -> str:
    return _set_read_only(dsn)


@pytest.fixture
def standby_database(replication: Replication) -> Iterator[Database]:
    database = Database(replication.standby_dsn)
    yield database
    database.close()


def test_a_hot_standby_says_so(replication: Replication) -> None:
    with psycopg.connect(replication.standby_dsn) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        reason = read_only_reason(conn)
    assert reason is not None and "hot standby" in reason
    with psycopg.connect(replication.primary_dsn) as conn:
        assert read_only_reason(conn) is None


def test_require_writable_refuses_a_hot_standby(standby_database: Database) -> None:
    with pytest.raises(ReadOnlyDatabase, match=r"^read-only: .* hot standby .* primary$"):
        require_writable(standby_database)


def test_a_read_only_database_is_a_database_a_writer_cannot_use() -> None:
    # Code that waits out an outage (the worker's claim loop, a producer's retry) also waits
    # out a failover that briefly leaves the DSN on a demoted primary.
    assert issubclass(ReadOnlyDatabase, DatabaseUnavailable)


def test_default_transaction_read_only_says_so(read_only_dsn: str) -> None:
    database = Database(read_only_dsn)
    try:
        with pytest.raises(ReadOnlyDatabase, match="default_transaction_read_only = on"):
            require_writable(database)
    finally:
        database.close()


def test_a_writable_database_passes(dsn: str) -> None:
    database = Database(dsn)
    try:
        require_writable(database)
    finally:
        database.close()


def test_migrate_refuses_pending_migrations_on_a_read_only_database(empty_dsn: str) -> None:
    _set_read_only(empty_dsn)
    with pytest.raises(ReadOnlyDatabase, match="default_transaction_read_only"):
        apply_migrations(empty_dsn)
    assert scalar(empty_dsn, "SELECT to_regnamespace('pgqueue') IS NULL")


def test_migrate_on_a_current_replica_has_nothing_to_do(replication: Replication) -> None:
    assert apply_migrations(replication.standby_dsn) == []


def test_writes_on_a_replica_raise_read_only_database(replication: Replication) -> None:
    """Where the server does not report its read-only state (PostgreSQL < 14, some poolers) the
    first write is what fails: it must fail as ReadOnlyDatabase, for the embedded worker too."""
    app = pgqueue.App()

    @app.task
    def noop() -> None:
        return None

    with app_on(app, replication.standby_dsn):
        with pytest.raises(ReadOnlyDatabase):
            noop.defer()
        with pytest.raises(ReadOnlyDatabase):
            app.run_worker(one_shot=True)
