# ruff: noqa: RUF012
"""Runs migrations_sql/0011_queue_flow.sql."""

from django.db import migrations

from pgqueue.contrib.django.operations import RunSqlFile


class Migration(migrations.Migration):
    dependencies = [("pgqueue", "0010_queue_limits")]
    operations = [RunSqlFile("0011_queue_flow")]
