# ruff: noqa: RUF012
"""Runs migrations_sql/0004_paused_queue_filter.sql."""

from django.db import migrations

from pgqueue.contrib.django.operations import RunSqlFile


class Migration(migrations.Migration):
    dependencies = [("pgqueue", "0003_dba_surface")]
    operations = [RunSqlFile("0004_paused_queue_filter")]
