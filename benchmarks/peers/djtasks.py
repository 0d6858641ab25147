"""The no-op task for django-tasks-db, as the django-tasks docs write one (`@task`)."""

from __future__ import annotations

from django_tasks import task

from benchmarks.record import record


@task()
def noop(i: int) -> None:
    record(i)
