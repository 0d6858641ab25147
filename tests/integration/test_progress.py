"""Progress, meta and result size on a real database (pgqueue.progress, pgqueue.worker.progress):
reports are coalesced (thousands of calls, a handful of UPDATEs), shown while the job runs,
written with the outcome, fenced by the claim token, forwarded from process-pool children; a
result over the cap fails its attempt without retrying; results go with their row."""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

import pgqueue
from pgqueue import store
from pgqueue.maintenance.retention import RetentionPolicy, prune
from pgqueue.progress import ProgressUpdate
from tests.apps import progress_app
from tests.helpers import ThreadedWorker, scalar, wait_until

StartWorker = Callable[..., ThreadedWorker]
WRITES_DDL = """
CREATE TABLE progress_writes (job_id bigint, progress float8);
CREATE FUNCTION log_progress_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO progress_writes (job_id, progress) VALUES (NEW.id, NEW.progress);
    RETURN NEW;
END $$;
CREATE TRIGGER log_progress_write AFTER UPDATE ON pgqueue.jobs
    FOR EACH ROW EXECUTE FUNCTION log_progress_write();
"""
"""Every UPDATE of a job row, logged: claims, progress writes and acknowledgements alike."""


@pytest.fixture
def app(dsn: str) -> Iterator[pgqueue.App]:
    """The progress test app (the conftest's worker_thread runs workers of it)."""
    progress_app.app.dsn = dsn
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(WRITES_DDL)
    yield progress_app.app
    progress_app.app.close()


def _finished(app: pgqueue.App, job_id: int) -> pgqueue.Job:
    return wait_until(lambda: (job := app.get_job(job_id)).state.is_final and job,
                      timeout=60, message=f"job {job_id} finished")


def _row_updates(dsn: str, job_id: int) -> int:
    return scalar(dsn, "SELECT count(*) FROM progress_writes WHERE job_id = %s", (job_id,))


@pytest.mark.parametrize("task", [progress_app.report_many, progress_app.report_many_async,
                                  progress_app.report_many_in_child],
                         ids=["thread", "async", "process"])
def test_ten_thousand_reports_cost_a_handful_of_updates(
    app: pgqueue.App, dsn: str, worker_thread: StartWorker, task: pgqueue.Task,
) -> None:
    job_id = task.defer(10_000, seconds=1.0)  # 100 pauses: each a chance to write
    worker_thread(progress_interval=0.25)
    job = _finished(app, job_id)
    assert job.state == "succeeded" and job.result == 10_000
    assert (job.progress, job.progress_message) == (1.0, "10000 of 10000")
    assert job.meta is not None and job.meta["items"] == 10_000 and job.progress_at is not None
    # the claim, the acknowledgement, the final report (in the acknowledgement's transaction)
    # and one write per 0.25 s interval while the loop ran (about 1 s; without coalescing,
    # one per pause: over 100)
    assert job.started_at is not None and job.finished_at is not None
    intervals = math.ceil((job.finished_at - job.started_at).total_seconds() / 0.25)
    updates = _row_updates(dsn, job_id)
    assert 4 <= updates <= 3 + intervals + 1, (updates, intervals)


def test_a_job_with_no_reports_writes_nothing_more(
    app: pgqueue.App, dsn: str, worker_thread: StartWorker,
) -> None:
    job_id = progress_app.sized_result.defer(10)
    worker_thread()
    job = _finished(app, job_id)
    assert job.progress is None and job.meta is None and job.progress_at is None
    assert _row_updates(dsn, job_id) == 2  # claim, acknowledgement


@pytest.mark.parametrize("task", [progress_app.report_then_wait,
                                  progress_app.report_then_wait_in_child],
                         ids=["thread", "process"])
def test_progress_shows_while_the_job_runs_and_its_last_value_stays(
    app: pgqueue.App, worker_thread: StartWorker, tmp_path: Path, task: pgqueue.Task,
) -> None:
    flag = tmp_path / "go"
    job_id = task.defer(str(flag))
    worker_thread(progress_interval=0.05)
    running = wait_until(lambda: (job := app.get_job(job_id)).progress is not None and job,
                         message="progress written while running")
    assert running.state == "running" and running.progress == 0.4
    assert running.progress_message is not None
    flag.touch()
    job = _finished(app, job_id)
    assert job.state == "succeeded" and job.progress in (1.0, 0.9)
    assert job.progress_message in ("done", "almost")


def test_the_views_show_running_jobs_progress(
    app: pgqueue.App, dsn: str, worker_thread: StartWorker, tmp_path: Path,
) -> None:
    flag = tmp_path / "go"
    job_id = progress_app.report_then_wait.defer(str(flag))
    worker_thread(progress_interval=0.05)
    # set_progress and set_meta are two calls: a flush may fall between them.
    wait_until(lambda: app.get_job(job_id).meta is not None, message="progress and meta written")
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT progress, progress_message, worker_name FROM "
                           "pgqueue.running_jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None and row[:2] == (0.4, "resized 40 of 100") and row[2]
    assert app.get_job(job_id).meta == {"stage": "resize"}
    flag.touch()
    _finished(app, job_id)


