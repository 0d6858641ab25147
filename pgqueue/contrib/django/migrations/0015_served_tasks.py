# ruff: noqa: RUF012
"""Runs migrations_sql/0015_served_tasks.sql."""

from django.db import migrations

from pgqueue.contrib.django.operations import RunSqlFile


class Migration(migrations.Migration):
    dependencies = [("pgqueue", "0014_process_pool")]
    operations = [RunSqlFile("0015_served_tasks")]
