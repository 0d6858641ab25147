# ruff: noqa: RUF012
"""Runs migrations_sql/0017_attempt_errors.sql."""

from django.db import migrations

from pgqueue.contrib.django.operations import RunSqlFile


class Migration(migrations.Migration):
    dependencies = [("pgqueue", "0016_flow_in_stats")]
    operations = [RunSqlFile("0017_attempt_errors")]
