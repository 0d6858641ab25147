"""Periodic schedules with real worker processes (the CLI), faults injected.

Each test runs `python -m pgqueue --app tests.apps.periodic_app:app worker` processes sharing a
1-second schedule and checks, from the database alone, that every tick from the first to the
last got exactly one job: none missing, none doubled, whatever happened to the workers.
"""

from __future__ import annotations

import glob
import signal
import statistics
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.apps.periodic_app import SCHEDULE_ID
from tests.helpers import REPO_ROOT, cli_command, cli_env, wait_until

TASK = "tests.apps.periodic_app.tick"
SECOND = timedelta(seconds=1)
FAKETIME_LIBRARY = next(iter(sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))), None)


def query(dsn: str, sql: str, params: Any = ()) -> list[dict[str, Any]]:
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()


@dataclass
class WorkerProcess:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    worker_id: int = 0

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class Fleet:
    """Worker processes of the periodic test app; whatever is left is killed at the end."""

    def __init__(self, dsn: str, log_dir: Path) -> None:
        self.dsn = dsn
        self.log_dir = log_dir
        self.workers: list[WorkerProcess] = []

    def start(self, name: str, **env: str) -> WorkerProcess:
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                cli_command("--app", "tests.apps.periodic_app:app", "--log-level", "WARNING",
                            "worker", "--name", name),
                env=cli_env(self.dsn, **env), cwd=REPO_ROOT, stdout=sink,
                stderr=subprocess.STDOUT)
        worker = WorkerProcess(name, process, log)
        self.workers.append(worker)
        worker.worker_id = wait_until(
            lambda: self._registered(worker), timeout=30, message=f"worker {name} to register")
        return worker

    def _registered(self, worker: WorkerProcess) -> int | None:
        if worker.process.poll() is not None:
            raise AssertionError(f"worker {worker.name} exited early:\n{worker.output()}")
        found = query(self.dsn, "SELECT id FROM pgqueue.workers WHERE pid = %s",
                      (worker.process.pid,))
        return found[0]["id"] if found else None

    def by_worker_id(self, worker_id: int) -> WorkerProcess:
        return next(w for w in self.workers if w.worker_id == worker_id)

    def stop(self, worker: WorkerProcess) -> None:
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(30) == 0, worker.output()

    def kill(self, worker: WorkerProcess) -> None:
        worker.process.kill()  # SIGKILL: no cleanup of any kind
        worker.process.wait(10)

    def close(self) -> None:
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait(10)


@pytest.fixture
def fleet(dsn: str, tmp_path: Path) -> Iterator[Fleet]:
    workers = Fleet(dsn, tmp_path)
    try:
        yield workers
    finally:
        workers.close()


def recorded_ticks(dsn: str) -> list[dict[str, Any]]:
    return query(dsn, "SELECT tick_at, job_id, worker_id, enqueued_at "
                      "FROM pgqueue.schedule_ticks WHERE schedule_id = %s ORDER BY tick_at",
                 (SCHEDULE_ID,))


def wait_for_ticks(dsn: str, *, fired_by: int | None = None, after: datetime | None = None,
                   count: int = 1, timeout: float = 30) -> list[dict[str, Any]]:
    def enough() -> list[dict[str, Any]]:
        ticks = [t for t in recorded_ticks(dsn)
                 if (fired_by is None or t["worker_id"] == fired_by)
                 and (after is None or t["tick_at"] > after)]
        return ticks if len(ticks) >= count else []

    return wait_until(enough, timeout=timeout, interval=0.05,
                      message=f"{count} ticks (worker {fired_by}, after {after})")


def assert_one_job_per_tick(dsn: str) -> list[dict[str, Any]]:
    """Every tick from the first to the last has exactly one job, and the ledger agrees."""
    jobs = query(dsn, "SELECT id, run_at, started_at, state::text FROM pgqueue.jobs "
                      "WHERE task_name = %s ORDER BY run_at, id", (TASK,))
    run_ats = [job["run_at"] for job in jobs]
    doubled = [tick for tick, n in Counter(run_ats).items() if n > 1]
    assert not doubled, f"ticks with more than one job: {doubled}"
    first, last = run_ats[0], run_ats[-1]
    expected = [first + n * SECOND for n in range(int((last - first) / SECOND) + 1)]
    missing = sorted(set(expected) - set(run_ats))
    assert not missing, f"ticks without a job: {missing}"
    assert run_ats == expected
    ledger = [(t["tick_at"], t["job_id"]) for t in recorded_ticks(dsn)]
    assert ledger == [(job["run_at"], job["id"]) for job in jobs]
    return jobs


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


