"""Queue limits across many real worker processes (8 workers x 8 slots): the concurrency limit
and the per-key limit (every key) are never exceeded and are reached, a worker killed while
holding a slot frees it once rescued, and a rate limit never lets more than N jobs start in any
window of its period."""

from __future__ import annotations

import os
import signal

import psycopg
import pytest

from tests.apps import core_app
from tests.helpers import scalar, wait_until
from tests.reliability.conftest import WorkerProcesses

WORKERS = 8


def _start_workers(workers: WorkerProcesses, dsn: str) -> None:
    for _ in range(WORKERS):
        workers.start(dsn, "-c", "8", "--heartbeat-interval", "0.5", "--heartbeat-timeout", "2")


def _all_succeeded(dsn: str) -> bool:
    return scalar(dsn, "SELECT count(*) FILTER (WHERE state = 'succeeded') = count(*) "
                       "FROM pgqueue.jobs")


def _max_overlap(spans: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = highest = 0
    for _, change in events:  # an end at the same instant as a start comes first
        running += change
        highest = max(highest, running)
    return highest


@pytest.mark.slow
def test_a_concurrency_limit_holds_across_workers_and_a_kill(
    rel_dsn: str, workers: WorkerProcesses
) -> None:
    with psycopg.connect(rel_dsn, autocommit=True) as conn:
        conn.execute("SELECT pgqueue.set_queue_limit('limited', 'concurrency', '3')")
    core_app.hold_briefly.using(queue="limited").defer_many([(0.05,)] * 60)
    _start_workers(workers, rel_dsn)

    def a_slot_holder() -> int | None:
        with psycopg.connect(rel_dsn) as conn:
            row = conn.execute("SELECT pid FROM ledger GROUP BY job_id, attempt, pid "
                               "HAVING count(*) = 1 LIMIT 1").fetchone()
        return row[0] if row else None

    victim = wait_until(a_slot_holder, timeout=30, message="a worker holding a slot")
    os.kill(victim, signal.SIGKILL)
    killed_at = scalar(rel_dsn, "SELECT extract(epoch FROM clock_timestamp())::float8")
    wait_until(lambda: _all_succeeded(rel_dsn), timeout=90, message="every job to succeed")
    with psycopg.connect(rel_dsn) as conn:
        spans = [(start, end if end is not None else killed_at) for start, end in conn.execute(
            "SELECT extract(epoch FROM min(started_at) FILTER (WHERE tag = 'start'))::float8, "
            "extract(epoch FROM min(started_at) FILTER (WHERE tag = 'end'))::float8 "
            "FROM ledger GROUP BY job_id, attempt")]
    assert _max_overlap(spans) == 3, "the limit is never exceeded, and is reached"


@pytest.mark.slow
def test_a_rate_limit_never_lets_more_than_n_start_in_any_window(
    rel_dsn: str, workers: WorkerProcesses
) -> None:
    with psycopg.connect(rel_dsn, autocommit=True) as conn:
        conn.execute("SELECT pgqueue.set_queue_limit('api', 'rate_limit', '10/s')")
    core_app.add.using(queue="api").defer_many([(n, n) for n in range(35)])
    _start_workers(workers, rel_dsn)
    wait_until(lambda: _all_succeeded(rel_dsn), timeout=60, message="every job to succeed")
    with psycopg.connect(rel_dsn) as conn:
        starts = [row[0] for row in conn.execute(
            "SELECT extract(epoch FROM started_at)::float8 FROM pgqueue.jobs ORDER BY 1")]
    in_any_second = max(sum(1 for other in starts if start <= other < start + 1.0)
                        for start in starts)
    assert in_any_second == 10, f"{in_any_second} starts within one second"
    assert starts[-1] - starts[0] >= 3.0  # 35 jobs at 10 per second


@pytest.mark.slow
def test_per_key_concurrency_holds_for_every_key_across_workers_and_a_kill(
    rel_dsn: str, workers: WorkerProcesses
) -> None:
    with psycopg.connect(rel_dsn, autocommit=True) as conn:
        conn.execute("SELECT pgqueue.set_queue_limit('sync', 'per_key_concurrency', '2')")
    keys = [f"tenant:{n}" for n in range(4)]
    for key in keys:
        core_app.hold_briefly.using(queue="sync", concurrency_key=key).defer_many(
            [(0.05,)] * 15)
    _start_workers(workers, rel_dsn)

    def a_slot_holder() -> int | None:
        with psycopg.connect(rel_dsn) as conn:
            row = conn.execute("SELECT pid FROM ledger GROUP BY job_id, attempt, pid "
                               "HAVING count(*) = 1 LIMIT 1").fetchone()
        return row[0] if row else None

    victim = wait_until(a_slot_holder, timeout=30, message="a worker holding a slot")
    os.kill(victim, signal.SIGKILL)
    killed_at = scalar(rel_dsn, "SELECT extract(epoch FROM clock_timestamp())::float8")
    wait_until(lambda: _all_succeeded(rel_dsn), timeout=90, message="every job to succeed")
    with psycopg.connect(rel_dsn) as conn:
        rows = conn.execute(
            "SELECT j.concurrency_key, "
            "extract(epoch FROM min(l.started_at) FILTER (WHERE l.tag = 'start'))::float8, "
            "extract(epoch FROM min(l.started_at) FILTER (WHERE l.tag = 'end'))::float8 "
            "FROM ledger l JOIN pgqueue.jobs j ON j.id = l.job_id "
            "GROUP BY j.concurrency_key, l.job_id, l.attempt").fetchall()
    for key in keys:
        spans = [(start, end if end is not None else killed_at)
                 for k, start, end in rows if k == key]
        assert _max_overlap(spans) == 2, f"{key}: the per-key limit is exceeded or not reached"
    assert scalar(rel_dsn, "SELECT count(*) FROM pgqueue.jobs") == 60
