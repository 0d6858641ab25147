"""pgqueue/observe without a database: metric names match docs/metrics.md, the metric hook
methods record what they are given, and `pgqueue top` draws any snapshot."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import generate_latest
from rich.console import Console

from pgqueue.observe.metrics import LIVE_METRICS, WorkerMetrics
from pgqueue.observe.snapshot import Snapshot
from pgqueue.observe.top import _seconds, render
from pgqueue.types import ClaimedJob
from pgqueue.worker.outcome import Outcome, OutcomeKind

DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def _exported_names(metrics: WorkerMetrics) -> set[str]:
    text = generate_latest(metrics.registry).decode()
    names = set(re.findall(r"^# TYPE (\w+) ", text, re.MULTILINE))
    return {name for name in names if not name.endswith("_created")}


def test_every_metric_is_documented_and_every_documented_metric_exists() -> None:
    documented = set(re.findall(r"^\| `((?:pgqueue|process|python)_\w+)` \|", DOCS.read_text(),
                                re.MULTILINE))
    exported = _exported_names(WorkerMetrics()) | set(LIVE_METRICS)
    counters = {name for name in exported if not name.endswith("_total")
                and f"{name}_total" in documented}
    assert documented == (exported - counters) | {f"{name}_total" for name in counters}


def test_gauges_of_a_fraction_say_so_in_their_name() -> None:
    """Prometheus' naming rule: a 0..1 value is a `_ratio`."""
    fractions = {name for name, text in LIVE_METRICS.items() if "0..1" in text}
    assert fractions == {"pgqueue_notification_queue_usage_ratio"}
    assert all(name.endswith("_ratio") for name in fractions)


def _job(queue: str = "emails", due_ago: float = 0.25) -> ClaimedJob:
    due = datetime.now(UTC) - timedelta(seconds=due_ago)
    return ClaimedJob(id=1, task_name="mail.send", queue=queue, args=[], kwargs={}, priority=0,
                      attempt=1, max_attempts=3, claim_token=uuid.uuid4(),
                      enqueued_at=due - timedelta(seconds=5), run_at=due)


def test_hook_methods_feed_the_histograms() -> None:
    metrics = WorkerMetrics()
    job = _job()
    metrics.jobs_claimed([job, _job(queue="reports")], 0.004)
    metrics.jobs_claimed([], 0.002)
    metrics.job_finished(Outcome(job, OutcomeKind.SUCCEEDED), 1.5)
    metrics.outcomes_recorded([Outcome(job, OutcomeKind.SUCCEEDED)], 0.003)
    registry = metrics.registry
    assert registry.get_sample_value("pgqueue_claim_duration_seconds_count") == 2
    assert registry.get_sample_value("pgqueue_jobs_claimed_total", {"queue": "emails"}) == 1
    wakeup = registry.get_sample_value("pgqueue_wakeup_latency_seconds_sum", {"queue": "emails"})
    assert wakeup is not None and 0.2 < wakeup < 5  # from run_at, the later of the two
    assert registry.get_sample_value("pgqueue_task_duration_seconds_sum",
                                     {"task": "mail.send", "outcome": "succeeded"}) == 1.5
    assert registry.get_sample_value("pgqueue_outcomes_recorded_total",
                                     {"outcome": "succeeded"}) == 1
    assert registry.get_sample_value("pgqueue_ack_duration_seconds_count") == 1


def _draw(snapshot: Snapshot, **kwargs: object) -> str:
    console = Console(width=180, record=True, color_system=None)
    console.print(render(snapshot, interval=2.0, **kwargs))  # type: ignore[arg-type]
    return console.export_text()


def test_top_draws_an_empty_database_and_an_outage() -> None:
    text = _draw(Snapshot(), error="connection refused")
    assert "database unavailable, retrying: connection refused" in text
    assert "(no jobs yet)" in text and "Workers: none registered" in text
    assert "Stuck jobs: none" in text


