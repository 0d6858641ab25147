"""`python -m demo.core`: pgqueue without Django. Start a throwaway Postgres unless
PGQUEUE_DSN/DATABASE_URL names one, migrate, enqueue real jobs, run a real worker process until
they are all final, and print what ran."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import psycopg

from demo.core.tasks import always_fails, app, flaky_sync, generate_report, send_newsletter
from demo.database import database

SUBSCRIBERS = 1000


def main() -> int:
    with database() as db:
        print(f"database: {db.description}"
              + (f" (ready in {db.ready_seconds:.1f}s)" if db.ready_seconds else ""))
        app.dsn = db.dsn
        applied = app.migrate()
        print(f"migrations: {', '.join(applied) or 'already up to date'}")

        started = time.perf_counter()
        newsletter_ids = send_newsletter.defer_many(
            {"subscriber": f"reader{n}@example.com", "issue": 42} for n in range(SUBSCRIBERS))
        report_id = generate_report.defer(month="2026-11", rows=10_000)
        flaky_id = flaky_sync.defer(order_id=7)
        failing_id = always_fails.defer(reason="the demo's deliberate failure")
        job_ids = [*newsletter_ids, report_id, flaky_id, failing_id]
        print(f"enqueued {len(job_ids)} jobs in "
              f"{(time.perf_counter() - started) * 1000:.0f} ms")

        started = time.perf_counter()
        worker = subprocess.Popen(
            [sys.executable, "-m", "pgqueue", "--app", "demo.core.tasks:app", "--dsn", db.dsn,
             "--log-level", "WARNING", "worker", "--concurrency", "8"])
        try:
            finished = _wait_until_final(db.dsn, job_ids, deadline_s=60)
            elapsed = time.perf_counter() - started
        finally:
            worker.send_signal(signal.SIGTERM)
            exit_code = worker.wait(timeout=60)
        print(f"{len(job_ids)} jobs finished in {elapsed:.2f}s, worker start-up "
              f"included; worker stopped by SIGTERM with exit code {exit_code}")

        with psycopg.connect(db.dsn) as conn:
            delivered = conn.execute(
                "SELECT count(*) FROM pgqueue.jobs WHERE id = ANY(%s) AND state = 'succeeded'",
                (newsletter_ids,)).fetchone()
        report = app.get_job(report_id)
        flaky = app.get_job(flaky_id)
        failing = app.get_job(failing_id)
        sample = app.get_job(newsletter_ids[0])
        print(f"newsletter jobs: {delivered[0] if delivered else 0} of {SUBSCRIBERS} "
              f"succeeded; job {sample.id}: result {sample.result}")
        print(f"report job {report.id}: {report.state}, result {report.result}")
        print(f"flaky job {flaky.id}: {flaky.state} after {flaky.attempts} attempts: "
              f"{flaky.result}")
        print(f"failing job {failing.id}: {failing.state}: "
              f"{failing.error.type if failing.error else ''}: "
              f"{failing.error.message if failing.error else ''}")
        print("\nqueue stats:")
        for stats in app.queue_stats():
            print(f"  {stats.queue:12} succeeded={stats.succeeded} failed={stats.failed} "
                  f"queued={stats.queued} running={stats.running}")
        app.close()
        ok = (finished and exit_code == 0 and delivered == (SUBSCRIBERS,)
              and report.state == "succeeded" and flaky.state == "succeeded"
              and flaky.attempts == 2 and failing.state == "failed")
        print("\ndemo OK" if ok else "\ndemo FAILED")
        return 0 if ok else 1


def _wait_until_final(dsn: str, job_ids: list[int], deadline_s: float) -> bool:
    """Poll until none of `job_ids` is queued or running (the flaky job's retry included)."""
    deadline = time.monotonic() + deadline_s
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pgqueue.jobs WHERE id = ANY(%s) "
                "AND state IN ('queued', 'running')", (job_ids,)).fetchone()
            if row == (0,):
                return True
            time.sleep(0.05)
    return False


if __name__ == "__main__":
    sys.exit(main())
