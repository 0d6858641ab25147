"""The scripted run of `python -m demo`: a real worker process, the project's views driven
through Django's test client, and a check of everything that should have happened.

Imported once Django is set up (`demo.__main__` does that). Every wait polls the database
against one deadline; nothing sleeps blindly. Only jobs enqueued during this run (ids above the
largest id at the start) are looked at, so the demo also runs on a database used before.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Count, Max, QuerySet
from django.http import HttpResponse
from django.test import Client

import pgqueue
from demo.legacy.tasks import generate_report, send_newsletter
from demo.newsletter.audience import BOUNCING_SUBSCRIBER, SLOW_SUBSCRIBER
from demo.newsletter.models import Issue, Subscriber
from demo.newsletter.tasks import SNAPSHOT_EVERY, audience_snapshot, deliver_issue, send_issue
from demo.output import Clock, duration
from demo.processes import WORKER_CONCURRENCY, start, stop, wait_for, worker_command
from demo.reports.models import Report
from demo.reports.tasks import assemble_report, build_report
from pgqueue.contrib.django.app import app
from pgqueue.contrib.django.models import Job

T = TypeVar("T")

RUN_DEADLINE_S = 45.0
"""Everything from the worker's start to its stop must happen within this many seconds."""
SCHEDULE_S = 5
"""The article's `@background(schedule=5)` on generate_report."""
PERIOD_S = int(SNAPSHOT_EVERY.total_seconds())
ADMIN_USER = "demo"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