def test_top_draws_every_section() -> None:
    now = datetime.now(UTC)
    queue = {"queue": "emails", "paused": True, "queued": 5, "due": 4, "scheduled": 1,
             "running": 2, "succeeded": 10, "failed": 1, "cancelled": 0,
             "oldest_waiting_seconds": 75.0, "started_5m": 12, "wait_p50_seconds": 0.004,
             "wait_p95_seconds": 1.25, "waiting_on_lock": 3, "concurrency": None,
             "held_back_by": "paused"}
    limited = {**queue, "queue": "api", "paused": False, "running": 5, "concurrency": 5,
               "waiting_on_lock": 0, "held_back_by": "concurrency limit reached"}
    task = {"task_name": "mail.send", "queued": 5, "running": 2, "retrying": 1,
            "succeeded_1m": 6, "failed_1m": 1, "succeeded_5m": 9, "failed_5m": 1,
            "succeeded_1h": 10, "failed_1h": 1, "cancelled_1h": 0, "per_minute_5m": 2.0,
            "error_rate_5m": 0.1, "error_rate_1h": 1 / 11, "duration_p50_seconds": 0.2,
            "duration_p95_seconds": 3.0, "last_failed_at": now - timedelta(seconds=30),
            "last_error": "SMTPError: 421 try later"}
    worker = {"id": 7, "name": "w-1", "hostname": "host", "pid": 42, "queues": None,
              "concurrency": 4, "alive": False, "heartbeat_age_seconds": 95.0,
              "started_at": now, "uptime_seconds": 7300.0, "running_jobs": 2,
              "running_job_ids": [1, 2], "running_tasks": ["mail.send"],
              "longest_running_seconds": 4000.0}
    stuck = {"id": 1, "queue": "emails", "task_name": "mail.send", "reason": "worker_dead",
             "worker_id": 7, "worker_name": "w-1", "running_seconds": 4000.0,
             "limit_seconds": 3600.0}
    health = {"jobs_total_bytes": 5 * 1024 * 1024, "jobs_dead_ratio": 0.012,
              "jobs_last_autovacuum": now - timedelta(minutes=3),
              "notification_queue_usage": 0.0, "oldest_transaction_seconds": 2.0,
              "unserved_jobs": 3}
    text = _draw(Snapshot(queues=[queue, limited], tasks=[task], workers=[worker], stuck=[stuck],
                          health=health, database="app@db:5432"))
    assert "app@db:5432" in text and "every 2s" in text
    assert "no worker has their task 3" in text
    assert "stuck 1" in text and "0 alive / 1" in text and "5 MB" in text
    assert re.search(r"emails\s+paused\s+4\s+1\s+2\s+3\s+1\s+1m15s\s+4ms\s+1\.2s\s+12", text)
    assert re.search(r"api\s+concurrency limit reached\s+4\s+1\s+5/5\s+0\s+1", text)
    assert re.search(r"mail\.send\s+5\s+2\s+1\s+7\s+2\s+10\.0%\s+9\.1%\s+200ms\s+3\.0s", text)
    assert "SMTPError: 421 try later" in text and "30.0s ago" in text
    assert re.search(r"w-1\s+host:42\s+\*\s+2/4\s+1m35s DEAD\s+2h01m\s+mail\.send", text)
    assert re.search(r"1\s+mail\.send\s+emails\s+worker_dead\s+1h06m\s+1h00m\s+w-1", text)


def test_top_draws_child_processes_only_when_there_are_some() -> None:
    assert "Child processes" not in _draw(Snapshot())
    now = datetime.now(UTC)
    busy = {"worker_id": 7, "worker_name": "w-1", "hostname": "host", "pid": 4242,
            "job_id": 99, "task_name": "reports.render", "job_running_seconds": 12.5,
            "rss_bytes": 150 * 1024 * 1024, "jobs_run": 3, "started_at": now,
            "uptime_seconds": 125.0, "alive": True}
    idle = {**busy, "pid": 4243, "job_id": None, "task_name": None,
            "job_running_seconds": None, "rss_bytes": 40 * 1024 * 1024, "jobs_run": 0}
    text = _draw(Snapshot(children=[busy, idle]))
    assert "child processes 2 (190 MB)" in text
    assert re.search(r"w-1\s+4242\s+99\s+reports\.render\s+12\.5s\s+150 MB\s+3\s+2m05s", text)
    dash = "\N{EN DASH}"
    assert re.search(rf"w-1\s+4243\s+idle\s+{dash}\s+{dash}\s+40 MB\s+0\s+2m05s", text)


def test_top_draws_running_jobs_with_their_progress_only_when_some_run() -> None:
    assert "Running jobs" not in _draw(Snapshot())
    reporting = {"id": 31, "task_name": "images.resize", "worker_id": 7, "worker_name": "w-1",
                 "running_seconds": 75.0, "progress": 0.4,
                 "progress_message": "resized 40 of 100"}
    silent = {**reporting, "id": 32, "worker_name": None, "progress": None,
              "progress_message": None}
    queue = {"queue": "default", "paused": False, "queued": 0, "due": 0, "scheduled": 0,
             "running": 5, "succeeded": 0, "failed": 0, "cancelled": 0,
             "oldest_waiting_seconds": None, "started_5m": 0, "wait_p50_seconds": None,
             "wait_p95_seconds": None, "waiting_on_lock": 0, "concurrency": None,
             "held_back_by": None}
    text = _draw(Snapshot(queues=[queue], running=[reporting, silent]))
    assert re.search(r"31\s+images\.resize\s+w-1\s+1m15s\s+████░░░░░░\s+40%\s+resized 40 "
                     r"of 100", text)
    assert re.search(r"32\s+images\.resize\s+#7\s+1m15s\s+\N{EN DASH}", text)
    assert "+3 more" in text  # 5 running, 2 shown


def test_durations_read_naturally() -> None:
    assert [_seconds(v) for v in (None, 0.0042, 3.25, 125, 7300, 200000)] == [
        "\N{EN DASH}", "4ms", "3.2s", "2m05s", "2h01m", "2d07h"]
