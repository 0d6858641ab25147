"""Locks across many real worker processes: 8 workers x 8 slots on jobs of a few locks, one
worker killed with SIGKILL while it holds a lock. Per lock, no two attempts ever overlap and
jobs start in enqueue order; every job succeeds exactly once; the killed holder's lock is
passed on after the rescue, never leaked and never granted twice."""

from __future__ import annotations

import collections
import itertools
import os
import signal

import psycopg
import pytest

from tests.apps import core_app
from tests.helpers import scalar, wait_until
from tests.reliability.conftest import WorkerProcesses

LOCKS = 4
JOBS_PER_LOCK = 20
WORKERS = 8


def _attempts(dsn: str) -> list[tuple[int, str, int, float, float | None]]:
    """(job id, lock, pid, start, end or None) of every attempt, database clock."""
    with psycopg.connect(dsn) as conn:
        return conn.execute("""
            SELECT l.job_id, j.lock, l.pid,
                   extract(epoch FROM min(l.started_at) FILTER (WHERE l.tag = 'start'))::float8,
                   extract(epoch FROM min(l.started_at) FILTER (WHERE l.tag = 'end'))::float8
            FROM ledger AS l JOIN pgqueue.jobs AS j ON j.id = l.job_id
            GROUP BY l.job_id, l.attempt, j.lock, l.pid ORDER BY 4""").fetchall()


@pytest.mark.slow
def test_a_lock_is_held_by_one_attempt_at_a_time_across_workers_and_a_kill(
    rel_dsn: str, workers: WorkerProcesses
) -> None:
    ids_by_lock = {f"tenant:{n}": core_app.hold_briefly.using(lock=f"tenant:{n}").defer_many(
        [(0.03,)] * JOBS_PER_LOCK) for n in range(LOCKS)}
    for _ in range(WORKERS):
        workers.start(rel_dsn, "-c", "8", "--heartbeat-interval", "0.5",
                      "--heartbeat-timeout", "2")

    def a_holder_mid_run() -> int | None:
        running = [pid for _, _, pid, _, end in _attempts(rel_dsn) if end is None]
        return running[0] if running else None

    victim = wait_until(a_holder_mid_run, timeout=30, message="a worker holding a lock")
    os.kill(victim, signal.SIGKILL)
    with psycopg.connect(rel_dsn) as conn:
        killed_at = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8"
                                 ).fetchone()[0]
    wait_until(lambda: scalar(rel_dsn, "SELECT count(*) FILTER (WHERE state = 'succeeded') "
                                       "= count(*) FROM pgqueue.jobs"),
               timeout=90, message="every job to succeed")

    attempts = _attempts(rel_dsn)
    for lock, ids in ids_by_lock.items():
        spans = [(start, end if end is not None else killed_at, job_id)
                 for job_id, job_lock, _, start, end in attempts if job_lock == lock]
        for (_, end, job_id), (start, _, next_id) in itertools.pairwise(spans):
            assert start >= end, f"{lock}: job {next_id} started before job {job_id} ended"
        finished = [(job_id, pid) for job_id, job_lock, pid, _, end in attempts
                    if job_lock == lock and end is not None]
        assert list(dict.fromkeys(job_id for job_id, _ in finished)) == ids, (
            f"{lock}: not in enqueue order")
        # At least once: only a job the killed worker finished but had not acknowledged yet
        # runs again.
        runs = collections.Counter(job_id for job_id, _ in finished)
        assert all((job_id, victim) in finished for job_id, n in runs.items() if n > 1), (
            f"{lock}: a job ran twice without the killed worker: {finished}")
    # Attempts that never ended are the killed worker's (it may have held several locks).
    assert {pid for _, _, pid, _, end in attempts if end is None} <= {victim}
    pids = {pid for _, _, pid, _, _ in attempts}
    assert len(pids) > 2, "the jobs were spread over several worker processes"
