"""Waiting for jobs and workflows (issue 15, slice 4): woken by the NOTIFY a watched job's end
sends; the fallback poll is set far beyond the timeout, so only a NOTIFY can wake the waiter."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue import chain, chord
from tests.apps import canvas_app
from tests.helpers import ThreadedWorker, wait_until
from tests.integration.test_canvas import canvas_app_on_test_database  # noqa: F401 (fixture)

add, double, collect, explode = (canvas_app.add, canvas_app.double, canvas_app.collect,
                                 canvas_app.explode)
NEVER = 600.0
"""A fallback poll (and a wait timeout) that never comes within a test's join of 60 s: the waiter
can only have returned in time if a NOTIFY woke it."""


def in_background(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run `call` in a thread; its outcome (result or exception) lands in the list."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as exc:
            outcome.append(exc)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def watched(dsn: str, job_id: int) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT watched FROM pgqueue.jobs WHERE id = %s", (job_id,)).fetchone()
        return bool(row and row[0])


def test_wait_is_woken_by_notify_when_the_job_ends(
    app: pgqueue.App, dsn: str, worker_thread: Callable[..., ThreadedWorker],
) -> None:
    job = add.defer(20, 22)
    thread, outcome = in_background(lambda: app.wait(job, NEVER, poll_interval=NEVER))
    wait_until(lambda: watched(dsn, job), message="waiter watching")
    worker_thread()
    thread.join(60)
    assert outcome == [42]


def test_handle_wait_returns_the_last_result_or_the_list_after_a_group(
    app: pgqueue.App, worker_thread: Callable[..., ThreadedWorker],
) -> None:
    worker_thread()
    assert chain(add.s(1, 2), double.s()).defer().wait(60, poll_interval=NEVER) == 6
    assert chord([double.s(1), double.s(2)], collect.s("c")).defer().wait(
        60, poll_interval=NEVER) == {"label": "c", "results": [2, 4]}
    assert chain(add.s(1, 1), pgqueue.group(double.s(), add.s(5))).defer().wait(
        60, poll_interval=NEVER) == [4, 7]


def test_wait_async_is_woken_by_notify(
    app: pgqueue.App, worker_thread: Callable[..., ThreadedWorker],
) -> None:
    handle = chain(add.s(2, 3), double.s()).defer()

    async def both() -> tuple[Any, Any]:
        waits = asyncio.gather(handle.wait_async(NEVER, poll_interval=NEVER),
                               app.wait_async(handle.job_ids[0], NEVER, poll_interval=NEVER))
        await asyncio.sleep(0.2)
        worker_thread()
        return await asyncio.wait_for(waits, 60)
    assert asyncio.run(both()) == [10, 5]


def test_failed_and_cancelled_jobs_raise_typed_errors(
    app: pgqueue.App, worker_thread: Callable[..., ThreadedWorker],
) -> None:
    handle = chain(add.s(1, 1), explode.s(), double.s()).defer()
    lone = explode.defer(7)
    thread, outcome = in_background(lambda: handle.wait(NEVER, poll_interval=NEVER))
    wait_until(lambda: watched(app.dsn, handle.job_ids[-1]), message="waiter watching")
    worker = worker_thread()
    thread.join(60)
    [cancelled] = outcome  # woken by the NOTIFY of the cascade's cancel
    assert isinstance(cancelled, pgqueue.JobCancelled)
    assert cancelled.error_type == "ParentFailed"
    assert cancelled.job_id == handle.job_ids[-1]
    with pytest.raises(pgqueue.JobCancelled) as again:  # already ended: read at once
        handle.wait(1, poll_interval=NEVER)
    assert again.value.job_id == handle.job_ids[-1]
    with pytest.raises(pgqueue.JobFailed) as failed:
        app.wait(lone, 60, poll_interval=NEVER)
    assert not isinstance(failed.value, pgqueue.JobCancelled)
    assert (failed.value.job_id, failed.value.error_type) == (lone, "Fail")
    worker.stop()  # else it may run the next job before the cancel reaches it
    queued = add.defer(1, 1)
    app.cancel_job(queued)
    with pytest.raises(pgqueue.JobCancelled):
        app.wait(queued, 5)


def test_timeout_unknown_job_and_bad_arguments(app: pgqueue.App) -> None:
    job = add.defer(1, 1)
    with pytest.raises(TimeoutError):
        app.wait(job, 0.3, poll_interval=0.1)
    with pytest.raises(pgqueue.JobNotFound):
        app.wait(job + 1000, 1)
    with pytest.raises(pgqueue.ConfigurationError):
        app.wait(job, -1)
    with pytest.raises(pgqueue.ConfigurationError):
        app.wait(job, 1, poll_interval=0)


def test_only_watched_jobs_send_a_notify(
    app: pgqueue.App, dsn: str, worker_thread: Callable[..., ThreadedWorker],
) -> None:
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute("LISTEN pgqueue_done")
        unwatched, waited = add.defer(1, 2), add.defer(3, 4)
        thread, outcome = in_background(lambda: app.wait(waited, NEVER, poll_interval=NEVER))
        wait_until(lambda: watched(dsn, waited), message="waiter watching")
        worker_thread()
        thread.join(60)
        assert outcome == [7]
        assert app.get_job(unwatched).state == "succeeded"
        heard = [n.payload for n in listener.notifies(timeout=1.0)]
    assert heard == [str(waited)]
