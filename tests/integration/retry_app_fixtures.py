"""The `app` fixture of the retry-control and dependency tests: tests/apps/retry_app.py pointed
at the test's fresh database, its call log emptied."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import pgqueue
from tests.apps import retry_app


@pytest.fixture(name="app")
def retry_app_on_test_database(dsn: str) -> Iterator[pgqueue.App]:
    retry_app.app.dsn = dsn
    retry_app.calls.clear()
    yield retry_app.app
    retry_app.app.close()


def run_one_shot(app: pgqueue.App) -> None:
    assert app.run_worker(one_shot=True, poll_interval=0.05) == 0
