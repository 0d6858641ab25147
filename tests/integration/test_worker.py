from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue import store
from pgqueue.worker.options import WorkerOptions
from pgqueue.worker.runner import Worker
from tests.apps import core_app
from tests.helpers import ThreadedWorker, scalar, wait_until

StartWorker = Callable[..., ThreadedWorker]


def _final(app: pgqueue.App, job_id: int, timeout: float = 10.0) -> pgqueue.Job:
    return wait_until(lambda: (job := app.get_job(job_id)).state.is_final and job,
                      timeout=timeout, message=f"job {job_id} to finish")


def _ledger(dsn: str, job_id: int) -> list[tuple[int, str | None]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT attempt, tag FROM ledger WHERE job_id = %s ORDER BY 1",
                            (job_id,)).fetchall()


def test_one_shot_runs_every_due_job_and_exits(app: pgqueue.App, dsn: str) -> None:
    ids = core_app.noop.defer_many([(n,) for n in range(50)])
    later = core_app.noop.using(delay=3600).defer(99)
    assert app.run_worker(one_shot=True, concurrency=4) == 0
    for job_id, n in zip(ids, range(50), strict=True):
        job = app.get_job(job_id)
        assert (job.state, job.result, job.attempts) == ("succeeded", n, 1)
        assert job.started_at and job.finished_at and job.finished_at >= job.started_at
        assert job.worker_id is None
    assert app.get_job(later).state == "queued"
    assert scalar(dsn, "SELECT count(*) FROM ledger") == 50


def test_sync_and_async_results_are_stored(app: pgqueue.App) -> None:
    sync_id = core_app.add.defer(2, 3)
    async_id = core_app.async_echo.defer({"nested": [1, None, "x"]})
    app.run_worker(one_shot=True)
    assert app.get_job(sync_id).result == 5
    assert app.get_job(async_id).result == {"nested": [1, None, "x"]}


def test_failures_follow_the_retry_policy_then_keep_the_traceback(
    app: pgqueue.App, dsn: str
) -> None:
    job_id = core_app.always_fails.defer()
    app.run_worker(one_shot=True, poll_interval=0.05)
    job = app.get_job(job_id)
    assert (job.state, job.attempts, job.max_attempts) == ("failed", 3, 3)
    assert job.error is not None and job.error.type == "ValueError"
    assert job.error.message == "attempt 3 failed"
    assert "raise ValueError" in (job.error.traceback or "")
    assert [a for a, _ in _ledger(dsn, job_id)] == [1, 2, 3]


def test_retry_exception_does_not_spend_an_attempt(app: pgqueue.App, dsn: str) -> None:
    job_id = core_app.retry_signal.defer()
    app.run_worker(one_shot=True, poll_interval=0.05)
    job = app.get_job(job_id)
    assert (job.state, job.result, job.attempts) == ("succeeded", "done after Retry", 1)
    assert len(_ledger(dsn, job_id)) == 2


@pytest.mark.parametrize("task", [core_app.async_too_slow, core_app.sync_too_slow],
                         ids=["async, cancelled", "sync, told through should_abort"])
def test_timeout_fails_the_attempt_and_stops_the_task(app: pgqueue.App, task: Any) -> None:
    # The task would run 30 s: finishing within 10 s proves it was stopped (the sync one only
    # stops when should_abort() turns true; its slot is held until it returns).
    job_id = task.defer()
    started = time.monotonic()
    app.run_worker(one_shot=True)
    job = app.get_job(job_id)
    assert time.monotonic() - started < 10
    assert job.state == "failed" and job.error and job.error.type == "TaskTimeout"


def test_unserialisable_return_value_fails_visibly(app: pgqueue.App) -> None:
    job_id = core_app.returns_unserialisable.defer()
    app.run_worker(one_shot=True)
    job = app.get_job(job_id)
    assert job.state == "failed" and job.error and "return value" in job.error.message


def test_stored_arguments_that_do_not_fit_fail_without_retrying(
    app: pgqueue.App, dsn: str
) -> None:
    job_id = scalar(dsn, "SELECT pgqueue.enqueue('tests.apps.core_app.add', '[1, 2, 3]')")
    app.run_worker(one_shot=True)
    job = app.get_job(job_id)
    assert (job.state, job.attempts) == ("failed", 1)
    assert job.error and job.error.type == "InvalidArguments"


