# ruff: noqa: RUF012
"""Runs migrations_sql/0024_column_domains.sql."""

from django.db import migrations

from pgqueue.contrib.django.operations import RunSqlFile


class Migration(migrations.Migration):
    dependencies = [("pgqueue", "0022_flow_fast_path")]
    operations = [RunSqlFile("0024_column_domains")]
