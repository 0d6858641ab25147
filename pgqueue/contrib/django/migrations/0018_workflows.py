# ruff: noqa: RUF012
"""Runs migrations_sql/0018_workflows.sql."""

from django.db import migrations

from pgqueue.contrib.django.operations import RunSqlFile


class Migration(migrations.Migration):
    dependencies = [("pgqueue", "0017_attempt_errors")]
    operations = [RunSqlFile("0018_workflows")]
