"""The django-background-tasks drop-in: the article's code and that library's documented usage
examples, unchanged apart from the imports, against real workers."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone
from djtesting import HERE, wait_until
from newsletter import queued
from newsletter.models import Run
from newsletter.tasks import generate_report, notify_user, recalculate_data, send_newsletter

from pgqueue.contrib.django.app import app
from pgqueue.contrib.django.background import TaskSchedule, background
from pgqueue.contrib.django.background.exceptions import InvalidTaskError
from pgqueue.contrib.django.background.models import CompletedTask, Task
from pgqueue.contrib.django.models import Job


def run_worker_until_idle(**options: object) -> None:
    app.run_worker(one_shot=True, **options)


def make_due(*tasks: Task) -> None:
    Job.objects.filter(pk__in=[task.pk for task in tasks]).update(run_at=timezone.now())


@pytest.fixture
def user(clean_jobs) -> User:
    Run.objects.all().delete()
    mail.outbox.clear()
    return User.objects.get_or_create(username="ada", defaults={"email": "ada@example.com"})[0]


# -- the article --------------------------------------------------------------------------


def some_view(request):
    # Schedule the 'send_newsletter' task to run immediately
    Task.objects.create(task_name='send_newsletter')

    # Schedule the 'generate_report' task to run after a delay of 1 hour
    Task.objects.create(task_name='generate_report', run_at=timezone.now() + timedelta(hours=1))

    ...


def test_the_articles_view_enqueues_jobs_a_worker_runs(user) -> None:
    some_view(request=None)
    newsletter, report = Task.objects.order_by("id")
    assert newsletter.task_name == "newsletter.tasks.send_newsletter"
    assert report.task_name == "newsletter.tasks.generate_report"
    assert report.run_at > timezone.now() + timedelta(minutes=59)
    assert newsletter.max_attempts == 25

    run_worker_until_idle()

    assert list(Run.objects.values_list("name", flat=True)) == ["send_newsletter"]
    assert list(Task.objects.values_list("task_name", flat=True)) == [report.task_name]
    completed = CompletedTask.objects.get()
    assert (completed.pk, completed.state, completed.failed_at) == (newsletter.pk, "succeeded",
                                                                    None)
    assert CompletedTask.objects.succeeded(within=timedelta(minutes=1)).count() == 1


def test_the_row_insert_wakes_process_tasks(user, django_db) -> None:
    """``manage.py process_tasks`` polls every 60 s here: only the insert's NOTIFY can wake it."""
    worker = subprocess.Popen(
        [sys.executable, str(HERE / "manage.py"), "process_tasks", "--sleep", "60",
         "--log-level", "INFO"], env=django_db.env(), cwd=HERE,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: Job.objects.filter(state="queued").count() == 0
                   and _workers_listening(), timeout=20, message="process_tasks to start")
        Task.objects.create(task_name='send_newsletter')
        wait_until(lambda: Run.objects.filter(name="send_newsletter").exists(), timeout=15,
                   message="the worker to run the task")
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, output


def _workers_listening() -> bool:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                       " AND query ILIKE 'LISTEN%'")
        return cursor.fetchone()[0] > 0