class Scenario:
    def __init__(self, clock: Clock, worker_log: Path) -> None:
        self.clock = clock
        self.worker_log = worker_log
        self.checks: list[Check] = []
        self.client = Client()
        self.baseline = Job.objects.aggregate(top=Max("id"))["top"] or 0
        self.deadline = time.monotonic() + RUN_DEADLINE_S
        self.ids: dict[str, int] = {}
        self.notes: dict[str, str] = {}

    # -- plumbing ------------------------------------------------------------------------

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, bool(ok), detail))
        return bool(ok)

    def request(self, method: str, path: str, data: dict[str, Any] | None = None,
                label: str | None = None) -> HttpResponse:
        started = time.perf_counter()
        response = getattr(self.client, method)(path, data or {})
        elapsed = time.perf_counter() - started
        self.clock.say(f"{method.upper():4} {label or path:<44} {response.status_code} "
                       f"({duration(elapsed)})")
        return response

    def wait(self, what: str, predicate: Callable[[], T]) -> T | None:
        value = wait_for(predicate, timeout=max(0.0, self.deadline - time.monotonic()))
        if value:
            self.clock.say(what)
        else:
            self.clock.say(f"timed out waiting: {what}")
        return value

    def jobs(self, **filters: Any) -> QuerySet[Job]:
        return Job.objects.filter(id__gt=self.baseline, **filters)

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> bool:
        user = User.objects.filter(username=ADMIN_USER).first()
        if user is None:
            user = User.objects.create_superuser(ADMIN_USER, "demo@pgqueue.example", None)
        self.client.force_login(user)

        with self.worker_log.open("wb") as log:
            started = time.perf_counter()
            worker = start(worker_command(), log)
            try:
                registered = wait_for(lambda: worker.poll() is not None or _registered(worker.pid),
                                      timeout=30)
                if worker.poll() is None and registered:
                    self.clock.say(f"manage.py pgqueue worker --concurrency {WORKER_CONCURRENCY}:"
                                   f" pid {worker.pid}, registered in "
                                   f"{duration(time.perf_counter() - started)}")
                    self.drive()
                else:
                    self.check("worker started", False, "it exited or never registered")
            finally:
                stopping = time.perf_counter()
                exit_code = stop(worker)
                self.clock.say(f"worker stopped by SIGTERM: exit code {exit_code} after "
                               f"{duration(time.perf_counter() - stopping)}")
        self.check("worker stopped by SIGTERM with exit code 0", exit_code == 0
                   and not _registered(worker.pid), f"exit code {exit_code}")
        left_running = self.jobs(state="running").count()
        failed = list(self.jobs(state="failed").values_list("id", flat=True))
        self.check("no job of this run left running", left_running == 0,
                   f"{left_running} running")
        self.check("no job of this run failed but the bounced delivery",
                   failed == [self.ids.get("bounce")], f"failed: {failed}")
        return all(check.ok for check in self.checks)

    def drive(self) -> None:
        issue_id = self.send_issue()
        self.send_dry_run()
        self.schedule_legacy_tasks()
        if issue_id is not None and self.wait_for_deliveries(issue_id):
            self.generate_report(issue_id)
            self.report_by_chord(issue_id)
            self.look_in_admin()
        self.wait_for_legacy_tasks()
        self.wait_for_tick()

    def send_issue(self) -> int | None:
        response = self.request("post", "/newsletter/issues/", {
            "subject": "Issue 42: background jobs without a broker",
            "body": "Your jobs are rows; your queue is the database you already back up."})
        body = response.json()
        issue_id, job_id = body.get("issue"), body.get("send_job")
        self.ids["send_issue"] = job_id
        committed = (response.status_code == 201
                     and Issue.objects.filter(pk=issue_id, send_job_id=job_id).exists()
                     and self.jobs(pk=job_id, task_name=send_issue.name).exists())
        self.check("view saved the issue and enqueued send_issue in one transaction", committed,
                   f"issue {issue_id}, job {job_id}")
        return issue_id if committed else None

    def send_dry_run(self) -> None:
        response = self.request("post", "/newsletter/issues/",
                                {"subject": "Dry run", "dry_run": "1"},
                                label="/newsletter/issues/ dry_run=1")
        body = response.json()
        issue_id, job_id = body.get("issue"), body.get("send_job")
        gone = (response.status_code == 200 and body.get("rolled_back")
                and not Issue.objects.filter(pk=issue_id).exists()
                and not Job.objects.filter(pk=job_id).exists())
        self.check("dry run rolled back the issue and its job together", gone,
                   f"issue {issue_id} and job {job_id} do not exist")

    def schedule_legacy_tasks(self) -> None:
        body = self.request("post", "/legacy/some-view/",
                            label="/legacy/some-view/ (the article's view)").json()
        self.ids["send_newsletter"] = body.get("send_newsletter")
        self.ids["report_later"] = body.get("generate_report")
        body = self.request("post", "/legacy/report-soon/",
                            label="/legacy/report-soon/ (generate_report())").json()
        self.ids["report_soon"] = body.get("generate_report")

    def wait_for_deliveries(self, issue_id: int) -> bool:
        subscribers = Subscriber.objects.count()

        def all_final() -> Counter[str] | None:
            if not self.jobs(pk=self.ids["send_issue"], state="succeeded").exists():
                return None
            states = Counter(dict(self.jobs(task_name=deliver_issue.name).order_by()
                                  .values_list("state").annotate(n=Count("id"))))
            if sum(states.values()) == subscribers and not states["queued"] + states["running"]:
                return states
            return None

        states = self.wait(f"{subscribers} deliveries final", all_final)
        if states is None:
            self.check(f"send_issue fanned out {subscribers} deliver_issue jobs, all final",
                       False)
            return False
        self.check(f"send_issue fanned out {subscribers} deliver_issue jobs, all final", True,
                   f"{states['succeeded']} succeeded, {states['failed']} failed")
        slow = self._delivery_job(issue_id, SLOW_SUBSCRIBER)
        bounce = self._delivery_job(issue_id, BOUNCING_SUBSCRIBER)
        self.ids["slow"], self.ids["bounce"] = slow.id, bounce.id
        retries = self._logged("job.retry", slow.id)
        self.notes["slow"] = retries[0] if retries else ""
        self.check(f"retrying job: {SLOW_SUBSCRIBER} delivered on attempt 2",
                   slow.state == "succeeded" and slow.attempts == 2 and len(retries) == 1,
                   f"job {slow.id}, attempt 1: {self.notes['slow']}")
        self.check(f"failing job: {BOUNCING_SUBSCRIBER} failed after 3 attempts",
                   bounce.state == "failed" and bounce.attempts == 3
                   and bounce.error_type == "MailboxUnavailable",
                   f"job {bounce.id}: {bounce.error_type}: {bounce.error_message}")
        return True

    def generate_report(self, issue_id: int) -> None:
        response = self.request("post", "/reports/", {"issue": issue_id})
        body = response.json()
        result_id = body.get("task_result")
        self.ids["build_report"] = int(result_id) if result_id else 0
        result = self.wait("build_report finished (Django Tasks)",
                           lambda: _finished(build_report.get_result(result_id)))
        detail = self.request("get", f"/reports/{body.get('report')}/").json()
        data = detail.get("data") or {}
        self.notes["report"] = data
        report = Report.objects.filter(pk=body.get("report")).first()
        self.check("Django Task build_report: SUCCESSFUL, report written",
                   response.status_code == 201 and body.get("status") == "READY"
                   and result is not None and result.status == "SUCCESSFUL"
                   and detail.get("status") == "SUCCESSFUL" and report is not None
                   and report.data == result.return_value,
                   f"{data.get('delivered')} of {data.get('subscribers')} delivered")

    def report_by_chord(self, issue_id: int) -> None:
        """The same report from a chord; waited for with `app.wait`, woken by the NOTIFY of
        the callback's end (no polling loop)."""
        response = self.request("post", "/reports/chord/", {"issue": issue_id},
                                label="/reports/chord/ (chord of 3 + 1)")
        body = response.json()
        callback_id, workflow_id = body.get("callback"), body.get("workflow")
        self.ids["chord_callback"] = callback_id or 0
        self.notes["workflow"] = workflow_id or ""
        started = time.perf_counter()
        try:
            data = app.wait(callback_id, timeout=max(0.0, self.deadline - time.monotonic()))
        except (pgqueue.JobFailed, pgqueue.JobNotFound, TimeoutError) as exc:
            self.clock.say(f"chord report: {type(exc).__name__}: {exc}")
            data = None
        else:
            self.clock.say(f"chord report: app.wait() returned "
                           f"{duration(time.perf_counter() - started)} after the POST")
        jobs = list(self.jobs(workflow_id=workflow_id).order_by("id")) if workflow_id else []
        header = [job for job in jobs if job.id != callback_id]
        callbacks = [job for job in jobs if job.task_name == assemble_report.name]
        report = Report.objects.filter(pk=body.get("report")).first()
        figures = [job.result for job in header]
        from_task = self.notes.get("report") or {}
        self.check(f"chord report: callback ran once with all {len(header)} results",
                   response.status_code == 201 and len(header) == 3 and len(callbacks) == 1
                   and callbacks[0].state == "succeeded" and callbacks[0].attempts == 1
                   and all(job.state == "succeeded" for job in header)
                   and callbacks[0].args[:1] == [figures] and data is not None
                   and report is not None and report.data == data
                   and all(data.get(key) == from_task.get(key)
                           for key in ("subscribers", "delivered", "not_delivered")),
                   f"assemble_report({figures}, ...), workflow {workflow_id}")

    def look_in_admin(self) -> None:
        bounce_id = self.ids["bounce"]
        listing = self.request("get", "/admin/pgqueue/job/?state__exact=failed")
        html = listing.content.decode()
        self.check("failing job listed in the admin (state=failed)",
                   listing.status_code == 200 and f"/admin/pgqueue/job/{bounce_id}/change/" in html
                   and "MailboxUnavailable" in html, f"job {bounce_id}")
        page = self.request("get", f"/admin/pgqueue/job/{bounce_id}/change/")
        html = page.content.decode()
        self.check("failing job's admin page shows its error and traceback",
                   page.status_code == 200 and "MailboxUnavailable" in html
                   and "550 5.1.1" in html and "Traceback (most recent call last)" in html)

    def wait_for_legacy_tasks(self) -> None:
        now_id, soon_id, later_id = (self.ids.get("send_newsletter"), self.ids.get("report_soon"),
                                     self.ids.get("report_later"))
        now_job = self.wait("send_newsletter ran (Task.objects.create)",
                            lambda: self.jobs(pk=now_id, state="succeeded").first())
        self.check("background send_newsletter (Task.objects.create) ran at once",
                   now_job is not None and now_job.task_name == send_newsletter.name,
                   f"job {now_id}")
        soon = self.wait(f"generate_report ran, {SCHEDULE_S} s after it was scheduled",
                         lambda: self.jobs(pk=soon_id, state="succeeded").first())
        delay = (soon.started_at - soon.enqueued_at).total_seconds() if soon else 0.0
        self.check(f"background generate_report() ran {SCHEDULE_S} s later (schedule={SCHEDULE_S})",
                   soon is not None and soon.task_name == generate_report.name
                   and delay >= SCHEDULE_S - 0.1, f"started {duration(delay)} after the call")
        later = self.jobs(pk=later_id).first()
        wait = (later.run_at - later.enqueued_at).total_seconds() if later else 0.0
        self.check("background generate_report (run_at=+1h) still scheduled",
                   later is not None and later.state == "queued" and 3590 < wait < 3610,
                   f"job {later_id}, due in {wait / 60:.0f} min")

    def wait_for_tick(self) -> None:
        tick = self.wait("periodic audience_snapshot ran",
                         lambda: self.jobs(task_name=audience_snapshot.name,
                                           state="succeeded").first())
        on_tick = tick is not None and tick.run_at.timestamp() % PERIOD_S == 0
        self.check(f"periodic audience_snapshot ran on a {PERIOD_S}-second tick", on_tick,
                   f"tick {tick.run_at:%H:%M:%S}" if tick else "")

    # -- evidence ----------------------------------------------------------------------------

    def _delivery_job(self, issue_id: int, email: str) -> Job:
        subscriber = Subscriber.objects.get(email=email)
        return self.jobs(task_name=deliver_issue.name, args=[issue_id, subscriber.pk]).get()

    def _logged(self, event: str, job_id: int) -> list[str]:
        """The `error=` of each `event` line the worker logged for `job_id`."""
        pattern = re.compile(rf"{re.escape(event)} job_id={job_id} .*?error=(['\"])(.*?)\1")
        text = self.worker_log.read_text(errors="replace")
        return [match.group(2) for match in pattern.finditer(text)]

def _registered(pid: int | None) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT FROM pgqueue.workers WHERE pid = %s)", [pid])
        return bool(cursor.fetchone()[0])


def _finished(result: Any) -> Any:
    return result if result.status in ("SUCCESSFUL", "FAILED") else None