def test_claims_in_priority_then_schedule_order_and_only_due_jobs(
    app: pgqueue.App, dsn: str
) -> None:
    low = core_app.noop.using(priority=-5).defer(1)
    high = core_app.noop.using(priority=5).defer(2)
    normal_first = core_app.noop.defer(3)
    normal_second = core_app.noop.defer(4)
    future = core_app.noop.using(delay=3600, priority=100).defer(5)
    app.run_worker(one_shot=True, concurrency=1)
    with psycopg.connect(dsn) as conn:
        order = [r[0] for r in conn.execute("SELECT job_id FROM ledger ORDER BY started_at")]
    assert order == [high, normal_first, normal_second, low]
    assert app.get_job(future).state == "queued"


def test_claim_is_batched_and_limited_to_free_slots(app: pgqueue.App, dsn: str) -> None:
    core_app.noop.defer_many([(n,) for n in range(10)])
    worker_id = app.db.run(store.register_worker(
        name="t", hostname="h", pid=1, queues=None, concurrency=4))
    claimed = app.db.run(store.claim_jobs(worker_id=worker_id, queues=None, limit=4))
    assert len(claimed) == 4 and len({job.claim_token for job in claimed}) == 4
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE state = 'running'") == 4


def test_queues_option_restricts_what_is_claimed(app: pgqueue.App) -> None:
    mine = core_app.noop.using(queue="mine").defer(1)
    theirs = core_app.noop.using(queue="theirs").defer(2)
    app.run_worker(one_shot=True, queues=("mine", "other"))
    assert app.get_job(mine).state == "succeeded"
    assert app.get_job(theirs).state == "queued"


def test_listen_wakes_an_idle_worker_within_milliseconds(
    app: pgqueue.App, worker_thread: StartWorker
) -> None:
    worker_thread(poll_interval=60)
    latencies = []
    for n in range(5):
        enqueued = time.monotonic()
        job_id = core_app.noop.defer(n)
        _final(app, job_id, timeout=5)
        latencies.append(time.monotonic() - enqueued)
    # The poll interval is 60 s: anything under a second came from LISTEN/NOTIFY.
    assert max(latencies) < 1.0, latencies


def test_without_listen_the_worker_polls(app: pgqueue.App, worker_thread: StartWorker) -> None:
    worker_thread(listen=False, poll_interval=0.2)
    assert _final(app, core_app.noop.defer(1), timeout=5).state == "succeeded"


def test_worker_sleeps_until_a_scheduled_job_is_due(
    app: pgqueue.App, worker_thread: StartWorker
) -> None:
    worker_thread(poll_interval=60)
    job_id = core_app.noop.using(delay=1.0).defer(1)
    job = _final(app, job_id, timeout=10)
    assert job.started_at and (job.started_at - job.run_at).total_seconds() < 1.0


def test_worker_registers_heartbeats_and_unregisters(
    app: pgqueue.App, dsn: str, worker_thread: StartWorker
) -> None:
    handle = worker_thread(name="named-worker", queues=("a", "b"), concurrency=3,
                           heartbeat_interval=0.1, heartbeat_timeout=5)
    row = wait_until(lambda: scalar(
        dsn, "SELECT row(name, queues, concurrency)::text FROM pgqueue.workers"))
    assert row == '(named-worker,"{a,b}",3)'
    first = scalar(dsn, "SELECT last_heartbeat_at FROM pgqueue.workers")
    wait_until(lambda: scalar(dsn, "SELECT last_heartbeat_at FROM pgqueue.workers") > first)
    handle.stop()
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.workers") == 0


def test_delete_jobs_successful_removes_only_succeeded_rows(app: pgqueue.App, dsn: str) -> None:
    ok = core_app.add.defer(1, 2)
    bad = core_app.returns_unserialisable.defer()
    app.run_worker(one_shot=True, delete_jobs="successful")
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE id = %s", (ok,)) == 0
    assert app.get_job(bad).state == "failed"
    core_app.returns_unserialisable.defer()
    app.run_worker(one_shot=True, delete_jobs="always")
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs") == 1


