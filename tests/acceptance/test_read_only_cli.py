"""The real `pgqueue` command pointed at a read-only database: one line, exit code 7.

The replica is a real hot standby (``replication`` fixture: ``pg_basebackup -R`` from a
throwaway primary); the other read-only database is one with
``default_transaction_read_only = on`` on the session's server.
"""

from __future__ import annotations

import subprocess

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from pgqueue.cli import EXIT_READ_ONLY
from tests.conftest import Replication
from tests.helpers import run_cli


def _assert_refused_as_read_only(result: subprocess.CompletedProcess[str], why: str) -> None:
    assert result.returncode == EXIT_READ_ONLY == 7, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pgqueue: error: read-only: "), lines[0]
    assert why in lines[0] and lines[0].endswith("point the DSN at the primary")
    assert result.stdout == ""


@pytest.mark.parametrize("command", [
    ("healthcheck",),
    ("worker",),
    ("worker", "--one-shot"),
    ("worker", "--supervise"),
], ids=" ".join)
def test_a_hot_standby_is_refused(replication: Replication, command: tuple[str, ...]) -> None:
    result = run_cli(*command, dsn=replication.standby_dsn, timeout=30)
    _assert_refused_as_read_only(result, "is a hot standby (a read replica)")


def test_its_primary_is_healthy(replication: Replication) -> None:
    result = run_cli("healthcheck", dsn=replication.primary_dsn)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr


def test_default_transaction_read_only_is_refused(dsn: str) -> None:
    name = conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    for command in (("healthcheck",), ("worker", "--one-shot")):
        result = run_cli(*command, dsn=dsn, timeout=30)
        _assert_refused_as_read_only(result, "has default_transaction_read_only = on")


def test_migrate_refuses_to_write_to_a_read_only_database(empty_dsn: str) -> None:
    name = conninfo_to_dict(empty_dsn)["dbname"]
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    result = run_cli("migrate", dsn=empty_dsn)
    _assert_refused_as_read_only(result, "has default_transaction_read_only = on")
