"""`pgqueue.contrib.django.wait_for` / `await_result`: a Django Task's result once its job ended,
woken by the NOTIFY of that end (``django.tasks`` on Django 6, the backport on 5.2).

Each wait is given a fallback poll far longer than its timeout, so only the NOTIFY can end it
in time: a wait that fell back on polling would fail with TimeoutError.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from shop import tasks as shop_tasks

from pgqueue.contrib.django import await_result, tasks_api, wait_for
from pgqueue.contrib.django.app import app
from pgqueue.errors import ConfigurationError
from tests.helpers import scalar, wait_until

Status = tasks_api.TaskResultStatus
ONLY_A_NOTIFY = {"timeout": 20, "poll_interval": 600}


@pytest.fixture
def worker_once_watched(clean_jobs) -> Iterator[callable]:
    """Start a thread that, once the job is watched (the waiter listens), runs a one-shot
    worker: the job ends only after the waiter read it unfinished."""
    threads: list[threading.Thread] = []

    def start(job_id: str) -> None:
        def run() -> None:
            try:
                wait_until(lambda: scalar(clean_jobs.dsn, "SELECT watched FROM pgqueue.jobs "
                                                          "WHERE id = %s", (int(job_id),)),
                           timeout=20, message="the waiter watching the job")
                app.run_worker(one_shot=True, concurrency=1)
            finally:
                connections.close_all()

        thread = threading.Thread(target=run, name="worker-once-watched")
        thread.start()
        threads.append(thread)

    yield start
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive()


def test_wait_for_returns_the_refreshed_result_when_the_job_ends(worker_once_watched) -> None:
    result = shop_tasks.add.enqueue(2, 3)
    worker_once_watched(result.id)
    started = time.monotonic()
    waited = wait_for(result, **ONLY_A_NOTIFY)
    assert time.monotonic() - started < ONLY_A_NOTIFY["timeout"]
    assert waited is result  # refreshed in place, as Django's refresh() does
    assert result.status == Status.SUCCESSFUL and result.is_finished
    assert result.return_value == 5
    assert result.finished_at is not None and len(result.worker_ids) == 1


def test_a_failed_task_is_returned_not_raised(worker_once_watched) -> None:
    result = shop_tasks.explode.enqueue("boom")
    worker_once_watched(result.id)
    wait_for(result, **ONLY_A_NOTIFY)
    assert result.status == Status.FAILED
    assert [e.exception_class_path for e in result.errors] == ["builtins.ValueError"]
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value


def test_await_result_on_the_event_loop(worker_once_watched) -> None:
    result = shop_tasks.add.enqueue(20, 22)
    worker_once_watched(result.id)

    async def waiting() -> object:
        # Django's sync thread (arefresh runs there) may hold a connection to an earlier test
        # module's database, dropped since: start it afresh, as a new process would.
        await sync_to_async(connections.close_all)()
        try:
            return await await_result(result, **ONLY_A_NOTIFY)
        finally:
            await app.aclose()

    assert asyncio.run(waiting()) is result
    assert (result.status, result.return_value) == (Status.SUCCESSFUL, 42)


def test_a_finished_job_returns_at_once_and_a_timeout_raises(clean_jobs) -> None:
    result = shop_tasks.add.enqueue(1, 1)
    with pytest.raises(TimeoutError):
        wait_for(result, timeout=0.2)
    assert result.status == Status.READY  # not refreshed: the wait did not end
    app.run_worker(one_shot=True, concurrency=1)
    assert wait_for(result, timeout=0).return_value == 2


def test_a_job_not_committed_yet_is_not_found(clean_jobs) -> None:
    """The waiter reads on a connection of its own: wait after the enqueueing atomic() block."""
    from django.db import transaction

    not_found = pytest.raises(tasks_api.TaskResultDoesNotExist, match="not committed yet")
    with not_found, transaction.atomic():
        wait_for(shop_tasks.add.enqueue(1, 2), timeout=5)


def test_an_unknown_job_and_a_result_of_another_kind(clean_jobs) -> None:
    result = shop_tasks.add.enqueue(1, 1)
    with connections["default"].cursor() as cursor:
        cursor.execute("DELETE FROM pgqueue.jobs")
    with pytest.raises(tasks_api.TaskResultDoesNotExist, match="no such job"):
        wait_for(result, timeout=5)
    with pytest.raises(ConfigurationError, match="Django TaskResult"):
        wait_for(object(), timeout=5)  # type: ignore[arg-type]