def test_delete_jobs_keeps_a_watched_row_for_its_waiter(app: pgqueue.App, dsn: str) -> None:
    watched, plain = core_app.add.defer(1, 2), core_app.add.defer(3, 4)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pgqueue.watch_jobs(ARRAY[%s]::bigint[])", (watched,))
    app.run_worker(one_shot=True, delete_jobs="always")
    assert app.get_job(watched).result == 3
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE id = %s", (plain,)) == 0


def test_claims_and_acknowledgements_are_batched(app: pgqueue.App, dsn: str) -> None:
    core_app.async_echo.defer_many([(n,) for n in range(2000)])
    commits_sql = "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
    before = scalar(dsn, commits_sql)
    app.run_worker(one_shot=True, concurrency=50)
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE state = 'succeeded'") == 2000
    # The worker's connections are closed, so their statistics are flushed. Claiming and
    # acknowledging one job per statement would take >= 4000 transactions.
    transactions = scalar(dsn, commits_sql) - before
    assert transactions < 1500, transactions


def test_cancel_queued_job_prevents_it_from_running(app: pgqueue.App, dsn: str) -> None:
    job_id = core_app.noop.defer(1)
    assert app.cancel_job(job_id) == "cancelled"
    app.run_worker(one_shot=True)
    assert app.get_job(job_id).state == "cancelled"
    assert scalar(dsn, "SELECT count(*) FROM ledger") == 0
    assert app.cancel_job(job_id) is None


def test_cancel_running_sync_job_aborts_it(
    app: pgqueue.App, dsn: str, worker_thread: StartWorker
) -> None:
    worker_thread(heartbeat_interval=5)
    job_id = core_app.sleep_for.defer(30)
    wait_until(lambda: _ledger(dsn, job_id), message="job start")
    assert app.cancel_job(job_id) == "running"
    job = _final(app, job_id, timeout=5)
    assert job.state == "cancelled"


def test_cancel_running_async_job_cancels_it(
    app: pgqueue.App, dsn: str, worker_thread: StartWorker
) -> None:
    worker_thread()
    job_id = core_app.async_sleep_for.defer(30)
    wait_until(lambda: _ledger(dsn, job_id), message="job start")
    app.cancel_job(job_id)
    assert _final(app, job_id, timeout=5).state == "cancelled"
    assert [tag for _, tag in _ledger(dsn, job_id)] == ["start"]


def test_operator_retry_queues_a_finished_job_again(app: pgqueue.App) -> None:
    job_id = core_app.always_fails.using(priority=1).defer()
    app.run_worker(one_shot=True, poll_interval=0.05)
    assert app.get_job(job_id).state == "failed"
    assert app.retry_job(job_id)
    job = app.get_job(job_id)
    assert (job.state, job.attempts) == ("queued", 0)
    assert not app.retry_job(job_id)  # queued: nothing to retry


def test_fencing_rejects_an_outcome_from_a_lost_claim(app: pgqueue.App) -> None:
    job_id = core_app.noop.defer(1)
    worker_id = app.db.run(store.register_worker(
        name="t", hostname="h", pid=1, queues=None, concurrency=1))
    first = app.db.run(store.claim_jobs(worker_id=worker_id, queues=None, limit=1))[0]
    released = app.db.run(store.release_jobs([first.id], [first.claim_token]))
    assert released == [job_id]
    second = app.db.run(store.claim_jobs(worker_id=worker_id, queues=None, limit=1))[0]
    assert second.claim_token != first.claim_token
    assert app.db.run(store.mark_succeeded([job_id], [first.claim_token], ["1"])) == []
    assert app.db.run(store.mark_failed([job_id], [first.claim_token], ["E"], ["m"], [None])) == []
    assert app.get_job(job_id).state == "running"
    assert app.db.run(store.mark_succeeded([job_id], [second.claim_token], ["2"])) == [job_id]
    assert app.get_job(job_id).result == 2


