# ruff: noqa: RUF012
"""Runs migrations_sql/0008_worker_connections.sql."""

from django.db import migrations

from pgqueue.contrib.django.operations import RunSqlFile


class Migration(migrations.Migration):
    dependencies = [("pgqueue", "0007_claim_plan")]
    operations = [RunSqlFile("0008_worker_connections")]
