"""overlap=False with real worker processes: three workers (4 slots each) share a 1-second
schedule whose job takes 2.5 s. No two of its jobs ever run at once, the ticks falling meanwhile
are skipped and counted, and the schedule keeps running (no pile-up, no stall)."""

from __future__ import annotations

import psycopg

from tests.apps.overlap_app import JOB_SECONDS, SCHEDULE_ID
from tests.helpers import wait_until
from tests.reliability.conftest import WorkerProcesses
from tests.reliability.test_limit_races import _max_overlap

APP = "tests.apps.overlap_app:app"


def test_a_slow_schedule_never_overlaps_itself_across_workers(
    dsn: str, workers: WorkerProcesses
) -> None:
    for _ in range(3):
        workers.start(dsn, "-c", "4", app=APP)

    def finished_jobs() -> int:
        with psycopg.connect(dsn) as conn:
            return conn.execute("SELECT count(*) FROM pgqueue.jobs "
                                "WHERE state = 'succeeded'").fetchone()[0]

    wait_until(lambda: finished_jobs() >= 3, timeout=30, interval=0.2,
               message="three jobs of the slow schedule to finish")
    with psycopg.connect(dsn) as conn:
        spans = [(start, end) for start, end in conn.execute(
            "SELECT extract(epoch FROM started_at)::float8, "
            "extract(epoch FROM coalesce(finished_at, clock_timestamp()))::float8 "
            "FROM pgqueue.jobs WHERE started_at IS NOT NULL")]
        queued_or_running = conn.execute(
            "SELECT count(*) FROM pgqueue.jobs WHERE state IN ('queued', 'running')").fetchone()[0]
        skipped = conn.execute("SELECT overlap_skipped_ticks FROM pgqueue.schedules "
                               "WHERE id = %s", (SCHEDULE_ID,)).fetchone()[0]
    assert _max_overlap(spans) == 1, "two jobs of the schedule ran at once"
    assert queued_or_running <= 1, "ticks piled up behind the slow job"
    assert skipped >= 3 * int(JOB_SECONDS) - 2, f"only {skipped} ticks skipped"
