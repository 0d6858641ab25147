# ruff: noqa: RUF012
"""Runs migrations_sql/0026_rate_stamp_plan.sql."""

from django.db import migrations

from pgqueue.contrib.django.operations import RunSqlFile


class Migration(migrations.Migration):
    dependencies = [("pgqueue", "0025_column_domains")]
    operations = [RunSqlFile("0026_rate_stamp_plan")]
