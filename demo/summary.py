"""The end of the scripted run: what ran, by front door, with timings taken from the jobs'
own timestamps (waited: due -> started; ran: started -> finished), the checks, the worker's log
events, and ``SELECT * FROM pgqueue.queue_stats`` as psql draws it."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from datetime import datetime

from django.db import connection

from demo.newsletter.audience import BOUNCING_SUBSCRIBER, SLOW_SUBSCRIBER
from demo.newsletter.tasks import audience_snapshot, deliver_issue
from demo.output import duration, psql_table
from demo.scenario import PERIOD_S, SCHEDULE_S, Scenario
from pgqueue.contrib.django.models import Job


def print_summary(scenario: Scenario) -> None:
    """What ran, by front door, with timings; the checks; the worker's log events;
    queue_stats."""
    rows = {job.id: job for job in scenario.jobs().order_by("id")}
    deliveries = [job for job in rows.values() if job.task_name == deliver_issue.name]
    ticks = [job for job in rows.values() if job.task_name == audience_snapshot.name]
    print("\nWhat ran (waited: due -> started; ran: started -> finished)")
    header = (f"  {'job':>6}  {'task':<18} {'queue':<12} {'state':<10} {'tries':>5} "
              f"{'waited':>8} {'ran':>8}  notes")
    bounce = rows.get(scenario.ids.get("bounce", 0))
    callback = scenario.ids.get("chord_callback", 0)
    workflow = [job for job in rows.values()
                if scenario.notes.get("workflow") and
                str(job.workflow_id) == scenario.notes["workflow"]]
    sections = {
        "pgqueue's own API: @app.task, .defer(), @app.periodic": [
            _job_line(rows.get(scenario.ids.get("send_issue", 0)), "send_issue",
                      "POST /newsletter/issues/: .defer() in transaction.atomic()"),
            _deliveries_line(deliveries),
            _job_line(rows.get(scenario.ids.get("slow", 0)), "deliver_issue",
                      f"{SLOW_SUBSCRIBER}, attempt 1: {scenario.notes.get('slow', '')}"),
            _job_line(bounce, "deliver_issue", f"{BOUNCING_SUBSCRIBER}: {_error(bounce)}"),
            *(_job_line(tick, "audience_snapshot",
                        f"@app.periodic(every={PERIOD_S} s), tick {tick.run_at:%H:%M:%S}")
              for tick in ticks),
        ],
        "Django's Tasks framework: @task, .enqueue(), PgQueueBackend": [
            _job_line(rows.get(scenario.ids.get("build_report", 0)), "build_report",
                      "POST /reports/: .enqueue() in transaction.atomic()"),
        ],
        "pgqueue's workflows: chord([...], callback).defer(), app.wait()": [
            _job_line(job, job.task_name.rpartition(".")[2],
                      "POST /reports/chord/: the header, in parallel" if job.id != callback
                      else f"the callback, once, with {len(job.args[0]) if job.args else 0} "
                           "results first")
            for job in workflow] or ["       -  (no workflow ran)"],
        "django-background-tasks drop-in: @background, Task.objects.create": [
            _job_line(rows.get(scenario.ids.get("send_newsletter", 0)), "send_newsletter",
                      "Task.objects.create(task_name='send_newsletter')"),
            _job_line(rows.get(scenario.ids.get("report_later", 0)), "generate_report",
                      "Task.objects.create(task_name='generate_report', run_at=now + 1 h)"),
            _job_line(rows.get(scenario.ids.get("report_soon", 0)), "generate_report",
                      f"generate_report(): @background(schedule={SCHEDULE_S})"),
        ],
    }
    for title, lines in sections.items():
        print(f"\n {title}\n{header}")
        print("\n".join(lines))
    print("\nChecks")
    for check in scenario.checks:
        print(f"  {'ok  ' if check.ok else 'FAIL'}  {check.name}"
              + (f"  ({check.detail})" if check.detail else ""))
    events = Counter(re.findall(r" (job\.[a-z_]+) ", scenario.worker_log.read_text(
        errors="replace")))
    print("\nWorker log: " + ", ".join(f"{event} x{count}"
                                       for event, count in sorted(events.items())))
    print("\nSELECT * FROM pgqueue.queue_stats;")
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM pgqueue.queue_stats")
        columns = [column.name for column in cursor.description]
        print(psql_table(columns, cursor.fetchall()))


def _error(job: Job | None) -> str:
    return f"{job.error_type}: {job.error_message}" if job and job.error_type else ""


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None


def _job_line(job: Job | None, name: str, note: str) -> str:
    if job is None:
        return f"  {'-':>6}  {name:<18} (missing)  {note}"
    waited = _seconds(job.run_at, job.started_at)
    ran = _seconds(job.started_at, job.finished_at)
    return (f"  {job.id:>6}  {name:<18} {job.queue:<12} {job.state:<10} "
            f"{job.attempts:>2}/{job.max_attempts:<2} {duration(waited):>8} "
            f"{duration(ran):>8}  {note}")


def _deliveries_line(deliveries: list[Job]) -> str:
    if not deliveries:
        return "       -  deliver_issue      (none)"
    states = Counter(job.state for job in deliveries)
    waits = [w for job in deliveries if (w := _seconds(job.run_at, job.started_at)) is not None]
    runs = [r for job in deliveries if (r := _seconds(job.started_at, job.finished_at))
            is not None]
    first = min(job.enqueued_at for job in deliveries)
    last = max((job.finished_at for job in deliveries if job.finished_at), default=None)
    span = f"{deliveries[0].id}-{deliveries[-1].id}"
    return (f"  {span:>6}  {'deliver_issue':<18} {deliveries[0].queue:<12} "
            f"{f'{len(deliveries)} jobs':<10} {'':>5} "
            f"{duration(statistics.median(waits) if waits else None):>8} "
            f"{duration(statistics.median(runs) if runs else None):>8}  "
            f"fanned out by send_issue: {states['succeeded']} succeeded, {states['failed']} "
            f"failed; medians; all done {duration(_seconds(first, last))} after enqueue")

