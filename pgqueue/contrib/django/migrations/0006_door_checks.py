# ruff: noqa: RUF012
"""Runs migrations_sql/0006_door_checks.sql."""

from django.db import migrations

from pgqueue.contrib.django.operations import RunSqlFile


class Migration(migrations.Migration):
    dependencies = [("pgqueue", "0005_single_queue_wakeup")]
    operations = [RunSqlFile("0006_door_checks")]
