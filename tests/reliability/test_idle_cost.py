"""An idle worker costs almost nothing: a few transactions a second and a few percent of a
core, whatever is queued but not runnable (nothing, far-future jobs, a due job another session
holds locked). Measured on a real `pgqueue worker -c 10` process, from the server's own
transaction counter and the kernel's CPU accounting."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import psycopg
import pytest

from tests.helpers import wait_until
from tests.reliability.conftest import WorkerProcesses

MAX_TRANSACTIONS_PER_S = 5.0
MAX_CPU_SHARE = 0.03
WARM_UP_S = 8.0
"""Past the start-up transactions, and long enough for the first rescue pass to run."""
WINDOW_S = 20.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _committed_transactions(dsn: str) -> int:
    """Commits of the test database, read from another database so the reading itself is
    not counted; stats reach the view within a second of a commit (or ~10 s when idle)."""
    dbname = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    other = psycopg.conninfo.make_conninfo(dsn, dbname="postgres")
    with psycopg.connect(other, autocommit=True) as conn:
        conn.execute("SET stats_fetch_consistency = none")
        return conn.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database "
                            "WHERE datname = %s", (dbname,)).fetchone()[0]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


@contextmanager
def _row_locked_elsewhere(dsn: str) -> Iterator[None]:
    """A due job held by another session (a claim in flight, a frozen peer): the worker's
    claim skips it, yet it stays "due now"."""
    with psycopg.connect(dsn) as conn:
        conn.execute("SELECT id FROM pgqueue.jobs FOR UPDATE").fetchall()
        yield
        conn.rollback()


def _far_future_jobs(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO pgqueue.jobs (task_name, run_at) SELECT 'idle.nightly', "
                     "now() + interval '1 day' FROM generate_series(1, 100)")


def _one_due_job(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO pgqueue.jobs (task_name) VALUES ('idle.nightly')")


SCENARIOS: dict[str, tuple[Callable[[str], None] | None, bool]] = {
    "empty queue": (None, False),
    "only far-future jobs": (_far_future_jobs, False),
    "a due job locked by another session": (_one_due_job, True),
}


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_an_idle_worker_costs_almost_nothing(
    dsn: str, workers: WorkerProcesses, scenario: str
) -> None:
    fill, lock_it = SCENARIOS[scenario]
    if fill is not None:
        fill(dsn)
    with _row_locked_elsewhere(dsn) if lock_it else nullcontext():
        process = workers.start(dsn, "-c", "10", "--heartbeat-timeout", "6",
                                app="tests.apps.idle_app:app")
        wait_until(lambda: "worker.started" in workers.output(process), timeout=30,
                   message="worker started")
        time.sleep(WARM_UP_S)
        transactions, cpu, started = (_committed_transactions(dsn), _cpu_seconds(process.pid),
                                      time.monotonic())
        time.sleep(WINDOW_S)  # the measurement itself: nothing to wait for but time
        elapsed = time.monotonic() - started
        rate = (_committed_transactions(dsn) - transactions) / elapsed
        cpu_share = (_cpu_seconds(process.pid) - cpu) / elapsed
        assert process.poll() is None, workers.output(process)
    print(f"idle worker, {scenario}: {rate:.2f} transactions/s, {cpu_share:.2%} of a core")
    assert rate <= MAX_TRANSACTIONS_PER_S, f"{rate:.1f} transactions/s"
    assert cpu_share <= MAX_CPU_SHARE, f"{cpu_share:.1%} of a core"
    assert not re.search(r"Traceback|ERROR", workers.output(process))
