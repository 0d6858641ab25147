"""Workflows under faults, with real worker processes (issue 15, "Speed and proof"): a worker
killed inside the acknowledgement of a chord's last parent, parents ending at the same instant
on different workers, a parent rescued from a frozen worker, Postgres restarted while a chord's
parents run, and a chord of 10,000 parents over 4 workers.

Each asserts the same three things: the callback ran exactly once (the ledger counts its runs),
it received every parent's result in header order, and no job is left `blocked`."""

from __future__ import annotations

import signal
import statistics
import time

import psycopg
import pytest

from pgqueue import chord
from pgqueue.embedded import EmbeddedPostgres
from tests.apps import core_app
from tests.helpers import scalar, wait_until
from tests.reliability.conftest import WorkerProcesses

HEARTBEAT = ("--heartbeat-interval", "0.5", "--heartbeat-timeout", "3")


def _state(dsn: str, job_id: int) -> str:
    return scalar(dsn, "SELECT state::text FROM pgqueue.jobs WHERE id = %s", (job_id,))


def _parts(count: int, **options: object) -> list:
    return [core_app.chord_part.s(index, **options) for index in range(count)]


def _assert_callback_ran_once(dsn: str, callback: int, parents: int) -> None:
    assert _state(dsn, callback) == "succeeded"
    assert scalar(dsn, "SELECT count(*) FROM ledger WHERE job_id = %s AND tag = 'merge'",
                  (callback,)) == 1
    assert scalar(dsn, "SELECT result FROM pgqueue.jobs WHERE id = %s",
                  (callback,)) == list(range(parents))
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE state = 'blocked'") == 0


def _ack_waiting_on_a_lock(dsn: str) -> int | None:
    """The backend of a worker's acknowledgement connection, waiting for a row lock."""
    return scalar(dsn, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                       "AND application_name LIKE 'pgqueue worker %% ack' "
                       "AND wait_event_type = 'Lock'")


@pytest.mark.slow
@pytest.mark.parametrize("its_backend", ["dies_too", "commits"])
def test_a_worker_killed_inside_the_last_parents_acknowledgement(
    rel_dsn: str, workers: WorkerProcesses, its_backend: str,
) -> None:
    """The test holds the callback's row, so the acknowledgement that would queue it waits
    inside its transaction; the worker is killed there. Its backend then either dies too
    (the outcome is lost: the parent is rescued and runs again) or finishes the statement
    (autocommit: the outcome lands without the worker)."""
    handle = chord(_parts(6), core_app.chord_merge.s()).defer()
    callback = handle.last_job_ids[0]
    with psycopg.connect(rel_dsn) as holder:
        holder.execute("SELECT 1 FROM pgqueue.jobs WHERE id = %s FOR UPDATE", (callback,))
        victim = workers.start(rel_dsn, "-c", "6", *HEARTBEAT)
        backend = wait_until(lambda: _ack_waiting_on_a_lock(rel_dsn), timeout=30,
                             message="the last parent's acknowledgement to wait on the callback")
        # what the waiting acknowledgement holds is all that is left of the header
        assert scalar(rel_dsn, "SELECT count(*) FROM pgqueue.jobs WHERE state = 'running'") >= 1
        assert scalar(rel_dsn, "SELECT count(*) FROM pgqueue.jobs WHERE state = 'queued'") == 0
        victim.kill()
        victim.wait(10)
        if its_backend == "dies_too":
            scalar(rel_dsn, "SELECT pg_terminate_backend(%s)", (backend,))
            wait_until(lambda: not scalar(rel_dsn, "SELECT count(*) FROM pg_stat_activity "
                                                   "WHERE pid = %s", (backend,)),
                       timeout=10, message="the killed worker's backend to end")
        holder.rollback()
    workers.start(rel_dsn, "-c", "2", *HEARTBEAT)
    wait_until(lambda: _state(rel_dsn, callback) == "succeeded", timeout=60,
               message="the callback to run")
    _assert_callback_ran_once(rel_dsn, callback, 6)
    reruns = scalar(rel_dsn, "SELECT count(*) FROM pgqueue.jobs WHERE attempts = 2 "
                             "AND error_type = 'WorkerLost'")
    if its_backend == "dies_too":
        assert reruns >= 1, "the parent whose outcome was lost ran again"


