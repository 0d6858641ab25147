"""The admin's operator pages through Django's test client: a job's page (its error first,
Retry and Cancel), the queues page (limits changed and reset through pgqueue.set_queue_limit,
pause and resume), periodic schedules (pause, resume, run now), workers (a real worker
process), and bulk actions that are one statement however many rows are selected."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from djtesting import spawn_manage, wait_until
from shop.tasks import email_order

import pgqueue
from pgqueue import store
from pgqueue.contrib.django.admin.display import split_traceback
from pgqueue.contrib.django.app import app
from pgqueue.contrib.django.models import Job, Queue, Schedule, Worker
from pgqueue.periodic import Schedule as ScheduleDeclaration
from pgqueue.periodic import save_schedule

JOBS = "/admin/pgqueue/job/"
QUEUES = "/admin/pgqueue/queue/"
SCHEDULES = "/admin/pgqueue/schedule/"
WORKERS = "/admin/pgqueue/worker/"


@pytest.fixture
def client(clean_jobs) -> Client:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM pgqueue.queue_limits; DELETE FROM pgqueue.paused_queues; "
                       "DELETE FROM pgqueue.schedules")
    admin, _ = User.objects.get_or_create(
        username="admin", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(admin)
    return client


def _failed_job() -> int:
    job_id = app.get_task("newsletter.tasks.notify_user").using(queue="mail").defer(10**6)
    Job.objects.filter(pk=job_id).update(max_attempts=1)
    app.run_worker(one_shot=True, queues=["mail"])
    return job_id


# -- a job's page ---------------------------------------------------------------------------


def test_a_failed_jobs_page_opens_on_its_error_with_user_frames_first(client) -> None:
    failed = _failed_job()
    page = client.get(f"{JOBS}{failed}/change/").content.decode()
    summary = page[page.index('id="job-summary"'):page.index('id="job-times"')]
    assert "DoesNotExist: User matching query does not exist." in summary
    user_frames = summary[summary.index('id="job-traceback"'):summary.index("</pre>")]
    assert "newsletter/tasks.py" in user_frames and "/pgqueue/" not in user_frames
    assert "frames of pgqueue and libraries" in summary
    assert 'id="job-retry"' in summary and 'id="job-cancel"' not in summary
    # to the second: enqueued, started and finished, and how long it waited and ran
    job = Job.objects.get(pk=failed)
    assert job.finished_at.strftime("%Y-%m-%d %H:%M:%S") in page
    assert "waited " in page and "ran " in page
    # the form below keeps the arguments; nothing on the page can be saved
    assert "1000000" in page and 'name="_save"' not in page


def test_split_traceback_keeps_the_users_frames_and_the_exception() -> None:
    engine = Path(pgqueue.__file__).resolve().parent / "worker" / "executor.py"
    text = ("Traceback (most recent call last):\n"
            f'  File "{engine}", line 9, in _call_with_hooks\n    return task.func()\n'
            '  File "/srv/shop/tasks.py", line 3, in charge\n    raise ValueError("no")\n'
            "ValueError: no\n")
    parts = split_traceback(text)
    assert parts.other_frames == 1 and "executor.py" not in parts.user_frames
    assert parts.user_frames == ("Traceback (most recent call last):\n"
                                 '  File "/srv/shop/tasks.py", line 3, in charge\n'
                                 '    raise ValueError("no")\nValueError: no')
    assert parts.full == text


def test_retry_and_cancel_buttons(client) -> None:
    failed = _failed_job()
    response = client.post(f"{JOBS}{failed}/retry/", follow=True)
    assert f"Job {failed} queued again." in response.content.decode()
    assert Job.objects.get(pk=failed).state == "queued"
    assert 'id="job-cancel"' in response.content.decode()
    response = client.post(f"{JOBS}{failed}/cancel/", follow=True)
    assert f"Job {failed} cancelled." in response.content.decode()
    assert Job.objects.get(pk=failed).state == "cancelled"
    assert client.get(f"{JOBS}{failed}/retry/").status_code == 405  # POST only


def test_bulk_actions_are_one_statement_for_any_selection(client) -> None:
    ids = email_order.defer_many([(f"B-{n}",) for n in range(30)])
    for action, verb in (("cancel_selected", "UPDATE"), ("retry_selected", "UPDATE")):
        with CaptureQueriesContext(connection) as queries:
            response = client.post(JOBS, {"action": action, "_selected_action": ids})
        assert response.status_code == 302
        writes = [q["sql"] for q in queries.captured_queries if verb in q["sql"].upper()
                  and "pgqueue" in q["sql"] and "django_session" not in q["sql"]]
        assert len(writes) == 1, writes
    assert set(Job.objects.values_list("state", flat=True)) == {"queued"}


# -- queues --------------------------------------------------------------------------------


def test_queues_page_shows_depth_waits_limits_and_pauses(client) -> None:
    email_order.defer("Q-1")
    email_order.using(queue="bulk").defer("Q-2")
    _failed_job()
    app.db.run(store.set_queue_limit(
        queue="bulk", limit_name="concurrency", limit_value="2"))
    response = client.get(QUEUES)
    assert response.status_code == 200
    rows = {row.queue: row for row in response.context["cl"].result_list}
    assert (rows["emails"].due, rows["bulk"].concurrency, rows["mail"].failed) == (1, 2, 1)
    page = response.content.decode()
    assert "2 at once" in page and "?queue=mail&amp;state__exact=failed" in page


def test_queues_page_warns_of_due_jobs_no_worker_has_the_task_of(client) -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM pgqueue.workers")
        cursor.execute("INSERT INTO pgqueue.jobs (task_name, queue) "
                       "VALUES ('gone.task', 'legacy'), ('gone.task', 'legacy')")
    page = client.get(QUEUES).content.decode()
    assert "2 due jobs wait for a worker that has their task: gone.task in legacy (2)" in page


def test_limits_are_changed_and_reset_from_the_queues_page(client) -> None:
    email_order.using(queue="bulk").defer("L-1")
    url = f"{QUEUES}bulk/change/"
    response = client.post(url, {"concurrency": "3", "per_key_concurrency": "",
                                 "rate_limit": "100/m", "_save": "Save"})
    assert response.status_code == 302, response.content.decode()[:2000]
    queue = Queue.objects.get(pk="bulk")
    assert (queue.concurrency, queue.per_key_concurrency, queue.rate_limit,
            queue.limits_set_by) == (3, None, "100/m", "operator")

    bad = client.post(url, {"concurrency": "0", "rate_limit": "lots", "_save": "Save"})
    assert bad.status_code == 200
    assert "rate_limit must look like 10/s" in bad.content.decode()
    assert Queue.objects.get(pk="bulk").concurrency == 3  # nothing written

    client.post(url, {"concurrency": "3", "rate_limit": "100/m", "_reset_limits": "Reset"})
    queue = Queue.objects.get(pk="bulk")
    assert (queue.concurrency, queue.rate_limit) == (None, None)


def test_pause_and_resume_queues_in_one_statement(client) -> None:
    email_order.defer("P-1")
    email_order.using(queue="bulk").defer("P-2")
    with CaptureQueriesContext(connection) as queries:
        response = client.post(QUEUES, {"action": "pause_selected",
                                        "_selected_action": ["emails", "bulk"]}, follow=True)
    assert "2 queue(s) paused" in response.content.decode()
    assert sum("pause_queue(" in q["sql"] for q in queries.captured_queries) == 1
    assert set(Queue.objects.filter(paused=True).values_list("queue", flat=True)) == {
        "emails", "bulk"}
    app.run_worker(one_shot=True)
    assert Job.objects.filter(state="queued").count() == 2  # paused: nothing ran
    client.post(QUEUES, {"action": "resume_selected", "_selected_action": ["bulk"]})
    app.run_worker(one_shot=True)
    assert list(Job.objects.filter(state="queued").values_list("queue", flat=True)) == [
        "emails"]


# -- schedules and workers -----------------------------------------------------------------


def test_schedules_pause_resume_and_run_now(client) -> None:
    save_schedule(app, ScheduleDeclaration(task_name="shop.tasks.email_order",
                                           every=timedelta(hours=1), args=["S-1"],
                                           id="hourly-email"))
    page = client.get(SCHEDULES).content.decode()
    assert "hourly-email" in page and "every 1h" in page
    client.post(SCHEDULES, {"action": "pause_selected", "_selected_action": ["hourly-email"]})
    assert Schedule.objects.get().paused
    client.post(SCHEDULES, {"action": "resume_selected",
                            "_selected_action": ["hourly-email"]})
    assert not Schedule.objects.get().paused
    response = client.post(SCHEDULES, {"action": "run_selected_now",
                                       "_selected_action": ["hourly-email"]}, follow=True)
    job = Job.objects.get()
    assert f"1 job(s) enqueued: {job.id}" in response.content.decode()
    assert (job.task_name, job.args, job.state) == ("shop.tasks.email_order", ["S-1"],
                                                    "queued")


def test_workers_page_shows_a_live_worker(client, clean_jobs, tmp_path) -> None:
    worker = spawn_manage(clean_jobs, "pgqueue", "worker", "--concurrency", "4",
                          log=tmp_path / "worker.log")
    try:
        wait_until(lambda: Worker.objects.filter(alive=True, server_connections=3).exists(),
                   timeout=30, message="the worker to register and connect")
        page = client.get(WORKERS).content.decode()
        row = Worker.objects.get()
        assert "0 / 4" in page and "pgq-alive" in page and row.name in page
        assert " ago" in page  # last heartbeat
    finally:
        worker.terminate()
        worker.wait(timeout=30)
