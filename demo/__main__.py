"""Run the demo: start a throwaway Postgres unless PGQUEUE_DSN/DATABASE_URL names one, migrate,
enqueue real jobs, run a real worker process until the queue is empty, and print what ran."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

from demo.tasks import always_fails, app, flaky_sync, generate_report, send_newsletter
from pgqueue.embedded import throwaway_postgres


@contextlib.contextmanager
def database() -> Iterator[str]:
    configured = os.environ.get("PGQUEUE_DSN") or os.environ.get("DATABASE_URL")
    if configured:
        print(f"using the configured database {configured}")
        yield configured
        return
    print("no PGQUEUE_DSN configured: starting a throwaway PostgreSQL ...")
    started = time.perf_counter()
    with throwaway_postgres() as dsn:
        print(f"  ready in {time.perf_counter() - started:.1f}s at {dsn}")
        yield dsn


def main() -> int:
    with database() as dsn:
        app.dsn = dsn
        applied = app.migrate()
        print(f"migrations: {', '.join(applied) or 'already up to date'}")

        started = time.perf_counter()
        newsletter_ids = send_newsletter.defer_many(
            {"subscriber": f"reader{n}@example.com", "issue": 42} for n in range(1000))
        report_id = generate_report.defer(month="2026-11", rows=10_000)
        flaky_id = flaky_sync.defer(order_id=7)
        failing_id = always_fails.defer(reason="the demo's deliberate failure")
        print(f"enqueued {len(newsletter_ids) + 3} jobs in "
              f"{(time.perf_counter() - started) * 1000:.0f} ms")

        started = time.perf_counter()
        worker = subprocess.Popen(
            [sys.executable, "-m", "pgqueue", "--app", "demo.tasks:app", "--dsn", dsn,
             "--log-level", "WARNING", "worker", "--concurrency", "8"])
        try:
            finished = _wait_until_all_final(deadline_s=60)
            elapsed = time.perf_counter() - started
        finally:
            worker.send_signal(signal.SIGTERM)
            exit_code = worker.wait(timeout=60)
        print(f"{len(newsletter_ids) + 3} jobs finished in {elapsed:.2f}s, worker start-up "
              f"included; worker stopped by SIGTERM with exit code {exit_code}")

        report = app.get_job(report_id)
        flaky = app.get_job(flaky_id)
        failing = app.get_job(failing_id)
        sample = app.get_job(newsletter_ids[0])
        print(f"newsletter job {sample.id}: {sample.state}, result {sample.result}")
        print(f"report job {report.id}: {report.state}, result {report.result}")
        print(f"flaky job {flaky.id}: {flaky.state} after {flaky.attempts} attempts: "
              f"{flaky.result}")
        print(f"failing job {failing.id}: {failing.state}: "
              f"{failing.error.type if failing.error else ''}: "
              f"{failing.error.message if failing.error else ''}")
        print("\nqueue stats:")
        for stats in app.queue_stats():
            print(f"  {stats.queue:8} succeeded={stats.succeeded} failed={stats.failed} "
                  f"queued={stats.queued} running={stats.running}")
        app.close()
        ok = (finished and exit_code == 0 and report.state == "succeeded"
              and flaky.state == "succeeded" and failing.state == "failed"
              and all(s.queued == 0 and s.running == 0 for s in app.queue_stats()))
        print("\ndemo OK" if ok else "\ndemo FAILED")
        return 0 if ok else 1


def _wait_until_all_final(deadline_s: float) -> bool:
    """Poll the queue until no job is queued or running (the flaky job's retry included)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if all(s.queued == 0 and s.running == 0 for s in app.queue_stats()):
            return True
        time.sleep(0.05)
    return False


if __name__ == "__main__":
    sys.exit(main())