def test_jobs_of_a_dead_worker_are_rescued(app: pgqueue.App, dsn: str) -> None:
    job_id = core_app.sleep_for.defer(0)
    dead = app.db.run(store.register_worker(
        name="dead", hostname="h", pid=1, queues=None, concurrency=1))
    app.db.run(store.claim_jobs(worker_id=dead, queues=None, limit=1))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE pgqueue.workers SET last_heartbeat_at = now() - interval '1 hour'")
        conn.execute("UPDATE pgqueue.jobs SET started_at = now() - interval '1 hour'")
    assert app.db.run(store.rescue_stalled_jobs(heartbeat_timeout=30)) == [(job_id, "queued")]
    job = app.get_job(job_id)
    assert job.state == "queued" and job.attempts == 1
    assert job.error and job.error.type == "WorkerLost"
    app.run_worker(one_shot=True)
    assert (app.get_job(job_id).state, app.get_job(job_id).attempts) == ("succeeded", 2)


def test_worker_options_are_validated() -> None:
    for bad in ({"concurrency": 0}, {"poll_interval": 0}, {"queues": ()},
                {"queues": ("bad\nname",)}, {"delete_jobs": "sometimes"},
                {"heartbeat_interval": 10, "heartbeat_timeout": 5}):
        with pytest.raises((pgqueue.ConfigurationError, pgqueue.EnqueueError)):
            WorkerOptions(**bad)
    assert Worker  # the public embedding entry point


def test_task_ignoring_its_cancel_is_reported_stuck_and_keeps_its_slot(
    app: pgqueue.App, dsn: str, worker_thread: StartWorker, caplog: pytest.LogCaptureFixture
) -> None:
    worker_thread(concurrency=1, heartbeat_interval=0.1, stuck_after=0.3)
    stubborn = core_app.ignores_abort.defer(2.0)
    wait_until(lambda: _ledger(dsn, stubborn), message="job start")
    waiting = core_app.noop.defer(1)
    app.cancel_job(stubborn)
    wait_until(lambda: "job.stuck" in caplog.text, timeout=5, message="stuck report")
    assert app.get_job(waiting).state == "queued"  # the only slot is still taken
    assert _final(app, stubborn).state == "cancelled"
    assert _final(app, waiting).state == "succeeded"


def test_a_worker_restarted_under_the_same_name_rescues_its_predecessors_jobs(
    app: pgqueue.App, dsn: str, worker_thread: StartWorker
) -> None:
    job_id = core_app.sleep_for.defer(0)
    predecessor = app.db.run(store.register_worker(
        name="web-1", hostname="h", pid=1, queues=None, concurrency=1))
    app.db.run(store.claim_jobs(worker_id=predecessor, queues=None, limit=1))
    with psycopg.connect(dsn, autocommit=True) as conn:  # it died a minute ago
        conn.execute("UPDATE pgqueue.workers SET last_heartbeat_at = now() - interval '1 min'")
    worker_thread(name="web-1", heartbeat_interval=0.1, heartbeat_timeout=1)
    job = _final(app, job_id, timeout=10)
    assert (job.state, job.attempts) == ("succeeded", 2)


def test_cancel_reaches_a_worker_without_a_listener_through_its_heartbeat(
    app: pgqueue.App, dsn: str, worker_thread: StartWorker
) -> None:
    worker_thread(listen=False, poll_interval=0.1, heartbeat_interval=0.2)
    job_id = core_app.sleep_for.defer(30)
    wait_until(lambda: _ledger(dsn, job_id), message="job start")
    app.cancel_job(job_id)
    assert _final(app, job_id, timeout=5).state == "cancelled"


@pytest.mark.parametrize("task", [core_app.raises_its_own_timeout,
                                  core_app.async_raises_its_own_timeout])
def test_a_timeout_error_raised_by_the_task_is_an_ordinary_failure(
    app: pgqueue.App, task: pgqueue.Task
) -> None:
    job_id = task.defer()
    app.run_worker(one_shot=True)
    job = app.get_job(job_id)
    assert (job.state, job.attempts) == ("failed", 2)
    assert job.error and job.error.type == "TimeoutError"
    assert job.error.message == "smtp server did not answer"
