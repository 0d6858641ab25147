# ruff: noqa: RUF012
"""Runs migrations_sql/0026_column_domains.sql."""

from django.db import migrations

from pgqueue.contrib.django.operations import RunSqlFile


class Migration(migrations.Migration):
    dependencies = [("pgqueue", "0025_dependency_edges")]
    operations = [RunSqlFile("0026_column_domains")]
