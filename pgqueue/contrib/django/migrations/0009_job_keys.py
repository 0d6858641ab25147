# ruff: noqa: RUF012
"""Runs migrations_sql/0009_job_keys.sql."""

from django.db import migrations

from pgqueue.contrib.django.operations import RunSqlFile


class Migration(migrations.Migration):
    dependencies = [("pgqueue", "0008_worker_connections")]
    operations = [RunSqlFile("0009_job_keys")]
