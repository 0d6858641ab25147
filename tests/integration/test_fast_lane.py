"""The sync fast lane: one kept connection for single statements, the pool only on contention."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from pgqueue import App
from pgqueue.db import Database
from tests.helpers import SqlCall, wait_until

BACKEND_PID = SqlCall("SELECT pg_backend_pid()")


@pytest.fixture
def db(dsn: str) -> Iterator[Database]:
    database = Database(dsn)
    yield database
    database.close()


def test_sequential_calls_share_one_connection_and_never_open_the_pool(db: Database) -> None:
    pids = {db.run(BACKEND_PID) for _ in range(20)}
    assert len(pids) == 1
    assert db._pool is None


def test_defer_in_a_loop_uses_one_backend(dsn: str) -> None:
    app = App(dsn)

    @app.task(name="lane.noop")
    def noop(i: int) -> None: ...

    for i in range(50):
        noop.defer(i)
    with psycopg.connect(dsn) as conn:
        count = conn.execute("SELECT count(*) FROM pgqueue.jobs").fetchone()
        backends = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()").fetchone()
    assert count == (50,)
    assert backends == (1,)
    app.close()


def test_a_second_thread_does_not_wait_for_a_busy_lane(db: Database) -> None:
    started = threading.Event()
    slow_pid: list[int] = []

    def slow() -> None:
        started.set()
        slow_pid.append(db.run(SqlCall("SELECT pg_backend_pid() FROM pg_sleep(1.0)")))

    thread = threading.Thread(target=slow)
    thread.start()
    started.wait()
    wait_until(db._lane_lock.locked)
    began = time.monotonic()
    pid = db.run(BACKEND_PID)
    assert time.monotonic() - began < 0.5, "the second caller waited for the busy lane"
    assert thread.is_alive()
    thread.join()
    assert pid != slow_pid[0]
    assert db._pool is not None


def test_a_terminated_lane_connection_is_replaced_before_the_next_call(
    db: Database, dsn: str,
) -> None:
    first = db.run(BACKEND_PID)
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (first,))
    wait_until(lambda: not _still_listed(dsn, first))
    second = db.run(BACKEND_PID)  # no DatabaseUnavailable: the dead lane was noticed first
    assert second != first


def test_a_forked_child_opens_its_own_lane(db: Database) -> None:
    parent_pid = db.run(BACKEND_PID)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            os.write(write, str(db.run(BACKEND_PID)).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    child_backend = int(os.read(read, 64))
    os.close(read)
    assert child_backend != parent_pid
    assert db.run(BACKEND_PID) == parent_pid  # the parent's lane survived the child


def _still_listed(dsn: str, pid: int) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s",
                            (pid,)).fetchone() is not None
