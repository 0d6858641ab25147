"""PgQueueBackend against the documented behaviour of Django's Tasks framework (``django.tasks``
on Django 6, the ``django_tasks`` backport on 5.2)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import psycopg
import pytest
from django.db import transaction
from django.test.utils import override_settings
from django.utils import timezone
from shop import tasks as shop_tasks

from pgqueue.contrib.django import tasks_api
from pgqueue.contrib.django.app import app
from pgqueue.contrib.django.backend import PgQueueBackend
from pgqueue.contrib.django.models import Job

Status = tasks_api.TaskResultStatus


def run_worker_until_idle(**options: object) -> None:
    app.run_worker(one_shot=True, **{"concurrency": 1, **options})


@pytest.fixture
def received():
    """Signals sent while the test runs, as (signal name, sender, status)."""
    seen: list[tuple[str, type, str, str]] = []

    def receiver_for(name: str):
        def receive(sender, task_result, **kwargs):
            seen.append((name, sender, task_result.status, task_result.id))
        return receive

    receivers = {name: receiver_for(name) for name in ("enqueued", "started", "finished")}
    tasks_api.task_enqueued.connect(receivers["enqueued"])
    tasks_api.task_started.connect(receivers["started"])
    tasks_api.task_finished.connect(receivers["finished"])
    yield seen
    tasks_api.task_enqueued.disconnect(receivers["enqueued"])
    tasks_api.task_started.disconnect(receivers["started"])
    tasks_api.task_finished.disconnect(receivers["finished"])


def test_backend_declares_what_it_supports(django_db) -> None:
    backend = tasks_api.task_backends["default"]
    assert isinstance(backend, PgQueueBackend)
    assert backend.supports_defer and backend.supports_async_task
    assert backend.supports_get_result and backend.supports_priority


def test_enqueue_returns_a_ready_result_and_sends_task_enqueued(clean_jobs, received) -> None:
    result = shop_tasks.add.enqueue(2, 3)
    assert result.status == Status.READY
    assert result.id.isdigit() and result.backend == "default"
    assert (result.args, result.kwargs) == ([2, 3], {})
    assert result.enqueued_at is not None and result.started_at is None
    assert not result.is_finished and result.worker_ids == [] and result.errors == []
    with pytest.raises(ValueError, match="not finished"):
        _ = result.return_value
    assert received == [("enqueued", PgQueueBackend, Status.READY, result.id)]
    job = Job.objects.get(pk=int(result.id))
    assert (job.task_name, job.queue, job.args, job.max_attempts) == (
        "shop.tasks.add", "default", [2, 3], 1)


def test_a_worker_runs_it_and_get_result_reports_success(clean_jobs, received) -> None:
    result = shop_tasks.add.enqueue(a=20, b=22)
    run_worker_until_idle()
    fetched = shop_tasks.add.get_result(result.id)
    assert fetched.status == Status.SUCCESSFUL and fetched.is_finished
    assert fetched.return_value == 42
    assert fetched.kwargs == {"a": 20, "b": 22}
    assert fetched.enqueued_at <= fetched.started_at <= fetched.finished_at
    assert fetched.last_attempted_at == fetched.started_at
    assert fetched.errors == [] and len(fetched.worker_ids) == fetched.attempts == 1
    assert fetched.task.func is shop_tasks.add.func
    result.refresh()
    assert result.status == Status.SUCCESSFUL and result.return_value == 42
    assert [(name, sender, status) for name, sender, status, _ in received] == [
        ("enqueued", PgQueueBackend, Status.READY),
        ("started", PgQueueBackend, Status.RUNNING),
        ("finished", PgQueueBackend, Status.SUCCESSFUL),
    ]


def test_return_values_round_trip_through_json(clean_jobs) -> None:
    result = shop_tasks.shout.enqueue("hi")
    run_worker_until_idle(queues=["emails"])
    assert shop_tasks.shout.get_result(result.id).return_value == {
        "message": "HI", "parts": [1, 2]}  # the tuple comes back a list, as with Django's


def test_arguments_are_normalized_to_json(clean_jobs) -> None:
    result = shop_tasks.add.enqueue((1,), b=[2])
    assert result.args == [[1]]
    assert Job.objects.get(pk=int(result.id)).args == [[1]]


def test_arguments_that_are_not_json_raise_and_write_nothing(clean_jobs) -> None:
    with pytest.raises(TypeError):
        shop_tasks.add.enqueue(object(), 1)
    assert Job.objects.count() == 0


def test_arguments_that_do_not_fit_the_signature_raise_type_error(clean_jobs) -> None:
    with pytest.raises(TypeError, match=r"shop\.tasks\.add"):
        shop_tasks.add.enqueue(1, 2, 3)
    assert Job.objects.count() == 0


def test_a_failing_task_reports_failed_with_its_error(clean_jobs, received) -> None:
    result = shop_tasks.explode.enqueue("boom")
    run_worker_until_idle()
    fetched = shop_tasks.explode.get_result(result.id)
    assert fetched.status == Status.FAILED and fetched.is_finished
    assert len(fetched.errors) == 1
    error = fetched.errors[0]
    assert error.exception_class is ValueError
    assert error.exception_class_path == "builtins.ValueError"
    assert "ValueError: boom" in error.traceback
    with pytest.raises(ValueError, match="failed"):
        _ = fetched.return_value
    assert received[-1][:3] == ("finished", PgQueueBackend, Status.FAILED)


def test_a_return_value_over_the_cap_fails_at_once_saying_both_sizes(
    clean_jobs, received,
) -> None:
    with override_settings(PGQUEUE_RESULT_MAX_BYTES=1000):
        too_big = shop_tasks.repeat.enqueue("ab", 600)
        fits = shop_tasks.repeat.enqueue("ab", 400)
        run_worker_until_idle()
    fetched = shop_tasks.repeat.get_result(too_big.id)
    assert fetched.status == Status.FAILED
    [error] = fetched.errors
    assert error.exception_class_path == "pgqueue.errors.ResultTooLarge"
    assert "the return value is 1,202 bytes of JSON; the app's result_max_bytes is 1,000" in (
        error.traceback)
    job = Job.objects.get(pk=int(too_big.id))
    assert (job.state, job.attempts) == ("failed", 1)  # not retried
    finished = [event for event in received if event[0] == "finished"]
    assert (too_big.id, Status.FAILED) in [(event[3], event[2]) for event in finished]
    assert shop_tasks.repeat.get_result(fits.id).return_value == "ab" * 400


def test_context_carries_the_result_and_attempt(clean_jobs) -> None:
    result = shop_tasks.with_context.enqueue("ctx")
    run_worker_until_idle()
    value = shop_tasks.with_context.get_result(result.id).return_value
    assert value == {"label": "ctx", "attempt": 1, "id": result.id}


def test_async_tasks_run(clean_jobs) -> None:
    result = shop_tasks.async_add.enqueue(1, 2)
    run_worker_until_idle()
    assert shop_tasks.async_add.get_result(result.id).return_value == 3


def test_aenqueue_and_aget_result(clean_jobs) -> None:
    async def scenario():
        enqueued = await shop_tasks.add.aenqueue(5, 6)
        fetched = await shop_tasks.add.aget_result(enqueued.id)
        return enqueued, fetched

    enqueued, fetched = asyncio.run(scenario())
    assert fetched.id == enqueued.id and fetched.status == Status.READY
    run_worker_until_idle()
    assert asyncio.run(shop_tasks.add.aget_result(enqueued.id)).return_value == 11


def test_unknown_result_ids_raise_task_result_does_not_exist(clean_jobs) -> None:
    backend = tasks_api.task_backends["default"]
    for result_id in ("999999", "not-a-number", ""):
        with pytest.raises(tasks_api.TaskResultDoesNotExist):
            backend.get_result(result_id)
    native = app.get_task("shop.tasks.email_order").defer("X")
    with pytest.raises(tasks_api.TaskResultDoesNotExist, match="not a Django Task"):
        backend.get_result(str(native))


def test_get_result_of_another_task_is_a_mismatch(clean_jobs) -> None:
    result = shop_tasks.add.enqueue(1, 1)
    with pytest.raises(Exception, match="Task does not match"):
        shop_tasks.shout.get_result(result.id)


def test_priority_range_is_validated(django_db) -> None:
    for bad in (101, -101, 1.5):
        with pytest.raises(tasks_api.InvalidTaskError, match="priority"):
            shop_tasks.add.using(priority=bad)
    assert shop_tasks.add.using(priority=100).priority == 100


def test_priorities_map_onto_pgqueue_and_keep_their_order(clean_jobs) -> None:
    low = shop_tasks.add.using(priority=-100).enqueue(0, 1)
    high = shop_tasks.add.using(priority=100).enqueue(0, 2)
    middle = shop_tasks.add.using(priority=7).enqueue(0, 3)
    assert [Job.objects.get(pk=int(r.id)).priority for r in (low, high, middle)] == [
        -1000, 1000, 70]
    run_worker_until_idle()
    # By start time: outcomes acknowledged in one batch share their finished_at.
    started = sorted((shop_tasks.add.get_result(r.id) for r in (low, high, middle)),
                     key=lambda r: r.started_at)
    assert [r.return_value for r in started] == [2, 3, 1]
    assert shop_tasks.add.get_result(middle.id).task.priority == 7


def test_queue_names_are_validated_and_used(clean_jobs) -> None:
    with pytest.raises(tasks_api.InvalidTaskError, match="Queue 'nope'"):
        shop_tasks.add.using(queue_name="nope")
    result = shop_tasks.add.using(queue_name="emails").enqueue(1, 1)
    assert Job.objects.get(pk=int(result.id)).queue == "emails"
    assert shop_tasks.add.get_result(result.id).task.queue_name == "emails"


def test_run_after_defers_the_job(clean_jobs) -> None:
    with pytest.raises(tasks_api.InvalidTaskError, match="aware"):
        shop_tasks.add.using(run_after=timezone.now().replace(tzinfo=None))
    later = timezone.now() + timedelta(hours=1)
    result = shop_tasks.add.using(run_after=later).enqueue(1, 1)
    assert Job.objects.get(pk=int(result.id)).run_at == later
    run_worker_until_idle()
    fetched = shop_tasks.add.get_result(result.id)
    assert fetched.status == Status.READY and fetched.task.run_after == later


def test_task_definitions_are_validated(django_db) -> None:
    def local_function() -> None: ...

    with pytest.raises(tasks_api.InvalidTaskError, match="module level"):
        tasks_api.task(local_function)
    with pytest.raises(tasks_api.InvalidTaskError, match="context"):
        tasks_api.task(takes_context=True)(shop_tasks.add.func)


def test_enqueue_joins_the_atomic_block(clean_jobs) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        rolled_back = shop_tasks.add.enqueue(1, 2)
        raise RuntimeError
    with pytest.raises(tasks_api.TaskResultDoesNotExist):
        shop_tasks.add.get_result(rolled_back.id)
    with transaction.atomic():
        committed = shop_tasks.add.enqueue(1, 2)
        with psycopg.connect(clean_jobs.dsn) as other:
            assert other.execute("SELECT count(*) FROM pgqueue.jobs").fetchone()[0] == 0
    assert shop_tasks.add.get_result(committed.id).status == Status.READY


def test_a_worker_that_never_imported_the_task_resolves_it(clean_jobs) -> None:
    result = shop_tasks.add.enqueue(3, 4)
    registered = dict.pop(app.tasks, "shop.tasks.add")
    try:
        run_worker_until_idle()
        assert shop_tasks.add.get_result(result.id).return_value == 7
        assert dict.get(app.tasks, "shop.tasks.add") is not None
    finally:
        app.tasks["shop.tasks.add"] = registered


def test_check_reports_misconfiguration(django_db) -> None:
    backend = PgQueueBackend("custom", {"OPTIONS": {"MAX_ATTEMPS": 3, "MAX_ATTEMPTS": 0}})
    ids = [message.id for message in backend.check()]
    assert ids == ["pgqueue.E002", "pgqueue.E003"]
    assert list(tasks_api.task_backends["default"].check(databases=["default"])) == []


def test_check_reports_an_unknown_database_alias(django_db) -> None:
    from django.test import override_settings

    with override_settings(PGQUEUE_DATABASE_ALIAS="nope"):
        ids = [message.id for message in tasks_api.task_backends["default"].check()]
    assert ids == ["pgqueue.E001"]
