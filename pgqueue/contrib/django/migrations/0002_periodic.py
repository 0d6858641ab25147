# ruff: noqa: RUF012
"""Runs migrations_sql/0002_periodic.sql."""

from django.db import migrations

from pgqueue.contrib.django.operations import RunSqlFile


class Migration(migrations.Migration):
    dependencies = [("pgqueue", "0001_initial")]
    operations = [RunSqlFile("0002_periodic")]
