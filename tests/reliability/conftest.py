"""Fault injection needs real worker processes, and, to restart Postgres, a server of its own."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pgqueue.embedded import EmbeddedPostgres
from pgqueue.migrate import apply_migrations
from tests.apps import core_app
from tests.helpers import spawn_cli

APP = "tests.apps.core_app:app"


def _prepare(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(core_app.LEDGER_DDL)
        conn.execute(core_app.CHAINS_DDL)


@pytest.fixture
def rel_dsn(dsn: str) -> str:
    _prepare(dsn)
    core_app.app.dsn = dsn
    yield dsn
    core_app.app.close()
    core_app.close_ledger_pools()


@pytest.fixture
def own_server() -> Iterator[EmbeddedPostgres]:
    """A throwaway server this test may stop and restart (durable commits: a crash test must
    not lose what was committed)."""
    with EmbeddedPostgres(settings={"synchronous_commit": "on", "fsync": "on"}) as server:
        yield server


@pytest.fixture
def own_dsn(own_server: EmbeddedPostgres) -> Iterator[str]:
    apply_migrations(own_server.dsn)
    _prepare(own_server.dsn)
    core_app.app.dsn = own_server.dsn
    yield own_server.dsn
    core_app.app.close()
    core_app.close_ledger_pools()


class WorkerProcesses:
    """Real `pgqueue worker` processes logging to files; whatever a test leaves running is
    killed after it."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[tuple[subprocess.Popen[str], Path]] = []

    def start(self, dsn: str, *args: str, log_level: str = "INFO",
              app: str = APP) -> subprocess.Popen[str]:
        log = self.log_dir / f"worker-{len(self.started)}.log"
        process = spawn_cli("--app", app, "--log-level", log_level, "worker", *args, dsn=dsn,
                            log=log)
        self.started.append((process, log))
        return process

    def output(self, process: subprocess.Popen[str]) -> str:
        return next(log for started, log in self.started if started is process).read_text()

    def finish(self, process: subprocess.Popen[str], timeout: float = 60) -> str:
        """Wait for the process to exit and return what it logged."""
        process.wait(timeout)
        return self.output(process)

    def stop_all(self) -> None:
        for process, _ in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
            process.wait(30)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[WorkerProcesses]:
    processes = WorkerProcesses(tmp_path)
    yield processes
    processes.stop_all()
