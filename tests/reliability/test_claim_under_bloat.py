"""Claim latency with millions of finished jobs, and while a long transaction pins old row
versions (dead index entries cannot be cleaned up). Numbers are printed (`-s`); the bound is
loose on purpose: the benchmark harness does the precise measuring."""

from __future__ import annotations

import statistics
import time

import psycopg
import pytest

from pgqueue import store
from pgqueue.app import App

FINISHED_ROWS = 2_000_000


def _claim_latencies(app: App, worker_id: int, claims: int) -> list[float]:
    latencies = []
    for _ in range(claims):
        started = time.perf_counter()
        jobs = app.db.run(store.claim_jobs(worker_id=worker_id, queues=None, limit=10))
        latencies.append((time.perf_counter() - started) * 1000)
        tokens = [job.claim_token for job in jobs]
        app.db.run(store.mark_succeeded([j.id for j in jobs], tokens, [None] * len(jobs)))
    return latencies


def _p(latencies: list[float], q: float) -> float:
    return statistics.quantiles(latencies, n=100)[int(q) - 1]


@pytest.mark.slow
def test_claim_stays_fast_with_millions_of_finished_jobs_and_a_long_transaction(
    conn: psycopg.Connection, dsn: str
) -> None:
    conn.execute(f"""
        INSERT INTO pgqueue.jobs (task_name, state, finished_at, attempts)
        SELECT 't', 'succeeded', now(), 1 FROM generate_series(1, {FINISHED_ROWS})""")
    conn.execute("INSERT INTO pgqueue.jobs (task_name) SELECT 't' FROM generate_series(1, 40000)")
    conn.execute("VACUUM ANALYZE pgqueue.jobs")
    app = App(dsn)
    worker_id = app.db.run(store.register_worker(name="bench", hostname="h", pid=1, queues=None,
                                                 concurrency=10))
    baseline = _claim_latencies(app, worker_id, 1000)

    with psycopg.connect(dsn) as long_transaction:
        long_transaction.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        long_transaction.execute("SELECT count(*) FROM pgqueue.workers").fetchone()
        pinned = _claim_latencies(app, worker_id, 2000)  # 20k claimed+acked under the pin
        long_transaction.rollback()
    app.close()
    print(f"\n[retention] claim of 10 with {FINISHED_ROWS:,} finished rows: "
          f"p50 {_p(baseline, 50):.2f} ms, p99 {_p(baseline, 99):.2f} ms; "
          f"while a long transaction pins 20,000 dead versions: p50 {_p(pinned, 50):.2f} ms, "
          f"p99 {_p(pinned, 99):.2f} ms, last 100 median {statistics.median(pinned[-100:]):.2f} ms")
    assert _p(baseline, 50) < 10
    assert statistics.median(pinned[-100:]) < 50
