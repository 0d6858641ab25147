"""A scheduler that stalls while it holds a schedule's row lock (a frozen process, a network
partition) is cut off by the database after 10 s, and the other schedulers fire the ticks it
held up: late, but each exactly once."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

import pgqueue
from pgqueue.periodic import periodic
from pgqueue.queries import query
from tests.helpers import start_worker_thread, wait_until


def test_a_stalled_lock_holder_is_cut_off_and_no_tick_is_lost(dsn: str) -> None:
    app = pgqueue.App(dsn)

    @periodic(app, every=timedelta(seconds=1), id="fast")
    @app.task(name="ping")
    def ping() -> None:
        return None

    worker = start_worker_thread(app)
    try:
        with psycopg.connect(dsn, autocommit=True) as watcher:
            def fired() -> list[tuple]:
                return watcher.execute(
                    "SELECT tick_at FROM pgqueue.schedule_ticks ORDER BY tick_at").fetchall()

            wait_until(lambda: len(fired()) >= 2, message="the worker's scheduler firing")
            stalled = psycopg.connect(dsn)  # a scheduler that takes the lock, then freezes
            lock_due = query("lock_due_schedule")
            wait_until(lambda: stalled.execute(lock_due, {"id": "fast"}).fetchone()
                       or stalled.rollback(), timeout=20, interval=0.005,
                       message="the stalled scheduler to win a tick")
            held_at = watcher.execute("SELECT now()").fetchone()[0]
            # While the lock is held, nobody fires; once the database cuts the holder off
            # (idle_in_transaction_session_timeout = 10 s) the worker catches up.
            wait_until(lambda: any(t[0] > held_at + timedelta(seconds=10) for t in fired()),
                       timeout=30, message="ticks after the stall")
            with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
                stalled.execute("SELECT 1")
            stalled.close()
            ticks = [t[0] for t in fired()]
            assert ticks == [ticks[0] + timedelta(seconds=n) for n in range(len(ticks))]
            jobs = watcher.execute("SELECT run_at FROM pgqueue.jobs ORDER BY run_at").fetchall()
            assert [j[0] for j in jobs] == ticks
    finally:
        worker.stop()
        app.close()
