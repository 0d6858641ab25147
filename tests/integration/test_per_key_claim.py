"""A key with a deep backlog at its per-key limit costs the claim nothing (migration 0019):
the claim reads a bounded number of rows, still finds every other key's due jobs, and visits
keys round robin when it has to visit them one by one.

Rows read are counted by the server (pg_stat_xact_all_tables), as in test_claim_plan.py."""

from __future__ import annotations

import psycopg

from pgqueue.queries import query

BACKLOG = 20_000


def _prepare(dsn: str, *, per_key: int = 1) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgqueue.set_queue_limit('sync', 'per_key_concurrency', %s)",
                     (str(per_key),))
        # The noisy tenant first in claim order: one running, a deep backlog queued.
        conn.execute("INSERT INTO pgqueue.jobs (task_name, queue, concurrency_key, state, "
                     "started_at) VALUES ('t', 'sync', 'tenant:noisy', 'running', now())")
        conn.execute("INSERT INTO pgqueue.jobs (task_name, queue, concurrency_key, priority) "
                     "SELECT 't', 'sync', 'tenant:noisy', 1 FROM generate_series(1, %s)",
                     (BACKLOG,))
        conn.execute("INSERT INTO pgqueue.jobs (task_name, queue, concurrency_key, priority) "
                     "SELECT 't', 'sync', 'tenant:' || g, 0 FROM generate_series(1, 30) g")
        conn.execute("ANALYZE pgqueue.jobs")
        return conn.execute("INSERT INTO pgqueue.workers (name, hostname, pid, concurrency) "
                            "VALUES ('w', 'h', 1, 10) RETURNING id").fetchone()[0]


def _claim(conn: psycopg.Connection, worker_id: int, limit: int) -> tuple[list[str], int]:
    """(keys of the claimed jobs, rows of pgqueue.jobs this transaction read); committed."""
    with conn.transaction():
        claimed = conn.execute(query("claim_jobs"), {
            "worker_id": worker_id, "limit": limit, "queues": ["sync"], "tasks": None}).fetchall()
        read = conn.execute("SELECT seq_tup_read + idx_tup_fetch FROM pg_stat_xact_all_tables "
                            "WHERE relid = 'pgqueue.jobs'::regclass").fetchone()[0]
    ids = [row[0] for row in claimed]
    keys = [row[0] for row in conn.execute(
        "SELECT concurrency_key FROM pgqueue.jobs WHERE id = ANY(%s)", (ids,))]
    conn.commit()
    return keys, int(read)


def test_a_saturated_key_backlog_is_not_read_by_every_claim(dsn: str) -> None:
    worker_id = _prepare(dsn)
    with psycopg.connect(dsn) as conn:
        keys, read = _claim(conn, worker_id, limit=10)
    assert "tenant:noisy" not in keys and len(keys) == len(set(keys)) == 10
    assert read < 2_000, f"the claim read {read} rows (the backlog is {BACKLOG})"


def test_keys_visited_one_by_one_take_turns(dsn: str) -> None:
    worker_id = _prepare(dsn)
    seen: list[str] = []
    with psycopg.connect(dsn) as conn:
        for _ in range(3):
            keys, _read = _claim(conn, worker_id, limit=10)
            seen += keys
    assert len(seen) == len(set(seen)) == 30, "three claims of 10 served all 30 other tenants"


def test_free_slots_of_a_key_are_filled_from_its_oldest_jobs(dsn: str) -> None:
    worker_id = _prepare(dsn, per_key=3)
    with psycopg.connect(dsn) as conn:
        keys, _read = _claim(conn, worker_id, limit=10)
        assert keys.count("tenant:noisy") == 2, "3 allowed, 1 already running"
        running = conn.execute(
            "SELECT concurrency_key, count(*) FROM pgqueue.jobs WHERE state = 'running' "
            "GROUP BY 1 HAVING count(*) > 1").fetchall()
    assert running == [("tenant:noisy", 3)]