def test_process_tasks_duration_and_queue(user, django_db) -> None:
    queued.notify_user(user.id, schedule=timezone.now())
    notify_user(user.id, schedule=timezone.now())
    result = subprocess.run(
        [sys.executable, str(HERE / "manage.py"), "process_tasks", "--duration", "2",
         "--queue", "my-queue", "--sleep", "0.2", "--log-std"], env=django_db.env(), cwd=HERE,
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert list(Task.objects.values_list("queue", flat=True)) == ["default"]
    assert CompletedTask.objects.get().queue == "my-queue"


def test_decorator_schedule_is_the_default_delay(user) -> None:
    before = timezone.now()
    task = send_newsletter()
    assert before + timedelta(seconds=10) <= task.run_at <= timezone.now() + timedelta(seconds=10)
    assert generate_report().run_at <= timezone.now() + timedelta(seconds=5)


# -- the library's documentation ------------------------------------------------------------


def test_documented_scheduling_examples(user) -> None:
    now = timezone.now()
    notify_user(user.id)
    notify_user(user.id, schedule=90) # 90 seconds from now
    notify_user(user.id, schedule=timedelta(minutes=20)) # 20 minutes from now
    notify_user(user.id, schedule=timezone.now()) # at a specific time
    delays = [round((task.run_at - now).total_seconds()) for task in Task.objects.order_by("id")]
    assert delays == [60, 90, 1200, 0]
    assert {task.task_name for task in Task.objects.all()} == {"newsletter.tasks.notify_user"}
    assert Task.objects.first().params() == ([user.id], {})

    run_worker_until_idle()
    assert len(mail.outbox) == 1 and mail.outbox[0].subject == 'Here is a notification'
    assert Task.objects.count() == 3


def test_now_runs_the_function_inline(user) -> None:
    notify_user.now(user.id)   # launch a notify_user function and wait for it
    assert len(mail.outbox) == 1 and Task.objects.count() == 0


def test_verbose_name_and_creator(user) -> None:
    notify_user(user.id, verbose_name="Notify user", creator=user)
    task = Task.objects.created_by(user).get()
    assert (task.verbose_name, task.creator, str(task)) == ("Notify user", user, "Notify user")
    make_due(task)
    run_worker_until_idle()
    done = CompletedTask.objects.created_by(user).get()
    assert (done.verbose_name, done.creator) == ("Notify user", user)


def test_repeating_task_schedules_its_next_run_on_success(user) -> None:
    first = notify_user(user.id, repeat=Task.HOURLY, repeat_until=None, verbose_name="hourly",
                        creator=user, schedule=timezone.now())
    assert first.is_repeating_task()
    run_worker_until_idle()
    following = Task.objects.get()
    assert following.pk != first.pk
    assert following.run_at == first.run_at + timedelta(hours=1)
    assert (following.repeat, following.verbose_name, following.creator, following.params()) == (
        Task.HOURLY, "hourly", user, ([user.id], {}))
    assert Task.DAILY == 86400 and Task.WEEKLY == 604800 and Task.NEVER == 0
    assert Task.EVERY_2_WEEKS == 2 * Task.WEEKLY and Task.EVERY_4_WEEKS == 4 * Task.WEEKLY


def test_repeat_until_ends_the_chain(user) -> None:
    notify_user(user.id, repeat=Task.DAILY, repeat_until=timezone.now() - timedelta(seconds=1),
                schedule=timezone.now())
    run_worker_until_idle()
    assert Task.objects.count() == 0 and CompletedTask.objects.count() == 1


def test_multiple_queues(user) -> None:
    task = queued.notify_user(user.id)
    assert task.queue == 'my-queue'
    run_worker_until_idle(queues=["default"])
    assert Task.objects.get().pk == task.pk
    run_worker_until_idle(queues=["my-queue"])
    assert Task.objects.count() == 0
    assert notify_user(user.id, queue="mail").queue == "mail"  # chosen when called
    assert Job.objects.get(state="queued").queue == "mail"


def test_remove_existing_tasks(user) -> None:
    recalculate_data()
    recalculate_data()
    assert Task.objects.count() == 1


def test_schedule_actions(user) -> None:
    notify_user(user.id, schedule=60)
    assert notify_user(user.id, schedule={"action": TaskSchedule.CHECK_EXISTING}) is None
    later = timezone.now() + timedelta(hours=2)
    notify_user(user.id, schedule={"run_at": later, "priority": 5,
                                   "action": TaskSchedule.RESCHEDULE_EXISTING})
    task = Task.objects.get()
    assert (task.run_at, task.priority) == (later, 5)


def test_priority_orders_due_tasks(user) -> None:
    low = recalculate_data(priority=1, schedule=timezone.now())
    Run.objects.all().delete()
    high = notify_user(user.id, priority=9, schedule=timezone.now())
    assert Job.objects.get(pk=high.pk).priority == 9
    run_worker_until_idle()
    finished = list(CompletedTask.objects.order_by("run_at").values_list("id", flat=True))
    assert finished == [high.pk, low.pk]


def test_retry_defaults_are_those_of_django_background_tasks(user) -> None:
    registered = app.get_task("newsletter.tasks.notify_user")
    assert registered.retry.max_attempts == 25
    assert [registered.retry.delay_after(n) for n in (1, 2, 4, 25)] == [6, 21, 261, 390630]
    assert registered.timeout == 3600

    task = notify_user(user.id + 1000, schedule=timezone.now())  # no such user: it fails
    run_worker_until_idle()
    task = Task.objects.get(pk=task.pk)
    assert task.attempts == 1 and "DoesNotExist" in task.last_error
    assert timezone.now() + timedelta(seconds=4) < task.run_at < timezone.now() + timedelta(
        seconds=7)


@background(name="tests.always_fails")
def always_fails():
    raise RuntimeError("nope")


@background(name="tests.invalid")
def invalid_task():
    raise InvalidTaskError("this task can never work")


def test_settings_are_read_when_the_task_runs(user) -> None:
    task = always_fails(schedule=timezone.now())  # enqueued with the defaults: 25 attempts
    assert Task.objects.get(pk=task.pk).max_attempts == 25
    with override_settings(MAX_ATTEMPTS=2, MAX_RUN_TIME=30,
                           BACKGROUND_TASK_DELAY_BETWEEN_ATTEMPTS=0):
        registered = app.get_task("tests.always_fails")
        assert (registered.retry.max_attempts, registered.timeout) == (2, 30)
        assert registered.retry.delay_after(1) == 0
        run_worker_until_idle()  # attempt 1 retried at once, attempt 2 the last
    failed = CompletedTask.objects.failed().get()
    assert (failed.pk, failed.attempts, failed.state) == (task.pk, 2, "failed")
    assert "RuntimeError: nope" in failed.last_error
    registered = app.get_task("tests.always_fails")
    assert (registered.retry.max_attempts, registered.timeout) == (25, 3600)
    restarted = failed.create_restarted_task()
    assert Task.objects.get().pk == restarted.pk


def test_invalid_task_error_fails_at_once_in_a_worker(user) -> None:
    task = invalid_task(schedule=timezone.now())
    run_worker_until_idle()
    failed = CompletedTask.objects.get()
    assert (failed.pk, failed.attempts, failed.state) == (task.pk, 1, "failed")
    assert "this task can never work" in failed.last_error
    assert Task.objects.count() == 0


def test_model_api_get_drop_and_delete(user) -> None:
    notify_user(user.id)
    assert Task.objects.get_task("newsletter.tasks.notify_user", args=[user.id]).count() == 1
    # A short name is resolved only when one registered task ends with it.
    assert Task.objects.get_task("notify_user", args=[user.id]).count() == 0
    recalculate_data()
    assert Task.objects.get_task("recalculate_data").count() == 1
    Task.objects.drop_task("recalculate_data")
    Task.objects.drop_task("newsletter.tasks.notify_user", args=[user.id])
    assert Task.objects.count() == 0 and Job.objects.count() == 0
    Task.objects.create(task_name="no.such.task")
    assert Job.objects.get().task_name == "no.such.task"


def test_saving_a_task_reschedules_its_job(user) -> None:
    task = notify_user(user.id)
    task.run_at = timezone.now() + timedelta(days=1)
    task.priority = 3
    task.save()
    job = Job.objects.get(pk=task.pk)
    assert (job.run_at, job.priority) == (task.run_at, 3)


# -- the background_tasks command -----------------------------------------------------------


def _command(*args: str) -> str:
    out = io.StringIO()
    call_command("background_tasks", *args, stdout=out)
    return out.getvalue()


def test_background_tasks_lists_cancels_and_deletes(user) -> None:
    scheduled = notify_user(user.id, verbose_name="Notify Ada")
    due = recalculate_data(schedule=timezone.now())
    listing = _command()
    assert "Notify Ada" in listing and "scheduled" in listing
    assert "newsletter.tasks.recalculate_data" in listing and "due" in listing

    assert f"task {scheduled.pk} cancelled" in _command("--cancel", str(scheduled.pk))
    run_worker_until_idle()
    assert "no scheduled or running tasks" in _command()
    completed = _command("--completed")
    assert "cancelled" in completed and "succeeded" in completed
    assert "recalculate_data" not in _command("--completed", "--failed")

    assert "queued again" in _command("--retry", str(scheduled.pk))
    assert str(scheduled.pk) in _command()
    assert "deleted 1 completed task(s)" in _command("--delete-completed")
    assert not Job.objects.filter(pk=due.pk).exists()
    assert f"task {scheduled.pk} deleted" in _command("--delete", str(scheduled.pk))
    assert Job.objects.count() == 0
