# ruff: noqa: RUF012
"""Runs migrations_sql/0013_django_doors.sql, and declares the unmanaged models of the admin's
pages: Queue (pgqueue.queue_overview), Schedule (pgqueue.schedules), Worker
(pgqueue.workers_overview)."""

from django.db import migrations, models

import pgqueue.contrib.django.models
from pgqueue.contrib.django.operations import RunSqlFile


class Migration(migrations.Migration):
    # 0012 is another change on main; the chain is mended when both are merged.
    dependencies = [("pgqueue", "0012_schedule_overlap")]
    operations = [
        RunSqlFile("0013_django_doors"),
        migrations.CreateModel(
            name="Queue",
            fields=[
                ("queue", models.TextField(primary_key=True, serialize=False)),
                ("paused", models.BooleanField()),
                ("queued", models.BigIntegerField()),
                ("due", models.BigIntegerField()),
                ("scheduled", models.BigIntegerField()),
                ("waiting_on_lock", models.BigIntegerField()),
                ("running", models.BigIntegerField()),
                ("succeeded", models.BigIntegerField()),
                ("failed", models.BigIntegerField()),
                ("cancelled", models.BigIntegerField()),
                ("oldest_waiting_seconds", models.FloatField(null=True)),
                ("started_5m", models.BigIntegerField()),
                ("wait_p50_seconds", models.FloatField(null=True)),
                ("wait_p95_seconds", models.FloatField(null=True)),
                ("concurrency", models.IntegerField(null=True)),
                ("per_key_concurrency", models.IntegerField(null=True)),
                ("rate_limit", models.TextField(null=True)),
                ("started_in_rate_window", models.BigIntegerField(null=True)),
                ("held_back_by", models.TextField(null=True)),
                ("limits_set_by", models.TextField(null=True)),
                ("paused_at", models.DateTimeField(null=True)),
                ("paused_by", models.TextField(null=True)),
                ("paused_reason", models.TextField(null=True)),
            ],
            options={
                "verbose_name": "queue",
                "verbose_name_plural": "queues",
                "db_table": '"pgqueue"."queue_overview"',
                "ordering": ("queue",),
                "managed": False,
            },
        ),
        migrations.CreateModel(
            name="Schedule",
            fields=[
                ("id", models.TextField(primary_key=True, serialize=False)),
                ("task_name", models.TextField()),
                ("cron", models.TextField(null=True)),
                ("every", models.DurationField(null=True)),
                ("timezone", models.TextField()),
                ("args", models.JSONField()),
                ("kwargs", models.JSONField()),
                ("queue", models.TextField()),
                ("priority", models.IntegerField()),
                ("max_attempts", models.IntegerField()),
                ("misfire", models.TextField()),
                ("ends_at", models.DateTimeField(null=True)),
                ("origin", models.TextField()),
                ("next_tick_at", models.DateTimeField(null=True)),
                ("restart_from", models.DateTimeField(null=True)),
                ("last_tick_at", models.DateTimeField(null=True)),
                ("last_job_id", models.BigIntegerField(null=True)),
                ("last_fired_at", models.DateTimeField(null=True)),
                ("skipped_ticks", models.BigIntegerField()),
                ("paused", models.BooleanField()),
                ("paused_at", models.DateTimeField(null=True)),
                ("orphaned", models.BooleanField()),
                ("created_at", models.DateTimeField()),
            ],
            options={
                "verbose_name": "periodic schedule",
                "verbose_name_plural": "periodic schedules",
                "db_table": '"pgqueue"."schedules"',
                "ordering": ("id",),
                "managed": False,
            },
        ),
        migrations.CreateModel(
            name="Worker",
            fields=[
                ("id", models.BigIntegerField(primary_key=True, serialize=False)),
                ("name", models.TextField()),
                ("hostname", models.TextField()),
                ("pid", models.IntegerField()),
                ("queues", pgqueue.contrib.django.models.TextList(null=True)),
                ("concurrency", models.IntegerField()),
                ("alive", models.BooleanField()),
                ("heartbeat_age_seconds", models.FloatField(null=True)),
                ("started_at", models.DateTimeField()),
                ("uptime_seconds", models.FloatField()),
                ("running_jobs", models.BigIntegerField()),
                ("running_tasks", pgqueue.contrib.django.models.TextList(null=True)),
                ("longest_running_seconds", models.FloatField(null=True)),
                ("server_connections", models.IntegerField(null=True)),
            ],
            options={
                "verbose_name": "worker",
                "verbose_name_plural": "workers",
                "db_table": '"pgqueue"."workers_overview"',
                "ordering": ("-alive", "id"),
                "managed": False,
            },
        ),
    ]
