# ruff: noqa: RUF012
"""Runs migrations_sql/0025_column_domains.sql."""

from django.db import migrations

from pgqueue.contrib.django.operations import RunSqlFile


class Migration(migrations.Migration):
    dependencies = [("pgqueue", "0024_dependency_edges")]
    operations = [RunSqlFile("0025_column_domains")]
