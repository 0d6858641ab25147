# ruff: noqa: RUF012
"""Runs migrations_sql/0016_flow_in_stats.sql."""

from django.db import migrations

from pgqueue.contrib.django.operations import RunSqlFile


class Migration(migrations.Migration):
    dependencies = [("pgqueue", "0015_served_tasks")]
    operations = [RunSqlFile("0016_flow_in_stats")]