@pytest.mark.slow
def test_five_workers_thirty_seconds_exactly_one_job_per_tick(
    dsn: str, fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    for n in range(5):
        fleet.start(f"w{n}")
    start = wait_for_ticks(dsn)[0]["tick_at"]
    end = start + 30 * SECOND
    wait_for_ticks(dsn, after=end - SECOND, timeout=60)
    wait_until(lambda: not query(dsn, "SELECT 1 FROM pgqueue.jobs WHERE task_name = %s "
                                      "AND run_at <= %s AND state <> 'succeeded'", (TASK, end)),
               timeout=30, message="every job of the window to run")
    for worker in fleet.workers:
        fleet.stop(worker)

    jobs = assert_one_job_per_tick(dsn)
    window = [job for job in jobs if start <= job["run_at"] <= end]
    assert len(window) == 31 and all(job["state"] == "succeeded" for job in window)
    ticks = {t["tick_at"]: t for t in recorded_ticks(dsn)}
    start_lag = [(job["started_at"] - job["run_at"]).total_seconds() * 1000 for job in window]
    enqueue_lag = [(ticks[job["run_at"]]["enqueued_at"] - job["run_at"]).total_seconds() * 1000
                   for job in window]
    fired_by = Counter(fleet.by_worker_id(ticks[job["run_at"]]["worker_id"]).name
                       for job in window)
    with capsys.disabled():
        print(f"\nperiodic tick accuracy over {len(window)} ticks, 5 workers "
              f"(job started_at - tick, database clock): p50 {percentile(start_lag, 50):.1f} ms, "
              f"p99 {percentile(start_lag, 99):.1f} ms, max {max(start_lag):.1f} ms; "
              f"enqueued - tick: p50 {percentile(enqueue_lag, 50):.1f} ms, "
              f"p99 {percentile(enqueue_lag, 99):.1f} ms; ticks fired by {dict(fired_by)}")
    assert max(enqueue_lag) < 1000, "a scheduler fired a tick more than a second late"


def test_kill_9_of_the_worker_that_just_fired_loses_and_doubles_nothing(
    dsn: str, fleet: Fleet
) -> None:
    for n in range(3):
        fleet.start(f"w{n}")
    wait_for_ticks(dsn, count=2)
    for _ in range(2):
        last = recorded_ticks(dsn)[-1]
        victim = fleet.by_worker_id(last["worker_id"])
        assert victim.process.poll() is None
        fleet.kill(victim)
        wait_for_ticks(dsn, after=last["tick_at"], count=3)
    survivor = next(w for w in fleet.workers if w.process.poll() is None)
    final = recorded_ticks(dsn)[-1]["tick_at"]
    wait_for_ticks(dsn, after=final, count=2)
    fleet.stop(survivor)
    jobs = assert_one_job_per_tick(dsn)
    assert len(jobs) >= 10


def test_workers_with_skewed_clocks_tick_by_the_database_clock(
    dsn: str, fleet: Fleet
) -> None:
    def skewed(seconds: int) -> dict[str, str]:
        if FAKETIME_LIBRARY:
            return {"LD_PRELOAD": FAKETIME_LIBRARY, "FAKETIME": f"{seconds:+d}",
                    "DONT_FAKE_MONOTONIC": "1"}
        return {"PGQUEUE_TEST_CLOCK_SKEW_S": str(seconds)}

    db_now = query(dsn, "SELECT now() AS now")[0]["now"]
    ahead = fleet.start("ahead-1h", **skewed(3600))
    # Each skewed worker fires alone for a while, so each is proven to tick at database time.
    wait_for_ticks(dsn, fired_by=ahead.worker_id, count=3)
    behind = fleet.start("behind-37m", **skewed(-37 * 60))
    fleet.stop(ahead)
    wait_for_ticks(dsn, fired_by=behind.worker_id, count=3)
    fleet.start("ahead-5m", **skewed(300))
    fleet.start("on-time", **skewed(0))
    last = recorded_ticks(dsn)[-1]["tick_at"]
    wait_for_ticks(dsn, after=last, count=4)
    for worker in fleet.workers:
        if worker.process.poll() is None:
            fleet.stop(worker)

    believed = {w.name: w.output() for w in fleet.workers if w.name != "on-time"}
    assert all("this process believes it is" in text for text in believed.values()), believed
    ahead_says = believed["ahead-1h"].split("believes it is ")[1].split()[0]
    assert datetime.fromisoformat(ahead_says) > db_now + timedelta(minutes=55)
    assert_one_job_per_tick(dsn)
    for tick in recorded_ticks(dsn):  # fired when the database reached the tick, not before
        assert SECOND > tick["enqueued_at"] - tick["tick_at"] >= timedelta(0), tick
