# ruff: noqa: RUF012
"""Runs migrations_sql/0003_dba_surface.sql."""

from django.db import migrations

from pgqueue.contrib.django.operations import RunSqlFile


class Migration(migrations.Migration):
    dependencies = [("pgqueue", "0002_periodic")]
    operations = [RunSqlFile("0003_dba_surface")]
