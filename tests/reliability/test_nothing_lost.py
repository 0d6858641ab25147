"""Fault-injection scenarios: every committed job reaches a final state, none stays running past
the rescue budget, and duplicates happen only after a crash and are visible (attempts, ledger).

Recovery times are printed (`-s`) so they can be quoted."""

from __future__ import annotations

import signal
import time

import psycopg
import pytest

from pgqueue.embedded import EmbeddedPostgres
from tests.apps import core_app
from tests.helpers import scalar, wait_until
from tests.reliability.conftest import WorkerProcesses

HEARTBEAT = ("--heartbeat-interval", "0.5", "--heartbeat-timeout", "3")


def _rows(dsn: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def _state(dsn: str, job_id: int) -> str:
    return scalar(dsn, "SELECT state::text FROM pgqueue.jobs WHERE id = %s", (job_id,))


def _all_final(dsn: str) -> bool:
    return scalar(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE state IN ('queued', "
                       "'running')") == 0


@pytest.mark.slow
def test_1_ten_thousand_jobs_8_processes_8_slots_each_run_exactly_once(
    rel_dsn: str, workers: WorkerProcesses
) -> None:
    core_app.noop.defer_many([(n,) for n in range(10_000)])
    started = time.monotonic()
    processes = [workers.start(rel_dsn, "--one-shot", "-c", "8", log_level="WARNING")
                 for _ in range(8)]
    for process in processes:
        output = workers.finish(process, timeout=600)
        assert process.returncode == 0, output
    print(f"\n[scenario 1] 10,000 jobs over 8x8 slots in {time.monotonic() - started:.1f}s")
    runs = _rows(rel_dsn, "SELECT count(*), count(DISTINCT job_id), max(n) FROM "
                          "(SELECT job_id, count(*) AS n FROM ledger GROUP BY job_id) per_job")
    assert runs == [(10_000, 10_000, 1)]
    assert _all_final(rel_dsn)


@pytest.mark.slow
def test_2_chains_enqueue_successors_atomically_even_across_a_crash(
    rel_dsn: str, workers: WorkerProcesses
) -> None:
    chains, steps = 20, 15
    core_app.chain_link.defer_many([(chain, 1, steps, 0.02) for chain in range(chains)])
    victim = workers.start(rel_dsn, "-c", "4", *HEARTBEAT)
    survivor = workers.start(rel_dsn, "-c", "4", *HEARTBEAT)
    wait_until(lambda: scalar(rel_dsn, "SELECT count(*) FROM chain_steps") > chains * 3,
               timeout=60, message="chains under way")
    victim.kill()  # kill -9 in the middle of the chains
    wait_until(lambda: scalar(rel_dsn, "SELECT count(*) FROM chain_steps") == chains * steps
               and _all_final(rel_dsn), timeout=120, message="every chain to finish")
    counters = _rows(rel_dsn, "SELECT min(runs), max(runs), count(*) FROM chain_steps")
    assert counters == [(1, 1, chains * steps)]
    assert survivor.poll() is None


@pytest.mark.slow
def test_3_kill_9_with_a_long_job_and_prefetched_jobs_all_run_again_within_budget(
    rel_dsn: str, workers: WorkerProcesses
) -> None:
    ids = [core_app.sleep_for.defer(30) for _ in range(4)]
    victim = workers.start(rel_dsn, "-c", "4", *HEARTBEAT)
    wait_until(lambda: scalar(rel_dsn, "SELECT count(*) FROM ledger") == 4, timeout=30,
               message="all four jobs claimed and started")
    rescuer = workers.start(rel_dsn, "-c", "4", *HEARTBEAT)
    victim.kill()
    killed_at = time.monotonic()
    wait_until(lambda: scalar(rel_dsn, "SELECT count(*) FROM ledger WHERE attempt = 2") == 4,
               timeout=60, message="every job started again")
    recovery = time.monotonic() - killed_at
    print(f"\n[scenario 3] kill -9: all 4 jobs running again after {recovery:.1f}s "
          "(heartbeat timeout 3s, interval 0.5s)")
    assert recovery < 3 + 3 + 2  # timeout, plus the rescuer's own health grace, plus slack
    for job_id in ids:
        error = scalar(rel_dsn, "SELECT error_type FROM pgqueue.jobs WHERE id = %s", (job_id,))
        assert error == "WorkerLost"
    assert rescuer.poll() is None


@pytest.mark.slow
def test_4_a_frozen_worker_that_wakes_up_cannot_overwrite_the_rerun(
    rel_dsn: str, workers: WorkerProcesses
) -> None:
    job_id = core_app.sleep_for.defer(1.5)
    frozen = workers.start(rel_dsn, "-c", "1", *HEARTBEAT)
    wait_until(lambda: scalar(rel_dsn, "SELECT count(*) FROM ledger"), timeout=30,
               message="job start")
    frozen.send_signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    workers.start(rel_dsn, "-c", "1", *HEARTBEAT)
    wait_until(lambda: _state(rel_dsn, job_id) == "succeeded", timeout=60,
               message="rerun to succeed")
    print(f"\n[scenario 4] frozen worker's job rerun and done {time.monotonic() - stopped_at:.1f}s "
          "after SIGSTOP")
    assert scalar(rel_dsn, "SELECT attempts FROM pgqueue.jobs WHERE id = %s", (job_id,)) == 2
    finished_at = scalar(rel_dsn, "SELECT finished_at FROM pgqueue.jobs WHERE id = %s", (job_id,))
    frozen.send_signal(signal.SIGCONT)
    wait_until(lambda: scalar(rel_dsn, "SELECT count(*) FROM ledger WHERE tag = 'end'") == 2,
               timeout=30, message="the frozen attempt to finish its work")
    frozen.send_signal(signal.SIGTERM)
    output = workers.finish(frozen)
    assert "job.outcome_rejected" in output and f"job_id={job_id}" in output
    row = _rows(rel_dsn, "SELECT state::text, attempts, finished_at FROM pgqueue.jobs "
                         "WHERE id = %s", (job_id,))
    assert row == [("succeeded", 2, finished_at)]  # untouched by the late completion


@pytest.mark.slow
def test_5_sigterm_mid_batch_finishes_in_flight_jobs_and_claims_nothing_new(
    rel_dsn: str, workers: WorkerProcesses
) -> None:
    in_flight = [core_app.sleep_for.defer(1.0) for _ in range(4)]
    worker = workers.start(rel_dsn, "-c", "4")
    wait_until(lambda: scalar(rel_dsn, "SELECT count(*) FROM ledger") == 4, timeout=30,
               message="batch under way")
    waiting = core_app.noop.defer_many([(n,) for n in range(20)])
    worker.send_signal(signal.SIGTERM)
    output = workers.finish(worker)
    assert worker.returncode == 0, output
    assert {_state(rel_dsn, job_id) for job_id in in_flight} == {"succeeded"}
    assert {_state(rel_dsn, job_id) for job_id in waiting} == {"queued"}


def _listener_pids(dsn: str) -> list[int]:
    return [row[0] for row in _rows(
        dsn, "SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN%%' "
             "AND datname = current_database()")]


def _wake_latency(dsn: str) -> float:
    enqueued = time.monotonic()
    job_id = core_app.noop.defer(1)
    wait_until(lambda: _state(dsn, job_id) == "succeeded", timeout=30, interval=0.002,
               message="job to run")
    return time.monotonic() - enqueued


@pytest.mark.slow
def test_6_listener_killed_and_postgres_restarted_wake_ups_come_back(
    own_dsn: str, own_server: EmbeddedPostgres, workers: WorkerProcesses
) -> None:
    workers.start(own_dsn, "-c", "2", "--poll-interval", "2")
    wait_until(lambda: _listener_pids(own_dsn), timeout=30, message="listener")
    assert _wake_latency(own_dsn) < 0.5

    with psycopg.connect(own_dsn, autocommit=True) as conn:
        for pid in _listener_pids(own_dsn):
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    first = _wake_latency(own_dsn)
    assert first < 2 + 1, first  # within the poll interval even while deaf
    wait_until(lambda: _listener_pids(own_dsn), timeout=30, message="listener reconnect")
    after_reconnect = min(_wake_latency(own_dsn) for _ in range(3))
    assert after_reconnect < 0.5, after_reconnect

    restarted_at = time.monotonic()
    own_server.restart()
    core_app.app.close()
    first_after_restart = _wake_latency(own_dsn)
    wait_until(lambda: _listener_pids(own_dsn), timeout=30, message="listener after restart")
    listen_back = time.monotonic() - restarted_at
    after_restart = min(_wake_latency(own_dsn) for _ in range(3))
    print(f"\n[scenario 6] listener killed: next job in {first:.2f}s, LISTEN latency back to "
          f"{after_reconnect * 1000:.0f} ms; Postgres restart: first job in "
          f"{first_after_restart:.2f}s, LISTEN back after {listen_back:.1f}s, latency "
          f"{after_restart * 1000:.0f} ms")
    assert after_restart < 0.5, after_restart


@pytest.mark.slow
def test_7_postgres_down_for_30_seconds_mid_job_the_job_succeeds_exactly_once(
    own_dsn: str, own_server: EmbeddedPostgres, workers: WorkerProcesses
) -> None:
    job_id = core_app.sleep_for.defer(3, record_end=False)  # no database use after start
    worker = workers.start(own_dsn, "-c", "1", *HEARTBEAT)
    wait_until(lambda: scalar(own_dsn, "SELECT count(*) FROM ledger"), timeout=30,
               message="job start")
    core_app.app.close()
    own_server.stop()
    time.sleep(32)  # the outage itself is the point of the test
    own_server.start()
    back_at = time.monotonic()
    wait_until(lambda: _state(own_dsn, job_id) == "succeeded", timeout=60,
               message="the job's completion to land")
    print(f"\n[scenario 7] 32s outage: completion landed {time.monotonic() - back_at:.1f}s "
          "after Postgres came back")
    assert _rows(own_dsn, "SELECT tag FROM ledger") == [("start",)]
    assert scalar(own_dsn, "SELECT attempts FROM pgqueue.jobs WHERE id = %s", (job_id,)) == 1
    assert worker.poll() is None
    worker.send_signal(signal.SIGTERM)
    output = workers.finish(worker)
    warnings = [line for line in output.splitlines() if "WARNING" in line]
    assert len(warnings) < 40, "an outage must not flood the log"


@pytest.mark.slow
def test_8_poison_job_that_kills_its_process_fails_after_max_attempts_without_crash_loop(
    rel_dsn: str, workers: WorkerProcesses
) -> None:
    poison = core_app.hard_exit.defer()
    healthy = core_app.noop.defer_many([(n,) for n in range(20)])
    supervisor = workers.start(rel_dsn, "--supervise", "-c", "1", *HEARTBEAT)
    wait_until(lambda: _state(rel_dsn, poison) == "failed", timeout=60,
               message="poison job to fail")
    wait_until(lambda: all(_state(rel_dsn, j) == "succeeded" for j in healthy), timeout=60,
               message="healthy jobs to run")
    assert scalar(rel_dsn, "SELECT count(*) FROM ledger WHERE tag = 'hard_exit'") == 2
    error = _rows(rel_dsn, "SELECT error_type, attempts FROM pgqueue.jobs WHERE id = %s",
                  (poison,))
    assert error == [("WorkerLost", 2)]
    assert supervisor.poll() is None
    supervisor.send_signal(signal.SIGTERM)
    output = workers.finish(supervisor)
    assert supervisor.returncode == 0, output
    assert output.count("supervisor.worker_died") == 2


@pytest.mark.parametrize("kind", ["memory", "exit", "interrupt"])
def test_8_base_exceptions_in_tasks_fail_the_job_not_the_worker(
    rel_dsn: str, kind: str
) -> None:
    sync_job = core_app.raises_base_exception.defer(kind)
    async_job = core_app.async_raises_base_exception.defer(kind)
    after = core_app.noop.defer(1)
    assert core_app.app.run_worker(one_shot=True, concurrency=2, poll_interval=0.1) == 0
    for job_id in (sync_job, async_job):
        row = _rows(rel_dsn, "SELECT state::text, attempts FROM pgqueue.jobs WHERE id = %s",
                    (job_id,))
        assert row == [("failed", 2)]
    assert _state(rel_dsn, after) == "succeeded"
