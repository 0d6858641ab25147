# ruff: noqa: E501, RUF012
"""Runs migrations_sql/0001_initial.sql, and declares the unmanaged Job model over its table."""

import django.db.models.functions.datetime
from django.db import migrations, models

from pgqueue.contrib.django.operations import RunSqlFile


class Migration(migrations.Migration):
    initial = True
    dependencies: list[tuple[str, str]] = []
    operations = [
        RunSqlFile("0001_initial"),
        migrations.CreateModel(
            name="Job",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("queue", models.TextField(db_default="default")),
                ("task_name", models.TextField()),
                ("args", models.JSONField(db_default=models.Value([], models.JSONField()))),
                ("kwargs", models.JSONField(db_default=models.Value({}, models.JSONField()))),
                ("priority", models.IntegerField(db_default=0, help_text="Higher runs first among due jobs.")),
                ("state", models.TextField(choices=[("queued", "queued"), ("running", "running"), ("succeeded", "succeeded"), ("failed", "failed"), ("cancelled", "cancelled")], db_default="queued")),
                ("run_at", models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
                ("attempts", models.IntegerField(db_default=0)),
                ("max_attempts", models.IntegerField(db_default=3)),
                ("worker_id", models.BigIntegerField(blank=True, null=True)),
                ("claim_token", models.UUIDField(blank=True, null=True)),
                ("abort_requested", models.BooleanField(db_default=False)),
                ("enqueued_at", models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("error_type", models.TextField(blank=True, null=True)),
                ("error_message", models.TextField(blank=True, null=True)),
                ("error_traceback", models.TextField(blank=True, null=True)),
                ("result", models.JSONField(blank=True, null=True)),
            ],
            options={
                "verbose_name": "job",
                "verbose_name_plural": "jobs",
                "db_table": '"pgqueue"."jobs"',
                "ordering": ("-id",),
                "managed": False,
            },
        ),
    ]
