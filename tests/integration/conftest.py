from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

import pgqueue
from tests.apps import core_app
from tests.helpers import ThreadedWorker, start_worker_thread


@pytest.fixture
def app(dsn: str) -> Iterator[pgqueue.App]:
    """The test task app (tests/apps/core_app.py) pointed at the fresh database, with a ledger."""
    core_app.app.dsn = dsn
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(core_app.LEDGER_DDL)
    yield core_app.app
    core_app.app.close()
    core_app.close_ledger_pools()


@pytest.fixture
def worker_thread(app: pgqueue.App) -> Iterator[Callable[..., ThreadedWorker]]:
    """Start real workers in background threads; each is stopped after the test."""
    started: list[ThreadedWorker] = []

    def start(**options: Any) -> ThreadedWorker:
        options.setdefault("poll_interval", 30.0)  # prove wake-ups come from LISTEN
        handle = start_worker_thread(app, **options)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        if handle.thread.is_alive():
            handle.stop()
