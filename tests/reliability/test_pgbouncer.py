"""pgqueue behind a real PgBouncer in transaction mode (Debian's package; skipped, saying why,
where it is not installed: scripts/ensure-pgbouncer.sh installs it).

Through a pool of 3 server sessions shared by every client: producers and workers must not
prepare statements (another client's transaction may run on the session that holds them), must
leave no session state behind (every client checks what its server session carries), and
workers must LISTEN on a direct connection, or not at all. Wake-up latency through the direct
listener is printed (`-s`) so it can be quoted."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pgqueue import store
from pgqueue.db import Database
from pgqueue.errors import ConfigurationError
from tests.apps import pooler_app
from tests.helpers import REPO_ROOT, cli_env, scalar, spawn_cli, wait_until
from tests.pgbouncer import (
    PgBouncerUnavailable,
    RunningPgBouncer,
    pgbouncer,
    pgbouncer_command,
)

APP = "tests.apps.pooler_app:app"
POLL_NEVER = ("--poll-interval", "600")
"""Longer than any test: a job that starts within it was woken by LISTEN, not by a poll."""


@pytest.fixture
def bouncer(dsn: str) -> Iterator[RunningPgBouncer]:
    try:
        pgbouncer_command()
    except PgBouncerUnavailable as exc:
        if os.environ.get("CI") == "true":  # CI installs it (make test): never skip unseen
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(pooler_app.RUNS_DDL)
    with pgbouncer(dsn, pool_mode="transaction", pool_size=3) as running:
        yield running
    pooler_app.app.close()


class Processes:
    """CLI and producer subprocesses logging to files; whatever a test leaves running is killed
    after it (before PgBouncer and the database go)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[tuple[subprocess.Popen[str], Path]] = []

    def _log(self, kind: str) -> Path:
        return self.log_dir / f"{kind}-{len(self.started)}.log"

    def worker(self, pooled_dsn: str, name: str, *args: str) -> subprocess.Popen[str]:
        log = self._log("worker")
        process = spawn_cli("--app", APP, "--pooler", "transaction", "worker", "-n", name,
                            "-c", "4", *args, dsn=pooled_dsn, log=log)
        self.started.append((process, log))
        return process

    def producer(self, pooled_dsn: str, how: str, first: int, count: int
                 ) -> subprocess.Popen[str]:
        log = self._log("producer")
        with log.open("w") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.apps.pooler_app", how, str(first), str(count)],
                env=cli_env(pooled_dsn, PGQUEUE_POOLER="transaction"), cwd=REPO_ROOT,
                stdout=sink, stderr=subprocess.STDOUT, text=True)
        self.started.append((process, log))
        return process

    def output(self, process: subprocess.Popen[str]) -> str:
        return next(log for started, log in self.started if started is process).read_text()

    def stop(self, process: subprocess.Popen[str]) -> str:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        return self.output(process)

    def kill_all(self) -> None:
        for process, _ in self.started:
            if process.poll() is None:
                process.kill()
            process.wait(30)


