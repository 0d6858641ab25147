"""Locks: jobs sharing a lock never run at the same time and start in enqueue order; only the
head of a lock's line is claimable (the others wait outside the claim indexes), so a held lock
stalls nothing else and costs the claim nothing."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

import psycopg
import pytest

import pgqueue
from tests.apps import core_app
from tests.helpers import ThreadedWorker, run_cli, scalar, wait_until
from tests.integration.test_claim_plan import _claim_and_roll_back, _worker

APP = "tests.apps.core_app:app"
Intervals = dict[int, tuple[float, float]]


def _states(dsn: str, ids: list[int]) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [row[0] for row in conn.execute(
            "SELECT state::text FROM pgqueue.jobs WHERE id = ANY(%s) ORDER BY id", (ids,))]


def _intervals(dsn: str) -> Intervals:
    """job id -> (start, end) of its last attempt, database clock, from the ledger."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT job_id, extract(epoch FROM max(started_at) FILTER (WHERE tag = 'start')), "
            "extract(epoch FROM max(started_at) FILTER (WHERE tag = 'end')) "
            "FROM ledger GROUP BY job_id").fetchall()
    return {job_id: (float(start), float(end)) for job_id, start, end in rows if end}


def assert_one_at_a_time_in_order(intervals: Intervals, ids: list[int]) -> None:
    spans = [intervals[job_id] for job_id in ids]
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, f"overlap or out of order: {spans}"


def test_jobs_sharing_a_lock_run_one_at_a_time_in_enqueue_order(
    app: pgqueue.App, dsn: str, worker_thread: Callable[..., ThreadedWorker]
) -> None:
    locked = core_app.hold_briefly.using(lock="customer:1")
    ids = [locked.defer(0.1) for _ in range(3)] + locked.defer_many([(0.1,), (0.1,)])
    assert _states(dsn, ids) == ["queued"] + ["waiting"] * 4
    worker_thread(concurrency=8)
    wait_until(lambda: _states(dsn, ids) == ["succeeded"] * 5, timeout=20,
               message="every locked job")
    assert_one_at_a_time_in_order(_intervals(dsn), ids)


def test_a_held_lock_stalls_no_other_job(
    app: pgqueue.App, dsn: str, worker_thread: Callable[..., ThreadedWorker]
) -> None:
    holder = core_app.hold_briefly.using(lock="slow").defer(3)
    waiting = core_app.hold_briefly.using(lock="slow").defer_many([(0,)] * 20)
    worker_thread(concurrency=4)
    wait_until(lambda: _states(dsn, [holder]) == ["running"], message="the holder to start")
    free = core_app.add.defer_many([(n, n) for n in range(10)])
    wait_until(lambda: set(_states(dsn, free)) == {"succeeded"}, timeout=5,
               message="unrelated jobs while the lock is held")
    assert set(_states(dsn, waiting)) == {"waiting"}


@pytest.mark.slow
def test_the_claim_reads_nothing_of_the_jobs_waiting_on_a_lock(
    conn: psycopg.Connection, dsn: str
) -> None:
    conn.execute("INSERT INTO pgqueue.jobs (task_name, lock) "
                 "SELECT 't', 'busy' FROM generate_series(1, 10000)")
    conn.execute("INSERT INTO pgqueue.jobs (task_name) SELECT 't' FROM generate_series(1, 20)")
    worker_id = _worker(conn)
    conn.execute("UPDATE pgqueue.jobs SET state = 'running' WHERE lock = 'busy' AND "
                 "state = 'queued'")  # the lock's holder runs; 9,999 wait behind it
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE state = 'waiting'") == 9999
    for queues in (None, ["default"]):
        claimed, read, _ms = _claim_and_roll_back(dsn, worker_id, queues)
        assert (claimed, read <= 40) == (10, True), (queues, read)


