# ruff: noqa: E501, RUF012
"""The views and side table of the django-background-tasks compatibility layer (SQL in ../sql/),
and the unmanaged Task and CompletedTask models over them."""

from pathlib import Path

from django.db import migrations, models

_SQL = Path(__file__).resolve().parent.parent / "sql"


class Migration(migrations.Migration):
    initial = True
    dependencies = [
        ("pgqueue", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [
        migrations.RunSQL(
            sql=[(_SQL / "0001_views.sql").read_text(encoding="utf-8")],
            reverse_sql=[(_SQL / "0001_views_reverse.sql").read_text(encoding="utf-8")],
        ),
        migrations.CreateModel(
            name="CompletedTask",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("task_name", models.CharField(db_index=True, max_length=300)),
                ("task_params", models.TextField(default="[[], {}]")),
                ("task_hash", models.CharField(blank=True, default="", max_length=40)),
                ("verbose_name", models.CharField(blank=True, max_length=255, null=True)),
                ("priority", models.IntegerField(default=0)),
                ("run_at", models.DateTimeField(blank=True, null=True)),
                ("repeat", models.BigIntegerField(choices=[(3600, "hourly"), (86400, "daily"), (604800, "weekly"), (1209600, "every 2 weeks"), (2419200, "every 4 weeks"), (0, "never")], default=0)),
                ("repeat_until", models.DateTimeField(blank=True, null=True)),
                ("queue", models.CharField(blank=True, max_length=200, null=True)),
                ("attempts", models.IntegerField(default=0)),
                ("failed_at", models.DateTimeField(blank=True, null=True)),
                ("last_error", models.TextField(blank=True, default="")),
                ("locked_by", models.CharField(blank=True, max_length=64, null=True)),
                ("locked_at", models.DateTimeField(blank=True, null=True)),
                ("creator_object_id", models.PositiveIntegerField(blank=True, null=True)),
                ("state", models.CharField(default="queued", editable=False, max_length=20)),
                ("max_attempts", models.IntegerField(blank=True, null=True)),
            ],
            options={
                "db_table": "pgqueue_background_completedtask",
                "ordering": ("-run_at", "-id"),
                "managed": False,
            },
        ),
        migrations.CreateModel(
            name="Task",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("task_name", models.CharField(db_index=True, max_length=300)),
                ("task_params", models.TextField(default="[[], {}]")),
                ("task_hash", models.CharField(blank=True, default="", max_length=40)),
                ("verbose_name", models.CharField(blank=True, max_length=255, null=True)),
                ("priority", models.IntegerField(default=0)),
                ("run_at", models.DateTimeField(blank=True, null=True)),
                ("repeat", models.BigIntegerField(choices=[(3600, "hourly"), (86400, "daily"), (604800, "weekly"), (1209600, "every 2 weeks"), (2419200, "every 4 weeks"), (0, "never")], default=0)),
                ("repeat_until", models.DateTimeField(blank=True, null=True)),
                ("queue", models.CharField(blank=True, max_length=200, null=True)),
                ("attempts", models.IntegerField(default=0)),
                ("failed_at", models.DateTimeField(blank=True, null=True)),
                ("last_error", models.TextField(blank=True, default="")),
                ("locked_by", models.CharField(blank=True, max_length=64, null=True)),
                ("locked_at", models.DateTimeField(blank=True, null=True)),
                ("creator_object_id", models.PositiveIntegerField(blank=True, null=True)),
                ("state", models.CharField(default="queued", editable=False, max_length=20)),
                ("max_attempts", models.IntegerField(blank=True, null=True)),
            ],
            options={
                "db_table": "pgqueue_background_task",
                "ordering": ("run_at", "id"),
                "managed": False,
            },
        ),
    ]
