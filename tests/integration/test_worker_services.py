"""Background services are supervised one way: a service that dies is logged and restarted
with backoff; one that keeps dying stops the worker cleanly (exit 1), never leaving it claiming
with a dead service."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import pgqueue
from pgqueue.worker import services
from pgqueue.worker.runner import EXIT_SERVICE_FAILED
from tests.apps import core_app
from tests.helpers import ThreadedWorker, scalar, wait_until


@pytest.fixture
def extra_service(app: pgqueue.App) -> Iterator[Callable[[Any], None]]:
    added: list[Any] = []

    def add(service: Any) -> None:
        app.worker_services.append(service)
        added.append(service)

    yield add
    for service in added:
        app.worker_services.remove(service)


@pytest.fixture(autouse=True)
def quick_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "FIRST_RESTART_DELAY", 0.01)


def test_a_service_that_dies_is_restarted_and_jobs_keep_running(
    app: pgqueue.App, dsn: str, worker_thread: Callable[..., ThreadedWorker],
    extra_service: Callable[[Any], None], caplog: pytest.LogCaptureFixture,
) -> None:
    starts: list[int] = []

    async def flaky(worker: Any) -> None:
        starts.append(1)
        if len(starts) <= 2:
            raise RuntimeError(f"flaky service, start {len(starts)}")
        await asyncio.Event().wait()

    extra_service(flaky)
    caplog.set_level(logging.ERROR, logger="pgqueue.worker")
    handle = worker_thread(concurrency=2)
    wait_until(lambda: len(starts) == 3, message="the service restarted twice")
    job_id = core_app.add.defer(1, b=2)
    wait_until(lambda: app.get_job(job_id).state == "succeeded", message="job ran")
    died = [r for r in caplog.records if "worker.service_died" in r.getMessage()]
    assert len(died) == 2 and "service=flaky" in died[0].getMessage()
    assert handle.thread.is_alive()


def test_a_service_that_keeps_dying_stops_the_worker_cleanly(
    app: pgqueue.App, dsn: str, worker_thread: Callable[..., ThreadedWorker],
    extra_service: Callable[[Any], None],
) -> None:
    async def broken(worker: Any) -> None:
        raise RuntimeError("broken for good")

    extra_service(broken)
    handle = worker_thread(concurrency=1)
    handle.thread.join(30)
    assert not handle.thread.is_alive()
    assert handle.exit_codes == [EXIT_SERVICE_FAILED]
    assert scalar(dsn, "SELECT count(*) FROM pgqueue.workers") == 0  # unregistered