def test_a_stale_claim_cannot_write_progress(app: pgqueue.App, dsn: str) -> None:
    """A worker whose job was rescued (its heartbeat stopped) and claimed again by another
    still holds the old claim token: its writes land nowhere, the new holder's do."""
    job_id = progress_app.report_many.defer(1)
    db = app.db
    frozen = db.run(store.register_worker(name="frozen", hostname="h", pid=1, queues=None,
                                          concurrency=1))
    [stale] = db.run(store.claim_jobs(worker_id=frozen, queues=None, limit=1))
    assert db.run(store.set_progress([stale], [ProgressUpdate(0.1, "early")])) == [job_id]
    db.run(store.mark_worker_dead(hostname="h", pid=1))
    assert db.run(store.rescue_stalled_jobs(heartbeat_timeout=30)) == [(job_id, "queued")]
    rescuer = db.run(store.register_worker(name="rescuer", hostname="h", pid=2, queues=None,
                                           concurrency=1))
    [fresh] = db.run(store.claim_jobs(worker_id=rescuer, queues=None, limit=1))
    assert fresh.claim_token != stale.claim_token
    assert db.run(store.set_progress(
        [stale], [ProgressUpdate(0.9, "stale", {"who": "frozen"})])) == []
    job = app.get_job(job_id)
    assert (job.progress, job.progress_message, job.meta) == (0.1, "early", None)
    assert db.run(store.set_progress([fresh], [ProgressUpdate(meta={"who": "rescuer"})])) == [
        job_id]
    job = app.get_job(job_id)  # meta alone keeps the progress
    assert (job.progress, job.progress_message, job.meta) == (0.1, "early", {"who": "rescuer"})
    forged = dataclasses.replace(fresh, claim_token=uuid.uuid4())
    assert db.run(store.set_progress([forged], [ProgressUpdate(0.5)])) == []


@pytest.mark.parametrize("task", [progress_app.sized_result, progress_app.sized_result_in_child],
                         ids=["thread", "process"])
def test_a_result_over_the_cap_fails_at_once_and_the_worker_goes_on(
    app: pgqueue.App, worker_thread: StartWorker, task: pgqueue.Task,
) -> None:
    too_big = task.defer(progress_app.RESULT_CAP + 1)
    worker_thread()
    job = _finished(app, too_big)
    assert job.state == "failed" and job.attempts == 1 < job.max_attempts  # not retried
    assert job.error is not None and job.error.type == "ResultTooLarge"
    assert f"{progress_app.RESULT_CAP + 3:,} bytes" in job.error.message  # "x"*n and quotes
    assert f"result_max_bytes is {progress_app.RESULT_CAP:,}" in job.error.message
    assert job.result is None
    fits = task.defer(progress_app.RESULT_CAP - 2)
    assert _finished(app, fits).result == "x" * (progress_app.RESULT_CAP - 2)


def test_reports_that_cannot_be_stored_raise_in_the_task(
    app: pgqueue.App, worker_thread: StartWorker,
) -> None:
    bad_progress = progress_app.bad_report.defer("progress")
    bad_meta = progress_app.bad_report.defer("meta")
    worker_thread()
    assert _finished(app, bad_progress).result == "InvalidProgress"
    assert _finished(app, bad_meta).result == "InvalidMeta"


def test_results_go_with_their_row_when_retention_prunes_it(
    app: pgqueue.App, dsn: str, worker_thread: StartWorker,
) -> None:
    job_id = progress_app.report_many.defer(3)
    handle = worker_thread()
    assert _finished(app, job_id).result == 3
    handle.stop()
    policy = RetentionPolicy(keep_succeeded=3600)
    assert prune(app.db, policy) == 0  # younger than its state's age: kept, result and all
    assert app.get_job(job_id).result == 3
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE pgqueue.jobs SET finished_at = now() - interval '2 hours' "
                     "WHERE id = %s", (job_id,))
    assert prune(app.db, policy) == 1
    with pytest.raises(pgqueue.JobNotFound):
        app.get_job(job_id)
    with pytest.raises(pgqueue.JobNotFound):
        app.wait(job_id, timeout=5)


def test_a_worker_whose_job_was_rescued_writes_no_progress_over_the_new_holder(
    app: pgqueue.App, dsn: str, worker_thread: StartWorker, tmp_path: Path,
) -> None:
    """A real worker's job is rescued mid-run (its worker marked dead, as after a freeze) and
    claimed by another: what the first task reports afterwards, and its outcome, land nowhere."""
    flag = tmp_path / "go"
    job_id = progress_app.report_then_wait.defer(str(flag))
    handle = worker_thread(progress_interval=0.05)
    wait_until(lambda: app.get_job(job_id).progress == 0.4, message="first report written")
    db = app.db
    db.run(store.mark_worker_dead(hostname=socket.gethostname(), pid=os.getpid()))
    assert db.run(store.rescue_stalled_jobs(heartbeat_timeout=30)) == [(job_id, "queued")]
    rescuer = db.run(store.register_worker(name="rescuer", hostname="elsewhere", pid=1,
                                           queues=None, concurrency=1))
    [fresh] = db.run(store.claim_jobs(worker_id=rescuer, queues=None, limit=1))
    assert fresh.id == job_id
    writes_before = _row_updates(dsn, job_id)
    flag.touch()  # the first task reports 1.0 "done" and returns
    wait_until(lambda: handle.worker.completer.idle and not handle.worker.running,
               message="the stale worker finished its attempt")
    job = app.get_job(job_id)
    assert (job.state, job.claim_token) == ("running", fresh.claim_token)
    assert (job.progress, job.progress_message) == (0.4, "resized 40 of 100")
    assert _row_updates(dsn, job_id) == writes_before