@pytest.fixture
def processes(bouncer: RunningPgBouncer, tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    yield started
    started.kill_all()


def _listening_workers(dsn: str) -> int:
    """Workers whose listener is connected (directly) and has LISTENed on both channels."""
    return scalar(dsn, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                       "current_database() AND application_name LIKE 'pgqueue worker %% listen' "
                       "AND query = 'LISTEN \"pgqueue_abort\"'")


def _succeeded(dsn: str, job_id: int) -> bool:
    return scalar(dsn, "SELECT state = 'succeeded' FROM pgqueue.jobs WHERE id = %s", (job_id,))


def _leaks_seen_through(pooled_dsn: str) -> str:
    with psycopg.connect(pooled_dsn, autocommit=True, prepare_threshold=None) as conn:
        return conn.execute(pooler_app.LEAKED_SESSION_STATE).fetchone()[0]


def _pooler_complaints(log: str) -> list[str]:
    return [line for line in log.splitlines() if " WARNING " in line or " ERROR " in line]


@pytest.mark.slow
def test_three_producers_and_two_workers_through_pgbouncer_in_transaction_mode(
    dsn: str, bouncer: RunningPgBouncer, processes: Processes
) -> None:
    workers = [processes.worker(bouncer.dsn, f"pooled-{n}", *POLL_NEVER, "--listen-dsn", dsn)
               for n in range(2)]
    wait_until(lambda: _listening_workers(dsn) == 2, timeout=30,
               message="both workers LISTENing on the direct connection")

    # Wake-up: one job at a time through the pooler, each started by LISTEN (no poll is due).
    pooler_app.app.dsn = bouncer.dsn
    pooler_app.app.pooler = "transaction"
    for n in range(20):
        job_id = pooler_app.record_run.defer(n)
        wait_until(lambda job_id=job_id: _succeeded(dsn, job_id), timeout=5, interval=0.005,
                   message=f"job {job_id} woken by NOTIFY through the listen DSN")
    with psycopg.connect(dsn) as conn:
        latencies = [row[0] for row in conn.execute(
            "SELECT extract(epoch FROM started_at - enqueued_at)::float8 FROM pgqueue.jobs")]
    print(f"\n[pgbouncer] enqueue -> start through the listen DSN, {len(latencies)} jobs: "
          f"median {statistics.median(latencies) * 1000:.1f} ms, "
          f"max {max(latencies) * 1000:.1f} ms")
    assert max(latencies) < 1.0
    assert statistics.median(latencies) < 0.1

    # Load: three producers, one per way of deferring, while both workers run the jobs.
    per_producer = 600
    producers = [processes.producer(bouncer.dsn, how, 1000 * (index + 1), per_producer)
                 for index, how in enumerate(("defer", "defer_async", "defer_many"))]
    expected = 20 + 3 * per_producer
    leaks: set[str] = set()

    def all_ran() -> bool:
        leaks.add(_leaks_seen_through(bouncer.dsn))  # a fourth client, watching its sessions
        done = scalar(dsn, "SELECT count(*) FROM pgqueue.jobs WHERE state = 'succeeded'")
        return done == expected and all(p.poll() is not None for p in producers)

    wait_until(all_ran, timeout=120, interval=0.02, message=f"{expected} jobs to run")
    for producer in producers:
        assert producer.returncode == 0, processes.output(producer)
        assert processes.output(producer) == f"deferred {per_producer}\n"

    with psycopg.connect(dsn) as conn:
        runs = conn.execute("SELECT count(*), count(DISTINCT job_id), count(DISTINCT pid) "
                            "FROM runs").fetchone()
        task_leaks = {row[0] for row in conn.execute("SELECT DISTINCT leaked FROM runs")}
        attempts = conn.execute("SELECT min(attempts), max(attempts) FROM pgqueue.jobs").fetchone()
    assert runs == (expected, expected, 2), "every job ran exactly once, in both workers"
    assert attempts == (1, 1)
    assert task_leaks == {""}, "a task's server session carried another client's state"
    assert leaks == {""}, "a watching client's server session carried another client's state"

    for worker in workers:
        assert worker.poll() is None, processes.output(worker)
        log = processes.stop(worker)
        assert worker.returncode == 0, log
        for symptom in ("Traceback", " ERROR ", " WARNING ", "prepared statement", "psycopg"):
            assert symptom not in log, log
    assert _pooler_complaints(bouncer.log_text()) == []


@pytest.mark.slow
def test_without_a_listen_dsn_the_worker_says_so_once_and_polls(
    dsn: str, bouncer: RunningPgBouncer, processes: Processes
) -> None:
    worker = processes.worker(bouncer.dsn, "polling", "--poll-interval", "0.2")
    wait_until(lambda: "listener.disabled" in processes.output(worker), timeout=30,
               message="the worker to say it cannot LISTEN")
    pooler_app.app.dsn = bouncer.dsn
    pooler_app.app.pooler = "transaction"
    job_id = pooler_app.record_run.defer(1)
    wait_until(lambda: _succeeded(dsn, job_id), timeout=10, message="the job, found by polling")
    log = processes.stop(worker)
    assert worker.returncode == 0, log
    assert log.count("listener.disabled") == 1, log
    assert "LISTEN cannot work through a transaction-mode pooler" in log
    assert scalar(dsn, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                       "current_database() AND application_name LIKE 'pgqueue worker %% listen'"
                  ) == 0
    assert _pooler_complaints(bouncer.log_text()) == [], "nothing LISTENed through the pooler"


def test_prepared_statements_through_an_undeclared_pooler_name_the_setting(
    bouncer: RunningPgBouncer,
) -> None:
    """Two clients taking turns on the pool's server sessions: one prepares a statement, the
    other meets it (or misses its own) on the session it is handed next."""
    clients = [Database(bouncer.dsn, pooler="none") for _ in range(2)]
    try:
        with pytest.raises(ConfigurationError, match="PGQUEUE_POOLER=transaction") as raised:
            for _ in range(50):
                for client in clients:
                    client.run(store.schema_exists())
        assert isinstance(raised.value.__cause__, psycopg.Error)
    finally:
        for client in clients:
            client.close()
