# ruff: noqa: RUF012
"""Runs migrations_sql/0005_single_queue_wakeup.sql."""

from django.db import migrations

from pgqueue.contrib.django.operations import RunSqlFile


class Migration(migrations.Migration):
    dependencies = [("pgqueue", "0004_paused_queue_filter")]
    operations = [RunSqlFile("0005_single_queue_wakeup")]
