"""A rate limit's window follows the order in which claims hold the queue's row lock
(migration 0022), not the order in which their transactions began.

A claim used to judge the window and stamp its starts (jobs.started_at) with now(), its
transaction's start. A claim that began first but got the lock after another recorded its
starts before a window the other had already judged and trimmed: one window held more than N
starts (seen as 12 in one second under a 10/s limit, tests/reliability/test_limit_races.py).
Here the interleaving is forced with real sessions instead of hoped for under load."""

from __future__ import annotations

import threading

import psycopg

import pgqueue
from pgqueue import store
from pgqueue.queries import query
from tests.apps import core_app
from tests.helpers import scalar, wait_until

LIMIT = 2


def _starts(dsn: str) -> list[float]:
    with psycopg.connect(dsn) as conn:
        return [row[0] for row in conn.execute(
            "SELECT extract(epoch FROM started_at)::float8 FROM pgqueue.jobs "
            "WHERE started_at IS NOT NULL ORDER BY 1")]


def _most_in_one_period(starts: list[float], period: float = 1.0) -> int:
    return max(sum(1 for other in starts if start <= other < start + period) for start in starts)


def _claim(conn: psycopg.Connection, worker_id: int, limit: int) -> list[int]:
    params = {"worker_id": worker_id, "limit": limit, "queues": None, "tasks": None}
    return [row[0] for row in conn.execute(query("claim_jobs"), params)]


def test_a_claim_that_waited_for_the_lock_is_judged_and_stamped_after_it(
    app: pgqueue.App, dsn: str
) -> None:
    worker_id = app.db.run(store.register_worker(name="w", hostname="h", pid=1, queues=None,
                                                 concurrency=100))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgqueue.set_queue_limit('api', 'rate_limit', %s)", (f"{LIMIT}/s",))
    core_app.add.using(queue="api").defer_many([(n, n) for n in range(LIMIT)])
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert len(_claim(conn, worker_id, 10)) == LIMIT  # the window is full, at instant e
    core_app.add.using(queue="api").defer_many([(n, n) for n in range(5)])

    with psycopg.connect(dsn) as late, psycopg.connect(dsn) as holder:
        late.execute("SELECT now()")  # its transaction begins while e's starts are in the window
        late_pid = late.info.backend_pid
        wait_until(lambda: scalar(dsn, "SELECT clock_timestamp() > max(started_at) + "
                                       "interval '1 second' + interval '10 ms' "
                                       "FROM pgqueue.jobs"),
                   timeout=5, message="e's starts to leave the window")
        assert len(_claim(holder, worker_id, 1)) == 1  # holds the queue's row lock, uncommitted
        taken: list[int] = []
        claiming = threading.Thread(target=lambda: taken.extend(_claim(late, worker_id, 10)))
        claiming.start()
        wait_until(lambda: scalar(dsn, "SELECT wait_event_type = 'Lock' FROM pg_stat_activity "
                                       "WHERE pid = %s", (late_pid,)),
                   timeout=5, message="the late claim to wait for the row lock")
        holder.commit()
        claiming.join(timeout=10)
        late.commit()

    assert len(taken) == LIMIT - 1  # the holder's start is in its window; e's are not
    starts = _starts(dsn)
    assert _most_in_one_period(starts) == LIMIT, starts
    with psycopg.connect(dsn) as conn:
        late_start, holder_start = conn.execute(
            "SELECT (SELECT started_at FROM pgqueue.jobs WHERE id = %s), "
            "(SELECT max(started_at) FROM pgqueue.jobs WHERE id <> %s)",
            (taken[0], taken[0])).fetchone()
    assert late_start >= holder_start  # stamped in the order the claims held the lock


def test_starts_are_never_stamped_before_the_newest_one_recorded(
    app: pgqueue.App, dsn: str
) -> None:
    """A server clock stepped back (here: the last start recorded an hour ahead of it) must not
    stamp new starts behind a window already judged: the stamp waits for the newest start."""
    worker_id = app.db.run(store.register_worker(name="w", hostname="h", pid=1, queues=None,
                                                 concurrency=100))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgqueue.set_queue_limit('api', 'rate_limit', '100/h')")
        core_app.add.using(queue="api").defer_many([(n, n) for n in range(3)])
        assert len(_claim(conn, worker_id, 1)) == 1
        ahead = conn.execute("UPDATE pgqueue.queue_rate_starts SET started_at = started_at + "
                             "interval '1 hour' RETURNING started_at").fetchone()[0]
        taken = _claim(conn, worker_id, 2)
        stamps = [row[0] for row in conn.execute(
            "SELECT started_at FROM pgqueue.jobs WHERE id = ANY(%s)", (taken,))]
    assert len(stamps) == 2 and min(stamps) >= ahead
