# ruff: noqa: RUF012
"""Runs migrations_sql/0022_flow_fast_path.sql."""

from django.db import migrations

from pgqueue.contrib.django.operations import RunSqlFile


class Migration(migrations.Migration):
    dependencies = [("pgqueue", "0021_progress")]
    operations = [RunSqlFile("0022_flow_fast_path")]
