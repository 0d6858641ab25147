# ruff: noqa: RUF012
"""Runs migrations_sql/0024_dependency_edges.sql."""

from django.db import migrations

from pgqueue.contrib.django.operations import RunSqlFile


class Migration(migrations.Migration):
    dependencies = [("pgqueue", "0023_fast_fan_in")]
    operations = [RunSqlFile("0024_dependency_edges")]
