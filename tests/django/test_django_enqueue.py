"""The Django app: DSN from DATABASES, enqueue on Django's connection (atomic with the ORM),
workers on their own pools that keep no stale Django connection behind."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connections, transaction
from djtesting import wait_until
from shop.models import Order
from shop.tasks import email_order

from pgqueue.contrib.django.app import app
from pgqueue.contrib.django.connection import close_stale_connections, conninfo_from_settings
from pgqueue.contrib.django.models import Job
from pgqueue.errors import ConfigurationError, SchemaMissing


def run_worker_until_idle(**options: object) -> None:
    app.run_worker(one_shot=True, **{"concurrency": 2, **options})


def test_tasks_are_autodiscovered_from_every_app(django_db) -> None:
    assert "shop.tasks.email_order" in app.tasks
    assert "newsletter.tasks.send_newsletter" in app.tasks
    assert close_stale_connections in app.task_hooks


def test_dsn_is_built_from_the_databases_entry(django_db) -> None:
    assert f"dbname='{django_db.name}'" in app.dsn
    with psycopg.connect(app.dsn) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == django_db.name


def test_conninfo_quotes_values_and_keeps_libpq_options() -> None:
    conninfo = conninfo_from_settings({
        "ENGINE": "django.db.backends.postgresql", "NAME": "shop", "USER": "o'brien",
        "PASSWORD": "a b\\c", "HOST": "db.internal", "PORT": "6432",
        "OPTIONS": {"sslmode": "require", "server_side_binding": True, "pool": True},
    })
    assert conninfo == ("dbname='shop' user='o\\'brien' password='a b\\\\c' "
                        "host='db.internal' port='6432' sslmode='require'")
    with pytest.raises(ConfigurationError, match="PostgreSQL"):
        conninfo_from_settings({"ENGINE": "django.db.backends.sqlite3", "NAME": "x"})


def test_defer_inside_atomic_commits_with_the_orm(clean_jobs) -> None:
    with transaction.atomic():
        Order.objects.create(reference="A-1")
        job_id = email_order.defer("A-1")
        # Not committed yet: a connection of pgqueue's own pool does not see the job.
        with psycopg.connect(clean_jobs.dsn) as other:
            assert other.execute("SELECT count(*) FROM pgqueue.jobs").fetchone()[0] == 0
        # Django's connection does (same transaction), and jsonb comes back decoded.
        assert app.get_job(job_id).args == ["A-1"]
    assert Job.objects.get(pk=job_id).state == "queued"

    run_worker_until_idle()

    assert Order.objects.get(reference="A-1").emailed is True
    job = Job.objects.get(pk=job_id)
    assert (job.state, job.result) == ("succeeded", "A-1")


def test_defer_inside_atomic_rolls_back_with_the_orm(clean_jobs) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        Order.objects.create(reference="B-1")
        email_order.defer("B-1")
        raise RuntimeError("the view failed after enqueueing")
    assert not Order.objects.filter(reference="B-1").exists()
    assert Job.objects.count() == 0


def test_defer_in_a_savepoint_rolls_back_alone(clean_jobs) -> None:
    with transaction.atomic():
        kept = email_order.defer("C-1")
        with pytest.raises(RuntimeError), transaction.atomic():
            email_order.defer("C-2")
            raise RuntimeError
    assert list(Job.objects.values_list("id", flat=True)) == [kept]


def test_worker_threads_leave_no_django_connection_open(clean_jobs) -> None:
    for number in range(4):
        Order.objects.create(reference=f"D-{number}")
        email_order.defer(f"D-{number}")
    run_worker_until_idle(concurrency=2)
    assert Order.objects.filter(reference__startswith="D-", emailed=True).count() == 4
    def others_connected() -> int:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")
            return cursor.fetchone()[0]

    # A closed connection's backend leaves pg_stat_activity a moment after the client is gone.
    wait_until(lambda: others_connected() == 0, timeout=5,
               message="the worker's connections to be gone")


def test_missing_schema_is_reported_as_schema_missing(clean_jobs) -> None:
    with pytest.raises(SchemaMissing), transaction.atomic():
        with connections["default"].cursor() as cursor:
            cursor.execute("SET LOCAL search_path = public")
            cursor.execute("ALTER TABLE pgqueue.jobs RENAME TO jobs_elsewhere")
        email_order.defer("E-1")


def test_bulk_defer_by_copy_joins_the_orm_transaction(clean_jobs) -> None:
    with transaction.atomic():
        email_order.defer_many([(f"B-{n}",) for n in range(600)])  # the COPY path
        transaction.set_rollback(True)
    assert Job.objects.count() == 0
    with transaction.atomic():
        Order.objects.create(reference="B-0")
        ids = email_order.defer_many([(f"B-{n}",) for n in range(600)])
    assert Job.objects.filter(pk__in=ids, state="queued").count() == 600
    assert app.get_job(ids[-1]).args == ["B-599"]


def test_schedules_from_the_pgqueue_periodic_setting_are_declared() -> None:
    from django.apps import apps
    from django.test import override_settings

    from pgqueue.periodic import declare
    from pgqueue.periodic.scheduler import run_scheduler

    setting = {"nightly-emails": {"task": "shop.tasks.email_order", "cron": "0 3 * * *",
                                  "args": ["NIGHTLY"], "timezone": "Europe/Paris"}}
    try:
        with override_settings(PGQUEUE_PERIODIC=setting):
            apps.get_app_config("pgqueue").ready()
        declared = {s.id: s for s in declare.declared_schedules(app)}
        assert declared["nightly-emails"].task_name == "shop.tasks.email_order"
        assert declared["nightly-emails"].timezone == "Europe/Paris"
        assert run_scheduler in app.worker_services
    finally:
        declare._declared.pop(app, None)
        if run_scheduler in app.worker_services:
            app.worker_services.remove(run_scheduler)
