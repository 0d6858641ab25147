from __future__ import annotations

import psycopg
import pytest

import pgqueue
from pgqueue.durations import parse_age
from pgqueue.errors import ConfigurationError
from pgqueue.maintenance.retention import DAY, RetentionPolicy, prune
from tests.helpers import run_cli, scalar, wait_until


def _seed(conn: psycopg.Connection) -> None:
    """Finished jobs of every state, 1 hour and 10 days old, plus live ones."""
    conn.execute("""
        INSERT INTO pgqueue.jobs (task_name, state, finished_at, attempts)
        SELECT 't', state::pgqueue.job_state, now() - age, 1
        FROM unnest(ARRAY['succeeded', 'failed', 'cancelled']) AS state,
             unnest(ARRAY[interval '1 hour', interval '10 days']) AS age,
             generate_series(1, 1000)""")
    conn.execute("INSERT INTO pgqueue.jobs (task_name) SELECT 't' FROM generate_series(1, 10)")


def _counts(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return dict(conn.execute(
            "SELECT state::text, count(*) FROM pgqueue.jobs GROUP BY 1").fetchall())


def test_parse_age() -> None:
    assert parse_age("90s") == 90 and parse_age("45m") == 2700 and parse_age("7d") == 7 * DAY
    assert parse_age("2w") == 14 * DAY and parse_age("forever") is None
    assert parse_age("1h30m") == 5400 and parse_age("500ms") == 0.5
    for refused in ("soon", "12", "-1d", "7 days"):
        with pytest.raises(ConfigurationError):
            parse_age(refused)


def test_prune_deletes_by_age_per_state_in_batches(conn: psycopg.Connection, dsn: str) -> None:
    _seed(conn)
    seen: list[int] = []
    deleted = prune(pgqueue.App(dsn).db, RetentionPolicy(
        keep_succeeded=DAY, keep_failed=None, keep_cancelled=60, batch_size=300),
        progress=seen.append)
    assert deleted == 1000 + 2000  # old succeeded; every cancelled; failed kept forever
    assert len(seen) >= 10 and seen[-1] == deleted  # in batches, with progress
    assert _counts(dsn) == {"succeeded": 1000, "failed": 2000, "queued": 10}


def test_prune_command(conn: psycopg.Connection, dsn: str) -> None:
    _seed(conn)
    result = run_cli("prune", "--keep-succeeded", "1d", "--keep-failed", "5d",
                     "--keep-cancelled", "forever", dsn=dsn)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ("pruned 2000 finished jobs; keeping succeeded 1d, "
                                     "failed 5d, cancelled forever")
    assert _counts(dsn) == {"succeeded": 1000, "failed": 1000, "cancelled": 2000, "queued": 10}


def test_workers_prune_on_their_own(conn: psycopg.Connection, dsn: str, worker_thread) -> None:
    _seed(conn)
    worker_thread(prune_every=0.2, retention=RetentionPolicy(keep_succeeded=DAY,
                                                             keep_failed=DAY,
                                                             keep_cancelled=DAY))
    wait_until(lambda: scalar(dsn, "SELECT count(*) FROM pgqueue.jobs "
                                   "WHERE finished_at < now() - interval '1 day'") == 0,
               timeout=30, message="the worker's retention pass")
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE finished_at IS NOT NULL") == 3000


def test_jobs_table_has_queue_friendly_autovacuum_settings(dsn: str) -> None:
    options = scalar(dsn, "SELECT reloptions FROM pg_class WHERE oid = 'pgqueue.jobs'::regclass")
    assert "autovacuum_vacuum_scale_factor=0.01" in options
    assert "fillfactor=80" in options
