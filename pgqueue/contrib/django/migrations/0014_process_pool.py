# ruff: noqa: RUF012
"""Runs migrations_sql/0014_process_pool.sql."""

from django.db import migrations

from pgqueue.contrib.django.operations import RunSqlFile


class Migration(migrations.Migration):
    dependencies = [("pgqueue", "0013_django_doors")]
    operations = [RunSqlFile("0014_process_pool")]
