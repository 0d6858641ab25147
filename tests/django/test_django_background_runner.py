"""The drop-in's attempts, beyond the library's own tests: its signals from a real worker,
``run_next_task`` racing on several connections, inside a test's transaction, a lost lock, and
the models listing only this door's tasks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone
from shop.tasks import email_order

from pgqueue.contrib.django.app import app
from pgqueue.contrib.django.background import background, signals
from pgqueue.contrib.django.background.models import CompletedTask, Task
from pgqueue.contrib.django.background.tasks import DBTaskRunner, tasks
from pgqueue.contrib.django.models import Job

ran: list[Any] = []


@background(name="runner.add")
def add(a: int, b: int) -> None:
    ran.append(a + b)


@background(name="runner.explode")
def explode() -> None:
    raise ValueError("boom")


@pytest.fixture
def received(clean_jobs) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    ran.clear()
    events: list[tuple[str, dict[str, Any]]] = []
    receivers = {}
    for name in ("task_created", "task_started", "task_successful", "task_error",
                 "task_rescheduled", "task_failed", "task_finished"):
        def receiver(signal_name: str = name, **kwargs: Any) -> None:
            kwargs.pop("signal")
            events.append((signal_name, kwargs))
        receivers[name] = receiver
        getattr(signals, name).connect(receiver)
    yield events
    for name, receiver in receivers.items():
        getattr(signals, name).disconnect(receiver)


def test_a_worker_sends_the_librarys_signals(received) -> None:
    task = add(2, 3, schedule=timezone.now())
    failing = explode(schedule=timezone.now())
    app.run_worker(one_shot=True)
    names = [name for name, _ in received]
    assert names[0] == "task_created" and received[0][1]["task"].pk == task.pk
    assert received[0][1]["sender"] is DBTaskRunner
    successful = next(kwargs for name, kwargs in received if name == "task_successful")
    assert successful["sender"] is Task and successful["task_id"] == task.pk
    assert isinstance(successful["completed_task"], CompletedTask)
    assert successful["completed_task"].pk == task.pk and ran == [5]
    error = next(kwargs for name, kwargs in received if name == "task_error")
    assert error["sender"] is ValueError and error["task"].pk == failing.pk
    rescheduled = next(kwargs for name, kwargs in received if name == "task_rescheduled")
    assert rescheduled["task"].pk == failing.pk
    assert names.count("task_started") == names.count("task_finished") == 2
    assert all(kwargs["sender"] is Task for name, kwargs in received
               if name in ("task_started", "task_finished"))
    assert "task_failed" not in names  # 25 attempts: it will be tried again


def test_run_next_task_sends_task_failed_with_the_completed_task(received) -> None:
    failing = explode(schedule=timezone.now())
    Task.objects.filter(pk=failing.pk).update(attempts=24)  # saved through the view: kept
    assert tasks.run_next_task() is True
    failed = next(kwargs for name, kwargs in received if name == "task_failed")
    assert failed["task_id"] == failing.pk
    assert failed["completed_task"].failed_at is not None
    assert failed["completed_task"].attempts == 25


def test_run_next_task_inside_a_tests_transaction(received) -> None:
    """What a TestCase does: everything in one transaction, rolled back at the end."""
    with pytest.raises(RuntimeError), transaction.atomic():
        task = add(1, 1, schedule=timezone.now())
        assert tasks.run_next_task() is True
        assert CompletedTask.objects.get().pk == task.pk and ran == [2]
        raise RuntimeError("roll the test back")
    assert not Job.objects.exists()


def test_racing_run_next_task_runs_each_task_once(received) -> None:
    """Four threads, each on its own database connection, drain 40 tasks with run_next_task:
    every task runs exactly once (Task.lock decides, in the database)."""
    for number in range(40):
        add(number, 0, schedule=timezone.now())
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def drain() -> None:
        try:
            start.wait()
            while tasks.run_next_task():
                pass
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=drain) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert sorted(ran) == list(range(40))
    assert CompletedTask.objects.count() == 40 and Task.objects.count() == 0


def test_an_attempt_that_lost_its_lock_records_nothing(received) -> None:
    """The lock is taken over while the task runs (as when its lock expired): the success is
    not recorded and its repetition is not scheduled."""

    @background(name="runner.loses_its_lock")
    def loses_its_lock() -> None:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE pgqueue.jobs SET claim_token = gen_random_uuid()")

    task = loses_its_lock(schedule=timezone.now(), repeat=Task.HOURLY)
    assert tasks.run_next_task() is True
    assert Task.objects.get().pk == task.pk  # still locked by its new holder
    assert not CompletedTask.objects.exists()
    assert "task_successful" not in [name for name, _ in received]


def test_the_models_list_only_this_doors_tasks(received) -> None:
    email_order.defer("K-1")
    add(1, 2, schedule=timezone.now())
    assert Task.objects.count() == 1 and Job.objects.count() == 2
    app.run_worker(one_shot=True)
    assert CompletedTask.objects.count() == 1 and Job.objects.count() == 2
    assert CompletedTask.objects.get().task_name == "runner.add"


def test_a_lock_saved_through_the_model_is_a_claim_workers_respect(received) -> None:
    task = add(4, 4, schedule=timezone.now())
    locked = task.lock("elsewhere")
    assert (locked.locked_by, locked.state) == ("elsewhere", "running")
    assert task.lock("again") is None
    app.run_worker(one_shot=True)  # leaves it alone: running
    assert ran == []
    locked.locked_by = None
    locked.save()  # unlocked through the model: queued again
    assert Job.objects.get(pk=task.pk).state == "queued"
    app.run_worker(one_shot=True)
    assert ran == [8]
