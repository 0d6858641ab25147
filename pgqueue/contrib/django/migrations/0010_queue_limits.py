# ruff: noqa: RUF012
"""Runs migrations_sql/0010_queue_limits.sql."""

from django.db import migrations

from pgqueue.contrib.django.operations import RunSqlFile


class Migration(migrations.Migration):
    dependencies = [("pgqueue", "0009_job_keys")]
    operations = [RunSqlFile("0010_queue_limits")]