@pytest.mark.slow
def test_parents_ending_at_the_same_instant_on_different_workers(
    rel_dsn: str, workers: WorkerProcesses,
) -> None:
    """Both parents wait at an advisory lock the test holds, one on each of two single-slot
    workers; the test lets go, and both acknowledgements race to queue the callback. At least
    40 rounds, and on until 5 of them had both acknowledgements start within 1 ms."""
    for _ in range(2):
        workers.start(rel_dsn, "-c", "1", "--poll-interval", "0.2")
    gaps: list[float] = []
    with psycopg.connect(rel_dsn, autocommit=True) as barrier:
        for barrier_key in range(1, 201):
            if len(gaps) >= 40 and sum(gap < 1 for gap in gaps) >= 5:
                break
            barrier.execute("SELECT pg_advisory_lock(%s)", (barrier_key,))
            handle = chord(_parts(2, barrier=barrier_key), core_app.chord_merge.s()).defer()
            wait_until(lambda key=barrier_key: scalar(
                rel_dsn, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                         "AND objid = %s AND NOT granted", (key,)) == 2,
                timeout=30, message="both parents at the barrier")
            barrier.execute("SELECT pg_advisory_unlock(%s)", (barrier_key,))
            callback = handle.last_job_ids[0]
            wait_until(lambda c=callback: _state(rel_dsn, c) == "succeeded", timeout=30,
                       message="the callback to run")
            _assert_callback_ran_once(rel_dsn, callback, 2)
            pids = scalar(rel_dsn, "SELECT count(DISTINCT pid) FROM ledger WHERE job_id = "
                                   "ANY(%s)", (list(handle.job_ids[:2]),))
            assert pids == 2, "the two parents ran on two worker processes"
            gaps.append(scalar(
                rel_dsn, "SELECT extract(epoch FROM max(finished_at) - min(finished_at))"
                         "::float8 * 1000 FROM pgqueue.jobs WHERE id = ANY(%s)",
                (list(handle.job_ids[:2]),)))
    same_ms = sum(gap < 1 for gap in gaps)
    print(f"\n[same instant] {len(gaps)} chords of 2 parents: acknowledgements {same_ms} times "
          f"within 1 ms of each other, median gap {statistics.median(gaps):.2f} ms")
    assert same_ms >= 5, "the acknowledgements seldom started within the same millisecond"


@pytest.mark.slow
def test_a_parent_rescued_from_a_frozen_worker_whose_late_ack_is_fenced(
    rel_dsn: str, workers: WorkerProcesses,
) -> None:
    handle = chord([core_app.chord_part.s(0, pause=1.5), *_parts(3)[1:]],
                   core_app.chord_merge.s()).defer()
    slow, callback = handle.job_ids[0], handle.last_job_ids[0]
    frozen = workers.start(rel_dsn, "-c", "3", *HEARTBEAT)
    wait_until(lambda: scalar(rel_dsn, "SELECT count(*) FROM pgqueue.jobs WHERE state = "
                                       "'succeeded'") == 2, timeout=30,
               message="the two quick parents to end, the slow one running")
    frozen.send_signal(signal.SIGSTOP)
    workers.start(rel_dsn, "-c", "3", *HEARTBEAT)
    wait_until(lambda: _state(rel_dsn, callback) == "succeeded", timeout=60,
               message="the slow parent rescued and run again, then the callback")
    assert scalar(rel_dsn, "SELECT attempts FROM pgqueue.jobs WHERE id = %s", (slow,)) == 2
    frozen.send_signal(signal.SIGCONT)
    wait_until(lambda: "job.outcome_rejected" in workers.output(frozen), timeout=30,
               message="the frozen worker's late acknowledgement to be refused")
    frozen.send_signal(signal.SIGTERM)
    output = workers.finish(frozen)
    assert f"job_id={slow}" in output
    _assert_callback_ran_once(rel_dsn, callback, 3)
    assert scalar(rel_dsn, "SELECT count(*) FROM ledger WHERE job_id = %s", (slow,)) == 2


@pytest.mark.slow
def test_postgres_restarted_while_a_chords_parents_run(
    own_dsn: str, own_server: EmbeddedPostgres, workers: WorkerProcesses,
) -> None:
    parents = 40
    handle = chord(_parts(parents, pause=0.1), core_app.chord_merge.s()).defer()
    callback = handle.last_job_ids[0]
    for _ in range(2):
        workers.start(own_dsn, "-c", "4", "--poll-interval", "0.5")
    wait_until(lambda: scalar(own_dsn, "SELECT count(*) FROM pgqueue.jobs WHERE state = "
                                       "'succeeded'") >= 8, timeout=30,
               message="some parents to end")
    core_app.app.close()
    own_server.stop("immediate")  # a crash: no shutdown checkpoint
    own_server.start()
    restarted_at = time.monotonic()
    wait_until(lambda: _state(own_dsn, callback) == "succeeded", timeout=120,
               message="the chord to finish after the restart")
    print(f"\n[restart] callback done {time.monotonic() - restarted_at:.1f}s after Postgres "
          "came back")
    _assert_callback_ran_once(own_dsn, callback, parents)
    assert scalar(own_dsn, "SELECT count(*) FROM pgqueue.jobs WHERE state <> 'succeeded'") == 0


@pytest.mark.slow
def test_a_chord_of_ten_thousand_parents_over_four_workers(
    rel_dsn: str, workers: WorkerProcesses,
) -> None:
    """Correctness only (its speed is measured by `python -m benchmarks chord`)."""
    parents = 10_000
    handle = chord(_parts(parents), core_app.chord_merge.s()).defer()
    for _ in range(4):
        workers.start(rel_dsn, "-c", "8", log_level="WARNING")
    callback = handle.last_job_ids[0]
    wait_until(lambda: _state(rel_dsn, callback) == "succeeded", timeout=120,
               message="the callback to run")
    _assert_callback_ran_once(rel_dsn, callback, parents)
    assert scalar(rel_dsn, "SELECT count(DISTINCT pid) FROM ledger WHERE tag = 'part'") == 4
