"""Helpers shared by the engine tests: waiting with deadlines, workers in threads and the real
CLI in subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg

import pgqueue
from pgqueue.worker.options import WorkerOptions
from pgqueue.worker.runner import Worker

REPO_ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


@dataclass(frozen=True)
class SqlCall:
    """A `pgqueue.db.Call`-alike for ad-hoc SQL returning one value (the database layer only
    reads these attributes)."""

    sql: str
    params: dict[str, Any] = field(default_factory=dict)
    query_name: str = "test"
    tuples: bool = True

    @staticmethod
    def decode(rows: list[tuple[Any, ...]]) -> Any:
        return rows[0][0]


def wait_until(predicate: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.01,
               message: str = "condition") -> T:
    """Poll `predicate` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


@contextmanager
def app_on(app: pgqueue.App, dsn: str) -> Iterator[pgqueue.App]:
    """A module-level test app pointed at this test's database, its connections closed after."""
    app.dsn = dsn
    try:
        yield app
    finally:
        app.close()


def scalar(dsn: str, sql: str, params: Sequence[Any] = ()) -> Any:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(sql, params).fetchone()
        return row[0] if row else None


@dataclass
class ThreadedWorker:
    """A real Worker running its event loop in a background thread of the test process."""

    worker: Worker
    thread: threading.Thread
    exit_codes: list[int] = field(default_factory=list)

    def stop(self, timeout: float = 30.0) -> None:
        self.worker.stop_threadsafe()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "worker thread did not stop"


def start_worker_thread(app: pgqueue.App, **options: Any) -> ThreadedWorker:
    worker = Worker(app, WorkerOptions(**options))
    handle = ThreadedWorker(worker, threading.Thread(target=lambda: None))

    def run() -> None:
        handle.exit_codes.append(worker.run())

    handle.thread = threading.Thread(target=run, name="test-worker", daemon=True)
    handle.thread.start()
    wait_until(worker.ready.is_set, message="worker ready")
    return handle


def cli_env(dsn: str | None = None, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("PGQUEUE_APP", None)
    env.update(extra)
    if dsn is not None:
        env["PGQUEUE_DSN"] = dsn
    return env


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pgqueue", *args]


def run_cli(*args: str, dsn: str | None, timeout: float = 60.0,
            **extra_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_command(*args), env=cli_env(dsn, **extra_env), cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)


def spawn_cli(*args: str, dsn: str, log: Path | None = None,
              **extra_env: str) -> subprocess.Popen[str]:
    """Start the CLI; its output goes to `log` (a file, so a chatty worker never blocks on a
    full pipe) or, without one, to a pipe the caller must drain with communicate()."""
    output = log.open("w") if log is not None else subprocess.PIPE
    try:
        return subprocess.Popen(cli_command(*args), env=cli_env(dsn, **extra_env), cwd=REPO_ROOT,
                                stdout=output, stderr=subprocess.STDOUT, text=True)
    finally:
        if log is not None:
            output.close()
