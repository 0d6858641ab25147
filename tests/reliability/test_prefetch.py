"""`--prefetch`: jobs claimed beyond the free slots are given back on shutdown and rescued with
the running ones when their worker dies."""

from __future__ import annotations

import signal
import time

from tests.apps import core_app
from tests.helpers import scalar, wait_until
from tests.reliability.conftest import WorkerProcesses

HEARTBEAT = ("--heartbeat-interval", "0.5", "--heartbeat-timeout", "3")


def _count(dsn: str, where: str) -> int:
    return scalar(dsn, f"SELECT count(*) FROM pgqueue.jobs WHERE {where}")


def _starts(dsn: str, job_id: int | None = None) -> int:
    return scalar(dsn, "SELECT count(*) FROM ledger WHERE tag = 'start' AND "
                       "(%(id)s::bigint IS NULL OR job_id = %(id)s)", {"id": job_id})


def _held_one_running_two_prefetched(dsn: str) -> bool:
    return (_starts(dsn) == 1
            and _count(dsn, "state = 'running'") == 3)


def test_sigterm_releases_prefetched_jobs_at_once_and_finishes_the_running_one(
    rel_dsn: str, workers: WorkerProcesses
) -> None:
    ids = [core_app.sleep_for.defer(1.5) for _ in range(3)]
    worker = workers.start(rel_dsn, "-c", "1", "--prefetch", "2")
    wait_until(lambda: _held_one_running_two_prefetched(rel_dsn), timeout=30,
               message="one job running and two prefetched")
    worker.send_signal(signal.SIGTERM)
    # The two that never started are back in the queue while the first still runs.
    wait_until(lambda: _count(rel_dsn, "state = 'queued' AND attempts = 0") == 2, timeout=5,
               message="prefetched jobs released")
    assert _count(rel_dsn, "state = 'running'") == 1
    output = workers.finish(worker, timeout=30)
    assert worker.returncode == 0, output
    states = [scalar(rel_dsn, "SELECT state::text FROM pgqueue.jobs WHERE id = %s", (i,))
              for i in ids]
    assert sorted(states) == ["queued", "queued", "succeeded"]
    assert _starts(rel_dsn) == 1


def test_kill_9_prefetched_jobs_are_rescued_with_the_running_one(
    rel_dsn: str, workers: WorkerProcesses
) -> None:
    ids = [core_app.sleep_for.defer(2) for _ in range(3)]
    victim = workers.start(rel_dsn, "-c", "1", "--prefetch", "2", *HEARTBEAT)
    wait_until(lambda: _held_one_running_two_prefetched(rel_dsn), timeout=30,
               message="one job running and two prefetched")
    victim.kill()
    killed_at = time.monotonic()
    workers.start(rel_dsn, "-c", "3", *HEARTBEAT)
    wait_until(lambda: _count(rel_dsn, "state = 'succeeded'") == 3, timeout=60,
               message="every job done by the rescuer")
    print(f"\n[prefetch] kill -9: all 3 jobs done {time.monotonic() - killed_at:.1f}s later")
    runs = sorted(_starts(rel_dsn, job_id) for job_id in ids)
    assert runs == [1, 1, 2]  # the prefetched ones ran once, in the rescuer
    assert _count(rel_dsn, "error_type = 'WorkerLost'") == 3
