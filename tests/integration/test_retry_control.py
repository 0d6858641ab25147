"""Retry control (issue 15): which exceptions retry, pgqueue.Fail, a backoff that sees the
exception, per-call retry/timeout, every attempt's error kept, and on_failure called once."""

from __future__ import annotations

import pytest

import pgqueue
from pgqueue.errors import ConfigurationError
from tests.apps import retry_app
from tests.helpers import wait_until
from tests.integration.retry_app_fixtures import (  # noqa: F401 (a fixture)
    retry_app_on_test_database,
    run_one_shot,
)


def _hook_calls(kind: str = "on_failure") -> list[object]:
    return [value for k, value in retry_app.calls if k == kind]


def test_retry_on_retries_listed_errors_until_attempts_run_out(app: pgqueue.App) -> None:
    job_id = retry_app.flaky.defer("connection")
    run_one_shot(app)
    job = wait_until(lambda: _hook_calls() and app.get_job(job_id))
    assert (job.state, job.attempts) == ("failed", 5)
    assert [e.type for e in job.errors] == ["ConnectionError"] * 5
    assert [e.attempt for e in job.errors] == [1, 2, 3, 4, 5]
    assert _hook_calls() == [(job_id, 5, "ConnectionError", "connection")]


@pytest.mark.parametrize(("kind", "error_type"), [
    ("value", "ValueError"),                   # not in retry_on
    ("refused", "ConnectionRefusedError"),     # in retry_on, but dont_retry_on wins
])
def test_errors_not_worth_a_retry_fail_at_once(
    app: pgqueue.App, kind: str, error_type: str,
) -> None:
    job_id = retry_app.flaky.defer(kind)
    run_one_shot(app)
    job = app.get_job(job_id)
    assert (job.state, job.attempts, job.max_attempts) == ("failed", 1, 5)
    assert [e.type for e in job.errors] == [error_type]
    wait_until(lambda: _hook_calls())
    assert _hook_calls() == [(job_id, 1, error_type, kind)]


def test_fail_ends_the_job_at_once_with_its_reason(app: pgqueue.App) -> None:
    job_id = retry_app.gives_up.defer("card declined")
    run_one_shot(app)
    job = app.get_job(job_id)
    assert (job.state, job.attempts, job.max_attempts) == ("failed", 1, 11)
    assert job.error is not None
    assert (job.error.type, job.error.message) == ("Fail", "card declined")


def test_backoff_callable_receives_the_exception(app: pgqueue.App) -> None:
    job_id = retry_app.fails_with_attempt.defer()
    run_one_shot(app)
    assert app.get_job(job_id).attempts == 3
    assert _hook_calls("backoff") == [(1, "KeyError", "'attempt 1'"),
                                      (2, "KeyError", "'attempt 2'")]


def test_every_attempts_error_is_kept_with_worker_and_time(app: pgqueue.App) -> None:
    job_id = retry_app.fails_with_attempt.defer()
    app.run_worker(one_shot=True, poll_interval=0.05, name="history-test")
    job = app.get_job(job_id)
    assert [(e.attempt, e.type, e.message) for e in job.errors] == [
        (1, "KeyError", "'attempt 1'"), (2, "KeyError", "'attempt 2'"),
        (3, "KeyError", "'attempt 3'")]
    assert all("raise KeyError" in (e.traceback or "") for e in job.errors)
    assert {e.worker for e in job.errors} == {"history-test"}
    assert all(e.worker_id is not None for e in job.errors)
    assert job.errors[0].at <= job.errors[1].at <= job.errors[2].at <= job.finished_at
    assert job.error is not None and job.error.message == "'attempt 3'"  # latest, as before
    listed = next(j for j in app.list_jobs() if j.id == job_id)
    assert listed.errors == job.errors


def test_a_job_that_never_failed_has_no_error_history(app: pgqueue.App) -> None:
    job_id = retry_app.succeeds.defer()
    run_one_shot(app)
    assert app.get_job(job_id).errors == ()
    assert _hook_calls() == []  # on_failure is for failures only


def test_async_on_failure_hook_runs_once(app: pgqueue.App) -> None:
    job_id = retry_app.fails_once.defer()
    run_one_shot(app)
    wait_until(lambda: _hook_calls("async_on_failure"))
    assert _hook_calls("async_on_failure") == [(job_id, "RuntimeError")]


def test_per_call_retry_and_timeout_are_stored_with_the_job(app: pgqueue.App) -> None:
    no_retry = retry_app.flaky.using(retry=0).defer("connection")
    slow = retry_app.sleeps.using(timeout=0.2, retry=False).defer(30)
    plain = retry_app.sleeps.defer(0.01)
    run_one_shot(app)
    assert (app.get_job(no_retry).state, app.get_job(no_retry).attempts) == ("failed", 1)
    timed_out = app.get_job(slow)
    assert timed_out.state == "failed"
    assert timed_out.error is not None and timed_out.error.type == "TaskTimeout"
    assert app.get_job(plain).result == "slept"
    assert retry_app.sleeps.timeout is None  # the registered task is unchanged


def test_per_call_retry_policy_is_refused_with_the_reason() -> None:
    with pytest.raises(ConfigurationError, match="declared on the task"):
        retry_app.flaky.using(retry=pgqueue.RetryPolicy(max_attempts=2))
    with pytest.raises(ConfigurationError):
        retry_app.flaky.using(timeout=-1)


def test_a_rescue_adds_worker_lost_to_the_history(app: pgqueue.App, dsn: str) -> None:
    from pgqueue import store
    from tests.helpers import scalar

    job_id = retry_app.succeeds.defer()
    scalar(dsn, "UPDATE pgqueue.jobs SET state = 'running', attempts = 1, worker_id = 424242, "
                "claim_token = gen_random_uuid() WHERE id = %s RETURNING id", (job_id,))
    assert app.db.run(store.rescue_stalled_jobs(heartbeat_timeout=30)) == [(job_id, "queued")]
    job = app.get_job(job_id)
    assert [(e.attempt, e.type, e.worker_id) for e in job.errors] == [(1, "WorkerLost", 424242)]
    assert job.errors[0].message == "worker 424242 stopped heartbeating while running attempt 1"
