"""PgQueueBackend where Django's own database backend sets the bar: a result equal to what
get_result() reads back, Django's message for a return value JSON cannot hold, pgqueue's
per-task options (attempts, timeout, unique key, lock, concurrency key), and worker logs printed
once under ``DEBUG = True``."""

from __future__ import annotations

import pytest
from django.db import transaction
from djtesting import manage
from shop import tasks as shop_tasks

from pgqueue.contrib.django import tasks_api
from pgqueue.contrib.django.app import app
from pgqueue.contrib.django.models import Job
from pgqueue.contrib.django.task_options import pgqueue_options
from pgqueue.errors import ConfigurationError

Status = tasks_api.TaskResultStatus


def test_enqueue_returns_the_rows_result(clean_jobs) -> None:
    with transaction.atomic():
        result = shop_tasks.add.enqueue(1, 2)
        job = Job.objects.get(pk=int(result.id))
        assert result.enqueued_at == job.enqueued_at  # the database's clock, not Python's
        assert result == shop_tasks.add.get_result(result.id)
    later = shop_tasks.shout.using(priority=-7).enqueue("x")
    assert later == shop_tasks.shout.get_result(later.id)
    assert later.task.priority == -7 and later.task.queue_name == "emails"


def test_a_return_value_json_cannot_hold_fails_with_djangos_message(clean_jobs) -> None:
    result = shop_tasks.returns_a_set.enqueue()
    app.run_worker(one_shot=True)
    fetched = shop_tasks.returns_a_set.get_result(result.id)
    assert fetched.status == Status.FAILED
    assert fetched.errors[0].exception_class_path == "builtins.TypeError"
    assert "TypeError: Object of type set is not JSON serializable" in (
        fetched.errors[0].traceback)


def test_per_task_attempts_and_timeout(clean_jobs) -> None:
    result = shop_tasks.send_receipt.enqueue("R-1", customer="ada")
    job = Job.objects.get(pk=int(result.id))
    assert job.max_attempts == 3
    registered = app.get_task("shop.tasks.send_receipt")
    assert (registered.retry.max_attempts, registered.timeout) == (3, 20)
    assert (job.unique_key, job.lock, job.concurrency_key) == (
        "receipt-R-1", "customer-ada", "ada")


def test_unique_key_returns_the_unfinished_jobs_result(clean_jobs) -> None:
    first = shop_tasks.send_receipt.enqueue("R-2")
    again = shop_tasks.send_receipt.enqueue(reference="R-2")
    assert again.id == first.id and Job.objects.count() == 1
    app.run_worker(one_shot=True)
    assert shop_tasks.send_receipt.get_result(first.id).return_value == "R-2"
    after = shop_tasks.send_receipt.enqueue("R-2")  # the key is free once the job finished
    assert after.id != first.id


def test_a_lock_makes_jobs_of_one_customer_wait_their_turn(clean_jobs) -> None:
    first = shop_tasks.send_receipt.enqueue("R-3", customer="bob")
    second = shop_tasks.send_receipt.enqueue("R-4", customer="bob")
    other = shop_tasks.send_receipt.enqueue("R-5", customer="eve")
    states = dict(Job.objects.values_list("id", "state"))
    assert states == {int(first.id): "queued", int(second.id): "waiting",
                      int(other.id): "queued"}
    assert shop_tasks.send_receipt.get_result(second.id).status == Status.READY
    app.run_worker(one_shot=True)
    assert set(Job.objects.values_list("state", flat=True)) == {"succeeded"}


def test_options_are_checked_when_declared() -> None:
    with pytest.raises(ConfigurationError, match="above @task"):
        pgqueue_options(max_attempts=2)(lambda: None)
    with pytest.raises(ConfigurationError):
        pgqueue_options(max_attempts=0)
    with pytest.raises(ConfigurationError, match="template or a function"):
        pgqueue_options(lock=42)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        pgqueue_options(timeout=float("nan"))


def test_worker_logs_are_printed_once_with_debug(clean_jobs) -> None:
    """Django 6.1 prints django.tasks' lines itself when DEBUG is on, and the test project's
    LOGGING prints pgqueue's warnings: the worker's own handler must not print either again
    (on 5.2 the backport's logger is outside ``django``: once as well)."""
    result = shop_tasks.add.enqueue(5, 6)
    failing = shop_tasks.explode.enqueue("once")
    run = manage(clean_jobs, "pgqueue", "--log-level", "INFO", "worker", "--one-shot",
                 env={"PGQUEUE_TEST_DEBUG": "1"})
    assert run.returncode == 0, run.stderr
    lines = [line for line in (run.stdout + run.stderr).splitlines()
             if f"id={result.id} " in line and "SUCCESSFUL" in line]
    assert len(lines) == 1, lines
    failed = [line for line in (run.stdout + run.stderr).splitlines()
              if "job.failed" in line and f"job_id={failing.id}" in line]
    assert len(failed) == 1, failed  # pgqueue's line: the project's handler prints it
