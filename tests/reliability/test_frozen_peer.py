"""A frozen worker (SIGSTOP, a stalled VM, a half-open connection) inside its acknowledgement
transaction keeps row locks on its jobs. Rescue must skip those rows and come back for them,
rescue the rest at once, and never hold up the rescuer's own heartbeat."""

from __future__ import annotations

import time

import psycopg
import pytest

from tests.apps import core_app
from tests.helpers import wait_until
from tests.reliability.conftest import WorkerProcesses

HEARTBEAT_INTERVAL_S = 0.5
HEARTBEAT_TIMEOUT_S = 2.0


def _jobs_of_a_dead_worker(conn: psycopg.Connection, count: int) -> list[int]:
    dead = conn.execute("INSERT INTO pgqueue.workers (name, hostname, pid, concurrency, "
                        "last_heartbeat_at) VALUES ('frozen', 'h', 1, 1, now() - interval "
                        "'1 hour') RETURNING id").fetchone()[0]
    ids = [core_app.async_echo.defer(n) for n in range(count)]
    conn.execute("UPDATE pgqueue.jobs SET state = 'running', attempts = 1, worker_id = %s, "
                 "claim_token = gen_random_uuid(), started_at = now() WHERE id = ANY(%s)",
                 (dead, ids))
    return ids


def _states(conn: psycopg.Connection, ids: list[int]) -> list[str]:
    return [row[0] for row in conn.execute(
        "SELECT state::text FROM pgqueue.jobs WHERE id = ANY(%s) ORDER BY id", (ids,))]


@pytest.mark.slow
def test_rescue_skips_what_a_frozen_peer_holds_and_the_heartbeat_never_waits(
    rel_dsn: str, workers: WorkerProcesses
) -> None:
    with psycopg.connect(rel_dsn, autocommit=True) as conn:
        held = _jobs_of_a_dead_worker(conn, 3)
        free = _jobs_of_a_dead_worker(conn, 3)
        frozen = psycopg.connect(rel_dsn)  # the frozen peer's open transaction
        frozen.execute("SELECT id FROM pgqueue.jobs WHERE id = ANY(%s) FOR UPDATE", (held,))
        try:
            process = workers.start(
                rel_dsn, "--heartbeat-interval", str(HEARTBEAT_INTERVAL_S),
                "--heartbeat-timeout", str(HEARTBEAT_TIMEOUT_S))
            wait_until(lambda: "worker.started" in workers.output(process), timeout=30,
                       message="worker started")
            stalest = 0.0
            deadline = time.monotonic() + HEARTBEAT_TIMEOUT_S * 4
            while time.monotonic() < deadline:
                stalest = max(stalest, conn.execute(
                    "SELECT coalesce(max(extract(epoch FROM now() - last_heartbeat_at)), 0) "
                    "FROM pgqueue.workers WHERE name <> 'frozen'").fetchone()[0])
                if set(_states(conn, free)) == {"succeeded"}:
                    break
                time.sleep(0.05)  # sampling the heartbeat's age, not waiting on an event
            assert _states(conn, free) == ["succeeded"] * 3, workers.output(process)
            assert _states(conn, held) == ["running"] * 3
            assert stalest < HEARTBEAT_INTERVAL_S * 3, f"heartbeat {stalest:.1f} s stale"
        finally:
            frozen.close()  # the server ends the peer's transaction: its locks go
        wait_until(lambda: set(_states(conn, held)) == {"succeeded"}, timeout=15,
                   message="the held jobs rescued once their locks went")
        errors = conn.execute("SELECT DISTINCT error_type FROM pgqueue.jobs WHERE id = ANY(%s)",
                              (held + free,)).fetchall()
        assert errors == [("WorkerLost",)]
    assert process.poll() is None