def test_the_lock_passes_on_whatever_ends_the_holder(app: pgqueue.App, dsn: str) -> None:
    locked = core_app.add.using(lock="L")
    ids = [locked.defer(n, b=n) for n in range(5)]
    with psycopg.connect(dsn, autocommit=True) as conn:
        def end(job_id: int, state: str) -> None:
            conn.execute("UPDATE pgqueue.jobs SET state = %s, finished_at = now() "
                         "WHERE id = %s", (state, job_id))

        assert app.cancel_job(ids[2]) == "cancelled"  # a waiting job: at once, lock untouched
        assert _states(dsn, ids) == ["queued", "waiting", "cancelled", "waiting", "waiting"]
        end(ids[0], "failed")
        assert _states(dsn, ids) == ["failed", "queued", "cancelled", "waiting", "waiting"]
        conn.execute("UPDATE pgqueue.jobs SET state = 'running' WHERE id = %s", (ids[1],))
        end(ids[1], "succeeded")
        assert _states(dsn, ids)[3:] == ["queued", "waiting"]
        conn.execute("DELETE FROM pgqueue.jobs WHERE id = %s", (ids[3],))
        assert _states(dsn, [ids[4]]) == ["queued"]
        assert app.retry_job(ids[0])  # back in line behind the lock's unfinished job
        assert _states(dsn, [ids[0], ids[4]]) == ["waiting", "queued"]
        with pytest.raises(psycopg.errors.UniqueViolation):  # the index backs the triggers
            conn.execute("UPDATE pgqueue.jobs SET state = 'queued' WHERE id = %s", (ids[0],))
        end(ids[4], "succeeded")  # the retried job marked the holder it waits behind
        assert _states(dsn, [ids[0]]) == ["queued"]


def test_only_a_holder_something_waits_on_hands_its_lock_on(app: pgqueue.App, dsn: str) -> None:
    alone = core_app.add.using(lock="alone").defer(1, b=1)
    line = [core_app.add.using(lock="line").defer(n, b=n) for n in range(3)]
    marked = ("SELECT id FROM pgqueue.jobs WHERE lock_waited_on "
              "AND state IN ('queued', 'running') ORDER BY id")
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert [row[0] for row in conn.execute(marked)] == [line[0]]
        conn.execute("UPDATE pgqueue.jobs SET state = 'succeeded' WHERE id = %s", (line[0],))
        assert [row[0] for row in conn.execute(marked)] == [line[1]]  # more wait behind it
        conn.execute("UPDATE pgqueue.jobs SET state = 'succeeded' WHERE id = %s", (line[1],))
        assert [row[0] for row in conn.execute(marked)] == []  # the last of the line
        assert _states(dsn, [alone, line[2]]) == ["queued", "queued"]


@pytest.mark.parametrize("waiting_already", [False, True])
def test_a_job_entering_a_line_while_its_holder_is_acknowledged_is_never_stranded(
    app: pgqueue.App, dsn: str, waiting_already: bool
) -> None:
    """The holder's acknowledgement holds its row, uncommitted, while a new job of the lock is
    inserted: the insert waits for that commit, then queues the new job (the lock is free) or
    leaves it waiting behind a job the acknowledgement handed the lock to; never waiting with
    nobody left to hand the lock on."""
    holder = core_app.add.using(lock="L").defer(0, b=0)
    behind = [core_app.add.using(lock="L").defer(1, b=1)] if waiting_already else []
    with psycopg.connect(dsn) as ack:
        ack.execute("UPDATE pgqueue.jobs SET state = 'succeeded', finished_at = now() "
                    "WHERE id = %s", (holder,))
        entered: list[int] = []
        inserting = threading.Thread(
            target=lambda: entered.append(core_app.add.using(lock="L").defer(2, b=2)))
        inserting.start()
        wait_until(lambda: scalar(dsn, "SELECT count(*) FROM pg_stat_activity "
                                       "WHERE wait_event_type = 'Lock' AND datname = "
                                       "current_database()") == 1,
                   message="the insert to wait for the acknowledgement")
        ack.commit()
        inserting.join(timeout=10)
    assert _states(dsn, [*behind, *entered]) == (
        ["queued", "waiting"] if waiting_already else ["queued"])


def test_sql_and_cli_enqueue_behind_a_lock(app: pgqueue.App, dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        first = conn.execute("SELECT pgqueue.enqueue(%s, '[1, 2]', lock => 'nightly')",
                             (core_app.add.name,)).fetchone()[0]
    result = run_cli("--app", APP, "defer", core_app.add.name, "[3, 4]", "--lock", "nightly",
                     dsn=dsn)
    assert result.returncode == 0, result.stderr
    second = int(result.stdout.split()[-1])
    assert _states(dsn, [first, second]) == ["queued", "waiting"]
    listed = run_cli("jobs", "--state", "waiting", dsn=dsn).stdout.splitlines()[1:]
    assert [int(row.split()[0]) for row in listed] == [second]


@pytest.mark.parametrize("lock", ["", "x" * 501, "new\nline"])
def test_a_bad_lock_is_refused_at_the_door(app: pgqueue.App, lock: str) -> None:
    with pytest.raises(pgqueue.errors.InvalidName):
        core_app.add.using(lock=lock)
